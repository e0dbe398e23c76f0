"""Restoration filters that run before the model: deinterlace, crop, square pixels, denoise.

Everything runs through one FFmpeg filter graph (PyAV's ``av.filter.Graph``) per stream, so
frames stay in the source's pixel format (10-bit stays 10-bit) and keep their colour tags.
The order is fixed because each step needs the previous one:

    deinterlace -> crop -> square pixels -> denoise

Deinterlacing has to see whole, unscaled fields; cropping before scaling keeps the bars out of
the resampler; denoising last works on the final geometry and costs the least.

Timestamps: FFmpeg's deinterlacers halve the link's time base and double every PTS, also in
frame-rate mode. Frame-rate output is given back in the source's own time base with each input
frame's PTS unchanged; field-rate output stays in the halved time base, where the second field
of each frame falls exactly between its neighbours (``FilterChain.output`` says which).

Analysis that needs the whole file (``deinterlace = "auto"``, ``crop = "auto"``) is done up
front by :func:`resolve_spec` with the detectors of `vsr.media.detect`; it returns a spec
without any "auto" left, and a ``FilterChain`` only ever runs a concrete spec, so a run is
deterministic and resumable.

This FFmpeg build has no ``hqdn3d`` (GPL): it is accepted only when the FFmpeg in use has it,
and ``atadenoise`` / ``fftdnoiz`` are offered as fast denoisers that also keep high bit depth.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import av
import av.filter

if TYPE_CHECKING:
    import torch

from vsr.errors import InputError, UsageError
from vsr.media.color import MATRIX_NAMES, RANGE_NAMES
from vsr.media.detect import CropBox, crop_alignment, detect_crop, detect_field_order, video_size

Deinterlace = Literal["auto", "off", "tff", "bff"]
DeinterlaceMode = Literal["frame", "field"]
Deinterlacer = Literal["bwdif", "yadif"]
Denoiser = Literal["off", "hqdn3d", "nlmeans", "atadenoise", "fftdnoiz"]

DEINTERLACE_CHOICES: tuple[str, ...] = ("auto", "off", "tff", "bff")
DEINTERLACE_MODES: tuple[str, ...] = ("frame", "field")
DEINTERLACERS: tuple[str, ...] = ("bwdif", "yadif")
DENOISERS: tuple[str, ...] = ("off", "hqdn3d", "nlmeans", "atadenoise", "fftdnoiz")
# Denoisers whose FFmpeg implementation only takes 8-bit input: FFmpeg would silently convert a
# 10-bit source down to 8 bits in front of them, which vsr never does behind a user's back.
EIGHT_BIT_ONLY_DENOISERS: frozenset[str] = frozenset({"nlmeans"})
MAX_DENOISE_STRENGTH = 10.0


def _expected(what: str, choices: Iterable[str], got: object) -> str:
    return f"expected {what} one of {', '.join(choices)}, got {got!r}"


@dataclass(frozen=True)
class FilterSpec:
    """Which restoration filters run before the model (mirrors --deinterlace, --crop, ...).

    ``crop`` is "off", "auto" (detected from the file) or an explicit ``(width, height, x, y)``
    box in source pixels. ``denoise_strength`` scales the chosen denoiser's usual setting:
    1.0 is a moderate default, 0.5 half as strong, 3.0 strong (range 0 < s <= 10).
    """

    deinterlace: Deinterlace = "off"
    deinterlace_mode: DeinterlaceMode = "frame"
    deinterlacer: Deinterlacer = "bwdif"
    crop: Literal["off", "auto"] | CropBox = "off"
    square_pixels: bool = False
    denoise: Denoiser = "off"
    denoise_strength: float = 1.0

    def __post_init__(self) -> None:
        if self.deinterlace not in DEINTERLACE_CHOICES:
            raise UsageError(_expected("--deinterlace", DEINTERLACE_CHOICES, self.deinterlace))
        if self.deinterlace_mode not in DEINTERLACE_MODES:
            raise UsageError(
                _expected("deinterlace mode", DEINTERLACE_MODES, self.deinterlace_mode)
            )
        if self.deinterlacer not in DEINTERLACERS:
            raise UsageError(_expected("deinterlacer", DEINTERLACERS, self.deinterlacer))
        if isinstance(self.crop, str):
            if self.crop not in ("off", "auto"):
                raise UsageError(f"expected --crop off, auto or W:H:X:Y, got {self.crop!r}")
        else:
            box = tuple(self.crop) if isinstance(self.crop, tuple | list) else ()
            if (
                len(box) != 4
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in box)
                or box[0] < 2
                or box[1] < 2
                or box[2] < 0
                or box[3] < 0
            ):
                raise UsageError(
                    "expected --crop W:H:X:Y with W, H >= 2 and X, Y >= 0 (whole pixels), "
                    f"got {self.crop!r}"
                )
            object.__setattr__(self, "crop", box)
        if not isinstance(self.square_pixels, bool):
            raise UsageError(f"expected square pixels true or false, got {self.square_pixels!r}")
        if self.denoise not in DENOISERS:
            raise UsageError(_expected("--denoise", DENOISERS, self.denoise))
        if self.denoise != "off" and self.denoise not in av.filter.filters_available:
            others = [d for d in DENOISERS[1:] if d in av.filter.filters_available]
            raise UsageError(
                f"the FFmpeg in this PyAV build has no {self.denoise} filter",
                hint=f"use --denoise {' or '.join(others)}",
            )
        strength = self.denoise_strength
        if (
            isinstance(strength, bool)
            or not isinstance(strength, int | float)
            or not math.isfinite(strength)
            or not (0 < strength <= MAX_DENOISE_STRENGTH)
        ):
            raise UsageError(
                f"expected a denoise strength above 0 and at most {MAX_DENOISE_STRENGTH:g}, "
                f"got {strength!r}"
            )

    @property
    def needs_analysis(self) -> bool:
        """True while "auto" values are left that :func:`resolve_spec` must settle."""
        return self.deinterlace == "auto" or self.crop == "auto"

    @property
    def is_identity(self) -> bool:
        """True when no filter would touch a frame (the chain then passes frames through)."""
        return (
            self.deinterlace == "off"
            and self.crop == "off"
            and not self.square_pixels
            and self.denoise == "off"
        )


def parse_crop(text: str) -> Literal["off", "auto"] | CropBox:
    """Parse --crop: "off", "auto", or "W:H:X:Y" (also accepts "WxH+X+Y")."""
    value = text.strip().lower()
    if value in ("off", "auto"):
        return value  # type: ignore[return-value]
    parts = value.replace("x", ":").replace("+", ":").split(":")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) != 4:
        raise UsageError(f"expected --crop off, auto or W:H:X:Y (e.g. 704:480:8:0), got {text!r}")
    return (numbers[0], numbers[1], numbers[2], numbers[3])


@dataclass(frozen=True)
class StreamGeometry:
    """What the filter graph must know about the frames it will be given."""

    width: int
    height: int
    pix_fmt: str
    time_base: Fraction
    # None for variable frame rate or when the container does not say.
    frame_rate: Fraction | None = None
    sample_aspect_ratio: Fraction = Fraction(1, 1)
    # FFmpeg names ("bt709", "tv", ...) or None when untagged.
    colorspace: str | None = None
    color_range: str | None = None

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise UsageError(f"expected a frame size above 0, got {self.width}x{self.height}")
        if self.time_base <= 0:
            raise UsageError(f"expected a time base above 0, got {self.time_base}")
        if self.sample_aspect_ratio <= 0:
            raise UsageError(
                f"expected a sample aspect ratio above 0, got {self.sample_aspect_ratio}"
            )

    @classmethod
    def from_stream(cls, stream: av.video.stream.VideoStream) -> StreamGeometry:
        """Read the geometry of a demuxed video stream (before its first frame is decoded)."""
        ctx = stream.codec_context
        sar = stream.sample_aspect_ratio or ctx.sample_aspect_ratio
        rate = stream.average_rate or stream.guessed_rate
        return cls(
            width=ctx.width,
            height=ctx.height,
            pix_fmt=ctx.format.name if ctx.format is not None else "yuv420p",
            time_base=Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000),
            frame_rate=Fraction(rate) if rate else None,
            sample_aspect_ratio=Fraction(sar) if sar and sar > 0 else Fraction(1, 1),
            colorspace=_colorspace_name(ctx.colorspace),
            color_range=_range_name(ctx.color_range),
        )


# The buffer source takes colour tags by name; vsr.media.color holds FFmpeg's names.
def _colorspace_name(value: object) -> str | None:
    name = MATRIX_NAMES.get(int(value)) if isinstance(value, int) else None
    return None if name == "unknown" else name


def _range_name(value: object) -> str | None:
    name = RANGE_NAMES.get(int(value)) if isinstance(value, int) else None
    return None if name == "unknown" else name


def _bit_depth(pix_fmt: str) -> int:
    return max(c.bits for c in av.VideoFormat(pix_fmt).components)


def square_pixel_size(width: int, height: int, sar: Fraction) -> tuple[int, int]:
    """Frame size with square pixels: the width is resampled to ``width * sar`` (even)."""
    new_width = max(2, 2 * round(width * sar / 2))
    return new_width, height


@dataclass(frozen=True)
class FilterOutput:
    """What comes out of a FilterChain: what the model and the encoder are told."""

    width: int
    height: int
    pix_fmt: str
    time_base: Fraction
    frame_rate: Fraction | None
    sample_aspect_ratio: Fraction
    # Output frames per input frame: 2 for field-rate deinterlacing, else 1.
    rate_factor: int


class FilterChain:
    """One filter graph for one video stream: push decoded frames, get filtered frames.

    Frames come out in presentation order with PTS in ``output.time_base``. The deinterlacers
    and temporal denoisers hold a few frames back; ``flush`` returns them at the end, after
    which the total count is ``frames_in * output.rate_factor``.
    """

    def __init__(self, spec: FilterSpec, source: StreamGeometry, *, threads: int = 0) -> None:
        if spec.needs_analysis:
            raise UsageError(
                "expected a filter spec without 'auto' values; call resolve_spec() on the "
                "input first"
            )
        self.spec = spec
        self.source = source
        self.frames_in = 0
        self.frames_out = 0
        self._flushed = False
        self._last_pts: int | None = None

        width, height = source.width, source.height
        sar = source.sample_aspect_ratio
        crop = spec.crop if isinstance(spec.crop, tuple) else None
        if crop is not None:
            _check_crop(crop, source)
            if crop == (width, height, 0, 0):
                crop = None
            else:
                width, height = crop[0], crop[1]
        scale_to: tuple[int, int] | None = None
        if spec.square_pixels and sar != 1:
            scale_to = square_pixel_size(width, height, sar)
            width, height = scale_to
            sar = Fraction(1, 1)
        if spec.denoise in EIGHT_BIT_ONLY_DENOISERS and _bit_depth(source.pix_fmt) > 8:
            raise UsageError(
                f"{spec.denoise} only works on 8-bit video in FFmpeg, and this source is "
                f"{source.pix_fmt}",
                hint="use --denoise atadenoise or fftdnoiz, which keep the bit depth",
            )
        deinterlace = spec.deinterlace in ("tff", "bff")
        field_rate = deinterlace and spec.deinterlace_mode == "field"
        self.output = FilterOutput(
            width=width,
            height=height,
            pix_fmt=source.pix_fmt,
            time_base=source.time_base / 2 if field_rate else source.time_base,
            frame_rate=(
                source.frame_rate * 2 if field_rate and source.frame_rate else source.frame_rate
            ),
            sample_aspect_ratio=sar,
            rate_factor=2 if field_rate else 1,
        )
        # The deinterlacer's own output time base (half the input's), to map PTS back from.
        self._graph_time_base = source.time_base / 2 if deinterlace else source.time_base
        self._graph: av.filter.Graph | None = None
        if spec.is_identity or (
            not deinterlace and crop is None and scale_to is None and spec.denoise == "off"
        ):
            return  # Nothing to do for this stream: frames pass through untouched.
        self._graph = self._build(spec, source, crop, scale_to, threads)

    @staticmethod
    def _build(
        spec: FilterSpec,
        source: StreamGeometry,
        crop: CropBox | None,
        scale_to: tuple[int, int] | None,
        threads: int,
    ) -> av.filter.Graph:
        graph = av.filter.Graph()
        graph.threads = threads
        buffer_args: dict[str, str] = {
            "video_size": f"{source.width}x{source.height}",
            "pix_fmt": source.pix_fmt,
            "time_base": str(source.time_base),
            "pixel_aspect": str(source.sample_aspect_ratio),
        }
        if source.frame_rate:
            buffer_args["frame_rate"] = str(source.frame_rate)
        # Telling the source the colour tags lets scale keep them instead of guessing.
        if source.colorspace:
            buffer_args["colorspace"] = source.colorspace
        if source.color_range:
            buffer_args["range"] = source.color_range
        nodes = [graph.add("buffer", **buffer_args)]
        if spec.deinterlace in ("tff", "bff"):
            nodes.append(
                graph.add(
                    spec.deinterlacer,
                    mode="send_field" if spec.deinterlace_mode == "field" else "send_frame",
                    parity=spec.deinterlace,
                    # Every frame: the order was analysed up front, and many files carry
                    # wrong or missing interlaced flags.
                    deint="all",
                )
            )
        if crop is not None:
            w, h, x, y = crop
            nodes.append(graph.add("crop", w=str(w), h=str(h), x=str(x), y=str(y), exact="1"))
        if scale_to is not None:
            nodes.append(
                graph.add(
                    "scale",
                    w=str(scale_to[0]),
                    h=str(scale_to[1]),
                    flags="lanczos+accurate_rnd+full_chroma_int",
                )
            )
            nodes.append(graph.add("setsar", sar="1"))
        if spec.denoise != "off":
            nodes.append(
                graph.add(spec.denoise, **_denoise_args(spec.denoise, spec.denoise_strength))
            )
        # Any filter that negotiated another format is turned back to the source's, so the
        # encoder sees what it was told; bit depth loss is ruled out above.
        nodes.append(graph.add("format", pix_fmts=source.pix_fmt))
        nodes.append(graph.add("buffersink"))
        graph.link_nodes(*nodes)
        graph.configure()
        return graph

    def push(self, frame: av.VideoFrame) -> list[av.VideoFrame]:
        """Filter one decoded frame; returns the frames that are ready (maybe none)."""
        if self._flushed:
            raise ValueError("FilterChain.push() after flush()")
        if frame.width != self.source.width or frame.height != self.source.height:
            raise InputError(
                f"expected {self.source.width}x{self.source.height} frames, got "
                f"{frame.width}x{frame.height} mid-stream",
                hint="resolution changes inside one stream are not supported",
            )
        if frame.time_base is not None and Fraction(frame.time_base) != self.source.time_base:
            raise ValueError(
                f"expected frames in time base {self.source.time_base}, got {frame.time_base}"
            )
        self.frames_in += 1
        if self._graph is None:
            self.frames_out += 1
            return [frame]
        frame.time_base = self.source.time_base
        self._graph.vpush(frame)
        return self._drain()

    def flush(self) -> list[av.VideoFrame]:
        """End of stream: return the frames the filters still hold."""
        if self._flushed or self._graph is None:
            self._flushed = True
            return []
        self._flushed = True
        self._graph.vpush(None)
        return self._drain()

    def _drain(self) -> list[av.VideoFrame]:
        assert self._graph is not None
        out: list[av.VideoFrame] = []
        while True:
            try:
                frame = self._graph.vpull()
            except (av.BlockingIOError, av.EOFError):
                break
            out.append(self._retime(frame))
        self.frames_out += len(out)
        return out

    def _retime(self, frame: av.VideoFrame) -> av.VideoFrame:
        """Put the frame in ``output.time_base`` (exactly: the deinterlacer doubled PTS)."""
        target = self.output.time_base
        if frame.pts is not None and target != self._graph_time_base:
            ticks = Fraction(frame.pts) * self._graph_time_base / target
            if ticks.denominator != 1:
                raise ValueError(f"PTS {frame.pts} does not map onto time base {target}")
            frame.pts = int(ticks)
        if frame.pts is not None and self.output.rate_factor == 2:
            # With a single frame the deinterlacer has no neighbour to time the second field
            # by and repeats the first field's PTS; place it half a frame later instead.
            if self._last_pts is not None and frame.pts <= self._last_pts:
                rate = self.source.frame_rate
                half = round(1 / (rate * self.source.time_base)) if rate else 1
                frame.pts = self._last_pts + max(1, half)
            self._last_pts = frame.pts
        frame.time_base = target
        return frame


def _check_crop(crop: CropBox, source: StreamGeometry) -> None:
    w, h, x, y = crop
    if x + w > source.width or y + h > source.height:
        raise UsageError(
            f"expected a crop box inside the {source.width}x{source.height} frame, got "
            f"{w}:{h}:{x}:{y}"
        )
    ax, ay = crop_alignment(source.pix_fmt)
    if w % ax or x % ax or h % ay or y % ay:
        fixed = (w - w % ax, h - h % ay, x + (-x) % ax, y + (-y) % ay)
        raise UsageError(
            f"expected crop width and x in multiples of {ax}, height and y in multiples of {ay} "
            f"for {source.pix_fmt}, got {w}:{h}:{x}:{y}",
            hint=f"try --crop {fixed[0]}:{fixed[1]}:{fixed[2]}:{fixed[3]}",
        )


def _denoise_args(name: str, strength: float) -> dict[str, str]:
    """Filter options for a denoiser; strength 1.0 is each filter's moderate setting."""
    if name == "hqdn3d":
        return {"luma_spatial": f"{4.0 * strength:.3f}"}
    if name == "nlmeans":
        # s is the noise standard deviation it assumes (1..30); 3 cleans SD video noise.
        return {"s": f"{min(30.0, max(1.0, 3.0 * strength)):.3f}"}
    if name == "atadenoise":
        # Thresholds A and B per plane, as a fraction of full scale. FFmpeg's defaults (0.02,
        # 0.04) barely touch tape noise of sigma 4/255; twice that halves its variance.
        a = f"{min(0.3, 0.04 * strength):.4f}"
        b = f"{min(5.0, 0.08 * strength):.4f}"
        return {"0a": a, "0b": b, "1a": a, "1b": b, "2a": a, "2b": b}
    if name == "fftdnoiz":
        return {"sigma": f"{min(100.0, 4.0 * strength):.3f}"}
    raise UsageError(_expected("--denoise", DENOISERS, name))


