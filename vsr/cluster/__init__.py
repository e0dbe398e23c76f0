"""Scale-out: a batch on a Ray cluster (``vsr batch ... --cluster ray|ray://HOST:PORT|auto``).

Nothing here imports Ray at module level: without ``--cluster`` the single-machine batch never
loads it, and Ray is an optional extra (``pip install "vsr[ray]"``). The work lives in
:mod:`vsr.cluster.chunks` (which files run whole, where long ones are cut) and
:mod:`vsr.cluster.ray_backend` (the worker actors and the driver loop).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass

from vsr.errors import DeviceError, UsageError

INSTALL_HINT = 'pip install "vsr[ray]"'
# How long a head may take to accept a connection before vsr says it can't be reached. Ray's
# own client retries for minutes, printing its C++ log lines, when the address is wrong.
REACH_SECONDS = 10.0
# A Ray client address (ray://host:port) or a GCS address (host:port) of a running head.
_ADDRESS = re.compile(r"\A(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5}\Z")


@dataclass(frozen=True)
class ClusterSpec:
    """Where a batch runs and how it is cut up; validated on construction."""

    # None: start a local Ray for this run; "auto": join RAY_ADDRESS; else a head's address.
    address: str | None = None
    workers: int | None = None  # None: one per GPU of the cluster, else one per CPU
    chunk_seconds: float = 30.0
    max_retries: int = 3  # times a unit is run again after its worker died

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"expected --workers of at least 1, got {self.workers}")
        if not self.chunk_seconds > 0:
            raise UsageError(f"expected --chunk-seconds above 0, got {self.chunk_seconds}")
        if self.max_retries < 0:
            raise UsageError(f"expected max_retries of at least 0, got {self.max_retries}")

    @property
    def local(self) -> bool:
        return self.address is None


def parse_cluster(text: str) -> str | None:
    """--cluster's value as the address `ray.init` takes (None: a local Ray for the run)."""
    value = text.strip()
    if value == "ray":
        return None
    if value == "auto" or _ADDRESS.match(value):
        return value
    raise UsageError(
        f"expected --cluster ray, auto, ray://HOST:PORT or HOST:PORT, got {text!r}",
        hint="'ray' starts a local Ray for this run; 'auto' joins the cluster in RAY_ADDRESS",
    )


def require_ray() -> None:
    """A clear usage error (exit 2) when Ray is not installed, naming the install command."""
    try:
        import ray  # noqa: F401  (the driver imports it next anyway)
    except ImportError:
        raise UsageError(f"--cluster needs Ray, which is not installed ({INSTALL_HINT})") from None


def check_reachable(address: str, timeout: float = REACH_SECONDS) -> None:
    """A head that accepts TCP connections at `address`, or a `DeviceError` (exit 6) now.

    `address` is what `parse_cluster` returned; "auto" is checked when RAY_ADDRESS names a head
    (without it, Ray looks for a head started on this machine and says itself when there is
    none).
    """
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "").strip()
        if not _ADDRESS.match(address):
            return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, TimeoutError):
            reason = f"no answer in {timeout:g} s"
        raise DeviceError(
            f"cannot reach the Ray cluster at {address} ({reason})",
            hint="start its head with `ray start --head`, or check the address and port",
        ) from None
