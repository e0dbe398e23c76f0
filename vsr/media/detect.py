"""Detectors that read a file before a run: interlacing (field order) and black borders.

They settle a filter spec's "auto" values (`vsr.media.filters.resolve_spec`); the filter chain
itself never analyses anything, so a run is deterministic and resumable.

This FFmpeg build has no ``cropdetect`` (GPL). Crop detection is done here with the same rule
cropdetect uses: a line is black when its mean luma is at most ``limit``. Interlacing is
FFmpeg's ``idet`` filter, run over runs of frames from several places in the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import av.filter
import numpy as np

from vsr.errors import (
    EmptyInputError,
    InputNotFoundError,
    NotMediaError,
    NoVideoStreamError,
    UsageError,
)

FieldOrder = Literal["tff", "bff", "progressive"]
CropBox = tuple[int, int, int, int]  # (width, height, x, y), as FFmpeg's crop filter takes them

# cropdetect's default: a line whose mean luma (0-255 scale) is at most 24 counts as black.
# Limited-range black is 16, so this leaves room for analogue noise in the bars.
DEFAULT_CROP_LIMIT = 24.0


def _bit_depth(pix_fmt: str) -> int:
    return max(c.bits for c in av.VideoFormat(pix_fmt).components)


def crop_alignment(pix_fmt: str) -> tuple[int, int]:
    """Crop alignment (x, y) so chroma planes are cut on whole samples; at least 2 because
    the output is most likely encoded 4:2:0."""
    fmt = av.VideoFormat(pix_fmt)
    probe = 1 << 10
    sub_x = probe // max(1, fmt.chroma_width(probe))
    sub_y = probe // max(1, fmt.chroma_height(probe))
    return max(2, sub_x), max(2, sub_y)


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
    ax, ay = crop_alignment(pix_fmt)
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


def video_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of the file's first video stream, as coded."""
    with _open_input(Path(path)) as container:
        ctx = _video_stream(container, Path(path)).codec_context
        return ctx.width, ctx.height
