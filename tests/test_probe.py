"""`vsr probe`: the facts vsr sees, checked against what the generators wrote."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import clips
import pytest
from conftest import CliResult

Cli = Callable[..., CliResult]


def probe_json(cli: Cli, path: Path) -> dict[str, Any]:
    result = cli("probe", path, "--json")
    assert result.code == 0, result.err
    data = result.json
    assert isinstance(data, dict)
    assert set(data) >= {"path", "format", "duration", "streams", "chapters"}
    return data


def video_of(data: dict[str, Any]) -> dict[str, Any]:
    videos = [s for s in data["streams"] if s["type"] == "video"]
    assert len(videos) == 1, data["streams"]
    return videos[0]


VIDEO_KEYS = {
    "index",
    "type",
    "codec",
    "width",
    "height",
    "pix_fmt",
    "bit_depth",
    "frame_rate",
    "vfr",
    "color_range",
    "color_space",
    "color_primaries",
    "color_trc",
    "field_order",
    "rotation",
    "sample_aspect_ratio",
    "frames",
}


def test_ntsc_mp4_facts(cli: Cli, tmp_path: Path) -> None:
    src = clips.ntsc_h264(tmp_path, "mp4")
    data = probe_json(cli, src.path)
    assert data["path"].endswith(src.path.name)
    assert "mp4" in data["format"] or "mov" in data["format"]
    video = video_of(data)
    assert set(video) >= VIDEO_KEYS
    assert video["codec"] == "h264"
    assert (video["width"], video["height"]) == (src.width, src.height)
    assert video["pix_fmt"] == "yuv420p"
    assert video["bit_depth"] == 8
    assert video["frame_rate"] == "30000/1001"
    assert video["vfr"] is False
    assert video["frames"] in (None, src.frames)
    assert video["field_order"] in (None, "progressive", "unknown")
    assert abs(float(data["duration"]) - src.frames * 1001 / 30000) < 0.05
    audio = [s for s in data["streams"] if s["type"] == "audio"]
    assert len(audio) == 1 and audio[0]["codec"] == "aac"


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_vfr_is_detected(cli: Cli, tmp_path: Path, ext: str) -> None:
    src = clips.vfr_h264(tmp_path, ext)
    video = video_of(probe_json(cli, src.path))
    assert video["vfr"] is True


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_cfr_is_not_vfr(cli: Cli, tmp_path: Path, ext: str) -> None:
    src = clips.write_video(tmp_path / f"cfr.{ext}", frames=10)
    video = video_of(probe_json(cli, src.path))
    assert video["vfr"] is False
    assert Fraction(video["frame_rate"]) == 25


def test_10bit(cli: Cli, tmp_path: Path) -> None:
    src = clips.hevc_10bit(tmp_path, "mkv", frames=3)
    video = video_of(probe_json(cli, src.path))
    assert video["codec"] == "hevc"
    assert video["pix_fmt"] == "yuv420p10le"
    assert video["bit_depth"] == 10


def test_colour_tags(cli: Cli, tmp_path: Path) -> None:
    src = clips.bt709_full_range(tmp_path, "mp4")
    video = video_of(probe_json(cli, src.path))
    assert str(video["color_range"]).lower() in ("pc", "jpeg", "full")
    for key in ("color_space", "color_primaries", "color_trc"):
        assert "709" in str(video[key]), (key, video[key])
    src = clips.bt601_limited(tmp_path, "mkv")
    video = video_of(probe_json(cli, src.path))
    assert str(video["color_range"]).lower() in ("tv", "mpeg", "limited")
    assert "170" in str(video["color_space"]) or "601" in str(video["color_space"])


def test_rotation_and_sar(cli: Cli, tmp_path: Path) -> None:
    video = video_of(probe_json(cli, clips.rotated(tmp_path, "mp4", 90).path))
    assert abs(float(video["rotation"])) == 90
    video = video_of(probe_json(cli, clips.anamorphic(tmp_path, "mkv").path))
    assert Fraction(str(video["sample_aspect_ratio"]).replace(":", "/")) == Fraction(4, 3)
    assert float(video["rotation"] or 0) == 0


def test_multi_track_streams_and_chapters(cli: Cli, tmp_path: Path) -> None:
    src = clips.multi_track_mkv(tmp_path)
    data = probe_json(cli, src.path)
    types = [s["type"] for s in data["streams"]]
    assert types[:4] == ["video", "audio", "audio", "subtitle"]
    assert "attachment" in types
    codecs = [s["codec"] for s in data["streams"][:4]]
    assert codecs[1:3] == ["aac", "flac"]
    assert codecs[3] in ("subrip", "srt")
    assert len(data["chapters"]) == 2
    titles = [c.get("title") or c.get("metadata", {}).get("title") for c in data["chapters"]]
    assert titles == ["Intro", "Main part"]
    text = str(data["streams"]).lower()
    assert "eng" in text and "fra" in text


def test_field_order(cli: Cli, tmp_path: Path) -> None:
    video = video_of(probe_json(cli, clips.interlaced(tmp_path).path))
    assert str(video["field_order"]).lower() in ("tt", "tff", "top first", "top_first")


def test_odd_size_and_alpha(cli: Cli, tmp_path: Path) -> None:
    video = video_of(probe_json(cli, clips.odd_size(tmp_path).path))
    assert (video["width"], video["height"]) == (63, 47)
    video = video_of(probe_json(cli, clips.alpha_clip(tmp_path).path))
    assert video["pix_fmt"] == "argb"


def test_theora_frames_counted_without_error(cli: Cli, tmp_path: Path) -> None:
    src = clips.copy_to(clips.theora_empty_packets(), tmp_path)
    video = video_of(probe_json(cli, src))
    assert video["codec"] == "theora"
    assert video["frames"] in (None, 5, 12)


def test_human_readable_output(cli: Cli, tmp_path: Path) -> None:
    src = clips.ntsc_h264(tmp_path, "mkv")
    result = cli("probe", src.path)
    assert result.code == 0, result.err
    assert "h264" in result.out
    assert "30000/1001" in result.out
    assert "aac" in result.out
    assert result.err == ""


def test_python_api_probe_matches_cli(cli: Cli, tmp_path: Path) -> None:
    import vsr

    src = clips.vfr_h264(tmp_path, "mkv")
    assert vsr.probe(src.path).to_dict() == probe_json(cli, src.path)
