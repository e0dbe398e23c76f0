"""What cluster workers ask Ray for: memory from the tile planner's estimate of the plan.

No Ray here: `plan_workers` is given the nodes' resources as Ray reports them. The actors
getting these options is checked on a local Ray in test_cluster.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from clips import write_video
from safetensors.torch import save_file

from vsr.batch import BatchJob, plan_batch
from vsr.cluster.resources import plan_workers
from vsr.config import ModelOptions
from vsr.models.archs.srvgg import SRVGGNetCompact
from vsr.models.base import ModelDescriptor
from vsr.models.processors import TorchProcessor

GIB = 2**30
_NODE = {"CPU": 2.0, "memory": 8.0 * GIB}


def _srvgg(num_feat: int) -> SRVGGNetCompact:
    torch.manual_seed(0)
    return SRVGGNetCompact(num_feat=num_feat, num_conv=3, upscale=2).eval()


def _checkpoint(folder: Path, num_feat: int) -> Path:
    path = folder / f"compact{num_feat}.safetensors"
    net = _srvgg(num_feat)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def _processor(num_feat: int, **options: object) -> TorchProcessor:
    desc = ModelDescriptor(name="compact", architecture="SRVGGNetCompact", scale=2)
    opts = ModelOptions(device="cpu", precision="fp32", **options)  # type: ignore[arg-type]
    return TorchProcessor(_srvgg(num_feat), desc, opts)


def _jobs(tmp_path: Path, model: Path, *sizes: tuple[int, int]) -> list[BatchJob]:
    inputs = tmp_path / "in"
    inputs.mkdir(parents=True, exist_ok=True)
    for w, h in sizes:
        write_video(inputs / f"{w}x{h}.mp4", width=w, height=h, frames=2)
    overrides = {"model": str(model), "precision": "fp32", "codec": "ffv1"}
    return plan_batch([inputs], tmp_path / "out", overrides=overrides)


def test_the_planner_estimate_grows_with_frame_model_and_batch() -> None:
    free = 64 * GIB
    small = _processor(16).planned_memory(64, 48, free)
    assert small > 0
    # Whole frames: the estimate is per pixel, so four times the pixels ask four times more.
    assert _processor(16).planned_memory(128, 96, free) == pytest.approx(4 * small, rel=0.01)
    assert _processor(32).planned_memory(64, 48, free) > 1.5 * small
    assert _processor(16, batch=2).planned_memory(64, 48, free) == pytest.approx(2 * small, 0.01)
    # Past the budget the planner cuts tiles to fit it: it plans the budget, not the frame.
    assert _processor(16, max_memory=small // 2).planned_memory(64, 48, free) == small // 2
    untiled_share = _processor(16).planned_memory(64, 48, small)
    assert untiled_share == int(small * 0.8)
    # A fixed --tile: its tiles (with their overlap), whatever the frame.
    tiled = _processor(16, tile=32, tile_overlap=8).planned_memory(4000, 3000, free)
    assert tiled == pytest.approx(small * 48 * 48 / (64 * 48), rel=0.01)


def test_cpu_workers_ask_for_the_plans_memory(tmp_path: Path) -> None:
    model = _checkpoint(tmp_path, 16)
    small = plan_workers(_jobs(tmp_path / "a", model, (64, 48)), [_NODE])
    both = plan_workers(_jobs(tmp_path / "b", model, (64, 48), (128, 96)), [_NODE])
    assert small.count == both.count == 2 and not small.gpu
    assert small.options["num_cpus"] == 1.0
    # The largest frame sets the request, through the very planner the worker uses.
    expected = _processor(16).planned_memory(128, 96, int(_NODE["memory"]))
    assert both.options["memory"] == expected
    assert both.options["memory"] > 3 * small.options["memory"]
    bigger = plan_workers(_jobs(tmp_path / "c", _checkpoint(tmp_path, 32), (64, 48)), [_NODE])
    assert bigger.options["memory"] > 1.5 * small.options["memory"]


def test_the_count_is_trimmed_to_what_the_nodes_hold(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, _checkpoint(tmp_path, 16), (128, 96))
    need = plan_workers(jobs, [_NODE]).options["memory"]
    # Four CPUs, but memory for two workers only: two, and a notice says so.
    tight = plan_workers(jobs, [{"CPU": 4.0, "memory": 2.5 * need}])
    assert tight.count == 2
    assert len(tight.notices) == 1 and "2 of the 4 workers" in tight.notices[0]
    # Spread over two nodes, one worker each.
    spread = plan_workers(jobs, [{"CPU": 1.0, "memory": 1.2 * need}] * 2, wanted=3)
    assert spread.count == 2 and spread.options["num_cpus"] == 1.0


def test_models_without_the_planner_and_gpu_workers_ask_for_no_memory(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_video(inputs / "a.mp4", width=64, height=48, frames=2)
    bicubic = plan_batch([inputs], tmp_path / "out", overrides={"model": "bicubic", "scale": 2})
    assert "memory" not in plan_workers(bicubic, [_NODE]).options
    jobs = _jobs(tmp_path, _checkpoint(tmp_path, 16), (64, 48))
    gpu = plan_workers(jobs, [{**_NODE, "GPU": 2.0}])
    assert gpu.gpu and gpu.count == 2
    assert gpu.options == {"num_cpus": 1, "num_gpus": 1}
