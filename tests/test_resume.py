"""Segments, manifest and resume: a killed job continues and ends as one uninterrupted run.

Fast tests use bicubic and a tiny --checkpoint-every (a segment every few frames) and stop a
run in-process; the one slow test kills a real process running a real model for over a minute.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from clips import packet_bytes, plane_arrays, read_video, stream_indices, write_video
from conftest import CliResult, check_one_error_line, files_in

from vsr import resume
from vsr.api import build_options, run
from vsr.config import UpscaleOptions
from vsr.errors import Interrupted

REPO = Path(__file__).resolve().parents[1]


def _clip(tmp_path: Path, frames: int = 48, gop: int = 6, size: tuple[int, int] = (64, 48)) -> Path:
    """29.97 fps H.264 with B-frames, a keyframe every `gop` frames, and AAC audio."""
    clip = write_video(
        tmp_path / "src.mp4",
        width=size[0],
        height=size[1],
        frames=frames,
        rate=Fraction(30000, 1001),
        options={"g": str(gop), "keyint_min": str(gop), "bf": "2", "sc_threshold": "0"},
        audio=[("aac", 48000, "stereo")],
    )
    return clip.path


def _options(
    segment_seconds: float = 30.0,
    keep: bool = False,
    *,
    checkpoint_every: float = 60.0,
    model: str = "bicubic",
    **extra: object,
) -> UpscaleOptions:
    options = build_options(
        overrides={"model": model, "scale": 2, **extra},
        segment_seconds=segment_seconds,
        overwrite=True,
        keep_manifest=keep,
    )
    return dataclasses.replace(options, checkpoint_every=checkpoint_every)


def _pts(path: Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(p.pts * p.time_base for p in c.demux(s) if p.size and p.pts is not None)


def _stop_after(frames: int) -> Callable[[int, int | None], None]:
    """A progress callback that stops the run (as Ctrl-C does) once `frames` are written."""

    def progress(done: int, _total: int | None) -> None:
        if done >= frames:
            raise KeyboardInterrupt

    return progress


def _interrupted(src: Path, out: Path, options: UpscaleOptions, after: int) -> resume.Manifest:
    with pytest.raises((KeyboardInterrupt, Interrupted)):
        run(src, out, options, progress=_stop_after(after))
    assert not out.exists()
    manifest = resume.read_manifest(resume.manifest_path(out))
    assert manifest is not None and manifest.segments, "no segment was finished"
    return manifest


def _same_pixels(a: Path, b: Path) -> None:
    ra, rb = read_video(a), read_video(b)
    assert len(ra.frames) == len(rb.frames)
    for i, (fa, fb) in enumerate(zip(ra.frames, rb.frames, strict=True)):
        for pa, pb in zip(plane_arrays(fa), plane_arrays(fb), strict=True):
            assert np.array_equal(pa, pb), f"frame {i} differs"


def _max_difference(a: Path, b: Path) -> tuple[int, int]:
    """(largest difference of any sample, frames that differ at all) between two videos."""
    ra, rb = read_video(a), read_video(b)
    assert len(ra.frames) == len(rb.frames)
    worst, differing = 0, 0
    for fa, fb in zip(ra.frames, rb.frames, strict=True):
        diffs = [
            int(np.abs(pa.astype(np.int32) - pb.astype(np.int32)).max())
            for pa, pb in zip(plane_arrays(fa), plane_arrays(fb), strict=True)
        ]
        worst = max(worst, *diffs)
        differing += int(max(diffs) > 0)
    return worst, differing


# -- the plan ---------------------------------------------------------------------------------


def test_plan_counts_frames_and_limits() -> None:
    pts = list(range(0, 100))
    assert resume.plan_job(pts, 100, Fraction(1, 10), max_frames=None) == (100, None)
    assert resume.plan_job(pts, 100, Fraction(1, 10), max_frames=45) == (45, 45)
    assert resume.plan_job(pts, 100, Fraction(1, 10), max_frames=None, max_seconds=2.0) == (
        20,
        20,
    )
    # Field-rate deinterlacing doubles the frames.
    assert resume.plan_job(pts, 100, Fraction(1, 10), max_frames=None, frames_per_packet=2) == (
        200,
        None,
    )
    assert resume.plan_job([], 0, Fraction(1, 10), max_frames=None) == (None, None)


def test_gaps_cover_exactly_what_is_missing() -> None:
    def seg(index: int, first: int, frames: int, end: int | None) -> resume.Segment:
        return resume.Segment(index, first, frames, first * 10, end)

    m = resume.Manifest(2, {}, "", {}, "1/10", [], total_frames=100)
    assert m.gaps() == [resume.Gap(0, None, None, None)]
    m.segments = [seg(0, 0, 30, 300), seg(2, 60, 20, 800)]
    # Segment 1 (frames 30-59) was found damaged; the tail after frame 80 was never done.
    assert m.gaps() == [resume.Gap(30, 300, 600, 30), resume.Gap(80, 800, None, None)]
    m.segments.append(seg(3, 80, 20, None))
    assert m.gaps() == [resume.Gap(30, 300, 600, 30)]
    m.segments.append(seg(1, 30, 30, 600))
    assert m.gaps() == []
    limited = resume.Manifest(2, {}, "", {}, "1/10", [seg(0, 0, 30, 300)], max_frames=30)
    assert limited.gaps() == []
    m.segments = [seg(1, 30, 30, 600)]  # the first segment is gone
    assert m.gaps()[0] == resume.Gap(0, None, 300, 30)


# -- uninterrupted runs -------------------------------------------------------------------------


def test_segments_end_at_any_frame_and_change_no_pixel(tmp_path: Path) -> None:
    src = _clip(tmp_path)
    one, many, timed = tmp_path / "one.mp4", tmp_path / "many.mp4", tmp_path / "timed.mp4"
    run(src, one, _options(100.0, True, codec="ffv1"))
    manifest = resume.read_manifest(resume.manifest_path(one))
    assert manifest is not None and len(manifest.segments) == 1 and manifest.complete
    # Content limit: 0.25 s is 7.5 frames at 29.97 fps, so cuts fall between keyframes (every
    # 6 frames): vsr encodes each segment itself, it doesn't need the input's keyframes.
    run(src, many, _options(0.25, True, codec="ffv1"))
    manifest = resume.read_manifest(resume.manifest_path(many))
    assert manifest is not None and manifest.complete
    firsts = [s.first_frame for s in manifest.ordered()]
    assert len(firsts) >= 5 and any(f % 6 for f in firsts), firsts
    assert not resume.segments_dir(many).exists()
    # Work limit: a tiny --checkpoint-every closes a segment at (nearly) every frame.
    run(src, timed, _options(keep=True, checkpoint_every=1e-4, codec="ffv1"))
    manifest = resume.read_manifest(resume.manifest_path(timed))
    assert manifest is not None and len(manifest.segments) >= 24
    a = read_video(one)
    assert len(a.frames) == 48 and a.times == _pts(src)
    _same_pixels(one, many)
    _same_pixels(one, timed)
    audio_src = stream_indices(src, "audio")[0]
    assert packet_bytes(timed, stream_indices(timed, "audio")[0]) == packet_bytes(src, audio_src)
    # Without keep_manifest (plain `vsr upscale`), nothing but the output is left.
    plain = tmp_path / "plain.mp4"
    run(src, plain, _options(0.2))
    assert files_in(tmp_path) == {"src.mp4", "one.mp4", "many.mp4", "timed.mp4", "plain.mp4"} | {
        resume.manifest_path(p).name for p in (one, many, timed)
    }


# -- resume -------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["ffv1", "libx264"])
def test_resume_keeps_done_work_and_equals_an_uninterrupted_run(tmp_path: Path, codec: str) -> None:
    src = _clip(tmp_path)
    ref, out = tmp_path / "ref.mp4", tmp_path / "out.mp4"
    run(src, ref, _options(codec=codec))
    options = _options(checkpoint_every=1e-4, codec=codec)
    manifest = _interrupted(src, out, options, after=29)
    done = manifest.done_frames
    assert 20 <= done <= 29, done
    notes: list[str] = []
    reports: list[int] = []
    result = run(src, out, options, notify=notes.append, progress=lambda d, _t: reports.append(d))
    assert f"resumed: {done:,} of 48 frames done" in notes, notes
    assert result.to_dict()["resumed"] == {"frames_done": done, "of": 48}
    # The speed is this run's: the frames it made, not those the first run left.
    assert result.fps == pytest.approx((48 - done) / result.seconds)
    # Only the missing frames were encoded again: progress starts where the first run stopped.
    assert reports[0] == done and reports[-1] == 48 and len(reports) == 48 - done + 1
    a, b = read_video(ref, pixels=False), read_video(out, pixels=False)
    assert a.times == b.times == _pts(src)
    ia, ib = stream_indices(ref, "audio")[0], stream_indices(out, "audio")[0]
    assert packet_bytes(out, ib) == packet_bytes(ref, ia) == packet_bytes(src, 1)
    if codec == "ffv1":
        _same_pixels(ref, out)
    assert not resume.segments_dir(out).exists() and not resume.manifest_path(out).exists()


@pytest.mark.parametrize(
    ("model", "temporal", "tolerance"),
    [("bicubic", "stabilize", 1), ("vsr-temporal-x2", None, 2)],
)
def test_temporal_seam_matches_an_uninterrupted_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model: str,
    temporal: str | None,
    tolerance: int,
) -> None:
    """The warm-up (frames before the seam run and dropped) puts the state back in step."""
    src = _clip(tmp_path, frames=60)
    ref, out, cold = tmp_path / "ref.mp4", tmp_path / "out.mp4", tmp_path / "cold.mp4"
    extra: dict[str, Any] = {"codec": "ffv1", "precision": "fp32", "model": model}
    if temporal:
        extra["temporal"] = temporal
    run(src, ref, _options(**extra))
    options = _options(checkpoint_every=1e-4, **extra)
    manifest = _interrupted(src, out, options, after=36)
    assert manifest.done_frames >= 28  # more than the recurrent model's warm-up (24)
    # The same interrupted state for a resume without warm-up, below.
    shutil.copytree(resume.segments_dir(out), resume.segments_dir(cold))
    shutil.copy(resume.manifest_path(out), resume.manifest_path(cold))
    run(src, out, options)
    worst, differing = _max_difference(ref, out)
    assert worst <= tolerance, (worst, differing)
    # The same resume without the warm-up (a cold state at the seam) is visibly off: the
    # comparison above can fail.
    with monkeypatch.context() as m:
        m.setattr(resume.Manifest, "warmup_pts", lambda *_a, **_k: [])
        run(src, cold, options)
    assert _max_difference(ref, cold)[0] > tolerance


def test_damaged_segment_is_done_again(tmp_path: Path) -> None:
    src = _clip(tmp_path)
    ref, out = tmp_path / "ref.mp4", tmp_path / "out.mp4"
    run(src, ref, _options(codec="ffv1"))
    options = _options(checkpoint_every=1e-4, codec="ffv1")
    manifest = _interrupted(src, out, options, after=30)
    directory = resume.segments_dir(out)
    victim = manifest.ordered()[2]
    assert victim.sha256
    media = victim.file(directory)
    data = bytearray(media.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0xFF  # same size, bytes flipped
    media.write_bytes(bytes(data))
    notes: list[str] = []
    run(src, out, options, notify=notes.append)
    assert any(f"segment {victim.index}" in n and "damaged" in n for n in notes), notes
    _same_pixels(ref, out)


def test_leftovers_of_a_killed_run_are_cleaned(tmp_path: Path) -> None:
    src = _clip(tmp_path, frames=24)
    out = tmp_path / "out.mp4"
    options = _options(checkpoint_every=1e-4)
    _interrupted(src, out, options, after=12)
    # What a kill -9 during the final mux and during a segment leaves: the hidden temp output
    # (named after the dead process) and a half-written segment and manifest.
    stale = tmp_path / f".out.vsr-tmp-{2**22 + 17}.mp4"
    stale.write_bytes(b"\0" * 4096)
    partial = resume.segments_dir(out) / "segment-00077.mkv.partial.mkv"
    partial.write_bytes(b"\0" * 100)
    half_manifest = tmp_path / f"{resume.manifest_path(out).name}.tmp-{2**22 + 17}"
    half_manifest.write_text("{")
    unrelated = tmp_path / ".other.vsr-tmp-123.mp4"
    unrelated.write_bytes(b"keep")
    run(src, out, options)
    assert files_in(tmp_path) == {"src.mp4", "out.mp4", unrelated.name}
    assert len(read_video(out, pixels=False).times) == 24


def test_settings_change_starts_over_with_notice(tmp_path: Path) -> None:
    src = _clip(tmp_path, frames=24)
    out = tmp_path / "out.mp4"
    _interrupted(src, out, _options(checkpoint_every=1e-4), after=12)
    notes: list[str] = []
    run(src, out, _options(checkpoint_every=1e-4, crf=30), notify=notes.append)
    assert any("settings changed" in n and "encode" in n for n in notes), notes
    assert not any(n.startswith("resumed") for n in notes)
    assert len(read_video(out, pixels=False).times) == 24


def test_checkpoint_interval_is_not_a_setting_that_restarts(tmp_path: Path) -> None:
    src = _clip(tmp_path, frames=24)
    out = tmp_path / "out.mp4"
    manifest = _interrupted(src, out, _options(checkpoint_every=1e-4), after=12)
    notes: list[str] = []
    run(src, out, _options(checkpoint_every=30), notify=notes.append)
    assert f"resumed: {manifest.done_frames:,} of 24 frames done" in notes


def test_is_complete_checks_manifest_and_file(tmp_path: Path) -> None:
    src = _clip(tmp_path, frames=12)
    out = tmp_path / "out.mp4"
    options = _options(30.0, True)
    assert not resume.is_complete(src, out, options)
    run(src, out, options)
    assert resume.is_complete(src, out, options)
    assert not resume.is_complete(src, out, _options(30.0, True, crf=20))
    # The file itself is checked, not only its existence.
    out.write_bytes(out.read_bytes()[:100])
    assert not resume.is_complete(src, out, options)


# -- the option everywhere ------------------------------------------------------------------------


def test_checkpoint_every_is_an_option_everywhere(tmp_path: Path, cli: Any) -> None:
    from vsr.batch import plan_job_file
    from vsr.presets import load_preset, merge

    assert UpscaleOptions().checkpoint_every == 60.0
    assert build_options(overrides={"checkpoint_every": 5}).checkpoint_every == 5.0
    preset = tmp_path / "mine.toml"
    preset.write_text('extends = "anime"\ncheckpoint_every = 12.5\n')
    assert build_options(preset=str(preset)).checkpoint_every == 12.5
    assert merge(load_preset(preset), {"checkpoint_every": 3}).checkpoint_every == 3.0
    jobs = tmp_path / "jobs.toml"
    src = _clip(tmp_path, frames=2)
    jobs.write_text(f'output_dir = "out"\ncheckpoint_every = 7\n[[job]]\ninput = "{src.name}"\n')
    assert plan_job_file(jobs)[0].options.checkpoint_every == 7.0
    bad: CliResult = cli("upscale", src, "-o", tmp_path / "x.mp4", "--checkpoint-every", "0")
    check_one_error_line(bad, 2, "checkpoint_every")
    ok: CliResult = cli(
        "upscale", src, "-o", tmp_path / "x.mp4", "--model", "bicubic", "--checkpoint-every", "2"
    )
    assert ok.code == 0, ok.err


# -- one writer per output ------------------------------------------------------------------------


_HELD_RUN = """
import sys, time
from pathlib import Path
from vsr.api import upscale

