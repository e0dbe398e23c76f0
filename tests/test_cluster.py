"""`vsr batch --cluster`: the same results as one machine, across workers that may die.

One local Ray (``ray.init(num_cpus=2)``) serves the whole module; each batch starts its own
worker actors on it. Clips are tiny and the model is bicubic (or stabilize on top of it), so
the time goes to Ray's start-up and the actors, not to the pixels.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clips import packet_bytes, plane_arrays, read_video, stream_indices, write_video
from conftest import check_one_error_line

from vsr import resume
from vsr.batch import BatchJob, plan_batch, run_batch
from vsr.cluster import ClusterSpec

ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[1]
_OPTIONS: dict[str, Any] = {"model": "bicubic", "scale": 2, "codec": "ffv1"}


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    if started:
        ray.shutdown()


def _clip(path: Path, frames: int, gop: int, size: tuple[int, int] = (64, 48)) -> Path:
    """29.97 fps H.264 with B-frames, a keyframe every `gop` frames, and AAC audio."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"g": str(gop), "keyint_min": str(gop), "bf": "2", "sc_threshold": "0"}
    write_video(
        path,
        width=size[0],
        height=size[1],
        frames=frames,
        rate=Fraction(30000, 1001),
        options=options,
        audio=[("aac", 48000, "stereo")],
    )
    return path


def _jobs(inputs: Path, out: Path, **extra: Any) -> list[BatchJob]:
    return plan_batch([inputs], out, overrides={**_OPTIONS, **extra})


def _on_ray(jobs: list[BatchJob], chunk: float = 1.0, **kwargs: Any) -> Any:
    from vsr.cluster.ray_backend import run_on_ray

    return run_on_ray(
        jobs, ClusterSpec(chunk_seconds=chunk), output_dir=jobs[0].output.parent, **kwargs
    )


def _assert_same(a: Path, b: Path, tolerance: int = 0) -> None:
    """Frames (every sample within `tolerance`), timestamps and audio packet bytes."""
    ra, rb = read_video(a), read_video(b)
    assert ra.times == rb.times
    assert len(ra.frames) == len(rb.frames)
    for i, (fa, fb) in enumerate(zip(ra.frames, rb.frames, strict=True)):
        for pa, pb in zip(plane_arrays(fa), plane_arrays(fb), strict=True):
            worst = int(np.abs(pa.astype(np.int32) - pb.astype(np.int32)).max())
            assert worst <= tolerance, f"frame {i} differs by {worst}"
    for index in stream_indices(a, "audio"):
        assert packet_bytes(a, index) == packet_bytes(b, index)


# --------------------------------------------------------------------------- no Ray needed


