"""`vsr batch --cluster` against a real multi-process Ray cluster on this machine.

test_cluster.py runs on an in-process ``ray.init``; this module starts what a user runs: a head
(``ray start --head``) and a second node (``ray start --address=HEAD``), each its own process
tree with one CPU and a small object store, joined only over localhost. The driver is
``python -m vsr batch`` in a fresh interpreter, joined by the GCS address and through the Ray
client server (``ray://``). Select it with ``pytest -m ray_nodes``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_cluster import REPO, _assert_same, _clip, _jobs

from vsr.batch import run_batch

pytest.importorskip("ray", reason="ray is not installed (pip install 'vsr[ray]')")

# Ray's object store defaults to 30% of RAM per node; these chunks pass only small results.
_STORE_BYTES = 100 * 1024 * 1024
_START_SECONDS = 60.0
_OPTIONS = ["--model", "bicubic", "--scale", "2", "--codec", "ffv1"]
# Waits until the cluster has both nodes alive, then prints their Ray node ids.
_WAIT_FOR_NODES = """
import json, sys, time, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
deadline = time.monotonic() + float(sys.argv[2])
while True:
    alive = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    cpus = ray.cluster_resources().get("CPU", 0)
    if (len(alive) == 2 and cpus >= 2) or time.monotonic() > deadline:
        break
    time.sleep(0.2)
print(json.dumps(alive))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ray_cli() -> str:
    """The `ray` command of this interpreter's environment."""
    found = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if found is None:
        pytest.skip("the `ray` command is not installed next to this Python")
    return found


def _has_ray_client() -> bool:
    """The Ray client server needs grpcio (`ray[client]`)."""
    try:
        import grpc  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class _Cluster:
    gcs: str  # HOST:PORT of the head's GCS
    client: str | None  # ray://HOST:PORT of the Ray client server, None without ray[client]
    nodes: list[str]  # Ray node ids of the head and the second node
    env: dict[str, str]
    temp: Path  # the nodes' Ray folders (their logs)


def _start_node(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`ray start --block ...` in a session of its own: every process of the node (GCS, raylet,
    workers) is in its process group, which the test kills whole, and nobody else's Ray."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [_ray_cli(), "start", "--block", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.fixture
def two_nodes() -> Iterator[_Cluster]:
    # A short folder: Ray's unix sockets live under it and their paths are limited to 107 bytes.
    temp = Path(tempfile.mkdtemp(prefix="vsr-ray-"))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        # Ray 2.5x asks every node and driver for the same token; a fresh one for this cluster.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_ADDRESS", None)
    port, client = _free_port(), _free_port() if _has_ray_client() else None
    common = [
        "--num-cpus=1",
        f"--object-store-memory={_STORE_BYTES}",
        "--disable-usage-stats",
        "--node-ip-address=127.0.0.1",
    ]
    head = [f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp / 'head'}"]
    if client is not None:
        head.append(f"--ray-client-server-port={client}")
    procs = [_start_node(["--head", *head, *common], env, temp / "head.log")]
    try:
        _wait_for_port(port, procs[0], temp / "head.log")
        second = ["--address", f"127.0.0.1:{port}", f"--temp-dir={temp / 'node'}", *common]
        procs.append(_start_node(second, env, temp / "node.log"))
        nodes = _wait_for_nodes(f"127.0.0.1:{port}", env, temp)
        address = f"ray://127.0.0.1:{client}" if client is not None else None
        yield _Cluster(f"127.0.0.1:{port}", address, nodes, env, temp)
    finally:
        _stop(procs)
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ray start --head exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"the Ray head did not listen in {_START_SECONDS:g} s:\n{log.read_text()[-3000:]}")


def _wait_for_nodes(address: str, env: dict[str, str], temp: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _WAIT_FOR_NODES, address, str(_START_SECONDS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=_START_SECONDS + 30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    nodes = json.loads(done.stdout.strip().splitlines()[-1])
    logs = "\n".join(p.read_text()[-1500:] for p in sorted(temp.glob("*.log")))
    assert len(nodes) == 2, f"the second node never joined:\n{logs}"
    return list(nodes)


def _batch(inputs: Path, out: Path, address: str, cluster: _Cluster) -> dict[str, object]:
    """`python -m vsr batch ... --cluster ADDRESS` in a fresh interpreter; its JSON report."""
    args = [str(inputs), "-o", str(out), *_OPTIONS, "--cluster", address, "--workers", "2"]
    args += ["--chunk-seconds", "1", "--no-html", "--quiet"]
    done = subprocess.run(
        [sys.executable, "-m", "vsr", "batch", *args],
        capture_output=True,
        text=True,
        env=cluster.env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    # On a failure, the Ray client servers' own logs say why they did not start.
    server_logs = "\n".join(
        f"{p.name}: {p.read_text(errors='replace')[-1500:]}"
        for p in sorted(cluster.temp.rglob("ray_client_server*.err"))
    )
    assert done.returncode == 0, done.stderr[-3000:] + server_logs
    report: dict[str, object] = json.loads((out / "vsr-report.json").read_text())
    return report


@pytest.mark.slow
@pytest.mark.ray_nodes
def test_a_head_and_a_second_node_equal_one_machine(tmp_path: Path, two_nodes: _Cluster) -> None:
    inputs = tmp_path / "in"
    _clip(inputs / "long.mp4", frames=120, gop=15)
    _clip(inputs / "short.mp4", frames=12, gop=6)
    run_batch(_jobs(inputs, tmp_path / "one"), output_dir=tmp_path / "one")
    addresses = [two_nodes.gcs] + ([two_nodes.client] if two_nodes.client else [])
    for n, address in enumerate(addresses):
        out = tmp_path / f"cluster{n}"
        report = _batch(inputs, out, address, two_nodes)
        cluster = report["cluster"]
        assert isinstance(cluster, dict)
        assert cluster["chunks"] == {str(inputs / "long.mp4"): 4}
        busy = {w["node_id"] for w in cluster["workers"] if w["units"] > 0}
        assert busy == set(two_nodes.nodes), f"{address}: work ran on {busy} only"
        for name in ("long.mp4", "short.mp4"):
            _assert_same(tmp_path / "one" / name, out / name)
