"""Facts read by demuxing alone (no decoding), for planning resumes and disk space.

Each opens a container of its own and closes it: nothing here seeks, because seeking back on
a damaged file fails (a truncated MKV answers EPERM), and a damaged file must still be planned.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import av
import av.error


def scan_video(path: Path, index: int) -> tuple[list[int], int, bool]:
    """Every video packet's pts (sorted), the packet count, and whether all had a pts.

    A damaged tail ends the scan quietly: what was read counts, and the decoder reports the
    damage itself.
    """
    pts: list[int] = []
    count = 0
    stamped = True
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            for packet in container.demux(container.streams[index]):
                if packet.size == 0:
                    continue
                count += 1
                if packet.pts is None:
                    stamped = False
                else:
                    pts.append(packet.pts)
    except av.error.FFmpegError:
        pass
    pts.sort()
    return pts, count, stamped


def has_video_stream(path: Path) -> bool:
    """Whether ``path`` opens as media with a video stream (False for anything unreadable)."""
    with contextlib.suppress(av.error.FFmpegError, OSError), av.open(str(path)) as container:
        return bool(container.streams.video)
    return False


def other_streams_bytes(path: Path) -> float:
    """Bytes of the audio, subtitles ... (every stream but video), from their bit rates and
    the file's duration; 0 for what cannot be read."""
    total = 0.0
    with (
        contextlib.suppress(Exception),
        av.open(str(path), metadata_errors="replace") as container,
    ):
        seconds = (container.duration or 0) / av.time_base
        streams: list[Any] = list(container.streams)
        for stream in streams:
            if stream.type != "video":
                rate = stream.bit_rate or getattr(stream.codec_context, "bit_rate", 0) or 0
                total += rate / 8 * seconds
    return total