def test_without_cluster_ray_is_never_imported(tmp_path: Path) -> None:
    src = _clip(tmp_path / "in" / "a.mp4", frames=6, gop=6)
    code = (
        "import sys\n"
        "from vsr.cli import main\n"
        f"code = main(['batch', {str(src)!r}, '-o', {str(tmp_path / 'out')!r}, '--model', "
        "'bicubic', '--scale', '2', '--quiet', '--no-html'])\n"
        "assert code == 0, code\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "a.mp4").is_file()


def test_cluster_without_ray_installed_names_the_extra(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    src = _clip(tmp_path / "a.mp4", frames=6, gop=6)
    result = cli("batch", src, "-o", tmp_path / "out", "--cluster", "ray")
    check_one_error_line(result, 2, 'pip install "vsr[ray]"')
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags", [["--cluster", "sometimes"], ["--workers", "2"]])
def test_bad_cluster_flags_are_usage_errors(tmp_path: Path, cli: Any, flags: list[str]) -> None:
    src = _clip(tmp_path / "a.mp4", frames=6, gop=6)
    result = cli("batch", src, "-o", tmp_path / "out", *flags)
    check_one_error_line(result, 2)


def test_a_head_that_is_not_there_is_one_error_line_at_once(tmp_path: Path, cli: Any) -> None:
    # Ray's client retries for minutes, printing its own log lines, when nothing listens at
    # the address; vsr checks that the head answers first.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    src = _clip(tmp_path / "a.mp4", frames=6, gop=6)
    start = time.monotonic()
    result = cli("batch", src, "-o", tmp_path / "out", "--cluster", f"127.0.0.1:{port}")
    check_one_error_line(result, 6, f"127.0.0.1:{port}", "ray start --head")
    assert time.monotonic() - start < 60
    assert not (tmp_path / "out" / "a.mp4").exists()


# --------------------------------------------------------------------------- on a local Ray


@pytest.mark.slow
def test_cluster_batch_equals_one_machine(tmp_path: Path, local_ray: None) -> None:
    """A long file in chunks, one shorter than a chunk, one with a single keyframe, and a
    broken one: the good ones equal the single-machine batch, the broken one is reported."""
    inputs = tmp_path / "in"
    _clip(inputs / "long.mp4", frames=120, gop=15)
    _clip(inputs / "short.mp4", frames=12, gop=6)
    _clip(inputs / "onekey.mp4", frames=75, gop=1000)
    (inputs / "broken.mp4").write_bytes(b"not a video at all\n" * 100)
    one = run_batch(_jobs(inputs, tmp_path / "one"), output_dir=tmp_path / "one")
    report = _on_ray(_jobs(inputs, tmp_path / "two"))
    status = {r.job.input.name: r.status for r in report.results}
    assert status == {
        "broken.mp4": "failed",
        "long.mp4": "done",
        "onekey.mp4": "done",
        "short.mp4": "done",
    }
    assert [r.status for r in one.results] == [r.status for r in report.results]
    broken = next(r for r in report.results if r.status == "failed")
    assert broken.exit_code == 3 and broken.reason
    for name in ("long.mp4", "short.mp4", "onekey.mp4"):
        _assert_same(tmp_path / "one" / name, tmp_path / "two" / name)
    data = report.to_dict()
    assert data["cluster"]["chunks"] == {str(inputs / "long.mp4"): 4}
    # Two whole files and four chunks; the broken file fails while the driver plans it.
    assert sum(w["units"] for w in data["cluster"]["workers"]) == 2 + 4
    # The long file's manifest records it finished, so a rerun skips every file.
    again = _on_ray(_jobs(inputs, tmp_path / "two"))
    assert [r.status for r in again.results] == ["failed", "skipped", "skipped", "skipped"]


@pytest.mark.slow
def test_temporal_seams_match_one_machine(tmp_path: Path, local_ray: None) -> None:
    """--temporal stabilize: each chunk first runs the frames before it (dropped)."""
    inputs = tmp_path / "in"
    _clip(inputs / "long.mp4", frames=90, gop=15)
    extra = {"temporal": "stabilize", "precision": "fp32"}
    run_batch(_jobs(inputs, tmp_path / "one", **extra), output_dir=tmp_path / "one")
    report = _on_ray(_jobs(inputs, tmp_path / "two", **extra))
    assert report.chunks == {str(inputs / "long.mp4"): 3}
    _assert_same(tmp_path / "one" / "long.mp4", tmp_path / "two" / "long.mp4", tolerance=2)


def _kill_a_worker_mid_chunk(deadline: float) -> int | None:
    """SIGKILL the first worker process seen running a chunk (Ray titles it so)."""
    while time.monotonic() < deadline:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::") and b"Worker.run_chunk" in title.split(b"\0")[0]:
                os.kill(int(pid), signal.SIGKILL)
                return int(pid)
        time.sleep(0.005)
    return None


@pytest.mark.slow
def test_a_worker_killed_mid_chunk_loses_nothing(tmp_path: Path, local_ray: None) -> None:
    inputs = tmp_path / "in"
    _clip(inputs / "long.mp4", frames=150, gop=15, size=(320, 240))
    run_batch(_jobs(inputs, tmp_path / "one"), output_dir=tmp_path / "one")
    killed: list[int | None] = []
    killer = threading.Thread(
        target=lambda: killed.append(_kill_a_worker_mid_chunk(time.monotonic() + 60))
    )
    killer.start()
    report = _on_ray(_jobs(inputs, tmp_path / "two"))
    killer.join()
    assert killed and killed[0] is not None
    assert [r.status for r in report.results] == ["done"], report.results[0].reason
    assert report.retries == {str(inputs / "long.mp4"): 1}
    assert sum(w.lost for w in report.workers) == 1
    _assert_same(tmp_path / "one" / "long.mp4", tmp_path / "two" / "long.mp4")


@pytest.mark.slow
def test_ctrl_c_leaves_a_job_that_a_rerun_resumes(tmp_path: Path, local_ray: None) -> None:
    inputs = tmp_path / "in"
    _clip(inputs / "long.mp4", frames=150, gop=15)
    run_batch(_jobs(inputs, tmp_path / "one"), output_dir=tmp_path / "one")
    out = tmp_path / "two" / "long.mp4"

    def ctrl_c(done: int, _total: int | None) -> None:
        if resume.read_manifest(resume.manifest_path(out)) and done >= 60:
            raise KeyboardInterrupt

    stopped = _on_ray(_jobs(inputs, tmp_path / "two"), progress=ctrl_c)
    assert stopped.interrupted and stopped.results[0].status == "interrupted"
    assert not out.exists()
    manifest = resume.read_manifest(resume.manifest_path(out))
    assert manifest is not None and manifest.segments, "no chunk was kept"
    assert not resume.lock_path(out).exists()
    report = _on_ray(_jobs(inputs, tmp_path / "two"))
    result = report.results[0]
    assert result.status == "done" and result.result is not None
    assert result.result.resumed_frames == manifest.done_frames > 0
    _assert_same(tmp_path / "one" / "long.mp4", out)


@pytest.mark.slow
def test_cli_cluster_batch_writes_the_report(tmp_path: Path, cli: Any, local_ray: None) -> None:
    inputs = tmp_path / "in"
    _clip(inputs / "long.mp4", frames=60, gop=15)
    result = cli(
        "batch",
        inputs,
        "-o",
        tmp_path / "out",
        "--model",
        "bicubic",
        "--scale",
        "2",
        "--cluster",
        "ray",
        "--chunk-seconds",
        "0.5",
        "--json",
        "--no-html",
    )
    assert result.code == 0, result.err
    data = json.loads((tmp_path / "out" / "vsr-report.json").read_text())
    assert data["summary"]["done"] == 1
    assert data["cluster"]["chunks"] == {str(inputs / "long.mp4"): 4}
    assert {"worker", "node", "node_id", "pids", "seconds", "units", "frames", "lost"} <= set(
        data["cluster"]["workers"][0]
    )


@pytest.mark.slow
def test_workers_ask_ray_for_the_planners_memory(tmp_path: Path, local_ray: None) -> None:
    """Each actor gets (Ray's own record of what it was given) the memory the tile planner
    plans for the batch's largest frame, and the output is the single machine's."""
    from test_cluster_resources import _checkpoint

    from vsr.cluster.resources import plan_workers

    inputs = tmp_path / "in"
    _clip(inputs / "small.mp4", frames=6, gop=6)
    _clip(inputs / "large.mp4", frames=6, gop=6, size=(128, 96))
    extra = {"model": str(_checkpoint(tmp_path, 16)), "precision": "fp32"}
    run_batch(_jobs(inputs, tmp_path / "one", **extra), output_dir=tmp_path / "one")
    jobs = _jobs(inputs, tmp_path / "two", **extra)
    planned = plan_workers(jobs, [n["Resources"] for n in ray.nodes() if n["Alive"]])
    report = _on_ray(jobs)
    assert [r.status for r in report.results] == ["done", "done"]
    assert planned.options["memory"] > 0 and len(report.workers) == planned.count == 2
    for worker in report.workers:
        assert worker.resources["memory"] == planned.options["memory"]
        assert worker.resources["CPU"] == planned.options["num_cpus"]
    for name in ("small.mp4", "large.mp4"):
        _assert_same(tmp_path / "one" / name, tmp_path / "two" / name)


_SERVER_FAILED = (
    "Initialization failure from server:\nTraceback (most recent call last):\n"
    '  File "proxier.py", line 772, in Datapath\n    raise RuntimeError(\n'
    "RuntimeError: Starting Ray client server failed. See ray_client_server_23000.err for "
    "detailed logs.\n"
)


def test_joining_retries_a_client_server_that_died_starting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ray's client server (ray://) starts a process per driver, which on a loaded head may
    die starting: a second try joins; a head that keeps failing is one line of error."""
    from vsr.cluster import ray_backend
    from vsr.errors import VsrError

    calls: list[str] = []
    failures = [1]

    def fake_init(address: str, **_kwargs: Any) -> None:
        calls.append(address)
        if failures[0] > 0:
            failures[0] -= 1
            raise RuntimeError(_SERVER_FAILED)

    monkeypatch.setattr(ray_backend, "check_reachable", lambda _address: None)
    monkeypatch.setattr(ray_backend, "_CLIENT_RETRY_SECONDS", 0.0)
    monkeypatch.setattr(ray_backend.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray_backend.ray, "init", fake_init)
    spec = ClusterSpec(address="ray://127.0.0.1:10001")
    assert ray_backend.connect(spec) is True
    assert calls == ["ray://127.0.0.1:10001"] * 2

    calls.clear()
    failures[0] = 99
    with pytest.raises(VsrError) as caught:
        ray_backend.connect(spec)
    assert len(calls) == 1 + ray_backend._CLIENT_START_RETRIES
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("cannot join the Ray cluster at ray://127.0.0.1:10001: ")
    assert message.endswith(
        "Starting Ray client server failed. See ray_client_server_23000.err for detailed logs."
    )

    # Other failures, and a GCS address, are not retried.
    calls.clear()
    failures[0] = 99
    with pytest.raises(VsrError):
        ray_backend.connect(ClusterSpec(address="127.0.0.1:6379"))
    assert len(calls) == 1
