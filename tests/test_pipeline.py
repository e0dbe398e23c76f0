"""End to end: generated clips through `vsr upscale`, outputs checked with PyAV.

Each test upscales a small clip 2x with the bicubic processor and asserts that everything but
the resolution is as it was: frame count, frame times and order, frame rate, streams, audio
bytes, subtitles, chapters, attachments, colour tags, rotation, aspect ratio, bit depth, and
pixels against an OpenCV bicubic reference.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import clips
import cv2
import numpy as np
import pytest
from conftest import FAST, CliResult, check_one_error_line, files_in

Cli = Callable[..., CliResult]


def upscale(cli: Cli, src: Path, out: Path, *extra: str) -> dict[str, Any]:
    """Run `vsr upscale SRC -o OUT --model bicubic --scale 2 --json EXTRA` and expect success."""
    result = cli("upscale", src, "-o", out, *FAST, "--json", *extra)
    assert result.code == 0, f"exit {result.code}: {result.err}"
    assert out.is_file()
    summary = result.json
    assert isinstance(summary, dict)
    return summary


def no_leftovers(directory: Path, *expected: Path) -> None:
    assert files_in(directory) == {p.name for p in expected}, files_in(directory)


def stream_actions(summary: dict[str, Any]) -> dict[str, list[str]]:
    actions: dict[str, list[str]] = {}
    for s in summary["streams"]:
        actions.setdefault(s["type"], []).append(s["action"])
    return actions


# --------------------------------------------------------------------------------------------
# Timing


def test_cfr_h264_aac_mp4(cli: Cli, tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path)
    out = tmp_path / "out.mp4"
    summary = upscale(cli, src.path, out)

    video = clips.read_video(out)
    assert (video.width, video.height) == (2 * src.width, 2 * src.height)
    assert video.codec == "h264"  # default encoder: libx264
    assert video.pix_fmt == "yuv420p"
    clips.check_times(src.path, out)
    clips.check_pixels_and_order(src.path, out, min_psnr=30)
    # Audio: copied packet for packet.
    assert clips.packet_bytes(out, 1) == src.audio_packets[1]
    assert clips.packet_times(out, 1) == clips.packet_times(src.path, 1)

    assert summary["frames"] == src.frames
    assert summary["input"].endswith(src.path.name)
    assert summary["output"].endswith("out.mp4")
    assert summary["model"] == "bicubic"
    assert stream_actions(summary) == {"video": ["encoded"], "audio": ["copied"]}
    assert summary["repeated_frames"] == 0
    assert summary["seconds"] > 0 and summary["fps"] > 0
    no_leftovers(tmp_path, src.path, out)


def test_duration_within_one_frame(cli: Cli, tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path)
    out = tmp_path / "out.mkv"
    upscale(cli, src.path, out)
    clips.check_av_sync(src.path, out, 1, 1)
    with av.open(str(src.path)) as a, av.open(str(out)) as b:
        assert a.duration is not None and b.duration is not None
        assert abs(a.duration - b.duration) / av.time_base <= 1 / 25 + 1e-3


@pytest.mark.parametrize(("src_ext", "out_ext"), [("mp4", "mp4"), ("mkv", "mkv"), ("mp4", "mkv")])
def test_ntsc_rate_stays_30000_1001(cli: Cli, tmp_path: Path, src_ext: str, out_ext: str) -> None:
    src = clips.ntsc_h264(tmp_path, src_ext)
    out = tmp_path / f"out.{out_ext}"
    upscale(cli, src.path, out)
    video = clips.read_video(out, pixels=False)
    assert video.average_rate == Fraction(30000, 1001)
    # MP4 -> MKV: AAC priming (-21 ms) cannot be stored, so the timeline may move as a whole.
    clips.check_times(src.path, out, max_shift=0.05 if src_ext != out_ext else 0)
    clips.check_av_sync(src.path, out, 1, 1)
    assert clips.packet_bytes(out, 1) == src.audio_packets[1]


@pytest.mark.parametrize(("src_ext", "out_ext"), [("mkv", "mkv"), ("mp4", "mp4"), ("mkv", "mp4")])
def test_vfr_timestamps_kept(cli: Cli, tmp_path: Path, src_ext: str, out_ext: str) -> None:
    src = clips.vfr_h264(tmp_path, src_ext)
    out = tmp_path / f"out.{out_ext}"
    upscale(cli, src.path, out)
    clips.check_times(src.path, out)
    times = clips.read_video(out, pixels=False).times
    expected = [Fraction(ms, 1000) for ms in clips.VFR_PTS_MS]
    tb = clips.read_video(out, pixels=False).time_base
    assert all(abs(t - e) <= tb / 2 for t, e in zip(times, expected, strict=True))
    # Still variable: the gaps are not all the same (a CFR re-timing would make them so).
    gaps = {round(float(b - a), 3) for a, b in itertools.pairwise(times)}
    assert len(gaps) >= 4
    clips.check_pixels_and_order(src.path, out, min_psnr=30)
    assert clips.packet_bytes(out, 1) == src.audio_packets[1]


# --------------------------------------------------------------------------------------------
# Bit depth


def test_10bit_hevc_stays_10bit(cli: Cli, tmp_path: Path) -> None:
    src = clips.hevc_10bit(tmp_path, "mkv")
    out = tmp_path / "out.mkv"
    upscale(cli, src.path, out)
    video = clips.read_video(out, pixels=False)
    assert video.codec == "hevc"  # 10-bit sources default to libx265
    assert clips.bits_of(video.pix_fmt) == 10, video.pix_fmt
    clips.check_times(src.path, out)
    clips.check_pixels_and_order(src.path, out, min_psnr=30)


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_10bit_values_not_quantised_to_8bit(cli: Cli, tmp_path: Path, ext: str) -> None:
    """Through a lossless encoder, an output that went through 8 bits shows multiples of 4."""
    src = clips.hevc_10bit(tmp_path, ext, frames=4)
    out = tmp_path / "out.mkv"
    upscale(cli, src.path, out, "--codec", "ffv1")
    video = clips.read_video(out)
    assert video.pix_fmt.startswith("yuv420p1") and clips.bits_of(video.pix_fmt) >= 10
    for planes in video.planes:
        luma = planes[0]
        off_grid = float(np.mean(luma % 4 != 0))
        assert off_grid > 0.5, f"only {off_grid:.0%} of luma values are not multiples of 4"
    # Rounding to 8 bits alone limits luma to ~58 dB against the float reference; rounding to
    # 10 bits allows ~70 dB.
    clips.check_pixels_and_order(src.path, out, min_psnr=62)


# --------------------------------------------------------------------------------------------
# Streams, subtitles, chapters, attachments, metadata


def test_mkv_with_two_audio_tracks_subtitles_chapters_attachment(cli: Cli, tmp_path: Path) -> None:
    src = clips.multi_track_mkv(tmp_path)
    out = tmp_path / "out.mkv"
    summary = upscale(cli, src.path, out)

    before = clips.stream_summary(src.path)
    after = clips.stream_summary(out)
    assert [s["type"] for s in after] == [s["type"] for s in before]
    for a, b in zip(before, after, strict=True):
        assert b["codec"] == a["codec"], (a, b)
        assert b["language"] == a["language"], (a, b)
        assert b["title"] == a["title"], (a, b)
        assert b["disposition"] == a["disposition"], (a, b)
    # Audio: every packet, byte for byte, in both tracks.
    for index, packets in src.audio_packets.items():
        assert clips.packet_bytes(out, index) == packets, f"audio stream {index} differs"
    # Subtitles: same text at the same times.
    assert clips.subtitle_texts(out) == clips.subtitle_texts(src.path)
    assert [t for _, _, t in clips.subtitle_texts(out)] == [t for _, _, t in src.extra["subtitles"]]
    # Chapters and attachments.
    assert clips.chapters_of(out) == [
        (Fraction(s, 1000), Fraction(e, 1000), t) for s, e, t in src.extra["chapters"]
    ]
    assert clips.attachments_of(out) == [src.extra["attachment"]]
    with av.open(str(src.path)) as source, av.open(str(out)) as output:
        # Matroska keeps tag names as written (TITLE, COMMENT); compare them case-blind.
        before_tags = {k.lower(): v for k, v in source.metadata.items() if k.lower() != "encoder"}
        after_tags = {k.lower(): v for k, v in output.metadata.items() if k.lower() != "encoder"}
        assert after_tags == before_tags
        assert after_tags["title"] == src.extra["title"]
        assert after_tags["comment"] == "generated by tests/clips.py"
    clips.check_times(src.path, out)
    actions = stream_actions(summary)
    assert actions["video"] == ["encoded"]
    assert actions["audio"] == ["copied", "copied"]
    assert actions["subtitle"] == ["copied"]


def test_mkv_streams_into_mp4_transcoded_or_refused(cli: Cli, tmp_path: Path) -> None:
    """MP4 cannot hold SRT or attachments: either convert with a notice, or refuse clearly."""
    src = clips.multi_track_mkv(tmp_path)
    out = tmp_path / "out.mp4"
    result = cli("upscale", src.path, "-o", out, *FAST, "--json")
    if result.code == 0:
        summary = result.json
        assert summary["notices"], "streams were changed without a notice"
        kept = {s["index"]: s["action"] for s in summary["streams"]}
        assert kept[1] == "copied"  # AAC fits mp4 as it is
        assert clips.packet_bytes(out, 1) == src.audio_packets[1]
        for s in summary["streams"]:
            if s["type"] == "subtitle":
                assert s["action"] == "transcoded"
                assert s["note"]
    else:
        line = check_one_error_line(result, 5, "mkv")
        assert not out.exists()
        assert "mp4" in line.lower()
        no_leftovers(tmp_path, src.path)


def test_srt_into_mp4_becomes_mov_text_with_notice(cli: Cli, tmp_path: Path) -> None:
    """Without an attachment everything has a place in MP4: SRT is converted, with a notice."""
    src = clips.multi_track_mkv(tmp_path, attachment=False)
    out = tmp_path / "out.mp4"
    result = cli("upscale", src.path, "-o", out, *FAST, "--json")
    if result.code != 0:
        check_one_error_line(result, 5, "mkv")
        return
    summary = result.json
    # MP4 stores chapters in a text track of its own, which FFmpeg lists as a data stream.
    after = [s for s in clips.stream_summary(out) if s["type"] != "data"]
    assert [s["type"] for s in after] == ["video", "audio", "audio", "subtitle"]
    assert after[3]["codec"] == "mov_text"
    assert [s["language"] for s in after[1:]] == ["eng", "fra", "eng"]
    subtitle = next(s for s in summary["streams"] if s["type"] == "subtitle")
    assert subtitle["action"] == "transcoded" and subtitle["note"]
    assert any("mov_text" in n or "subtitle" in n.lower() for n in summary["notices"])
    # mov_text packets carry a 2-byte length before the text; the text itself is unchanged.
    texts = [t for _, _, t in clips.subtitle_texts(out)]
    assert any("Hello, world" in t for t in texts)
    assert any("Deuxième ligne" in t for t in texts)
    starts = [float(t0) for t0, _, text in clips.subtitle_texts(out) if len(text) > 2]
    assert starts == pytest.approx([0.0, 0.2], abs=0.002)
    # The audio still byte for byte; chapters kept (MP4 has chapters too).
    for index, packets in src.audio_packets.items():
        assert clips.packet_bytes(out, index) == packets, index
    assert [t for _, _, t in clips.chapters_of(out)] == ["Intro", "Main part"]
    clips.check_times(src.path, out)


def test_tiled_equals_untiled(cli: Cli, tmp_path: Path) -> None:
    """--tile splits the frame; with overlap the seams must not show."""
    src = clips.lossless_ffv1(tmp_path, width=96, height=80, frames=3, pix_fmt="yuv444p")
    whole = tmp_path / "whole.mkv"
    tiled = tmp_path / "tiled.mkv"
    upscale(cli, src.path, whole, "--codec", "ffv1")
    upscale(cli, src.path, tiled, "--codec", "ffv1", "--tile", "32")
    a = clips.read_video(whole)
    b = clips.read_video(tiled)
    for pa, pb in zip(a.planes, b.planes, strict=True):
        diff = np.abs(pa[0].astype(np.int64) - pb[0].astype(np.int64))
        assert diff.max() <= 1, f"tile seams: luma differs by up to {diff.max()}"


def test_audio_codec_mp4_cannot_hold_is_transcoded_with_notice(cli: Cli, tmp_path: Path) -> None:
    """Vorbis (from Ogg) into .mov: not a codec QuickTime holds, so transcode and say so."""
    src = clips.copy_to(clips.theora_empty_packets(), tmp_path)
    out = tmp_path / "out.mov"
    result = cli("upscale", src, "-o", out, *FAST, "--json")
    if result.code == 0:
        summary = result.json
        audio = [s for s in summary["streams"] if s["type"] == "audio"]
        assert len(audio) == 1
        if audio[0]["action"] == "transcoded":
            assert summary["notices"], "an audio stream was transcoded without a notice"
            with av.open(str(out)) as container:
                assert len(container.streams.audio) == 1
        else:
            assert clips.packet_bytes(out, 1) == clips.packet_bytes(src, 1)
    else:
        check_one_error_line(result, 5, "mkv")


# --------------------------------------------------------------------------------------------
# Display and colour metadata


@pytest.mark.parametrize("out_ext", ["mp4", "mkv"])
def test_rotation_kept_and_pixels_not_rotated(cli: Cli, tmp_path: Path, out_ext: str) -> None:
    src = clips.rotated(tmp_path, "mp4", 90)
    out = tmp_path / f"out.{out_ext}"
    upscale(cli, src.path, out)
    before = clips.read_video(src.path, pixels=False)
    after = clips.read_video(out, pixels=False)
    assert set(before.rotation) == {90.0}
    assert set(after.rotation) == set(before.rotation)
    # The tag travels; the pixels are not turned (that would rotate twice in a player).
    assert (after.width, after.height) == (2 * src.width, 2 * src.height)
    clips.check_pixels_and_order(src.path, out, min_psnr=30)


def test_full_range_bt709_tags(cli: Cli, tmp_path: Path) -> None:
    src = clips.bt709_full_range(tmp_path, "mp4")
    out = tmp_path / "out.mp4"
    upscale(cli, src.path, out)
    video = clips.read_video(out)
    assert video.color == {
        "colorspace": clips.CS_BT709,
        "color_range": clips.RANGE_JPEG,
        "color_primaries": clips.PRI_BT709,
        "color_trc": clips.TRC_BT709,
    }
    with av.open(str(out)) as container:
        ctx = container.streams.video[0].codec_context
        assert ctx.color_range == clips.RANGE_JPEG
        assert ctx.colorspace == clips.CS_BT709
    # Full range kept in the values too: black-to-white maps the same way.
    clips.check_pixels_and_order(src.path, out, min_psnr=30)


def test_bt601_limited_tags(cli: Cli, tmp_path: Path) -> None:
    src = clips.bt601_limited(tmp_path, "mkv")
    out = tmp_path / "out.mkv"
    upscale(cli, src.path, out)
    video = clips.read_video(out, pixels=False)
    assert video.color == {
        "colorspace": clips.CS_SMPTE170M,
        "color_range": clips.RANGE_MPEG,
        "color_primaries": clips.PRI_SMPTE170M,
        "color_trc": clips.TRC_SMPTE170M,
    }


@pytest.mark.parametrize("maker", ["bt709_full_range", "bt601_limited", "bt709_limited"])
def test_colour_pixels_lossless(cli: Cli, tmp_path: Path, maker: str) -> None:
    """Through FFV1 the only losses are bicubic and rounding: luma and RGB stay tight.

    A wrong matrix or range on either side shows up as a luma or RGB mismatch here.
    """
    src = getattr(clips, maker)(tmp_path)
    out = tmp_path / "out.mkv"
    upscale(cli, src.path, out, "--codec", "ffv1")
    before = clips.read_video(src.path, pixels=False)
    after = clips.read_video(out, pixels=False)
    assert after.color == before.color
    clips.check_pixels_and_order(src.path, out, min_psnr=40)
    clips.check_pixels_and_order(src.path, out, min_psnr=30, rgb=True)


def test_sample_aspect_ratio_kept(cli: Cli, tmp_path: Path) -> None:
    src = clips.anamorphic(tmp_path, "mkv")
    for ext in ("mkv", "mp4"):
        out = tmp_path / f"out.{ext}"
        upscale(cli, src.path, out)
        assert clips.read_video(out, pixels=False).sar == Fraction(4, 3), ext


# --------------------------------------------------------------------------------------------
# Sizes, pixels and order


def test_odd_size_2x(cli: Cli, tmp_path: Path) -> None:
    src = clips.odd_size(tmp_path, width=63, height=47)
    out = tmp_path / "out.mkv"
    upscale(cli, src.path, out)
    video = clips.read_video(out)
    assert (video.width, video.height) == (126, 94)
    assert len(video.times) == src.frames
    clips.check_pixels_and_order(src.path, out, min_psnr=30)


def test_odd_size_3x_gives_an_odd_or_evened_output(cli: Cli, tmp_path: Path) -> None:
    """3 x 63x47 = 189x141, which 4:2:0 H.264 cannot hold: the run must still work."""
    src = clips.odd_size(tmp_path, width=63, height=47)
    out = tmp_path / "out.mp4"
    result = cli("upscale", src.path, "-o", out, "--model", "bicubic", "--scale", "3")
    assert result.code == 0, result.err
    video = clips.read_video(out, pixels=False)
    assert abs(video.width - 189) <= 1 and abs(video.height - 141) <= 1
    assert len(video.times) == src.frames


def test_pixels_match_bicubic_reference_lossless(cli: Cli, tmp_path: Path) -> None:
    src = clips.lossless_ffv1(tmp_path, frames=8, pix_fmt="yuv444p")
    out = tmp_path / "out.mkv"
    upscale(cli, src.path, out, "--codec", "ffv1")
    video = clips.read_video(out, pixels=False)
    assert video.pix_fmt == "yuv444p"  # chroma layout kept
    clips.check_pixels_and_order(src.path, out, min_psnr=42)
    clips.check_pixels_and_order(src.path, out, min_psnr=35, rgb=True)


def test_pixels_lossless_x264_crf0(cli: Cli, tmp_path: Path) -> None:
    src = clips.lossless_ffv1(tmp_path, frames=6, pix_fmt="yuv420p", name="l420.mkv")
    out = tmp_path / "out.mp4"
    upscale(cli, src.path, out, "--crf", "0", "--preset", "ultrafast")
    assert clips.read_video(out, pixels=False).codec == "h264"
    clips.check_pixels_and_order(src.path, out, min_psnr=40)


def test_encoder_options_reach_the_encoder(cli: Cli, tmp_path: Path) -> None:
    """--encoder-option qp=0 makes x264 lossless (constant QP 0, not crf 18)."""
    src = clips.lossless_ffv1(tmp_path, frames=4, pix_fmt="yuv420p", name="l420.mkv")
    out = tmp_path / "out.mkv"
    upscale(cli, src.path, out, "--encoder-option", "qp=0", "--preset", "ultrafast")
    settings = clips.x264_settings(out)
    assert settings.get("rc") == "cqp" and settings.get("qp") == "0", settings
    clips.check_pixels_and_order(src.path, out, min_psnr=40)


def test_default_encoder_is_libx264_crf18_medium(cli: Cli, tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=4)
    out = tmp_path / "out.mp4"
    summary = upscale(cli, src.path, out)
    assert summary["streams"][0]["codec"] == "libx264"
    settings = clips.x264_settings(out)
    assert settings.get("rc") == "crf" and settings.get("crf") == "18.0", settings
    # What preset=medium sets (ultrafast would give subme=0 ref=1, slow subme=8 ref=5).
    assert (settings.get("subme"), settings.get("ref"), settings.get("me")) == ("7", "3", "hex")
    # The summary says which encoder settings were used, so a user can reproduce the run.
    text = json.dumps(summary)
    assert "18" in text and "medium" in text, summary["settings"]


def test_crf_and_preset_options(cli: Cli, tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=4)
    out = tmp_path / "out.mp4"
    upscale(cli, src.path, out, "--crf", "23", "--preset", "ultrafast")
    settings = clips.x264_settings(out)
    assert settings.get("crf") == "23.0", settings
    assert settings.get("subme") == "0", settings


def test_pix_fmt_option(cli: Cli, tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=4)
    out = tmp_path / "out.mkv"
    upscale(cli, src.path, out, "--pix-fmt", "yuv444p")
    assert clips.read_video(out, pixels=False).pix_fmt == "yuv444p"


# --------------------------------------------------------------------------------------------
# Alpha, stills, Ogg/Theora


def test_alpha_clip_kept_or_refused_clearly(cli: Cli, tmp_path: Path) -> None:
    src = clips.alpha_clip(tmp_path)
    out = tmp_path / "out.mov"
    result = cli("upscale", src.path, "-o", out, *FAST, "--json")
    if result.code != 0:
        check_one_error_line(result, 3, "alpha", src.path.name)
        no_leftovers(tmp_path, src.path)
        return
    summary = result.json
    video = clips.read_video(out)
    assert len(video.times) == src.frames
    assert (video.width, video.height) == (2 * src.width, 2 * src.height)
    has_alpha = any(c.is_alpha for c in av.VideoFormat(video.pix_fmt).components)
    if not has_alpha:
        mentions = " ".join(summary["notices"]).lower()
        assert "alpha" in mentions, f"alpha dropped silently: {video.pix_fmt}, {summary['notices']}"
        return
    # The alpha plane went through the same upscale: transparent, half and opaque bands.
    source = clips.read_video(src.path)
    for before, after in zip(source.frames, video.frames, strict=True):
        a_in = before.to_ndarray(format="rgba")[..., 3].astype(np.float64) / 255
        a_out = after.to_ndarray(format="rgba")[..., 3].astype(np.float64) / 255
        ref = np.clip(clips.bicubic(a_in, video.width, video.height), 0, 1)
        assert clips.psnr(a_out, ref) > 30
        rgb_in = before.to_ndarray(format="rgb24").astype(np.float64) / 255
        rgb_out = after.to_ndarray(format="rgb24").astype(np.float64) / 255
        rgb_ref = np.clip(clips.bicubic(rgb_in, video.width, video.height), 0, 1)
        # Compare where the pixel is visible: fully transparent colour is not defined.
        visible = ref > 0.9
        assert clips.psnr(rgb_out[visible], rgb_ref[visible]) > 30


@pytest.mark.parametrize(("bits", "alpha"), [(8, False), (16, False), (8, True)])
def test_png_still(cli: Cli, tmp_path: Path, bits: int, alpha: bool) -> None:
    src = clips.still_png(tmp_path, bits=bits, alpha=alpha)
    out = tmp_path / "out.png"
    result = cli("upscale", src.path, "-o", out, *FAST)
    assert result.code == 0, result.err
    img: Any = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert img is not None
    assert img.shape[:2] == (2 * src.height, 2 * src.width)
    expected = src.extra["pixels"]
    assert img.dtype == expected.dtype, "bit depth changed"
    channels = img.shape[2] if img.ndim == 3 else 1
    assert channels == expected.shape[2], "channels changed (alpha dropped or added)"
    peak = float(np.iinfo(expected.dtype).max)
    order = [2, 1, 0, 3] if alpha else [2, 1, 0]
    rgb = img[..., order].astype(np.float64) / peak
    ref = clips.bicubic(expected.astype(np.float64) / peak, 2 * src.width, 2 * src.height)
    assert clips.psnr(rgb[..., :3], np.clip(ref[..., :3], 0, 1)) > 40
    if alpha:
        assert clips.psnr(rgb[..., 3], np.clip(ref[..., 3], 0, 1)) > 30
    if bits == 16:
        values = img[..., :3].astype(np.int64)
        assert np.mean(values % 257 != 0) > 0.5, "16-bit still was squeezed through 8 bits"


def test_jpeg_still(cli: Cli, tmp_path: Path) -> None:
    src = clips.still_jpeg(tmp_path)
    for ext in ("jpg", "png"):
        out = tmp_path / f"out.{ext}"
        result = cli("upscale", src.path, "-o", out, *FAST)
        assert result.code == 0, result.err
        img: Any = cv2.imread(str(out), cv2.IMREAD_COLOR)
        assert img is not None
        assert img.shape[:2] == (2 * src.height, 2 * src.width)
        ref = clips.bicubic(
            src.extra["pixels"].astype(np.float64) / 255, 2 * src.width, 2 * src.height
        )
        assert clips.psnr(img[..., ::-1] / 255.0, np.clip(ref, 0, 1)) > 28, ext


def test_ogg_theora_with_empty_packets_decodes_completely(cli: Cli, tmp_path: Path) -> None:
    src = clips.copy_to(clips.theora_empty_packets(), tmp_path)
    # The file really has the problem: a plain decode() stops at the first empty packet.
    with av.open(str(src)) as container:
        sizes = [p.size for p in container.demux(video=0) if p.pts is not None]
    assert sizes.count(0) >= 5 and len(sizes) == 12
    with pytest.raises(av.error.FFmpegError), av.open(str(src)) as container:
        list(container.decode(video=0))

    out = tmp_path / "out.mkv"
    summary = upscale(cli, src, out)
    before = clips.read_video(src, pixels=False)
    after = clips.read_video(out, pixels=False)
    assert len(before.times) == 5
    # Empty packets are "show the previous frame again": dropping or repeating both keep sync.
    assert len(after.times) in (5, 12), after.times
    half = after.time_base / 2
    for t in before.times:
        assert any(abs(t - u) <= half for u in after.times), f"frame at {float(t)} s is missing"
    assert (after.width, after.height) == (128, 96)
    assert summary["frames"] == len(after.times)
    # Vorbis goes into MKV as it is.
    assert clips.packet_bytes(out, 1) == clips.packet_bytes(src, 1)


# --------------------------------------------------------------------------------------------
# Python API


def test_api_matches_cli_json(cli: Cli, tmp_path: Path) -> None:
    import vsr

    src = clips.cfr_h264_aac(tmp_path, frames=6)
    out_api = tmp_path / "api.mkv"
    result = vsr.upscale(src.path, out_api, model="bicubic", scale=2)
    assert result.frames == 6
    assert result.seconds > 0 and result.fps > 0
    assert result.repeated_frames == 0
    assert isinstance(result.notices, list)
    data = result.to_dict()
    assert data["frames"] == 6 and data["model"] == "bicubic"
    assert [s["action"] for s in data["streams"]] == ["encoded", "copied"]
    clips.check_times(src.path, out_api, max_shift=0.05)
    clips.check_av_sync(src.path, out_api, 1, 1)

    out_cli = tmp_path / "cli.mkv"
    summary = upscale(cli, src.path, out_cli)
    assert set(summary) == set(data)
    for key in ("frames", "model", "settings", "streams", "repeated_frames", "notices"):
        assert summary[key] == data[key], key


def test_api_probe(tmp_path: Path) -> None:
    import vsr

    src = clips.ntsc_h264(tmp_path, "mp4")
    info = vsr.probe(src.path)
    data = info.to_dict()
    video = next(s for s in data["streams"] if s["type"] == "video")
    assert video["frame_rate"] == "30000/1001"
    assert video["width"] == src.width and video["height"] == src.height


def test_api_errors_are_vsr_errors(tmp_path: Path) -> None:
    import vsr
    from vsr.errors import InputNotFoundError, OutputExistsError

    with pytest.raises(InputNotFoundError):
        vsr.upscale(tmp_path / "missing.mp4", tmp_path / "out.mp4", model="bicubic", scale=2)
    src = clips.cfr_h264_aac(tmp_path, frames=3)
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        vsr.upscale(src.path, existing, model="bicubic", scale=2)
    assert existing.read_bytes() == b"keep me"
