"""Detectors: field order (idet) and black borders, on generated frames and files."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from test_filters import interlaced_luma, letterboxed, write_clip, yuv_frame

from vsr.media.detect import detect_crop, detect_field_order, idet_counts
from vsr.media.filters import FilterSpec, resolve_spec

# --------------------------------------------------------------------------- field order


@pytest.mark.parametrize("order", ["tff", "bff", "progressive"])
def test_idet_detects_field_order_of_frames(order: str) -> None:
    frames = [yuv_frame(luma, i * 1001) for i, luma in enumerate(interlaced_luma(order, 24))]
    assert detect_field_order(frames, sample=24) == order


def test_idet_counts_are_read_from_frame_metadata() -> None:
    frames = [yuv_frame(luma, i * 1001) for i, luma in enumerate(interlaced_luma("bff", 20))]
    counts = idet_counts(frames)
    assert counts.bff > 10
    assert counts.tff == 0
    assert counts.bff + counts.tff + counts.progressive + counts.undetermined == 20


@pytest.mark.parametrize("order", ["tff", "bff"])
def test_detect_field_order_from_file(tmp_path: Path, order: str) -> None:
    path = write_clip(tmp_path / f"{order}.mkv", interlaced_luma(order, 48))
    assert detect_field_order(path, sample=48) == order


def test_detect_progressive_file(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "prog.mkv", interlaced_luma("progressive", 48))
    assert detect_field_order(path, sample=48) == "progressive"


def test_detect_field_order_of_interlaced_x264(tmp_path: Path) -> None:
    # Interlaced H.264 the way a DVD/broadcast encoder writes it (field-coded, TFF flagged).
    path = write_clip(
        tmp_path / "tff.mp4",
        interlaced_luma("tff", 40),
        codec="libx264",
        options={
            "flags": "+ilme+ildct",
            "x264-params": "tff=1",
            "crf": "12",
            "preset": "ultrafast",
        },
    )
    assert detect_field_order(path, sample=40) == "tff"
    resolved = resolve_spec(FilterSpec(deinterlace="auto"), path, field_sample=40)
    assert resolved.deinterlace == "tff"


# --------------------------------------------------------------------------- crop


def test_detect_crop_finds_painted_letterbox(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "box.mkv", letterboxed(30))
    assert detect_crop(path, sample=8) == (160, 104, 16, 20)
    spec = resolve_spec(FilterSpec(crop="auto"), path, crop_sample=8)
    assert spec.crop == (160, 104, 16, 20)


def test_detect_crop_takes_the_largest_box_over_samples() -> None:
    lumas = letterboxed(6)
    # A dark scene inside the picture area, and a frame that is black altogether (a fade):
    # neither may shrink the box found on the other frames.
    lumas[1][20:124, 16:176] = 18
    lumas[2][:] = 16
    frames = [yuv_frame(luma, i) for i, luma in enumerate(lumas)]
    assert detect_crop(frames, sample=6) == (160, 104, 16, 20)


def test_detect_crop_keeps_round_content_on_black() -> None:
    # A bright disc on black (a planet, a spotlight): black around it is not a letterbox.
    yy, xx = np.mgrid[0:144, 0:192]
    disc = ((yy - 72) ** 2 + (xx - 96) ** 2) < 50**2
    lumas = []
    for i in range(4):
        img = np.full((144, 192), 16, np.uint8)
        img[disc] = 120 + 20 * i
        lumas.append(img)
    frames = [yuv_frame(luma, i) for i, luma in enumerate(lumas)]
    assert detect_crop(frames, sample=4) == (192, 144, 0, 0)


def test_detect_crop_letterbox_with_a_dark_picture_edge() -> None:
    # The picture's top lines are dark in most samples (night sky) but not in all: the union
    # over samples still finds the straight edge of the bar.
    lumas = letterboxed(4)
    for img in lumas[:3]:
        img[20:40, 16:176] = 20
    frames = [yuv_frame(luma, i) for i, luma in enumerate(lumas)]
    assert detect_crop(frames, sample=4) == (160, 104, 16, 20)


@pytest.mark.parametrize("fmt", ["yuv420p10le", "rgb24"])
def test_detect_crop_on_10_bit_and_rgb(fmt: str) -> None:
    lumas = letterboxed(3)
    if fmt == "rgb24":
        frames = []
        for i, luma in enumerate(lumas):
            frame = av.VideoFrame.from_ndarray(np.repeat(luma[..., None], 3, axis=2), format=fmt)
            frame.pts = i
            frames.append(frame)
    else:
        frames = [yuv_frame(luma, i, fmt=fmt) for i, luma in enumerate(lumas)]
    assert detect_crop(frames, sample=3) == (160, 104, 16, 20)


def test_detect_crop_aligns_to_chroma() -> None:
    lumas = letterboxed(2)
    for img in lumas:
        img[19, 16:176] = 200  # picture starts on an odd line
        img[20:124, 15] = 200  # and an odd column
    box = detect_crop([yuv_frame(luma, i) for i, luma in enumerate(lumas)], sample=2)
    w, h, x, y = box
    assert all(v % 2 == 0 for v in box)
    assert x <= 15 and y <= 19 and x + w >= 176 and y + h >= 124
