"""Which input streams go to the output and how: copied, transcoded, or (video) encoded.

Audio, subtitle, attachment and data streams are copied packet for packet whenever the output
container accepts their codec. Otherwise audio is transcoded (AAC for MP4/MOV, Opus for WebM)
and text subtitles are rewritten as the container's text format, each with a notice. What
cannot be carried (bitmap subtitles or attachments in MP4) is an error that suggests MKV:
nothing is dropped silently.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Literal

import av
import av.error

from vsr.errors import ContainerError, UsageError

Action = Literal["encode", "copy", "transcode", "attach", "drop"]

CONTAINERS: dict[str, str] = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mkv": "matroska",
    ".mka": "matroska",
    ".webm": "webm",
    ".mov": "mov",
    ".avi": "avi",
    ".ts": "mpegts",
    ".m2ts": "mpegts",
    ".mts": "mpegts",
    ".nut": "nut",
    ".ogg": "ogg",
    ".ogv": "ogg",
}
TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"}
_AUDIO_FALLBACK = {
    "mp4": "aac",
    "mov": "aac",
    "webm": "libopus",
    "avi": "mp3",
    "mpegts": "aac",
    "ogg": "libopus",
}
# FFmpeg's Ogg muxer takes these codecs; its codec query only reports two of them.
# FFmpeg's MOV muxer lists these but refuses them unless told to write experimental files
# (MP4 takes them): they are transcoded for .mov instead.
_MOV_EXPERIMENTAL = frozenset({"flac", "opus", "libopus"})
# Codec and encoder names both, as callers ask with either.
_OGG_CODECS = frozenset(
    {"theora", "vp8", "vorbis", "opus", "flac", "speex"}
    | {"libtheora", "libvpx", "libvorbis", "libopus", "libspeex"}
)
_TEXT_SUB_FALLBACK = {"mp4": "mov_text", "mov": "mov_text", "webm": "webvtt"}
# Tags the muxer writes itself, or that describe the old encode (stale after re-encoding).
_STALE_TAGS = {
    "encoder",
    "major_brand",
    "minor_version",
    "compatible_brands",
    "duration",
    "number_of_frames",
    "number_of_bytes",
    "bps",
    "_statistics_tags",
    "_statistics_writing_app",
    "_statistics_writing_date_utc",
    "creation_time",
}


@dataclass(frozen=True)
class StreamPlan:
    input_index: int
    type: str
    codec_in: str
    action: Action
    codec_out: str
    note: str = ""
    # Worth telling the user as it happens (a transcode, a stream left out); the stream
    # report in --json has every note either way.
    announce: bool = True


def container_format(output: Path) -> str:
    suffix = output.suffix.lower()
    if suffix not in CONTAINERS:
        known = ", ".join(sorted(CONTAINERS))
        raise UsageError(
            f"can't tell the output container from {output.name!r}: expected one of {known}"
        )
    return CONTAINERS[suffix]


@cache
def supported_codecs(fmt: str) -> frozenset[str]:
    with av.open(io.BytesIO(), mode="w", format=fmt) as probe_out:
        return frozenset(probe_out.supported_codecs)


def accepts(fmt: str, codec: str) -> bool:
    if fmt in ("matroska", "nut"):
        # Matroska carries almost anything; FFmpeg's query under-reports a few codecs.
        return codec not in ("mov_text",) or fmt == "nut"
    if fmt == "ogg":
        return codec in _OGG_CODECS
    if fmt == "mov" and codec in _MOV_EXPERIMENTAL:
        return False
    return codec in supported_codecs(fmt)


def plan_streams(
    container: av.container.InputContainer, video_index: int, fmt: str, video_codec: str
) -> list[StreamPlan]:
    """Decide each stream's fate, raising ContainerError for what the format can't hold."""
    plans: list[StreamPlan] = []
    problems: list[str] = []
    chapters = bool(container.chapters())
    for stream in container.streams:
        kind = stream.type
        if stream.index == video_index:
            plans.append(StreamPlan(stream.index, kind, _codec_name(stream), "encode", video_codec))
            continue
        codec = _codec_name(stream)
        if kind == "data" and codec == "unknown" and chapters:
            # MP4/MOV keep chapters as a text track; the chapters themselves are carried over
            # with set_chapters, so copying the track too would duplicate them.
            plans.append(
                StreamPlan(
                    stream.index,
                    kind,
                    codec,
                    "drop",
                    "",
                    "chapter track: chapters kept",
                    announce=False,
                )
            )
            continue
        if kind == "data" and (fmt in ("matroska", "webm") or not accepts(fmt, codec)):
            plans.append(
                StreamPlan(
                    stream.index,
                    kind,
                    codec,
                    "drop",
                    "",
                    f"{fmt} can't hold data stream #{stream.index} ({codec}): left out",
                )
            )
            continue
        if kind == "attachment":
            if fmt == "matroska":
                plans.append(StreamPlan(stream.index, kind, codec, "attach", codec))
            else:
                name = stream.metadata.get("filename", f"#{stream.index}")
                problems.append(f"attachment {name!r}")
            continue
        if kind == "video":
            # Cover art or a second angle: carried over as it is, not upscaled.
            if accepts(fmt, codec):
                plans.append(
                    StreamPlan(stream.index, kind, codec, "copy", codec, "copied, not upscaled")
                )
            else:
                problems.append(f"video stream #{stream.index} ({codec})")
            continue
        if accepts(fmt, codec):
            plans.append(StreamPlan(stream.index, kind, codec, "copy", codec))
            continue
        if kind == "audio" and fmt in _AUDIO_FALLBACK:
            target = _AUDIO_FALLBACK[fmt]
            plans.append(
                StreamPlan(
                    stream.index,
                    kind,
                    codec,
                    "transcode",
                    target,
                    f"{fmt} can't hold {codec} audio: transcoded to {target.removeprefix('lib')}",
                )
            )
        elif kind == "subtitle" and codec in TEXT_SUBTITLES and fmt in _TEXT_SUB_FALLBACK:
            target = _TEXT_SUB_FALLBACK[fmt]
            plans.append(
                StreamPlan(
                    stream.index,
                    kind,
                    codec,
                    "transcode",
                    target,
                    f"{fmt} can't hold {codec} subtitles: rewritten as {target} (styling dropped)",
                )
            )
        else:
            problems.append(f"{kind} stream #{stream.index} ({codec})")
    if problems:
        raise ContainerError(
            f"the {fmt} container can't hold {', '.join(problems)}",
            hint="write to .mkv instead, which keeps every stream",
        )
    return plans


def _codec_name(stream: av.stream.Stream) -> str:
    if stream.type == "attachment":
        return "attachment"
    cc = stream.codec_context
    if cc is not None and cc.name:
        return str(cc.name)
    return "unknown"


def clean_metadata(metadata: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in metadata.items() if k.lower() not in _STALE_TAGS}


_ASS_OVERRIDE = re.compile(r"\{[^}]*\}")
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")


def subtitle_text(payload: bytes, codec: str) -> str:
    """The plain text of one subtitle packet."""
    text = payload.decode("utf-8", errors="replace")
    if codec in ("ass", "ssa"):
        # Matroska ASS packets: ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text
        text = text.split(",", 8)[-1]
        text = _ASS_OVERRIDE.sub("", text).replace("\\N", "\n").replace("\\n", "\n")
    elif codec == "mov_text":
        size = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
        text = payload[2 : 2 + size].decode("utf-8", errors="replace")
    else:
        text = _HTML_TAG.sub("", text)
    return text.strip("\r\n")


def subtitle_payload(text: str, codec_out: str) -> bytes:
    data = text.encode("utf-8")
    if codec_out == "mov_text":
        return len(data).to_bytes(2, "big") + data
    return data


class TimestampRepair:
    """Makes each copied stream's timestamps increase, keeping its place against the others.

    Muxers refuse a packet whose decode time goes backwards (EINVAL). FFmpeg's Ogg demuxer
    produces exactly that when a stream starts before zero (a file cut from a live stream, an
    edit, encoder priming): the packets of the first page are stamped from 0 because their true
    time is only known from the next page's granule position, and the packets after it carry
    the true, negative-based times. So a backward jump within the first `head_seconds` of a
    stream moves the packets before it back onto the later, trustworthy timeline. A backward
    jump later on (a spliced or wrapped stream) moves the rest of the stream forward instead,
    so that it continues where it was, as FFmpeg's command line does for a discontinuity.

    Packets are fed in demux order; `feed` returns the packets that are ready, each with its
    corrected timestamps already set. `flush` returns what is still held back.
    """

    def __init__(self, head_seconds: float = 30.0) -> None:
        self.head_seconds = head_seconds
        self._held: dict[int, list[av.Packet]] = {}
        self._head_open: dict[int, bool] = {}
        self._start: dict[int, float] = {}
        self._last: dict[int, int] = {}  # last corrected dts (or pts), per stream
        self._end: dict[int, int] = {}  # where the last packet ends (dts + duration)
        self._offset: dict[int, int] = {}  # added to every later packet of the stream
        self.repaired: dict[int, int] = {}  # stream index -> packets retimed

    def feed(self, packet: av.Packet) -> list[av.Packet]:
        index = packet.stream.index
        stamp = packet.dts if packet.dts is not None else packet.pts
        if stamp is None or packet.time_base is None:
            return self._hold_or_pass(index, packet)
        offset = self._offset.get(index, 0)
        if offset:
            self._shift(packet, offset)
            stamp += offset
        last = self._last.get(index)
        if last is not None and stamp < last:
            expected = self._end.get(index, last)
            if self._head_open.get(index, False):
                # The held head was stamped on a wrong timeline: move it back so that it ends
                # where this packet begins.
                delta = stamp - expected
                for held in self._held[index]:
                    self._shift(held, delta)
                self.repaired[index] = self.repaired.get(index, 0) + len(self._held[index])
            else:
                delta = expected - stamp
                self._offset[index] = offset + delta
                self._shift(packet, delta)
                stamp += delta
                self.repaired[index] = self.repaired.get(index, 0) + 1
        self._last[index] = stamp
        self._end[index] = stamp + max(0, int(packet.duration or 0))
        if index not in self._start:
            self._start[index] = float(stamp * packet.time_base)
            self._head_open[index] = True
        return self._hold_or_pass(index, packet)

    def _hold_or_pass(self, index: int, packet: av.Packet) -> list[av.Packet]:
        if not self._head_open.get(index, False):
            return [packet]
        held = self._held.setdefault(index, [])
        held.append(packet)
        stamp = self._last.get(index)
        if (
            stamp is not None
            and packet.time_base is not None
            and float(stamp * packet.time_base) - self._start[index] < self.head_seconds
        ):
            return []
        # Past the head: nothing before this point can be moved any more.
        self._head_open[index] = False
        self._held[index] = []
        return held

    def flush(self) -> list[av.Packet]:
        out = [p for held in self._held.values() for p in held]
        self._held.clear()
        self._head_open = dict.fromkeys(self._head_open, False)
        return out

    @staticmethod
    def _shift(packet: av.Packet, delta: int) -> None:
        if packet.pts is not None:
            packet.pts += delta
        if packet.dts is not None:
            packet.dts += delta


def lead_before_zero(
    container: av.container.InputContainer, indices: set[int], *, max_packets: int = 20000
) -> Fraction:
    """How far the earliest of these streams starts before zero (0 when none does).

    Timestamps as the final mux will write them (repaired as above), read from the streams'
    first packets: past each stream's head nothing can move earlier.
    """
    streams = [s for s in container.streams if s.index in indices]
    if not streams:
        return Fraction(0)
    repair = TimestampRepair()
    earliest = Fraction(0)
    seen: set[int] = set()
    try:
        for count, packet in enumerate(container.demux(*streams)):
            for ready in repair.feed(packet) if packet.size else []:
                stamp = ready.pts if ready.pts is not None else ready.dts
                if stamp is not None and ready.time_base is not None:
                    earliest = min(earliest, stamp * Fraction(ready.time_base))
                seen.add(ready.stream.index)
            if len(seen) == len(streams) or count >= max_packets:
                break
    except av.error.FFmpegError:
        pass
    for ready in repair.flush():
        stamp = ready.pts if ready.pts is not None else ready.dts
        if stamp is not None and ready.time_base is not None:
            earliest = min(earliest, stamp * Fraction(ready.time_base))
    return -earliest
