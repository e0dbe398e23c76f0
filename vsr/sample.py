"""A small sample clip for the quick start and for trying options, generated locally.

It has what real files have and tools lose: a 30000/1001 frame rate, BT.709 tags, stereo AAC
audio, a second (French) audio track in MKV, and chapters, so the result can be checked with
`vsr probe` beside the input.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from vsr.errors import UsageError
from vsr.media.remux import container_format
from vsr.media.synth import SynthClip, write_clip


def _frame(i: int, width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    t = i / 30.0
    r = 0.5 + 0.5 * np.sin(x / 37.0 + t * 1.3)
    g = 0.5 + 0.5 * np.sin(y / 23.0 - t * 0.7)
    b = 0.5 + 0.5 * np.sin((x + y) / 51.0 + t)
    img = (np.dstack([r, g, b]) * 180 + 30).astype(np.uint8)
    cx = int(width / 2 + width / 3 * math.sin(t * 1.1))
    cy = int(height / 2 + height / 4 * math.cos(t * 0.9))
    cv2.circle(img, (cx, cy), height // 8, (240, 220, 60), -1, lineType=cv2.LINE_AA)
    cv2.rectangle(
        img,
        (20 + i * 2 % (width - 80), 20),
        (80 + i * 2 % (width - 80), 60),
        (20, 20, 20),
        2,
        lineType=cv2.LINE_AA,
    )
    cv2.putText(
        img,
        f"vsr sample {i:03d}",
        (16, height - 20),
        cv2.FONT_HERSHEY_SIMPLEX,
        height / 400,
        (255, 255, 255),
        1 + height // 300,
        lineType=cv2.LINE_AA,
    )
    return img


def make_sample(
    path: str | Path, *, seconds: float = 3.0, width: int = 480, height: int = 270
) -> Path:
    """Write the sample clip; the extension picks the container (.mp4, .mkv, .mov)."""
    path = Path(path)
    fmt = container_format(path)
    if fmt not in ("mp4", "matroska", "mov"):
        raise UsageError(f"expected a .mp4, .mkv or .mov sample name, got {path.name!r}")
    rate = Fraction(30000, 1001)
    frames = max(1, round(seconds * rate))
    end = int(frames / rate * 1000)
    write_clip(
        path,
        fmt,
        SynthClip(
            width=width,
            height=height,
            rate=rate,
            frames=frames,
            picture=lambda i: _frame(i, width, height),
            tones=(("eng", 440.0),) + ((("fra", 660.0),) if fmt == "matroska" else ()),
            chapters=((0, end // 2, "Opening"), (end // 2, end, "Ending")),
            title="vsr sample clip",
        ),
    )
    return path
