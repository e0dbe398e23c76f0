"""A small sample clip for the quick start and for trying options, generated locally.

It has what real files have and tools lose: a 30000/1001 frame rate, BT.709 tags, stereo AAC
audio, a second (French) audio track in MKV, and chapters, so the result can be checked with
`vsr probe` beside the input.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from vsr.errors import UsageError
from vsr.media.remux import container_format


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
    with av.open(str(path), mode="w", format=fmt) as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        cc = video.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1
        cc.options = {"crf": "20", "preset": "fast"}
        tracks = [("eng", 440.0)] + ([("fra", 660.0)] if fmt == "matroska" else [])
        audio = []
        for lang, _tone in tracks:
            a = out.add_stream("aac", rate=48000)
            a.layout = "stereo"
            a.metadata["language"] = lang
            audio.append(a)
        end = int(frames / rate * 1000)
        out.set_chapters(
            [
                {
                    "id": 1,
                    "start": 0,
                    "end": end // 2,
                    "time_base": Fraction(1, 1000),
                    "metadata": {"title": "Opening"},
                },
                {
                    "id": 2,
                    "start": end // 2,
                    "end": end,
                    "time_base": Fraction(1, 1000),
                    "metadata": {"title": "Ending"},
                },
            ]
        )
        out.metadata["title"] = "vsr sample clip"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(_frame(i, width, height), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace=1, dst_color_range=1)
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        samples = int(frames / rate * 48000)
        for stream, (_lang, tone) in zip(audio, tracks, strict=True):
            for start in range(0, samples, 1024):
                n = np.arange(start, start + 1024) / 48000.0
                wave = (0.2 * np.sin(2 * np.pi * tone * n)).astype(np.float32)
                chunk = av.AudioFrame.from_ndarray(
                    np.stack([wave, wave]), format="fltp", layout="stereo"
                )
                chunk.sample_rate = 48000
                chunk.pts = start
                out.mux(stream.encode(chunk))
            out.mux(stream.encode(None))
    return path
