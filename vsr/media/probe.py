"""The facts of a media file as vsr sees them: streams, timing, colour, layout.

Probing demuxes the video stream's packets (no decoding, except for the first frame, which
tells rotation, alpha and the real pixel format) so that frame counts and variable frame rate
are measured, not guessed from headers.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from vsr.errors import (
    EmptyInputError,
    InputError,
    InputNotFoundError,
    NotMediaError,
    NoVideoStreamError,
    UnsupportedCodecError,
)
from vsr.media.color import ColorInfo, normalise_pix_fmt, resolve_color
from vsr.media.hdr import SDR, HdrInfo, container_metadata, from_frame

# Tags in a damaged or foreign header may not be UTF-8: read them with replacement characters
# rather than fail to open the file (PyAV raises UnicodeDecodeError by default).
METADATA_ERRORS = "replace"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
# Packets read to decide VFR and count frames when the header doesn't say; beyond this a
# file is long enough that the count comes from the header or stays unknown.
_SCAN_PACKETS = 20000


@dataclass(frozen=True)
class StreamInfo:
    index: int
    type: str
    codec: str
    language: str | None = None
    title: str | None = None
    disposition: list[str] = field(default_factory=list)
    # Audio
    channels: int | None = None
    sample_rate: int | None = None
    # Attachments
    filename: str | None = None


@dataclass(frozen=True)
class VideoInfo:
    index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    has_alpha: bool
    frame_rate: Fraction | None
    time_base: Fraction
    vfr: bool
    color: ColorInfo
    field_order: str
    rotation: int
    sample_aspect_ratio: Fraction | None
    frames: int | None
    duration: float | None
    start_time: float | None
    # PQ / HLG, mastering display, light levels, HDR10+, Dolby Vision; empty for SDR.
    hdr: HdrInfo = SDR

    @property
    def is_interlaced(self) -> bool:
        return self.field_order in ("tt", "bb", "tb", "bt")


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    format: str
    duration: float | None
    video: VideoInfo
    streams: list[StreamInfo]
    chapters: list[dict[str, Any]]
    metadata: dict[str, str]
    is_image: bool = False

    def to_dict(self) -> dict[str, Any]:
        streams: list[dict[str, Any]] = []
        for s in self.streams:
            d = {k: v for k, v in asdict(s).items() if v not in (None, [])}
            if s.index == self.video.index:
                v = self.video
                d.update(
                    width=v.width,
                    height=v.height,
                    pix_fmt=v.pix_fmt,
                    bit_depth=v.bit_depth,
                    has_alpha=v.has_alpha,
                    frame_rate=_frac(v.frame_rate),
                    time_base=_frac(v.time_base),
                    vfr=v.vfr,
                    field_order=v.field_order,
                    rotation=v.rotation,
                    sample_aspect_ratio=_frac(v.sample_aspect_ratio),
                    frames=v.frames,
                    duration=v.duration,
                    **v.color.names(),
                    color_tagged=v.color.tagged_matrix,
                    hdr=v.hdr.to_dict(),
                )
            streams.append(d)
        return {
            "path": str(self.path),
            "format": self.format,
            "duration": self.duration,
            "streams": streams,
            "chapters": [
                {
                    "start": float(c["start"] * c["time_base"]),
                    "end": float(c["end"] * c["time_base"]),
                    "title": c["metadata"].get("title"),
                }
                for c in self.chapters
            ],
            "metadata": self.metadata,
        }


def _frac(value: Fraction | None) -> str | None:
    return None if value is None else f"{value.numerator}/{value.denominator}"


_FIELD_ORDER = {0: "unknown", 1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}


def open_input(path: Path) -> av.container.InputContainer:
    """Open read-only with errors a user can act on."""
    from vsr.preflight import check_reachable

    check_reachable(path)
    if not path.exists():
        raise InputNotFoundError("no such file", path=path)
    if path.is_dir():
        raise InputError("is a folder, not a media file", path=path)
    if not os.access(path, os.R_OK):
        raise InputError("cannot be read (permission denied)", path=path)
    if path.stat().st_size == 0:
        raise NotMediaError("is empty (0 bytes)", path=path)
    try:
        return av.open(
            str(path),
            mode="r",
            options={"probesize": "50000000"},
            metadata_errors=METADATA_ERRORS,
        )
    except av.error.InvalidDataError as exc:
        raise NotMediaError(
            "is not a media file FFmpeg can read, or is truncated before its header ends",
            path=path,
        ) from exc
    except av.error.FFmpegError as exc:
        raise NotMediaError(f"cannot be opened: {exc.strerror or exc}", path=path) from exc


def bit_depth_of(pix_fmt: str) -> int:
    try:
        fmt = av.VideoFormat(pix_fmt)
    except (ValueError, av.error.FFmpegError):
        return 8
    depths = [c.bits for c in fmt.components]
    return max(depths) if depths else 8


def has_alpha(pix_fmt: str) -> bool:
    try:
        return any(c.is_alpha for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, av.error.FFmpegError):
        return False


def pick_video_stream(container: av.container.InputContainer, path: Path) -> av.video.VideoStream:
    candidates = [
        s
        for s in container.streams.video
        if not (s.disposition & av.stream.Disposition.attached_pic)
    ]
    if not candidates:
        kinds: list[str] = sorted({str(s.type) for s in container.streams}) or ["no streams"]
        raise NoVideoStreamError(
            f"has no video stream to upscale (found: {', '.join(kinds)})", path=path
        )
    # The default-flagged stream if any, else the largest.
    for s in candidates:
        if s.disposition & av.stream.Disposition.default:
            return s

    def area(s: Any) -> int:
        cc = s.codec_context
        return (cc.width or 0) * (cc.height or 0) if cc is not None else 0

    return max(candidates, key=area)


def _disposition_names(stream: av.stream.Stream) -> list[str]:
    flags = stream.disposition
    return [f.name for f in av.stream.Disposition if f.value and flags & f and f.name]


def _stream_info(stream: av.stream.Stream) -> StreamInfo:
    meta = dict(stream.metadata)
    codec = ""
    channels = sample_rate = None
    if stream.type == "attachment":
        codec = "attachment"
    elif stream.codec_context is not None:
        cc: Any = stream.codec_context
        codec = cc.name
        if stream.type == "audio":
            channels = cc.channels
            sample_rate = cc.sample_rate
    if not codec:
        # Data streams (a QuickTime timecode track, GoPro telemetry) have no codec FFmpeg
        # names; say what the container says they are rather than nothing.
        codec = "timecode" if "timecode" in meta else meta.get("handler_name") or "unknown"
    return StreamInfo(
        index=stream.index,
        type=stream.type,
        codec=codec,
        language=meta.get("language") or None,
        title=meta.get("title") or None,
        disposition=_disposition_names(stream),
        channels=channels,
        sample_rate=sample_rate,
        filename=meta.get("filename") if stream.type == "attachment" else None,
    )


def _scan_timing(
    container: av.container.InputContainer, stream: av.video.VideoStream
) -> tuple[int | None, bool, list[int]]:
    """Count video packets and decide VFR from their timestamps (demux only, no decode)."""
    pts: list[int] = []
    count = 0
    complete = True
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            count += 1
            if packet.pts is not None:
                pts.append(packet.pts)
            if count >= _SCAN_PACKETS:
                complete = False
                break
    except av.error.FFmpegError:
        complete = False
    pts.sort()
    diffs = [b - a for a, b in itertools.pairwise(pts) if b > a]
    vfr = False
    if len(diffs) >= 2:
        lo, hi = min(diffs), max(diffs)
        # Timestamps rounded to a coarse time base (1/1000 for 29.97 in MKV) jitter by one
        # tick; that is constant frame rate, not VFR.
        vfr = hi - lo > 1 and hi > lo * 1.02
    return (count if complete else None), vfr, pts


def probe(path: str | Path) -> MediaInfo:
    """Read the facts of a video or image file."""
    path = Path(path)
    container = open_input(path)
    try:
        return _probe_open(container, path)
    finally:
        container.close()


def _probe_open(container: av.container.InputContainer, path: Path) -> MediaInfo:
    stream = pick_video_stream(container, path)
    cc = stream.codec_context
    if cc is None or not cc.codec:
        raise UnsupportedCodecError("video codec is not supported by this FFmpeg build", path=path)
    is_image = path.suffix.lower() in IMAGE_SUFFIXES or container.format.name.endswith("_pipe")
    header_frames = stream.frames or None
    counted, vfr, _ = _scan_timing(container, stream)
    frames = counted if counted is not None else header_frames

    # The first decoded frame knows what headers may not: rotation, real pixel format.
    first = first_frame(path, stream.index)
    if first is None:
        raise EmptyInputError("has a video stream but no frame could be decoded", path=path)
    pix_fmt = first.format.name
    width, height = first.width, first.height
    color = resolve_color(
        matrix=int(first.colorspace or cc.colorspace),
        primaries=int(first.color_primaries or cc.color_primaries),
        trc=int(first.color_trc or cc.color_trc),
        color_range=int(first.color_range or cc.color_range),
        pix_fmt=pix_fmt,
        height=height,
    )
    hdr = from_frame(first, color.trc, container_metadata(stream))
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    frame_rate = Fraction(rate) if rate else None
    sar = stream.sample_aspect_ratio or cc.sample_aspect_ratio
    tb = Fraction(stream.time_base) if stream.time_base else Fraction(1, 1000)
    duration = float(stream.duration * tb) if stream.duration else None
    if duration is None and container.duration:
        duration = container.duration / av.time_base
    video = VideoInfo(
        index=stream.index,
        codec=cc.name,
        width=width,
        height=height,
        pix_fmt=normalise_pix_fmt(pix_fmt),
        bit_depth=bit_depth_of(pix_fmt),
        has_alpha=has_alpha(pix_fmt),
        frame_rate=frame_rate,
        time_base=tb,
        vfr=vfr,
        color=color,
        field_order=_FIELD_ORDER.get(int(cc.field_order or 0), "unknown"),
        rotation=int(first.rotation or 0),
        sample_aspect_ratio=Fraction(sar) if sar else None,
        frames=frames,
        duration=duration,
        start_time=float(stream.start_time * tb) if stream.start_time is not None else None,
        hdr=hdr,
    )
    return MediaInfo(
        path=path,
        format=container.format.name,
        duration=container.duration / av.time_base if container.duration else duration,
        video=video,
        streams=[_stream_info(s) for s in container.streams],
        chapters=[dict(c) for c in container.chapters()],
        metadata=dict(container.metadata),
        is_image=is_image,
    )


def decode_forward(container: av.container.InputContainer, stream: Any) -> Iterator[av.VideoFrame]:
    """Decode forward from the demuxer's position, skipping empty packets (Theora in Ogg).

    Other decoding errors propagate (`first_frame` and `vsr.media.frames` each decide what they
    mean).
    """
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        try:
            frames = stream.decode(packet)
        except av.error.InvalidDataError:
            # Reference frames from before the seek point are missing right after a seek on
            # some streams; the keyframe that follows decodes.
            continue
        yield from frames
    yield from stream.decode(None)


def first_frame(path: Path, index: int) -> av.VideoFrame | None:
    """Decode the first frame of a stream (tolerating empty packets)."""
    with av.open(str(path), mode="r", metadata_errors=METADATA_ERRORS) as container:
        stream: Any = container.streams[index]
        try:
            return next(decode_forward(container, stream), None)
        except av.error.FFmpegError:
            return None
    return None
