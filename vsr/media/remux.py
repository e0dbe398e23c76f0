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
from functools import cache
from pathlib import Path
from typing import Literal

import av

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
}
TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"}
_AUDIO_FALLBACK = {"mp4": "aac", "mov": "aac", "webm": "libopus", "avi": "mp3", "mpegts": "aac"}
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
