"""vsr.media.frames: whole videos as RGB arrays and the frame shown at a time, on generated
clips (8-bit, 10-bit, odd sizes, irregular timestamps, damaged and hostile files)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import clips
import numpy as np
import pytest

from vsr.errors import (
    CorruptInputError,
    EmptyInputError,
    InputNotFoundError,
    NotMediaError,
    NoVideoStreamError,
    UsageError,
)
from vsr.media.frames import format_time, frame_color, frame_rgb, grab_frame, iter_video_rgb


def reference_rgb(read: clips.VideoRead, index: int, bits: int = 8) -> np.ndarray:
    """Frame `index` of a file converted to RGB in [0, 1] by the tests' own formula."""
    return clips.yuv_to_rgb(
        read.planes[index],
        colorspace=read.color["colorspace"],
        color_range=read.color["color_range"],
        bits=bits,
    )


def test_8_bit_frames_in_order_with_the_streams_own_matrix(tmp_path: Path) -> None:
    # Full-range BT.709: FFmpeg's default conversion (BT.601, limited) would be visibly off.
    clip = clips.bt709_full_range(tmp_path)
    read = clips.read_video(clip.path)
    frames = list(iter_video_rgb(clip.path))
    assert len(frames) == clip.frames
    for i, rgb in enumerate(frames):
        assert rgb.dtype == np.uint8 and rgb.shape == (clip.height, clip.width, 3)
        error = np.abs(rgb / 255.0 - reference_rgb(read, i)).mean()
        assert error < 0.01, (i, error)
    # Every frame is a different picture, in presentation order.
    errors = [np.abs(frames[3] / 255.0 - reference_rgb(read, i)).mean() for i in range(6)]
    assert int(np.argmin(errors)) == 3


def test_frame_color_resolves_the_tags_as_the_pipeline_does(tmp_path: Path) -> None:
    clip = clips.bt709_full_range(tmp_path)
    color = frame_color(clips.read_video(clip.path).frames[0])
    assert (color.matrix, color.range) == (clips.CS_BT709, clips.RANGE_JPEG)


def test_10_bit_frames_keep_their_precision_when_asked(tmp_path: Path) -> None:
    clip = clips.hevc_10bit(tmp_path)
    read = clips.read_video(clip.path)
    frame = read.frames[2]
    deep = frame_rgb(frame, deep=True)
    assert deep.dtype == np.uint16 and deep.shape == (clip.height, clip.width, 3)
    # Values between the 8-bit steps: the 10 bits survive.
    assert (deep % 257 != 0).mean() > 0.5
    assert np.abs(deep / 65535.0 - reference_rgb(read, 2, bits=10)).mean() < 0.01
    # The 8-bit reading is the same picture at 8 bits (swscale's own rounding: within 2).
    eight = frame_rgb(frame)
    assert eight.dtype == np.uint8
    diff = np.abs(eight.astype(np.float64) - deep / 257.0)
    assert diff.max() <= 2.0 and diff.mean() < 0.6
    frames = list(iter_video_rgb(clip.path))
    assert len(frames) == clip.frames
    assert np.array_equal(frames[2], eight)


def test_odd_sizes_keep_every_row_and_column(tmp_path: Path) -> None:
    clip = clips.odd_size(tmp_path, width=63, height=47)
    read = clips.read_video(clip.path)
    frames = list(iter_video_rgb(clip.path))
    assert [f.shape for f in frames] == [(47, 63, 3)] * clip.frames
    assert np.abs(frames[-1] / 255.0 - reference_rgb(read, clip.frames - 1)).mean() < 0.01


def test_grab_frame_on_irregular_timestamps(tmp_path: Path) -> None:
    clip = clips.vfr_h264(tmp_path)
    whole = list(iter_video_rgb(clip.path))
    assert len(whole) == len(clips.VFR_PTS_MS)
    for index, ms in enumerate(clips.VFR_PTS_MS):
        # Just after a frame starts, and just before the next one does: the same frame.
        nxt = clips.VFR_PTS_MS[index + 1] if index + 1 < len(clips.VFR_PTS_MS) else ms + 40
        for at in (ms / 1000 + 0.0005, (nxt - 1) / 1000):
            grabbed = grab_frame(clip.path, at)
            assert Fraction(grabbed.time).limit_denominator(1000) == Fraction(ms, 1000), at
            assert grabbed.keyframe_time <= grabbed.time
            assert np.array_equal(
                frame_rgb(grabbed.frame, frame_color(grabbed.frame)), whole[index]
            )


def test_grab_frame_keeps_the_frames_from_its_keyframe(tmp_path: Path) -> None:
    clip = clips.write_video(
        tmp_path / "gop.mp4", frames=20, options={"g": "8", "bf": "0", "sc_threshold": "0"}
    )
    grabbed = grab_frame(clip.path, 0.5, keep_history=True)  # frame 12 (0.48 s), key at 8
    assert grabbed.time == pytest.approx(0.48)
    assert grabbed.keyframe_time == pytest.approx(0.32)
    assert [f.pts for f in grabbed.history] == [512 * i for i in range(8, 13)]  # mp4: 1/12800
    assert grabbed.history[-1] is grabbed.frame


def test_grab_frame_past_the_end_is_a_usage_error(tmp_path: Path) -> None:
    clip = clips.cfr_h264_aac(tmp_path)
    with pytest.raises(UsageError, match=r"past the end of cfr25.mp4 \(it lasts 00:00:00.480\)"):
        grab_frame(clip.path, 0.5)


def test_format_time() -> None:
    assert format_time(0) == "00:00:00.000"
    assert format_time(3723.5) == "01:02:03.500"
    assert format_time(-1) == "00:00:00.000"


def test_damaged_frame_is_a_corrupt_input_error_with_its_index(tmp_path: Path) -> None:
    clip = clips.bframes_with_damage(tmp_path)
    frames = 0
    with pytest.raises(CorruptInputError, match="cannot decode frame") as info:
        for _ in iter_video_rgb(clip.path):
            frames += 1
    assert info.value.frame == frames > 0


def test_unknown_codec_is_a_corrupt_input_error(tmp_path: Path) -> None:
    with pytest.raises(CorruptInputError, match="cannot decode frame 0"):
        list(iter_video_rgb(clips.unsupported_codec(tmp_path)))


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda d: d / "missing.mp4", InputNotFoundError, "no such file"),
        (clips.text_as_mp4, NotMediaError, "not a media file"),
        (clips.audio_only, NoVideoStreamError, "has no video stream"),
        (clips.zero_frames, EmptyInputError, "no decodable frames"),
    ],
)
def test_bad_inputs_raise_the_existing_errors(
    tmp_path: Path, make: object, error: type[Exception], message: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(error, match=message):
        list(iter_video_rgb(path))
