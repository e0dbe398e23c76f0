"""`--encoder-backend ffmpeg`: the system FFmpeg encodes, the output is the same file shape.

Same timestamps (VFR, 1001 rates, B-frames), same streams (audio packets byte for byte,
subtitles, chapters), same colour tags and pixel format, segments and resume alike, as the
PyAV back end. Needs the `ffmpeg` program (.ci/run installs Debian's); skipped without it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import clips
import pytest
from conftest import FAST, CliResult, check_one_error_line

Cli = Callable[..., CliResult]

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None,
    reason="the ffmpeg program is not installed (apt-get install ffmpeg; .ci/run does)",
)


def _both(cli: Cli, src: Path, tmp_path: Path, ext: str, *extra: str) -> dict[str, Path]:
    outs = {}
    for backend in ("pyav", "ffmpeg"):
        out = tmp_path / f"{backend}.{ext}"
        result = cli(
            "upscale", src, "-o", out, *FAST, "--encoder-backend", backend, "--json", *extra
        )
        assert result.code == 0, result.err
        outs[backend] = out
    return outs


@needs_ffmpeg
@pytest.mark.parametrize(
    ("maker", "ext", "extra"),
    [
        ("ntsc_h264", "mp4", ()),
        ("vfr_h264", "mkv", ()),
        ("hevc_10bit", "mkv", ()),
        # Several segments (resume units), each encoded by its own ffmpeg process.
        ("multi_track_mkv", "mkv", ("--segment-seconds", "0.2")),
    ],
)
def test_same_timestamps_and_streams_as_pyav(
    cli: Cli, tmp_path: Path, maker: str, ext: str, extra: tuple[str, ...]
) -> None:
    src = getattr(clips, maker)(tmp_path)
    outs = _both(cli, src.path, tmp_path, ext, *extra)
    a = clips.read_video(outs["pyav"], pixels=False)
    b = clips.read_video(outs["ffmpeg"], pixels=False)
    assert b.times == a.times
    assert (b.pix_fmt, b.color, b.time_base, b.codec) == (a.pix_fmt, a.color, a.time_base, a.codec)
    assert (b.width, b.height, b.sar) == (a.width, a.height, a.sar)
    assert clips.stream_summary(outs["ffmpeg"]) == clips.stream_summary(outs["pyav"])
    for index in clips.stream_indices(outs["pyav"], "audio"):
        assert clips.packet_bytes(outs["ffmpeg"], index) == clips.packet_bytes(outs["pyav"], index)
    assert clips.chapters_of(outs["ffmpeg"]) == clips.chapters_of(outs["pyav"])
    clips.check_times(src.path, outs["ffmpeg"], max_shift=0.05)
    clips.check_pixels_and_order(src.path, outs["ffmpeg"], min_psnr=35)


@needs_ffmpeg
def test_unknown_encoder_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=3)
    out = tmp_path / "o.mkv"
    result = cli(
        "upscale", src.path, "-o", out, *FAST, "--encoder-backend", "ffmpeg", "--codec", "nope264"
    )
    check_one_error_line(result, 2, "nope264")
    assert not out.exists()


def test_missing_ffmpeg_is_a_clear_error(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vsr.media.ffmpeg_encode as backend

    monkeypatch.setattr(backend.shutil, "which", lambda _name: None)
    src = clips.cfr_h264_aac(tmp_path, frames=3)
    out = tmp_path / "o.mkv"
    result = cli("upscale", src.path, "-o", out, *FAST, "--encoder-backend", "ffmpeg")
    check_one_error_line(result, 5, "ffmpeg", "--encoder-backend pyav")
    assert not out.exists()
    assert {p.name for p in tmp_path.iterdir()} == {src.path.name}, "left files behind"


@needs_ffmpeg
def test_device_graph_feeds_the_ffmpeg_backend(cli: Cli, tmp_path: Path) -> None:
    src = clips.ntsc_h264(tmp_path, "mkv")
    out = tmp_path / "o.mkv"
    result = cli(
        "upscale", src.path, "-o", out, *FAST, "--encoder-backend", "ffmpeg",
        "--color-path", "tensor", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert result.json["settings"]["frame_path"]["color_path"] == "tensor"
    clips.check_times(src.path, out)
    clips.check_pixels_and_order(src.path, out, min_psnr=35)
