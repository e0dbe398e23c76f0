"""The frame-wise processors the pipeline runs: bicubic (baseline, test double) and any network.

`TorchProcessor` runs an `nn.Module` on batches of frames: on the device and at the precision
`vsr.runtime` picks, in channels_last, padded to the size the model needs, optionally in
overlapping tiles, then resized when the wanted scale is not the model's own. Nothing is
printed: one-line notices (a fallback, a back-off, a slow option) go to `notices` and to the
`notify` callback the pipeline passes in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vsr import runtime
from vsr.config import ModelOptions
from vsr.errors import ModelError, OutOfMemoryError
from vsr.events import Notify
from vsr.models.base import FrameGeometry, ModelDescriptor, output_size

# Share of free memory `--tile auto` may plan to use when --max-memory is not given: the rest
# is headroom for the decoder, encoder, queues and whatever else runs on the machine.
AUTO_MEMORY_SHARE = 0.5
# Without --tile, frames are still split when the estimate exceeds this share of free memory:
# an untiled 4K frame through x4plus would otherwise get the process killed.
UNTILED_MEMORY_SHARE = 0.8
# Below this many input pixels a tile is mostly overlap; OOM back-off stops here.
MIN_TILE = 32


def _check_frames(frames: torch.Tensor) -> None:
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(f"expected frames shaped (N, 3, H, W), got {tuple(frames.shape)}")
    if not frames.is_floating_point():
        raise ValueError(f"expected float frames in [0, 1], got {frames.dtype}")


def resize(frames: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """High-quality bicubic resize; antialiased when shrinking so detail does not alias."""
    if frames.shape[-1] == width and frames.shape[-2] == height:
        return frames
    shrinking = width < frames.shape[-1] or height < frames.shape[-2]
    return F.interpolate(
        frames.float().contiguous(),
        size=(height, width),
        mode="bicubic",
        align_corners=False,
        antialias=shrinking,
    )


class BicubicProcessor:
    """Bicubic interpolation (OpenCV's INTER_CUBIC kernel, a = -0.75), any scale.

    Upscaling matches ``cv2.resize(..., interpolation=cv2.INTER_CUBIC)``; shrinking is
    antialiased (unlike OpenCV) because a baseline should not alias.
    """

    def __init__(self, scale: float = 2.0) -> None:
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"expected a positive scale, got {scale}")
        self._scale = float(scale)
        self._descriptor = ModelDescriptor(
            name="bicubic",
            architecture="bicubic",
            scale=max(1, math.ceil(scale)),
            params=0,
            license="n/a",
            source="built in",
        )
        self._geometry: FrameGeometry | None = None

    @property
    def descriptor(self) -> ModelDescriptor:
        return self._descriptor

    @property
    def scale(self) -> float:
        return self._scale

    @property
    def settings(self) -> dict[str, object]:
        return {
            "model": "bicubic",
            "scale": self._scale,
            "device": "cpu",
            "precision": "fp32",
            "tile": None,
            "batch": 1,
            "compile": False,
            "cuda_graphs": False,
        }

    def init(self, geometry: FrameGeometry) -> None:
        self._geometry = geometry

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        _check_frames(frames)
        width, height = output_size(frames.shape[-1], frames.shape[-2], self._scale)
        if frames.shape[0] == 0:
            return frames.new_empty((0, 3, height, width), dtype=torch.float32)
        return resize(frames, width, height).clamp_(0.0, 1.0)

    def flush(self) -> torch.Tensor:
        return _empty_output(self._geometry, self._scale)

    def reset(self) -> None:
        """Stateless: nothing to forget."""

    # The device graph (vsr.graph): frames already where the model runs, results stay there.
    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def input_dtype(self) -> torch.dtype:
        return torch.float32

    def process_device(self, frames: torch.Tensor) -> torch.Tensor:
        return self.process(frames)


def _empty_output(geometry: FrameGeometry | None, scale: float) -> torch.Tensor:
    if geometry is None:
        return torch.empty((0, 3, 0, 0))
    width, height = output_size(geometry.width, geometry.height, scale)
    return torch.empty((0, 3, height, width))


@dataclass(frozen=True)
class _Span:
    """One tile along one axis: the core it owns and the wider input it reads (with context)."""

    core0: int
    core1: int
    in0: int
    in1: int


def tile_spans(length: int, tile: int, overlap: int, multiple: int = 1) -> list[_Span]:
    """Split [0, length) into cores of at most `tile` (balanced), each read with `overlap` context.

    Starts and overlaps are multiples of `multiple` so that pixel-unshuffle groups in a tile
    line up with those of the whole frame (`length` is already padded to a multiple).
    """
    if tile >= length:
        return [_Span(0, length, 0, length)]
    count = math.ceil(length / tile)
    core = math.ceil(math.ceil(length / count) / multiple) * multiple
    spans = []
    for start in range(0, length, core):
        end = min(length, start + core)
        spans.append(_Span(start, end, max(0, start - overlap), min(length, end + overlap)))
    return spans


def _round_down(value: int, multiple: int) -> int:
    return max(multiple, value // multiple * multiple)


def _round_up(value: int, multiple: int) -> int:
    return math.ceil(value / multiple) * multiple


class TorchProcessor:
    """Runs a PyTorch network on batches of frames (see the module docstring)."""

    def __init__(
        self,
        network: nn.Module,
        descriptor: ModelDescriptor,
        options: ModelOptions,
        *,
        post_scale: float | None = None,
        notify: Notify | None = None,
        min_size: int = 0,
        square: bool = False,
    ) -> None:
        self._descriptor = descriptor
        self._options = options
        self._notify_cb = notify
        self.notices: list[str] = []
        self._device = runtime.resolve_device(options.device)
        self._precision = runtime.resolve_precision(options.precision, self._device, descriptor)
        if self._device.type == "cpu":
            runtime.tune_cpu_allocator()
        self._network = runtime.prepare_module(network, self._device, self._precision)
        self._forward: Callable[[torch.Tensor], torch.Tensor] = self._network
        graphs = options.cuda_graphs and self._device.type == "cuda"
        self._graphs = graphs
        if options.cuda_graphs and not graphs:
            self._notice("--cuda-graphs: ignored, the model runs on the CPU (graphs need CUDA)")
        if options.compile:
            # With --cuda-graphs, torch.compile records the graphs itself.
            mode = "reduce-overhead" if graphs else None
            self._forward = torch.compile(self._network, mode=mode)
            self._notice(
                "--compile: torch.compile builds the model on the first frame and again for each "
                "new frame or tile size (15-60 s each on a CPU); it pays off on long videos only"
            )
        elif graphs:
            from vsr.models.cudagraph import GraphedForward

            self._forward = GraphedForward(self._network, notify=self._notice)
        self._native = int(descriptor.scale)
        self._scale = float(post_scale) if post_scale is not None else float(self._native)
        self._multiple = max(1, int(descriptor.size_multiple))
        self._min_size = max(0, int(min_size))
        self._square = square
        self._overlap = _round_up(options.tile_overlap, self._multiple)
        self._auto_tile = options.tile == 0
        self._tile: int | None = None
        if options.tile:
            self._tile = _round_down(options.tile, self._multiple)
        self._batch = options.batch
        self._geometry: FrameGeometry | None = None
        self._bytes_per_pixel: float | None = None
        self._backed_off = False
        # Reused between calls: the tiled output canvas (never handed out, only copied from).
        self._canvas: torch.Tensor | None = None
        if descriptor.tiling == "internal" and options.tile:
            self._tile = None
            self._notice(f"{descriptor.name} tiles internally; --tile is ignored")
        elif descriptor.tiling == "discouraged" and options.tile:
            self._notice(f"{descriptor.name} may show seams when tiled; prefer no --tile")

    # ------------------------------------------------------------------ protocol

    @property
    def descriptor(self) -> ModelDescriptor:
        return self._descriptor

    @property
    def scale(self) -> float:
        return self._scale

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def tile(self) -> int | None:
        """Tile side in input pixels now in use (None: whole frames)."""
        return self._tile

    @property
    def settings(self) -> dict[str, object]:
        return {
            "model": self._descriptor.name,
            "scale": self._scale,
            "device": str(self._device),
            "precision": self._precision,
            "tile": self._tile,
            "tile_auto": self._auto_tile,
            "tile_overlap": self._overlap if self._tile else None,
            "batch": self._batch,
            "compile": self._options.compile,
            "cuda_graphs": self._graphs,
        }

    def init(self, geometry: FrameGeometry) -> None:
        self._geometry = geometry
        self._plan_tiles(geometry.width, geometry.height)

    def _ensure_geometry(self, width: int, height: int) -> None:
        """Tiles are planned once per frame size, not on every call."""
        if self._geometry is None or (self._geometry.width, self._geometry.height) != (
            width,
            height,
        ):
            self.init(FrameGeometry(width=width, height=height))

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        _check_frames(frames)
        count, _, height, width = frames.shape
        self._ensure_geometry(width, height)
        out_w, out_h = output_size(width, height, self._scale)
        # A fresh tensor per call: the pipeline keeps outputs in its queue while we go on.
        result = torch.empty((count, 3, out_h, out_w), dtype=torch.float32)
        start = 0
        while start < count:
            stop = min(count, start + self._batch)
            try:
                with torch.inference_mode():
                    self._run(frames[start:stop], result[start:stop])
            except Exception as error:
                if not runtime.is_out_of_memory(error):
                    raise
                self._back_off(error, width, height)
                continue  # the same frames again: a frame is never skipped
            start = stop
        return result

    def flush(self) -> torch.Tensor:
        return _empty_output(self._geometry, self._scale)

    def reset(self) -> None:
        """Frame-wise: no temporal state to forget."""

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype `process_device` wants its frames in."""
        return runtime.weight_dtype(self._device, self._precision)

    def process_device(self, frames: torch.Tensor) -> torch.Tensor:
        """Like `process`, for frames already on the model's device (in `input_dtype`, any
        layout): the result stays there, in the compute dtype, on the current stream.

        What the device graph (vsr.graph) calls: no host round trip, no float32 copy of the
        output. The same out-of-memory back-off as `process`: smaller tiles, then a batch of
        one, never a skipped frame.
        """
        _check_frames(frames)
        count, _, height, width = frames.shape
        self._ensure_geometry(width, height)
        out_w, out_h = output_size(width, height, self._scale)
        result: torch.Tensor | None = None
        start = 0
        while start < count:
            stop = min(count, start + self._batch)
            try:
                with torch.inference_mode():
                    y = self._run_on_device(frames[start:stop], out_w, out_h)
            except Exception as error:
                if not runtime.is_out_of_memory(error):
                    raise
                self._back_off(error, width, height)
                continue  # the same frames again: a frame is never skipped
            if start == 0 and stop == count:
                return y  # the usual case: one chunk, no extra copy
            if result is None:
                result = torch.empty(
                    (count, 3, out_h, out_w), dtype=y.dtype, device=y.device
                ).contiguous(memory_format=torch.channels_last)
            result[start:stop] = y
            start = stop
        assert result is not None
        return result

    # ------------------------------------------------------------------ internals

    def _notice(self, message: str) -> None:
        self.notices.append(message)
        if self._notify_cb is not None:
            self._notify_cb(message)

    def _padding(self, width: int, height: int) -> tuple[int, int]:
        """Right and bottom padding that meets the model's size requirements."""
        w = _round_up(max(width, self._min_size), self._multiple)
        h = _round_up(max(height, self._min_size), self._multiple)
        if self._square:
            w = h = max(w, h)
        return w - width, h - height

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        pad_w, pad_h = self._padding(x.shape[-1], x.shape[-2])
        if not (pad_w or pad_h):
            return x
        # Reflect keeps image statistics at the border (zeros would make the model draw an
        # edge), but it cannot reach further than size - 1; replicate does the rest.
        reflect_w = min(pad_w, x.shape[-1] - 1)
        reflect_h = min(pad_h, x.shape[-2] - 1)
        if reflect_w or reflect_h:
            x = F.pad(x, (0, reflect_w, 0, reflect_h), mode="reflect")
        if pad_w - reflect_w or pad_h - reflect_h:
            x = F.pad(x, (0, pad_w - reflect_w, 0, pad_h - reflect_h), mode="replicate")
        return x.contiguous(memory_format=torch.channels_last)

    def _model(self, x: torch.Tensor) -> torch.Tensor:
        with runtime.inference(self._device, self._precision):
            return self._forward(x)

    def _run(self, frames: torch.Tensor, out: torch.Tensor) -> None:
        height, width = frames.shape[-2:]
        x = self._pad(runtime.to_device(frames, self._device, self._precision))
        native_h, native_w = height * self._native, width * self._native
        tile = self._tile
        y = self._model(x) if tile is None or tile >= max(x.shape[-2:]) else self._tiled(x, tile)
        y = y[..., :native_h, :native_w]
        out_w, out_h = out.shape[-1], out.shape[-2]
        if (native_w, native_h) != (out_w, out_h):
            y = resize(y, out_w, out_h)
        out.copy_(y)
        # One reduction over the output: any NaN or Inf makes the sum non-finite (values near
        # [0, 1] can't overflow it). Clamping would turn NaN into black frames and exit 0.
        if not bool(torch.isfinite(out.sum())):
            raise self._non_finite()
        out.clamp_(0.0, 1.0)

    def _run_on_device(self, frames: torch.Tensor, out_w: int, out_h: int) -> torch.Tensor:
        height, width = frames.shape[-2:]
        x = frames.to(self.input_dtype).contiguous(memory_format=torch.channels_last)
        x = self._pad(x)
        tile = self._tile
        y = self._model(x) if tile is None or tile >= max(x.shape[-2:]) else self._tiled(x, tile)
        y = y[..., : height * self._native, : width * self._native]
        if (y.shape[-1], y.shape[-2]) != (out_w, out_h):
            y = resize(y, out_w, out_h)
        elif tile is not None and y.data_ptr() == self._canvas_ptr():
            y = y.clone()  # the canvas is reused by the next call
        # See _run; summed in float32, as a half-precision sum of a big frame overflows.
        if not bool(torch.isfinite(y.sum(dtype=torch.float32))):
            raise self._non_finite()
        return y.clamp_(0.0, 1.0)

    def _canvas_ptr(self) -> int:
        return self._canvas.data_ptr() if self._canvas is not None else -1

    def _non_finite(self) -> ModelError:
        name = self._options.name
        path = Path(name).expanduser()
        what = f"the checkpoint {name}" if path.is_file() else f"the model {name}"
        if self._precision in ("fp16", "bf16"):
            hint = (
                f"the output overflowed at {self._precision}: try --precision fp32; "
                "if that fails too, the weights are damaged"
            )
        else:
            hint = "its weights are damaged or not trained; check the file or retrain it"
        return ModelError(
            f"{what} produced non-finite output (NaN or Inf) on {self._device}",
            path=path if path.is_file() else None,
            hint=hint,
        )

    def _canvas_for(self, shape: tuple[int, int, int, int]) -> torch.Tensor:
        canvas = self._canvas
        if canvas is None or tuple(canvas.shape) != shape:
            # float32 whatever the compute dtype: tiles are stitched without a second rounding.
            canvas = torch.empty(shape, dtype=torch.float32, device=self._device)
            self._canvas = canvas
        return canvas

    def _tiled(self, x: torch.Tensor, tile: int) -> torch.Tensor:
        """Run the model tile by tile; each tile's core is cut from an output with context.

        Crop-based rather than blended: every output pixel comes from a tile that saw at least
        `overlap` input pixels around it, so with enough overlap the result matches the
        untiled one (tested within 1/255 on a real image).
        """
        count, _, height, width = x.shape
        s = self._native
        canvas = self._canvas_for((count, self._descriptor.out_channels, height * s, width * s))
        for ys in tile_spans(height, tile, self._overlap, self._multiple):
            for xs in tile_spans(width, tile, self._overlap, self._multiple):
                piece = x[..., ys.in0 : ys.in1, xs.in0 : xs.in1]
                piece = self._pad(piece.contiguous(memory_format=torch.channels_last))
                y = self._model(piece)
                top, left = (ys.core0 - ys.in0) * s, (xs.core0 - xs.in0) * s
                core_h, core_w = (ys.core1 - ys.core0) * s, (xs.core1 - xs.core0) * s
                canvas[..., ys.core0 * s : ys.core1 * s, xs.core0 * s : xs.core1 * s] = y[
                    ..., top : top + core_h, left : left + core_w
                ]
        return canvas

    # ------------------------------------------------------------------ memory

    def bytes_per_pixel(self) -> float:
        """Estimated peak activation memory per input pixel of one frame, measured once.

        A forward pass on a small probe records the largest input+output of any layer; the
        peak holds about twice that (dense blocks keep earlier features alive beside the
        concatenation) plus the network's own input and output and the float32 result.
        Checked against peak RSS growth on the CPU: x4plus-size RRDBNet fp32 within 10%,
        animevideov3-size SRVGG bf16 about 10% under (the auto budget leaves headroom).
        """
        if self._bytes_per_pixel is not None:
            return self._bytes_per_pixel
        # Bigger on CUDA, where fixed workspaces would otherwise dominate a tiny probe.
        side = 64 if self._device.type == "cuda" else 32
        side = _round_up(max(side, self._min_size), self._multiple)
        probe = torch.rand((1, 3, side, side))
        largest = 0

        def record(_module: nn.Module, inputs: object, output: object) -> None:
            nonlocal largest
            largest = max(largest, _nbytes(inputs) + _nbytes(output))

        handles = [
            m.register_forward_hook(record)
            for m in self._network.modules()
            if not any(True for _ in m.children())
        ]
        try:
            x = runtime.to_device(probe, self._device, self._precision)
            baseline = runtime.peak_memory_start(self._device)
            with runtime.inference(self._device, self._precision):
                y = self._network(x)
            measured = runtime.peak_memory_since(self._device, baseline)
        finally:
            for handle in handles:
                handle.remove()
        pixels = side * side
        # On CUDA the allocator's own peak is known (it includes cuDNN workspaces); the
        # larger of the two keeps the estimate on the safe side.
        # The float32 result handed to the pipeline is alive beside the network's output.
        result = y.numel() * 4
        per_pixel = max(2 * largest + _nbytes(x) + _nbytes(y) + result, measured) / pixels
        self._bytes_per_pixel = per_pixel
        return per_pixel

    def planned_memory(self, width: int, height: int, free: int) -> int:
        """Bytes the tile planner plans for a batch of `width`x`height` frames on a machine
        with `free` bytes free: the whole frames when they fit its budget (--max-memory, else
        its share of `free`), else the budget its tiles are cut to; with a fixed --tile, the
        tiles'. A cluster worker asks its scheduler for this, so Ray packs workers by it."""
        if self._tile and not self._auto_tile:
            side = self._tile + 2 * self._overlap
            return int(side * side * self.bytes_per_pixel() * self._batch)
        share = AUTO_MEMORY_SHARE if self._auto_tile else UNTILED_MEMORY_SHARE
        return int(min(self._frame_need(width, height), self._budget(share, free)))

    def _frame_need(self, width: int, height: int) -> float:
        """Estimated bytes for a batch of whole (padded) frames."""
        pad_w, pad_h = self._padding(width, height)
        return (width + pad_w) * (height + pad_h) * self.bytes_per_pixel() * self._batch

    def _budget(self, share: float, free: int | None = None) -> int:
        if self._options.max_memory is not None:
            return self._options.max_memory
        if free is None:
            free = runtime.available_memory(self._device)
        return int(free * share)

    def _largest_tile(self, budget: int) -> int:
        per_tile_pixel = self.bytes_per_pixel() * self._batch
        side = int(math.sqrt(max(budget, 1) / per_tile_pixel)) - 2 * self._overlap
        return max(_round_down(side, self._multiple), _round_up(MIN_TILE, self._multiple))

    def _plan_tiles(self, width: int, height: int) -> None:
        if self._descriptor.tiling == "internal" or (self._tile and not self._auto_tile):
            return
        try:
            self.bytes_per_pixel()
        except Exception as error:
            if not runtime.is_out_of_memory(error):
                raise
            # Not even the probe fits: leave it to the back-off in process(), which shrinks
            # tiles down to the minimum and then says how much is missing.
            runtime.release_cached_memory(self._device)
            return
        need = self._frame_need(width, height)
        if self._auto_tile:
            budget = self._budget(AUTO_MEMORY_SHARE)
            if need <= budget:
                self._tile = None
            else:
                self._tile = self._largest_tile(budget)
            return
        budget = self._budget(UNTILED_MEMORY_SHARE)
        if need > budget:
            self._tile = self._largest_tile(budget)
            self._notice(
                f"a {width}x{height} frame needs about {need / 2**30:.1f} GiB untiled "
                f"on {self._device}, more than is free; using tiles of {self._tile} px "
                "(set --tile or --max-memory to choose)"
            )

    def _back_off(self, error: BaseException, width: int, height: int) -> None:
        """After an out-of-memory error: smaller tiles, then a batch of 1, then give up."""
        runtime.release_cached_memory(self._device)
        previous = self._tile
        floor = _round_up(MIN_TILE, self._multiple)
        if self._tile is None:
            longest = max(width, height)
            self._tile = max(floor, _round_down(longest // 2, self._multiple))
        elif self._tile > floor:
            self._tile = max(floor, _round_down(self._tile // 2, self._multiple))
        elif self._batch > 1:
            self._batch = 1
        else:
            raise OutOfMemoryError(
                f"out of memory on {self._device} even with {self._tile} px tiles and batch 1",
                hint="use --precision fp16/bf16, a smaller model, or --device cpu",
            ) from error
        if not self._backed_off:
            self._backed_off = True
            was = f"tiles of {previous} px" if previous else "whole frames"
            self._notice(
                f"out of memory on {self._device} with {was}; retrying with smaller tiles "
                f"(now {self._tile} px, batch {self._batch}); the frame is redone, none skipped"
            )


def _nbytes(value: object) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    return 0
