"""What each cluster worker asks Ray for: a GPU or a share of a CPU, and memory from the plan.

Ray starts an actor only on a node where its request fits, and counts the request against that
node for the actor's whole life; so the request has to be what the worker will use. On a CPU
the worker's big allocations are the model's activations, and the figure is the tile planner's
own (`TorchProcessor.planned_memory`: a batch of whole frames when they fit its budget, else
the budget its tiles are cut to), for the largest frame any job gives the model, with the
job's model loaded once on the driver per distinct setting. A GPU worker's activations are on
its GPU, which ``num_gpus=1`` reserves whole, so it asks for no memory. Models without the
planner (bicubic, the temporal networks) and stills (banded by vsr.image) ask for none.

The count is trimmed to what the nodes can hold (CPUs and memory, node by node): an actor that
fits nowhere would wait for ever and hold up the batch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vsr.errors import VsrError

if TYPE_CHECKING:
    from vsr.batch import BatchJob
    from vsr.config import ModelOptions
    from vsr.models.processors import TorchProcessor

Size = tuple[int, int]


@dataclass(frozen=True)
class WorkerPlan:
    """How many workers, on what, and the Ray options every worker actor gets."""

    count: int
    gpu: bool
    options: dict[str, Any]  # num_cpus, num_gpus, memory (bytes)
    notices: tuple[str, ...] = ()


def plan_workers(
    jobs: list[BatchJob], nodes: list[dict[str, float]], wanted: int | None = None
) -> WorkerPlan:
    """The workers for `jobs` on a cluster whose alive nodes have these Ray resources."""
    cpus = sum(n.get("CPU", 0.0) for n in nodes)
    gpus = int(sum(n.get("GPU", 0.0) for n in nodes))
    on_gpu = gpus > 0 and all(j.options.model.device != "cpu" for j in jobs)
    count = wanted or (gpus if on_gpu else max(1, int(cpus)))
    if on_gpu:
        return WorkerPlan(count, True, {"num_cpus": 1, "num_gpus": 1})
    # One CPU (and one torch thread) each; more workers than CPUs share them.
    options: dict[str, Any] = {"num_cpus": min(1.0, max(1.0, cpus) / count)}
    notices: list[str] = []
    largest = int(max((n.get("memory", 0.0) for n in nodes), default=0.0))
    memory = planned_memory(jobs, largest, notices)
    if memory:
        options["memory"] = min(memory, largest) if largest else memory
    fits = _fitting(nodes, options)
    if fits < count:
        notices.append(
            f"the cluster holds {fits} of the {count} workers asked for "
            f"({_describe(options)} each); running {fits}"
        )
        count = max(1, fits)
        options["num_cpus"] = min(1.0, max(1.0, cpus) / count)
    return WorkerPlan(count, False, options, tuple(notices))


def planned_memory(jobs: Iterable[BatchJob], free: int, notices: list[str]) -> int | None:
    """The most memory the tile planner plans for any job's frames where `free` bytes are
    free (None: no job's model has the planner)."""
    groups: dict[str, list[BatchJob]] = {}
    for job in jobs:
        groups.setdefault(repr(job.options.model), []).append(job)
    most = 0
    for group in groups.values():
        sizes = [s for s in (model_input(j) for j in group) if s is not None]
        if not sizes:
            continue
        planner = _planner(group[0].options.model, notices)
        if planner is not None:
            most = max(most, *(planner.planned_memory(w, h, free) for w, h in sizes))
    return most or None


def model_input(job: BatchJob) -> Size | None:
    """The size of the frames the job's plan hands the model (None: a still, or a file that
    does not plan, which fails on its worker with its own error)."""
    from vsr.media.probe import probe
    from vsr.models.registry import describe_model
    from vsr.plan import ModelFacts, is_image_job, plan_video

    if job.is_image or is_image_job(job.input, job.output):
        return None
    options = job.options
    try:
        model = ModelFacts.described(describe_model(options.model.name), options.model)
        plan = plan_video(job.input, job.output, probe(job.input), options, model, options.filters)
    except VsrError:
        return None
    return plan.geometry.model_in


def _planner(model: ModelOptions, notices: list[str]) -> TorchProcessor | None:
    """The job's model loaded on this machine's CPU, where it has the tile planner."""
    from vsr.models.processors import TorchProcessor
    from vsr.models.registry import create_processor

    try:
        processor: object = create_processor(dataclasses.replace(model, device="cpu"))
    except VsrError as exc:
        notices.append(f"no memory estimate for {model.name} ({exc}); its workers ask for none")
        return None
    # --temporal stabilize wraps a frame-wise model, whose planner it uses.
    processor = getattr(processor, "inner", processor)
    return processor if isinstance(processor, TorchProcessor) else None


def _fitting(nodes: list[dict[str, float]], options: dict[str, Any]) -> int:
    """How many workers with these options the nodes can hold at once."""
    total = 0
    for node in nodes:
        room = [math.floor(node.get("CPU", 0.0) / options["num_cpus"] + 1e-9)]
        if options.get("memory"):
            room.append(int(node.get("memory", 0.0) // options["memory"]))
        total += min(room)
    return total


def _describe(options: dict[str, Any]) -> str:
    parts = [f"{options['num_cpus']:g} CPU"]
    if options.get("memory"):
        parts.append(f"{options['memory'] / 2**30:.2f} GiB")
    return ", ".join(parts)
