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
front by :func:`resolve_spec`, which returns a spec without any "auto" left; a
``FilterChain`` only ever runs a concrete spec, so a run is deterministic and resumable.

This FFmpeg build has no ``cropdetect`` and no ``hqdn3d`` (both GPL). Crop detection is done
here with the same rule cropdetect uses (a line is black when its mean luma is at most
``limit``); ``hqdn3d`` is accepted only when the FFmpeg in use has it, and ``atadenoise`` /
``fftdnoiz`` are offered as fast denoisers that also keep high bit depth.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import av
import av.filter
import numpy as np

if TYPE_CHECKING:
    import torch

from vsr.errors import (
    EmptyInputError,
    InputError,
    InputNotFoundError,
    NotMediaError,
    NoVideoStreamError,
    UsageError,
)
from vsr.media.color import MATRIX_NAMES, RANGE_NAMES

Deinterlace = Literal["auto", "off", "tff", "bff"]
DeinterlaceMode = Literal["frame", "field"]
Deinterlacer = Literal["bwdif", "yadif"]
Denoiser = Literal["off", "hqdn3d", "nlmeans", "atadenoise", "fftdnoiz"]
FieldOrder = Literal["tff", "bff", "progressive"]
CropBox = tuple[int, int, int, int]  # (width, height, x, y), as FFmpeg's crop filter takes them

DEINTERLACE_CHOICES: tuple[str, ...] = ("auto", "off", "tff", "bff")
DEINTERLACE_MODES: tuple[str, ...] = ("frame", "field")
DEINTERLACERS: tuple[str, ...] = ("bwdif", "yadif")
DENOISERS: tuple[str, ...] = ("off", "hqdn3d", "nlmeans", "atadenoise", "fftdnoiz")
# Denoisers whose FFmpeg implementation only takes 8-bit input: FFmpeg would silently convert a
# 10-bit source down to 8 bits in front of them, which vsr never does behind a user's back.
EIGHT_BIT_ONLY_DENOISERS: frozenset[str] = frozenset({"nlmeans"})
MAX_DENOISE_STRENGTH = 10.0

# cropdetect's default: a line whose mean luma (0-255 scale) is at most 24 counts as black.
# Limited-range black is 16, so this leaves room for analogue noise in the bars.
DEFAULT_CROP_LIMIT = 24.0


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


def _alignment(pix_fmt: str) -> tuple[int, int]:
    """Crop alignment (x, y) so chroma planes are cut on whole samples; at least 2 because
    the output is most likely encoded 4:2:0."""
    fmt = av.VideoFormat(pix_fmt)
    probe = 1 << 10
    sub_x = probe // max(1, fmt.chroma_width(probe))
    sub_y = probe // max(1, fmt.chroma_height(probe))
    return max(2, sub_x), max(2, sub_y)


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
    ax, ay = _alignment(source.pix_fmt)
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


# --------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class IdetCounts:
    """idet's multi-frame verdict counts over the analysed frames."""

    tff: int = 0
    bff: int = 0
    progressive: int = 0
    undetermined: int = 0

    def __add__(self, other: IdetCounts) -> IdetCounts:
        return IdetCounts(
            self.tff + other.tff,
            self.bff + other.bff,
            self.progressive + other.progressive,
            self.undetermined + other.undetermined,
        )

    @property
    def verdict(self) -> FieldOrder:
        interlaced = self.tff + self.bff
        # Most material has a few ambiguous frames either way; demand a clear majority of
        # the decided ones, and at least a handful, before deinterlacing anything.
        if interlaced >= 3 and interlaced > self.progressive:
            return "tff" if self.tff >= self.bff else "bff"
        return "progressive"


