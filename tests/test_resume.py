"""Segments, manifest and resume: a killed job continues and ends as one uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from clips import packet_bytes, plane_arrays, read_video, stream_indices, write_video

from vsr import resume
from vsr.api import build_options, run

REPO = Path(__file__).resolve().parents[1]


def _clip(tmp_path: Path, frames: int = 48, gop: int = 6) -> Path:
    """29.97 fps H.264 with B-frames, a keyframe every `gop` frames, and AAC audio."""
    clip = write_video(
        tmp_path / "src.mp4",
        width=64,
        height=48,
        frames=frames,
        rate=Fraction(30000, 1001),
        options={"g": str(gop), "keyint_min": str(gop), "bf": "2", "sc_threshold": "0"},
        audio=[("aac", 48000, "stereo")],
    )
    return clip.path


def _options(segment_seconds: float, keep: bool = False, **extra: object) -> object:
    return build_options(
        overrides={"model": "bicubic", "scale": 2, **extra},
        segment_seconds=segment_seconds,
        overwrite=True,
        keep_manifest=keep,
    )


def _pts(path: Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(p.pts * p.time_base for p in c.demux(s) if p.size and p.pts is not None)


def test_plan_cuts_only_at_keyframes_and_covers_every_frame() -> None:
    pts = list(range(0, 100))
    keys = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]
    segs = resume.plan_segments(pts, keys, Fraction(1, 10), segment_seconds=2.5, max_frames=None)
    assert [s.start_pts for s in segs] == [None, 30, 60, 90]
    assert [s.end_pts for s in segs] == [30, 60, 90, None]
    assert sum(s.expected_frames for s in segs) == 100
    assert [s.first_frame for s in segs] == [0, 30, 60, 90]
    cut = resume.plan_segments(pts, keys, Fraction(1, 10), segment_seconds=2.5, max_frames=45)
    assert sum(s.expected_frames for s in cut) == 45
    assert cut[-1].end_pts == 45
    timed = resume.plan_segments(
        pts, keys, Fraction(1, 10), segment_seconds=100, max_frames=None, max_seconds=2.0
    )
    assert sum(s.expected_frames for s in timed) == 20


def test_segmented_run_equals_single_pass(tmp_path: Path) -> None:
    src = _clip(tmp_path)
    one, many = tmp_path / "one.mp4", tmp_path / "many.mp4"
    run(src, one, _options(100.0, True, codec="ffv1"))  # type: ignore[arg-type]
    manifest = resume.read_manifest(resume.manifest_path(one))
    assert manifest is not None and len(manifest.segments) == 1 and manifest.complete
    run(src, many, _options(0.2, True, codec="ffv1"))  # type: ignore[arg-type]
    manifest = resume.read_manifest(resume.manifest_path(many))
    assert manifest is not None and len(manifest.segments) >= 4 and manifest.complete
    assert not resume.segments_dir(many).exists()
    # Without keep_manifest (plain `vsr upscale`), nothing but the output is left.
    plain = tmp_path / "plain.mp4"
    run(src, plain, _options(0.2))  # type: ignore[arg-type]
    assert not resume.manifest_path(plain).exists()
    assert not resume.segments_dir(plain).exists()
    a, b = read_video(one), read_video(many)
    assert len(a.frames) == len(b.frames) == 48
    assert a.times == b.times == _pts(src)
    # FFV1 is lossless and bicubic frame-wise: seeking into segments changes no pixel.
    for fa, fb in zip(a.frames, b.frames, strict=True):
        for pa, pb in zip(plane_arrays(fa), plane_arrays(fb), strict=True):
            np.testing.assert_array_equal(pa, pb)
    audio_src = stream_indices(src, "audio")[0]
    audio_out = stream_indices(many, "audio")[0]
    assert packet_bytes(many, audio_out) == packet_bytes(src, audio_src)


def test_settings_change_starts_over_with_notice(tmp_path: Path) -> None:
    src = _clip(tmp_path, frames=24)
    out = tmp_path / "out.mp4"
    # Simulate an interrupted run: a manifest with one finished segment under other settings.
    run(src, out, _options(0.2, True))  # type: ignore[arg-type]
    mpath = resume.manifest_path(out)
    data = json.loads(mpath.read_text())
    data["complete"] = False
    mpath.write_text(json.dumps(data))
    out.unlink()
    notes: list[str] = []
    run(src, out, _options(0.2, crf=30), notify=notes.append)  # type: ignore[arg-type]
    assert any("settings changed" in n and "encode" in n for n in notes), notes
    assert len(read_video(out, pixels=False).times) == 24


def test_is_complete_checks_manifest_and_file(tmp_path: Path) -> None:
    src = _clip(tmp_path, frames=12)
    out = tmp_path / "out.mp4"
    options = _options(30.0, True)
    assert not resume.is_complete(src, out, options)  # type: ignore[arg-type]
    run(src, out, options)  # type: ignore[arg-type]
    assert resume.is_complete(src, out, options)  # type: ignore[arg-type]
    assert not resume.is_complete(src, out, _options(30.0, True, crf=20))  # type: ignore[arg-type]
    # The file itself is checked, not only its existence.
    out.write_bytes(out.read_bytes()[:100])
    assert not resume.is_complete(src, out, options)  # type: ignore[arg-type]


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    src = _clip(tmp_path, frames=150, gop=10)
    ref, out = tmp_path / "ref.mp4", tmp_path / "out.mp4"
    args = [
        "upscale",
        str(src),
        "--model",
        "bicubic",
        "--scale",
        "4",
        "--encoder-preset",
        "veryslow",
        "--segment-seconds",
        "0.3",
        "-y",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run(
        [sys.executable, "-m", "vsr", *args, "-o", str(ref)],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "vsr", *args, "-o", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    mpath = resume.manifest_path(out)
    deadline = time.monotonic() + 120
    killed_after = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            m = resume.read_manifest(mpath) if mpath.exists() else None
            if m is not None and sum(s.done for s in m.segments) >= 2:
                killed_after = sum(s.done for s in m.segments)
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        proc.wait(timeout=30)
    if not killed_after:
        pytest.fail("the run finished before two segments were done: make the clip longer")
    assert not out.exists()
    m = resume.read_manifest(mpath)
    assert m is not None and not m.complete and len(m.segments) > killed_after
    rerun = subprocess.run(
        [sys.executable, "-m", "vsr", *args, "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stderr
    a, b = read_video(ref, pixels=False), read_video(out, pixels=False)
    assert len(a.times) == len(b.times) == 150
    assert a.times == b.times == _pts(src)
    ia, ib = stream_indices(ref, "audio")[0], stream_indices(out, "audio")[0]
    assert packet_bytes(out, ib) == packet_bytes(ref, ia) == packet_bytes(src, 1)
