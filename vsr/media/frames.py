"""Reading frames: a whole video as RGB arrays, or the one frame a player shows at a time.

The one place outside the upscale pipeline's `VideoReader` where frames are decoded: eval,
training, degrade, preview and the batch report all read through here, so they all see the
pixels the pipeline feeds its models (each frame converted with its stream's own matrix and
range by `vsr.media.color`, never FFmpeg's BT.601 default).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from vsr.errors import (
    CorruptInputError,
    EmptyInputError,
    NotMediaError,
    NoVideoStreamError,
    UsageError,
    VsrError,
)
from vsr.media.color import ColorInfo, resolve_color, to_rgb
from vsr.media.filters import FilterChain, FilterSpec, StreamGeometry, resolve_spec
from vsr.media.probe import MediaInfo, decode_forward, open_input, probe

# A decoded picture, for type hints in modules that pass frames along without opening PyAV.
VideoFrame = av.VideoFrame


def format_time(seconds: float) -> str:
    """``HH:MM:SS.mmm``, the form `vsr preview --at` takes and its messages show."""
    h, rest = divmod(max(0.0, seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{int(h):02d}:{int(m):02d}:{s:06.3f}"


# --------------------------------------------------------------------------- one frame to RGB


def frame_color(frame: av.VideoFrame) -> ColorInfo:
    """The frame's colour tags, unspecified ones resolved the way the upscale pipeline does."""
    return resolve_color(
        matrix=int(frame.colorspace),
        primaries=int(frame.color_primaries),
        trc=int(frame.color_trc),
        color_range=int(frame.color_range),
        pix_fmt=frame.format.name,
        height=frame.height,
    )


def frame_rgb(
    frame: av.VideoFrame, color: ColorInfo | None = None, *, deep: bool = False
) -> np.ndarray:
    """(H, W, 3) full-range RGB, uint8 (uint16 with ``deep``), decoded with ``color`` (the
    stream's resolved tags; None: the frame's own), as the pipeline decodes it."""
    color = color or frame_color(frame)
    fmt = "rgb48le" if deep else "rgb24"
    return np.asarray(to_rgb(frame, color, fmt, frame.width, frame.height).to_ndarray())


# --------------------------------------------------------------------------- a whole video