def _open_input(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise InputNotFoundError("file not found", path=path)
    try:
        return av.open(str(path), mode="r", metadata_errors="replace")
    except av.FFmpegError as exc:
        raise NotMediaError(f"not a media file FFmpeg can read ({exc})", path=path) from exc


def _video_stream(
    container: av.container.InputContainer, path: Path
) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise NoVideoStreamError("no video stream", path=path)
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _decode(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Iterator[av.VideoFrame]:
    # Demux and decode by hand: some real files carry empty packets that decode() rejects.
    for packet in container.demux(stream):
        if packet.size == 0 and packet.dts is not None:
            continue
        try:
            yield from packet.decode()
        except av.InvalidDataError:
            continue  # Analysis only: a damaged frame does not change the verdict.


def _windows(path: Path, windows: int, per_window: int) -> Iterator[list[av.VideoFrame]]:
    """Runs of consecutive frames from evenly spread places in the file.

    Spread, because the start of a tape or film is often black, static or a progressive
    logo; consecutive, because idet compares neighbouring frames.
    """
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        time_base = stream.time_base or Fraction(1, av.time_base)
        duration = None
        if stream.duration:
            duration = float(stream.duration * time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        start = float(stream.start_time * time_base) if stream.start_time else 0.0
        if duration is None or windows <= 1:
            yield _take(_decode(container, stream), per_window * max(1, windows))
            return
        got_any = False
        for i in range(windows):
            target = start + duration * i / windows
            if i:
                try:
                    container.seek(round(target / time_base), stream=stream, backward=True)
                except av.FFmpegError:
                    break  # Not seekable: the first window stands alone.
            frames = _take(_decode(container, stream), per_window)
            if frames:
                got_any = True
                yield frames
        if not got_any:
            raise EmptyInputError("no decodable video frames", path=path)


def _take(frames: Iterator[av.VideoFrame], count: int) -> list[av.VideoFrame]:
    out: list[av.VideoFrame] = []
    for frame in frames:
        out.append(frame)
        if len(out) >= count:
            break
    return out


def idet_counts(frames: Iterable[av.VideoFrame]) -> IdetCounts:
    """Run FFmpeg's idet over consecutive frames and return its multi-frame counts."""
    graph: av.filter.Graph | None = None
    last: av.VideoFrame | None = None
    for frame in frames:
        if graph is None:
            graph = av.filter.Graph()
            src = graph.add(
                "buffer",
                video_size=f"{frame.width}x{frame.height}",
                pix_fmt=frame.format.name,
                time_base=str(frame.time_base or Fraction(1, 25)),
                pixel_aspect="1/1",
            )
            graph.link_nodes(src, graph.add("idet"), graph.add("buffersink"))
            graph.configure()
        graph.vpush(frame)
        last = _pull_last(graph) or last
    if graph is None:
        return IdetCounts()
    graph.vpush(None)
    last = _pull_last(graph) or last
    if last is None:
        return IdetCounts()
    meta = last.metadata

    def count(key: str) -> int:
        return round(float(meta.get(f"lavfi.idet.multiple.{key}", 0)))

    return IdetCounts(count("tff"), count("bff"), count("progressive"), count("undetermined"))


def _pull_last(graph: av.filter.Graph) -> av.VideoFrame | None:
    last = None
    while True:
        try:
            last = graph.vpull()
        except (av.BlockingIOError, av.EOFError):
            return last


def detect_field_order(
    source: str | Path | Iterable[av.VideoFrame], *, sample: int = 240
) -> FieldOrder:
    """Field order of a file or of consecutive frames: "tff", "bff" or "progressive".

    A file is sampled at four places, ``sample`` frames in all. When idet cannot decide
    (static pictures), the stream's own field-order tag is trusted.
    """
    if sample < 4:
        raise UsageError(f"expected a sample of at least 4 frames, got {sample}")
    if not isinstance(source, str | Path):
        return idet_counts(_take(iter(source), sample)).verdict
    path = Path(source)
    total = IdetCounts()
    for window in _windows(path, windows=4, per_window=max(2, sample // 4)):
        total = total + idet_counts(window)
    if total.tff + total.bff + total.progressive == 0:
        return _tagged_field_order(path)
    return total.verdict


def _tagged_field_order(path: Path) -> FieldOrder:
    with _open_input(path) as container:
        order = str(_video_stream(container, path).codec_context.field_order or "").lower()
    # FFmpeg: "tt"/"bt" are top field first (coded and displayed), "bb"/"tb" bottom first.
    if order in ("tt", "bt", "tff"):
        return "tff"
    if order in ("bb", "tb", "bff"):
        return "bff"
    return "progressive"


def _content_box(luma: np.ndarray, threshold: float) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the rows and columns whose mean luma is above ``threshold``."""
    rows = np.flatnonzero(luma.mean(axis=1) > threshold)
    cols = np.flatnonzero(luma.mean(axis=0) > threshold)
    if rows.size == 0 or cols.size == 0:
        return None  # An all-black frame (a fade) says nothing about the borders.
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _luma(frame: av.VideoFrame) -> tuple[np.ndarray, float]:
    """The luma plane as float, and how many of its units make one step on the 0-255 scale."""
    fmt = frame.format
    depth = _bit_depth(fmt.name)
    if fmt.is_planar and not fmt.is_rgb and not fmt.is_big_endian and depth <= 16:
        # Planar YUV/gray: plane 0 is luma as coded (no range conversion by swscale).
        plane = frame.planes[0]
        dtype = np.dtype(np.uint8 if depth <= 8 else np.uint16)
        row = plane.line_size // dtype.itemsize
        values = np.frombuffer(memoryview(plane), dtype).reshape(-1, row)[
            : frame.height, : frame.width
        ]
        return values.astype(np.float32), float(1 << depth) / 256.0
    # Packed or RGB formats: let swscale derive 8-bit luma.
    return frame.reformat(format="gray").to_ndarray().astype(np.float32), 1.0


def detect_crop(
    source: str | Path | Iterable[av.VideoFrame],
    *,
    sample: int = 24,
    limit: float = DEFAULT_CROP_LIMIT,
) -> CropBox:
    """Black borders of a file or frames, as a crop box ``(width, height, x, y)``.

    Each sampled frame gives the box of its non-black lines (cropdetect's rule, ``limit`` on
    the 0-255 scale); the result is the union over all samples, so a dark scene never crops
    picture away, aligned outwards to the chroma subsampling. A border is only cut where the
    picture meets it along a straight edge (see ``_edge_filled``): a planet on a black sky
    is not a letterbox. No borders: the full frame.
    """
    if sample < 1:
        raise UsageError(f"expected a sample of at least 1 frame, got {sample}")
    if not (0 <= limit < 255):
        raise UsageError(f"expected a crop limit between 0 and 255, got {limit}")
    frames: Iterable[av.VideoFrame]
    if isinstance(source, str | Path):
        # One frame from each of many places: borders are a property of the whole film.
        frames = (w[0] for w in _windows(Path(source), windows=sample, per_window=1) if w)
    else:
        frames = _take(iter(source), sample)
    box: list[int] | None = None
    size: tuple[int, int] | None = None
    pix_fmt = "yuv420p"
    # Bright-pixel masks, bit-packed (1 MB per 4K frame), for the edge check at the end.
    masks: list[np.ndarray] = []
    for frame in frames:
        size, pix_fmt = (frame.width, frame.height), frame.format.name
        luma, unit = _luma(frame)
        masks.append(np.packbits(luma > limit * unit, axis=1))
        found = _content_box(luma, limit * unit)
        if found is None:
            continue
        if box is None:
            box = list(found)
        else:
            box = [
                min(box[0], found[0]),
                min(box[1], found[1]),
                max(box[2], found[2]),
                max(box[3], found[3]),
            ]
    if size is None:
        if isinstance(source, str | Path):
            raise EmptyInputError("no decodable video frames", path=source)
        raise UsageError("expected at least one frame to detect borders in, got none")
    width, height = size
    if box is None:
        return (width, height, 0, 0)
    x0, y0, x1, y1 = box
    unpacked = [np.unpackbits(m, axis=1, count=width).astype(bool) for m in masks]
    # Edge lines are measured across the whole frame, not just the box: measured inside the
    # box, a round object's own bounding box would vouch for itself.
    whole = slice(None)
    if y0 > 0 and not _edge_filled(unpacked, (slice(y0, y0 + 4), whole), axis=1):
        y0 = 0
    if y1 < height and not _edge_filled(unpacked, (slice(y1 - 4, y1), whole), axis=1):
        y1 = height
    if x0 > 0 and not _edge_filled(unpacked, (whole, slice(x0, x0 + 4)), axis=0):
        x0 = 0
    if x1 < width and not _edge_filled(unpacked, (whole, slice(x1 - 4, x1)), axis=0):
        x1 = width
    ax, ay = _alignment(pix_fmt)
    x0 -= x0 % ax
    y0 -= y0 % ay
    x1 = min(width, x1 + (-x1) % ax)
    y1 = min(height, y1 + (-y1) % ay)
    # The frame edge itself may be odd (odd-sized sources): trim inwards there.
    w = (x1 - x0) - (x1 - x0) % ax
    h = (y1 - y0) - (y1 - y0) % ay
    return (w, h, x0, y0)


# A letterboxed picture meets its bar along a straight line: in some sample, at least this
# share of the frame-wide line's pixels is bright (a 4:3 picture in a 16:9 window box fills
# 75% of a row). Round or ragged content on black (a globe, a spotlit
# face) reaches the box edge only at a few pixels and keeps its borders.
EDGE_FILL = 0.5


def _edge_filled(masks: list[np.ndarray], band: tuple[slice, slice], *, axis: int) -> bool:
    """Whether any line of ``band`` (rows for axis=1, columns for axis=0) is mostly bright."""
    for mask in masks:
        region = mask[band]
        if region.size and float(region.mean(axis=axis).max()) >= EDGE_FILL:
            return True
    return False


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
        with _open_input(Path(path)) as container:
            ctx = _video_stream(container, Path(path)).codec_context
            full = (ctx.width, ctx.height, 0, 0)
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