src, out, go = sys.argv[1:4]

def progress(done, total):
    # Hold the job (and its lock) after the first frames until the test says go.
    while done >= 4 and not Path(go).exists():
        time.sleep(0.02)

result = upscale(src, out, model="bicubic", scale=2, progress=progress)
print(result.frames)
"""


def test_a_second_run_on_the_same_output_is_refused(tmp_path: Path) -> None:
    """Two real processes: the second gets exit 5 at once, the first finishes undisturbed."""
    src = _clip(tmp_path, frames=24)
    out, go = tmp_path / "out.mp4", tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    first = subprocess.Popen(
        [sys.executable, "-c", _HELD_RUN, str(src), str(out), str(go)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not resume.lock_path(out).exists() or not resume.manifest_path(out).exists():
            assert time.monotonic() < deadline and first.poll() is None, first.stderr
            time.sleep(0.02)
        second = subprocess.run(
            [sys.executable, "-m", "vsr", "upscale", src, "-o", out, "--model", "bicubic", "-y"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        line = check_one_error_line(
            CliResult(second.returncode, second.stdout, second.stderr), 5, "another vsr"
        )
        assert line == (
            f"vsr: error: another vsr is writing {out} (pid {first.pid}) "
            "(wait for it to finish, or pass another -o)"
        )
        assert first.poll() is None
        go.touch()
        stdout, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err
    assert stdout.strip() == "24"
    assert read_video(out, pixels=False).times == _pts(src)
    assert files_in(tmp_path) == {"src.mp4", "out.mp4", "go"}


def test_lock_is_released_on_exit_and_names_its_owner(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with resume.job_lock(out):
        assert resume.lock_path(out).read_text().strip() == str(os.getpid())
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; from vsr import resume\n"
                "try:\n"
                "    with resume.job_lock(Path(sys.argv[1])): pass\n"
                "except Exception as e: print(e)",
                str(out),
            ],
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert probe.stdout.strip() == (
            f"another vsr is writing {out} (pid {os.getpid()}) "
            "(wait for it to finish, or pass another -o)"
        )
    assert not resume.lock_path(out).exists()
    with resume.job_lock(out):  # free again
        pass


# -- hostile input -------------------------------------------------------------------------


def test_scan_of_a_truncated_mkv_never_seeks(tmp_path: Path) -> None:
    """Seeking back on a truncated MKV fails (EPERM): the scan must read it without seeking."""
    big = write_video(
        tmp_path / "full.mkv", width=320, height=240, frames=20, rate=25, options={"crf": "8"}
    ).path
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(big.read_bytes()[:20_000])
    with av.open(str(cut)) as container:
        for _packet in container.demux(container.streams.video[0]):
            pass
        with pytest.raises(av.error.PermissionError):
            container.seek(0)  # what the old scan did, and failed on
    _pts, count, stamped = resume.scan_video(cut, 0)
    assert count <= 1 and stamped


@pytest.mark.parametrize("size", [3_000, 8_000, 20_000, 40_000, 60_000])
def test_truncated_mkv_is_a_clear_error_that_leaves_nothing(
    tmp_path: Path, cli: Any, size: int
) -> None:
    big = write_video(
        tmp_path / "full.mkv",
        width=320,
        height=240,
        frames=40,
        rate=25,
        options={"crf": "8", "g": "10"},
        audio=[("aac", 48000, "stereo")],
    ).path
    assert big.stat().st_size > 2 * size
    src = tmp_path / "in" / "cut.mkv"
    src.parent.mkdir()
    src.write_bytes(big.read_bytes()[:size])
    big.unlink()
    outdir = tmp_path / "out"
    outdir.mkdir()
    result: CliResult = cli("upscale", src, "-o", outdir / "cut.mkv", "--model", "bicubic")
    if result.code != 0:
        line = check_one_error_line(result, 3)
        assert "unexpected" not in line
        assert files_in(outdir) == set()
    else:
        assert files_in(outdir) == {"cut.mkv"}
    assert "Traceback" not in result.err
    batch: CliResult = cli(
        "batch", src.parent, "-o", tmp_path / "bout", "--model", "bicubic", "--no-html", "--json"
    )
    assert "unexpected" not in batch.err and "Traceback" not in batch.err
    report = json.loads(batch.out)
    left = files_in(tmp_path / "bout") - {"vsr-report.json"}
    if batch.code != 0:
        (failed,) = report["files"]
        assert failed["result"] == "failed" and failed["exit_code"] == 3, failed
        assert "unexpected" not in failed["reason"]
        assert left == set(), left


# -- the test: a real process, a real model, over a minute of work --------------


def _calibrated_frames(size: tuple[int, int], seconds: float, fps: int) -> int:
    """Frames that keep the default model busy for about `seconds` on this machine.

    Measured on the model itself (a few frames after a warm one), so the job takes over a
    minute on a slow CPU and a fast one alike, while its content stays under 30 s.
    """
    import torch

    from vsr.config import ModelOptions
    from vsr.models.registry import create_processor

    processor = create_processor(ModelOptions(scale=2))
    w, h = size
    processor.init(base_geometry(w, h))
    frame = torch.rand(1, 3, h, w)
    processor.process(frame)
    start = time.perf_counter()
    for _ in range(4):
        processor.process(frame)
    per_frame = (time.perf_counter() - start) / 4
    return max(48, min(29 * fps, round(seconds / per_frame)))


def base_geometry(width: int, height: int) -> Any:
    from vsr.models.base import FrameGeometry

    return FrameGeometry(width, height)


def _decoded_frames_equal(a: Path, b: Path) -> int:
    """Compare two videos frame by frame without holding them in memory; returns the count."""
    count = 0
    with av.open(str(a)) as ca, av.open(str(b)) as cb:
        fa, fb = ca.decode(video=0), cb.decode(video=0)
        for x, y in zip(fa, fb, strict=True):
            assert x.pts == y.pts
            for pa, pb in zip(plane_arrays(x), plane_arrays(y), strict=True):
                assert np.array_equal(pa, pb), f"frame {count} differs"
            count += 1
    return count


@pytest.mark.slow
@pytest.mark.timeout(1200)  # calibrated to minutes of work, three runs: above the 300 s default
def test_kill_9_at_60_percent_then_rerun(tmp_path: Path) -> None:
    """The issue's test: content shorter than one old segment (30 s), over a minute of work.

    A real process runs the default model (animevideov3, x2) into FFV1; it is killed with
    SIGKILL once 60% of the frames are in finished segments, and run again.
    """
    fps, size = 24, (640, 360)
    frames = _calibrated_frames(size, 75.0, fps)
    src = write_video(
        tmp_path / "src.mp4",
        width=size[0],
        height=size[1],
        frames=frames,
        rate=fps,
        options={"g": "48", "bf": "2"},
        audio=[("aac", 48000, "stereo")],
    ).path
    ref, out = tmp_path / "ref.mp4", tmp_path / "out.mp4"
    args = ["upscale", str(src), "--scale", "2", "--codec", "ffv1", "-y"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "vsr", *args]

    began = time.monotonic()
    subprocess.run([*command, "-o", str(ref)], env=env, check=True, capture_output=True)
    full = time.monotonic() - began

    resumable = [*command, "-o", str(out), "--checkpoint-every", "10"]
    proc = subprocess.Popen(resumable, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    mpath = resume.manifest_path(out)
    killed_at = 0
    try:
        while proc.poll() is None:
            m = resume.read_manifest(mpath) if mpath.exists() else None
            if m is not None and m.done_frames >= 0.6 * frames:
                proc.send_signal(signal.SIGKILL)
                killed_at = m.done_frames
                break
            time.sleep(0.05)
    finally:
        proc.wait(timeout=600)
    assert killed_at, "the run finished before 60% were done"
    assert not out.exists() and resume.lock_path(out).exists()  # kill -9 cleans nothing up

    began = time.monotonic()
    rerun = subprocess.run(resumable, env=env, capture_output=True, text=True)
    again = time.monotonic() - began
    assert rerun.returncode == 0, rerun.stderr
    assert f"resumed: {killed_at:,} of {frames:,} frames done" in rerun.stderr
    # The one ratio measured here: the rerun did the remaining 40% (plus start-up), not all.
    print(f"\n{frames} frames at {size}: full run {full:.1f} s, rerun {again:.1f} s")
    assert again < 0.5 * full, (again, full)
    assert _decoded_frames_equal(ref, out) == frames
    assert _pts(out) == _pts(ref) == _pts(src)
    ia, ib = stream_indices(ref, "audio")[0], stream_indices(out, "audio")[0]
    assert packet_bytes(out, ib) == packet_bytes(ref, ia) == packet_bytes(src, 1)
    assert files_in(tmp_path) == {"src.mp4", "ref.mp4", "out.mp4"}
