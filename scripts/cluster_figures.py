"""Figures for `vsr batch --cluster` on this machine: 1 vs 2 workers, and the cost of a chunk.

    nice python scripts/cluster_figures.py [--model realesr-animevideov3-x2] [--size 160x120]

Makes its clips in a temporary folder (29.97 fps H.264 + AAC), starts one local Ray and runs
(1) the same batch of short files (whole-file units) with 1 and with 2 workers, one torch
thread each, and (2) one long file cut into chunks, to read Ray's scheduling overhead per
chunk (busy time seen by the driver minus the time inside the worker) against a chunk's time.
Prints one JSON object; the load average is in it, since other work on the machine counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from clips import write_video

from vsr.batch import plan_batch
from vsr.cluster import ClusterSpec


def _clip(path: Path, seconds: float, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(
        path,
        width=size[0],
        height=size[1],
        frames=round(seconds * 30000 / 1001),
        rate=Fraction(30000, 1001),
        options={"g": "30", "keyint_min": "30", "sc_threshold": "0"},
        audio=[("aac", 48000, "stereo")],
    )


def _batch(inputs: Path, out: Path, model: str, spec: ClusterSpec) -> dict[str, object]:
    from vsr.cluster.ray_backend import run_on_ray

    jobs = plan_batch([inputs], out, overrides={"model": model, "crf": 18}, overwrite=True)
    start = time.perf_counter()
    report = run_on_ray(jobs, spec, output_dir=out, skip_finished=False)
    wall = time.perf_counter() - start
    frames = sum(r.frames or 0 for r in report.results)
    assert all(r.status == "done" for r in report.results), [r.reason for r in report.results]
    workers = [w.to_dict() for w in report.workers]
    units = sum(w.units for w in report.workers)
    overhead = sum(w.seconds - w.compute for w in report.workers) / max(1, units)
    return {
        "wall_s": round(wall, 2),
        "frames": frames,
        "fps": round(frames / wall, 2),
        "units": units,
        "overhead_per_unit_s": round(overhead, 3),
        "workers": workers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="realesr-animevideov3-x2")
    parser.add_argument("--size", default="160x120")
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    import ray

    size = tuple(int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="vsr-cluster-"))
    for n in range(args.files):
        _clip(work / "short" / f"clip{n}.mp4", args.seconds, (size[0], size[1]))
    _clip(work / "long" / "long.mp4", 20.0, (size[0], size[1]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    figures: dict[str, object] = {"load_before": os.getloadavg(), "model": args.model}
    for workers in (1, 2):
        spec = ClusterSpec(workers=workers, chunk_seconds=30.0)
        figures[f"{workers}_worker"] = _batch(
            work / "short", work / f"out{workers}", args.model, spec
        )
    one, two = figures["1_worker"], figures["2_worker"]
    assert isinstance(one, dict) and isinstance(two, dict)
    figures["speed_up"] = round(two["fps"] / one["fps"], 3)
    spec = ClusterSpec(workers=2, chunk_seconds=2.0)
    figures["chunks_2s"] = _batch(work / "long", work / "outlong", args.model, spec)
    figures["load_after"] = os.getloadavg()
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
