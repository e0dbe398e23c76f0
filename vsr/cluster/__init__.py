"""Scale-out: a batch on a Ray cluster (``vsr batch ... --cluster ray|ray://HOST:PORT|auto``).

Nothing here imports Ray at module level: without ``--cluster`` the single-machine batch never
loads it, and Ray is an optional extra (``pip install "vsr[ray]"``). The work lives in
:mod:`vsr.cluster.chunks` (which files run whole, where long ones are cut) and
:mod:`vsr.cluster.ray_backend` (the worker actors and the driver loop).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vsr.errors import UsageError

INSTALL_HINT = 'pip install "vsr[ray]"'
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
