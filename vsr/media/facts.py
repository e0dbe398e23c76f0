"""Header facts a job's plan needs (vsr.plan), read without decoding a frame.

Kept apart from probe.py: probe describes a file for people (`vsr probe`), these answer the
planner's narrower questions (what the filter graph is built for, which streams the output can
hold, whether a pixel format needs even dimensions). The PyAV type names are re-exported for
annotations in modules that must not import PyAV themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeAlias

import av

from vsr.media import remux
from vsr.media.filters import StreamGeometry
from vsr.media.probe import METADATA_ERRORS, open_input

InputContainer: TypeAlias = av.container.InputContainer
VideoFrame: TypeAlias = av.VideoFrame
Packet: TypeAlias = av.Packet


def stream_geometry(path: Path, index: int) -> StreamGeometry:
    """What the filter graph of the video stream `index` is built for (its header's facts)."""
    with av.open(str(path), metadata_errors=METADATA_ERRORS) as peek:
        return StreamGeometry.from_stream(peek.streams.video[index])


def output_streams(
    path: Path, video_index: int, fmt: str, video_codec: str
) -> list[remux.StreamPlan]:
    """Each input stream's fate in a `fmt` output (ContainerError for what it can't hold)."""
    with open_input(path) as container:
        return remux.plan_streams(container, video_index, fmt, video_codec)


def needs_even_size(pix_fmt: str) -> tuple[bool, bool]:
    """(width, height): whether `pix_fmt`'s chroma subsampling needs an even frame side."""
    # The chroma plane's size on a 2x2 frame tells the subsampling.
    comps = av.VideoFormat(pix_fmt, 2, 2).components
    chroma = comps[1] if len(comps) > 2 else comps[0]
    return chroma.width < 2, chroma.height < 2


def pyav_has_codec(codec: str) -> bool:
    """True when the FFmpeg inside PyAV has this codec (else only a system FFmpeg may)."""
    return codec in av.codecs_available