def iter_video_rgb(path: str | Path) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 RGB frames of the first video stream, in presentation order.

    Raises NotMediaError, NoVideoStreamError, CorruptInputError (with the frame's index) and
    EmptyInputError (a video stream without one decodable frame).
    """
    path = Path(path)
    from vsr.preflight import check_reachable

    check_reachable(path)  # missing, or behind a folder that can't be searched
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise NotMediaError(f"not a media file FFmpeg can read ({exc})", path=path) from exc
    with container:
        if not container.streams.video:
            raise NoVideoStreamError("has no video stream", path=path)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        color: ColorInfo | None = None
        try:
            for packet in container.demux(stream):
                if packet.size == 0 and packet.dts is not None:
                    continue
                for frame in packet.decode():
                    if not isinstance(frame, av.VideoFrame):
                        continue
                    # The first frame's tags hold for the stream (as in the pipeline).
                    color = color or frame_color(frame)
                    yield frame_rgb(frame, color)
                    index += 1
        except av.FFmpegError as exc:
            raise CorruptInputError(
                f"cannot decode frame {index} ({exc})", path=path, frame=index
            ) from exc
        if index == 0:
            raise EmptyInputError("has a video stream but no decodable frames", path=path)


# --------------------------------------------------------------------------- the frame at a time


@dataclass
class GrabbedFrame:
    """A decoded frame and where it sits."""

    frame: av.VideoFrame
    time: float  # presentation time in seconds, on the stream's own timeline
    keyframe_time: float  # the keyframe decoding started from
    # Frames decoded from that keyframe up to this one, for filters that need context.
    history: list[av.VideoFrame] = field(default_factory=list)


def _frame_time(frame: av.VideoFrame, time_base: Fraction) -> Fraction | None:
    if frame.pts is None:
        return None
    return Fraction(frame.pts) * time_base


def _decode_from(
    container: av.container.InputContainer, stream: Any, path: Path
) -> Iterator[av.VideoFrame]:
    """`decode_forward`, with a decoding error as the input's fault."""
    try:
        yield from decode_forward(container, stream)
    except av.error.FFmpegError as exc:
        raise CorruptInputError(f"cannot be decoded ({exc})", path=path) from exc


def grab_frame(
    path: str | Path, at: float, *, info: MediaInfo | None = None, keep_history: bool = False
) -> GrabbedFrame:
    """The frame a player shows ``at`` seconds after the start of the video stream.

    Seeks to the keyframe at or before that time, then decodes forward to the last frame whose
    presentation time is not after it. Raises UsageError when ``at`` is past the end.
    """
    path = Path(path)
    info = info or probe(path)
    video = info.video
    start = video.start_time or 0.0
    duration = video.duration if video.duration is not None else info.duration
    if duration is not None and at >= duration:
        raise UsageError(
            f"--at {format_time(at)} is past the end of {path.name} "
            f"(it lasts {format_time(duration)})",
            hint=f"pick a time below {format_time(duration)}",
        )
    target = Fraction(start) + Fraction(at).limit_denominator(1_000_000)
    container = open_input(path)
    try:
        stream: Any = container.streams[video.index]
        stream.thread_type = "AUTO"
        tb = Fraction(stream.time_base) if stream.time_base else Fraction(1, 1000)
        seek_ok = False
        if at > 0:
            with contextlib.suppress(av.error.FFmpegError):
                container.seek(math.floor(target / tb), stream=stream, backward=True)
                seek_ok = True
        found = _scan(container, stream, tb, target, path, keep_history)
        if found is None or (seek_ok and found.time > float(target)):
            # The seek landed after the target (no index, or a keyframe timestamp that the
            # demuxer rounds); decode from the start instead.
            container.close()
            container = open_input(path)
            stream = container.streams[video.index]
            stream.thread_type = "AUTO"
            found = _scan(container, stream, tb, target, path, keep_history)
        if found is None:
            raise EmptyInputError("has no decodable video frame", path=path)
        return found
    finally:
        container.close()


def _scan(
    container: av.container.InputContainer,
    stream: Any,
    tb: Fraction,
    target: Fraction,
    path: Path,
    keep_history: bool,
) -> GrabbedFrame | None:
    best: av.VideoFrame | None = None
    first_time: Fraction | None = None
    history: list[av.VideoFrame] = []
    for frame in _decode_from(container, stream, path):
        t = _frame_time(frame, tb)
        if t is None:
            continue
        if first_time is None:
            first_time = t
        if t > target:
            if best is None:
                best = frame  # the stream starts after the asked time: its first frame
            break
        best = frame
        if keep_history:
            history.append(frame)
    if best is None or first_time is None:
        return None
    t_best = _frame_time(best, tb) or Fraction(0)
    return GrabbedFrame(best, float(t_best), float(first_time), history if keep_history else [])


def filtered_frame(
    path: Path, info: MediaInfo, grabbed: GrabbedFrame, spec: FilterSpec
) -> av.VideoFrame:
    """Run the restoration filters over the frames from the keyframe to the grabbed one (a
    `grab_frame` with ``keep_history``), the way the pipeline would; the filtered frame at
    the grabbed frame's time (field-rate output: its first field)."""
    concrete = resolve_spec(spec, path)
    with av.open(str(path)) as container:
        geometry = StreamGeometry.from_stream(container.streams[info.video.index])  # type: ignore[arg-type]
    frames = grabbed.history or [grabbed.frame]
    geometry = dataclasses.replace(
        geometry, width=frames[0].width, height=frames[0].height, pix_fmt=frames[0].format.name
    )
    if frames[0].time_base is not None:
        geometry = dataclasses.replace(geometry, time_base=Fraction(frames[0].time_base))
    chain = FilterChain(concrete, geometry)
    outputs: list[av.VideoFrame] = []
    for frame in frames:
        outputs.extend(chain.push(frame))
    outputs.extend(chain.flush())
    if not outputs:
        raise VsrError("internal error: the restoration filters returned no frame")
    target = grabbed.time
    tb = chain.output.time_base
    timed = [(abs(float(Fraction(f.pts or 0) * tb) - target), i) for i, f in enumerate(outputs)]
    return outputs[min(timed)[1]]