def resolve_spec(
    spec: FilterSpec,
    path: str | Path,
    *,
    field_sample: int = 240,
    crop_sample: int = 24,
) -> FilterSpec:
    """Settle "auto" values by analysing the file; the result runs in a FilterChain."""
    if not spec.needs_analysis:
        return spec
    changes: dict[str, object] = {}
    if spec.deinterlace == "auto":
        order = detect_field_order(path, sample=field_sample)
        changes["deinterlace"] = "off" if order == "progressive" else order
    if spec.crop == "auto":
        box = detect_crop(path, sample=crop_sample)
        full = (*video_size(path), 0, 0)
        changes["crop"] = "off" if box == full else box
    return replace(spec, **changes)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- after the model


def output_size_for_height(width: int, height: int, target_height: int) -> tuple[int, int]:
    """(width, height) for a target height: aspect kept, width rounded to an even number."""
    if target_height < 2 or target_height % 2:
        raise UsageError(f"expected --height of an even number of at least 2, got {target_height}")
    return max(2, 2 * round(width * target_height / height / 2)), target_height


def resize_to_height(frames: torch.Tensor, height: int) -> torch.Tensor:
    """Resize model output (N, 3, H, W) in [0, 1] to ``height``, antialiased bicubic.

    Antialiasing matters when shrinking (x4 model on 480p for 1080p output): plain bicubic
    would alias the fine detail the model just made.
    """
    # Imported here: presets and `vsr presets list` use this module and should not pay the
    # seconds torch takes to import.
    import torch
    import torch.nn.functional as F

    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"expected frames shaped (N, 3, H, W), got {tuple(frames.shape)}")
    if not frames.is_floating_point():
        raise ValueError(f"expected floating-point frames, got {frames.dtype}")
    in_h, in_w = frames.shape[-2:]
    out_w, out_h = output_size_for_height(in_w, in_h, height)
    if (out_w, out_h) == (in_w, in_h):
        return frames
    # CPU bicubic with antialias wants float32; half types are resized at float32 precision.
    work = frames if frames.dtype == torch.float32 else frames.float()
    resized = F.interpolate(
        work, size=(out_h, out_w), mode="bicubic", align_corners=False, antialias=True
    )
    # Bicubic overshoots at edges; frames are [0, 1] by contract.
    return resized.clamp_(0.0, 1.0).to(frames.dtype)
