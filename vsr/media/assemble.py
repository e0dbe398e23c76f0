"""The final mux of a segmented job: the segments' video packets with the copied streams.

A job encodes its video into segment files (vsr.resume keeps them across interrupted runs);
when every frame is done, this writes the one output file: the segments' packets, with the
exact timestamps recorded when they were encoded, interleaved by time with the input's audio,
subtitle and other streams read straight from the input.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from vsr.errors import VsrError
from vsr.media import remux
from vsr.media.decode import packed_bframes_filter
from vsr.media.encode import OutputWriter, VideoEncoding
from vsr.media.probe import METADATA_ERRORS, MediaInfo

# (when in seconds, 0 video / 1 other, the packet, the video packet's [pts, dts, duration, key])
_Item = tuple[float, int, av.Packet, list[int | None]]


@dataclass(frozen=True)
class MuxJob:
    """What the output file holds, as the job's plan decided it."""

    input: Path
    fmt: str
    info: MediaInfo  # the video as encoded (after the filters)
    streams: tuple[remux.StreamPlan, ...]
    encoding: VideoEncoding
    size: tuple[int, int]
    # A cut job (preview, --frames, a duration): the other streams stop where the video does.
    cut: bool = False
    skip_corrupt: bool = False


@dataclass(frozen=True)
class SegmentPart:
    """One finished segment: its video file and its packets' recorded timestamps (JSON)."""

    media: Path
    stamps: Path


def assemble(tmp: Path, job: MuxJob, parts: Sequence[SegmentPart]) -> OutputWriter:
    """Write the output into `tmp`; the writer it returns holds the stream reports."""
    tb = job.info.video.time_base
    end_time = None
    if job.cut:
        ends = [int(p[0]) + int(p[2] or 0) for p in _stamps(parts[-1]) if p[0] is not None]
        end_time = float(max(ends) * tb) if ends else None
    offset = _ogg_offset(job)
    # Its own input container: the copied streams are read from the start, negative
    # timestamps (AAC priming) included, whatever the segment passes did to the other one.
    with (
        av.open(str(job.input), metadata_errors=METADATA_ERRORS) as source,
        av.open(str(parts[0].media)) as first,
    ):
        writer = OutputWriter(
            tmp,
            job.fmt,
            job.info,
            source,
            list(job.streams),
            job.encoding,
            job.size[0],
            job.size[1],
            video_template=first.streams.video[0],
            time_offset=offset,
            skip_corrupt=job.skip_corrupt,
        )
        writer.open()
        expected = [0]  # video packets the segments hold, counted while they are read
        try:
            merged = heapq.merge(
                _segment_packets(parts, tb, expected),
                _copied_packets(source, job.streams, end_time),
                key=lambda item: item[0],
            )
            for _t, kind, packet, stamp in merged:
                if kind == 0:
                    writer.write_video_packet(packet, stamp[0], stamp[1], stamp[2])
                else:
                    writer.write_packet(packet)
            writer.close()
        except BaseException:
            writer.abort()
            raise
    if writer.frames_written != expected[0]:
        raise VsrError(
            f"internal error: {expected[0]} video packets encoded but {writer.frames_written} "
            "written; the output was not kept"
        )
    return writer


def _ogg_offset(job: MuxJob) -> Fraction:
    """How far every stream moves forward so none starts before zero (Ogg only)."""
    if job.fmt != "ogg":
        return Fraction(0)
    copied = {p.input_index for p in job.streams if p.action in ("copy", "transcode")}
    with av.open(str(job.input), metadata_errors=METADATA_ERRORS) as peek:
        offset = remux.lead_before_zero(peek, copied)
    if offset and job.info.video.frame_rate:
        # Whole frames, so that the video's timestamps stay exact on Ogg's frame grid.
        step = 1 / Fraction(job.info.video.frame_rate)
        offset = math.ceil(offset / step) * step
    return offset


def _stamps(part: SegmentPart) -> list[list[int | None]]:
    """The segment's packets' [pts, dts, duration, key], with every duration filled in.

    Encoders leave some durations out (the last packets after a flush); the gap to the next
    frame, or the typical frame step for the very last one, is what a player would use.
    """
    data = json.loads(part.stamps.read_text(encoding="utf-8"))
    packets: list[list[int | None]] = list(data["packets"])
    order = sorted((p[0], i) for i, p in enumerate(packets) if p[0] is not None)
    steps = [b[0] - a[0] for a, b in itertools.pairwise(order) if b[0] > a[0]]
    typical = sorted(steps)[len(steps) // 2] if steps else 1
    for (pts, i), nxt in zip(order, [*order[1:], None], strict=True):
        if packets[i][2] and int(packets[i][2] or 0) > 0:
            continue
        packets[i][2] = (nxt[0] - pts) if nxt is not None and nxt[0] > pts else typical
    return packets


def _segment_packets(
    parts: Sequence[SegmentPart], tb: Fraction, count: list[int]
) -> Iterator[_Item]:
    for part in parts:
        stamps = _stamps(part)
        count[0] += len(stamps)
        with av.open(str(part.media)) as seg:
            packets = (p for p in seg.demux(video=0) if p.size)
            for packet, stamp in zip(packets, stamps, strict=False):
                when = stamp[1] if stamp[1] is not None else stamp[0]
                yield (float((when or 0) * tb), 0, packet, stamp)


def _copied_packets(
    container: av.container.InputContainer,
    plans: Sequence[remux.StreamPlan],
    end_time: float | None,
) -> Iterator[_Item]:
    indices = {p.input_index for p in plans if p.action in ("copy", "transcode")}
    streams = [s for s in container.streams if s.index in indices]
    if not streams:
        return
    last = 0.0
    repair = remux.TimestampRepair()

    def ready(packets: list[av.Packet]) -> Iterator[_Item]:
        nonlocal last
        for packet in packets:
            stamp = packet.dts if packet.dts is not None else packet.pts
            if stamp is not None and packet.time_base is not None:
                last = float(stamp * packet.time_base)
            if end_time is not None and last >= end_time:
                continue
            yield (last, 1, packet, [])

    # A copied DivX/Xvid stream gets its packed B-frames unpacked, as the decoded one does.
    unpackers = {
        s.index: f for s in streams if s.type == "video" and (f := packed_bframes_filter(s))
    }
    try:
        for packet in container.demux(*streams):
            if packet.size == 0 and packet.stream.type != "subtitle":
                continue
            unpack = unpackers.get(packet.stream.index)
            if unpack is None:
                yield from ready(repair.feed(packet))
                continue
            source = packet.stream
            for out in unpack.filter(packet):
                out.stream = source
                yield from ready(repair.feed(out))
    except av.error.FFmpegError:
        # Damage in the input was already reported (or accepted with --skip-corrupt) while
        # decoding; what could be read is kept.
        pass
    yield from ready(repair.flush())
