"""Where a video's frames and keyframes are, from a demux scan (no frame decoded).

Scale-out (vsr.cluster) cuts a long video into chunks that start at keyframes, so that each
worker's decoder starts where the chunk does instead of decoding frames only to drop them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from vsr.media.probe import METADATA_ERRORS


@dataclass(frozen=True)
class FrameMap:
    """Every video packet's pts, sorted (frame order), and the keyframes' pts among them."""

    pts: tuple[int, ...]
    keyframes: tuple[int, ...]
    stamped: bool  # every packet had a pts: chunks can seek (otherwise they decode from 0)


def scan_keyframes(path: Path, index: int) -> FrameMap:
    """Demux the video stream `index` once and note each packet's pts and key flag."""
    pts: list[int] = []
    keys: list[int] = []
    stamped = True
    try:
        with av.open(str(path), metadata_errors=METADATA_ERRORS) as container:
            for packet in container.demux(container.streams[index]):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    stamped = False
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
    except av.error.FFmpegError:
        pass  # a damaged tail: what was read counts; the decoder reports the damage itself
    return FrameMap(tuple(sorted(pts)), tuple(sorted(keys)), stamped)
