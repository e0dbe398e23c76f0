"""Restoration filters, --height, --temporal stabilize and presets, end to end through the CLI.

The pipeline's promises (timestamps, audio, stream list) must hold with every option, field-rate
deinterlacing included.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from clips import packet_bytes, read_video, stream_indices
from test_filters import interlaced_luma, yuv_frame

RATE = Fraction(25)


def _interlaced_clip(path: Path, frames: int = 8) -> Path:
    """TFF content (fields from different moments) in H.264 coded as interlaced, plus AAC."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = 160, 128, "yuv420p"
        video.codec_context.options = {
            "preset": "ultrafast",
            "flags": "+ilme+ildct",
            "x264-params": "tff=1",
        }
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "stereo"
        for i, luma in enumerate(interlaced_luma("tff", frames)):
            out.mux(video.encode(yuv_frame(luma, i, 1 / RATE)))
        out.mux(video.encode(None))
        samples = int(frames / RATE * 48000)
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(
                np.zeros((2, 1024), np.float32), format="fltp", layout="stereo"
            )
            chunk.sample_rate, chunk.pts = 48000, start
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
    return path


def _video_times(path: Path) -> list[Fraction]:
    return read_video(path, pixels=False).times


def test_deinterlace_auto_at_field_rate_doubles_frames_with_exact_times(
    tmp_path: Path, cli
) -> None:
    src = _interlaced_clip(tmp_path / "tv.mkv")
    out = tmp_path / "out.mkv"
    result = cli(
        "upscale", src, "-o", out, "--model", "bicubic", "--scale", "2",
        "--deinterlace", "auto", "--deinterlace-mode", "field",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "deinterlace tff" in result.err  # idet found the field order and said so
    src_times = _video_times(src)
    times = _video_times(out)
    assert len(times) == 2 * len(src_times)
    step = src_times[1] - src_times[0]
    expected = [t + k * step / 2 for t in src_times for k in (0, 1)]
    assert times == expected
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.width == 320
    a_in, a_out = stream_indices(src, "audio")[0], stream_indices(out, "audio")[0]
    assert packet_bytes(out, a_out) == packet_bytes(src, a_in)


def test_deinterlace_at_frame_rate_keeps_every_timestamp(tmp_path: Path, cli) -> None:
    src = _interlaced_clip(tmp_path / "tv.mkv")
    out = tmp_path / "out.mp4"
    result = cli("upscale", src, "-o", out, "--model", "bicubic", "--deinterlace", "tff")
    assert result.code == 0, result.err
    assert _video_times(out) == _video_times(src)


def test_interlaced_input_without_deinterlace_gets_a_notice(tmp_path: Path, cli) -> None:
    src = _interlaced_clip(tmp_path / "tv.mkv", frames=4)
    result = cli("upscale", src, "-o", tmp_path / "o.mkv", "--model", "bicubic")
    assert result.code == 0, result.err
    assert "interlaced" in result.err and "--deinterlace" in result.err


def test_height_and_stabilize_keep_frames_and_times(tmp_path: Path, cli) -> None:
    src = _interlaced_clip(tmp_path / "tv.mkv", frames=6)
    out = tmp_path / "out.mkv"
    result = cli(
        "upscale", src, "-o", out, "--model", "bicubic", "--scale", "4", "--height", "200",
        "--temporal", "stabilize", "--deinterlace", "tff", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    with av.open(str(out)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.width, cc.height) == (250, 200)
    assert _video_times(out) == _video_times(src)


def test_preset_with_overrides_runs_and_cli_wins(tmp_path: Path, cli) -> None:
    src = _interlaced_clip(tmp_path / "tv.mkv", frames=6)
    out = tmp_path / "out.mkv"
    # vhs: deinterlace at field rate, crop, square pixels, denoise, stabilize, x4plus x2.
    # The CLI swaps the model (fast) and the field mode; the rest of the preset stays.
    result = cli(
        "upscale", src, "-o", out, "--preset", "vhs", "--model", "bicubic",
        "--deinterlace-mode", "frame", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert _video_times(out) == _video_times(src)  # frame mode: one output per input


@pytest.mark.parametrize("bad", [["--deinterlace", "sometimes"], ["--crop", "10:10"]])
def test_bad_filter_options_fail_before_work(tmp_path: Path, cli, bad: list[str]) -> None:
    src = _interlaced_clip(tmp_path / "tv.mkv", frames=2)
    out = tmp_path / "o.mkv"
    result = cli("upscale", src, "-o", out, "--model", "bicubic", *bad)
    assert result.code == 2, result.err
    assert not out.exists()
