"""Frames in memory written as a lossless clip, for the evaluation table.

The table makes each LR clip in memory (`vsr.degrade`) and then runs it through the real
pipeline, which reads files. The clip is written as RGB in FFV1 (``bgr0``: this build's FFV1
refuses planar ``gbrp``), tagged RGB, full range, so the pipeline decodes exactly the frames
given (no colour matrix, no chroma subsampling) and encodes its output the same way: an H.264
or 4:2:0 LR would add damage the degradation did not ask for.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vsr.errors import EmptyInputError, OutputError, UsageError
from vsr.media.color import from_rgb, resolve_color, rgb_frame

_PIX_FMT = "bgr0"


def _checked(rgb: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise UsageError(f"expected (H, W, 3) uint8 RGB frames, got {rgb.dtype} {rgb.shape}")
    if size is not None and rgb.shape[:2] != size:
        raise UsageError(
            f"expected every frame {size[1]}x{size[0]}, got {rgb.shape[1]}x{rgb.shape[0]}"
        )
    return np.ascontiguousarray(rgb)


def write_lossless(
    path: str | Path, frames: Iterable[np.ndarray], *, rate: Fraction = Fraction(25)
) -> int:
    """Write (H, W, 3) uint8 RGB frames of one size to ``path`` (the container from its
    extension: .mkv, .nut), one frame per 1/``rate`` s from 0; returns the frames written."""
    path = Path(path)
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise EmptyInputError("no frames to write", path=path)
    h, w = _checked(first, None).shape[:2]
    color = resolve_color(matrix=0, primaries=1, trc=1, color_range=2, pix_fmt=_PIX_FMT, height=h)
    count = 0
    try:
        with av.open(str(path), "w") as out:
            stream = out.add_stream("ffv1", rate=rate)
            stream.width, stream.height, stream.pix_fmt = w, h, _PIX_FMT
            cc = stream.codec_context
            cc.time_base = Fraction(rate.denominator, rate.numerator)
            cc.colorspace, cc.color_range = color.matrix, color.range
            cc.color_primaries, cc.color_trc = color.primaries, color.trc
            for rgb in itertools.chain([first], it):
                frame = from_rgb(rgb_frame(_checked(rgb, (h, w))), color, _PIX_FMT)
                frame.pts, frame.time_base = count, cc.time_base
                out.mux(stream.encode(frame))
                count += 1
            out.mux(stream.encode(None))
    except av.FFmpegError as exc:
        raise OutputError(f"cannot write the lossless clip ({exc})", path=path) from exc
    return count
