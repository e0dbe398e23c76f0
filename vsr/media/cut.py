"""A stream-copied cut of a file: a few seconds of it, without decoding (`vsr preview`'s clip).

A stream copy can only start on a keyframe, so the cut starts at the keyframe at or before the
asked time; the frames it holds before that time are the price of not re-encoding.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from vsr.errors import EmptyInputError, UnsupportedCodecError
from vsr.media.frames import format_time
from vsr.media.probe import MediaInfo, open_input


@dataclass(frozen=True)
class Cut:
    path: Path
    start: float  # the keyframe the cut starts at, seconds from the stream's start
    frames: int  # video frames from there to the end time


def _open_cut(dest: Path, src: Any, keep: list[Any]) -> tuple[Any, dict[int, Any], Path]:
    """The cut's container, its streams and its path.

    Matroska holds nearly every codec; where it refuses one (QuickTime RLE with alpha, say), the
    input's own format holds the input's codecs by definition. The first candidate that takes
    every stream wins; else the first that takes the video (the streams it refuses are left out
    of the preview clip). A video no candidate takes is an `UnsupportedCodecError`.
    """
    video = keep[0]
    names = ["matroska", *(n for n in src.format.name.split(",") if n != "matroska")]
    fallback: tuple[Any, dict[int, Any], Path] | None = None
    for n, name in enumerate(names):
        path = dest if n == 0 else dest.with_name(f"{dest.stem}-{name}.{name}")
        try:
            dst = av.open(str(path), "w", format=name)
        except (ValueError, av.error.FFmpegError):
            continue  # a demuxer name with no muxer of that name
        streams: dict[int, Any] = {}
        for s in keep:
            with contextlib.suppress(ValueError, av.error.FFmpegError):
                streams[s.index] = dst.add_stream_from_template(s)
        if len(streams) == len(keep):
            if fallback is not None:
                _discard(*fallback)
            return dst, streams, path
        if fallback is None and video.index in streams:
            fallback = (dst, streams, path)
        else:
            _discard(dst, streams, path)
    if fallback is not None:
        return fallback
    raise UnsupportedCodecError(
        f"can't cut a preview clip of its {video.codec_context.name} video without re-encoding",
        hint="pass --no-clip for the still alone",
    )


def _discard(dst: Any, _streams: dict[int, Any], path: Path) -> None:
    with contextlib.suppress(Exception):
        dst.close()
    path.unlink(missing_ok=True)


def cut_copy(input_path: Path, info: MediaInfo, at: float, seconds: float, dest: Path) -> Cut:
    """Stream-copy the video, audio and subtitles from the keyframe at or before ``at`` to
    ``at + seconds`` (into MKV, else the input's own format; see `_open_cut`), with
    timestamps starting at 0. The returned `Cut.path` is the file written."""
    video = info.video
    origin = video.start_time or 0.0
    src = open_input(input_path)
    try:
        vs: Any = src.streams[video.index]
        tb_v = Fraction(vs.time_base)
        start_abs = Fraction(origin) + Fraction(at).limit_denominator(1_000_000)
        end_abs = start_abs + Fraction(seconds).limit_denominator(1_000_000)
        keep = [vs] + [s for s in src.streams if s.type in ("audio", "subtitle")]
        dst, out_streams, dest = _open_cut(dest, src, keep)
        with dst:
            if at > 0:
                with contextlib.suppress(av.error.FFmpegError):
                    src.seek(math.floor(start_abs / tb_v), stream=vs, backward=True)
            key_time: Fraction | None = None
            frames = 0
            # B-frames come out of order: video packets are copied a little past the end so
            # that every frame before it is there; the pipeline's frame limit cuts the rest.
            margin = Fraction(2)
            packets = [p for p in keep if p.index in out_streams]
            for packet in src.demux(*packets):
                if packet.size == 0 or packet.pts is None:
                    continue
                tb = Fraction(packet.time_base)
                t = Fraction(packet.pts) * tb
                if packet.stream.index == vs.index:
                    if key_time is None:
                        if not packet.is_keyframe:
                            continue
                        key_time = t
                    dts_t = Fraction(packet.dts) * tb if packet.dts is not None else t
                    if dts_t >= end_abs + margin:
                        break
                    if key_time <= t < end_abs:
                        frames += 1
                elif key_time is None or t < key_time or t >= end_abs:
                    continue
                shift = round(key_time / tb)
                packet.pts -= shift
                if packet.dts is not None:
                    packet.dts -= shift
                packet.stream = out_streams[packet.stream.index]
                dst.mux(packet)
            if key_time is None or frames == 0:
                raise EmptyInputError(
                    f"has no video frames from {format_time(at)} on", path=input_path
                )
    finally:
        src.close()
    return Cut(dest, float(key_time - Fraction(origin)), frames)
