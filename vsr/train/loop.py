"""`vsr train`: train (or fine-tune) the temporal network on HR clips and export it.

The loop is plain: draw a batch (vsr.train.data), run the network over the sequences under bf16
autocast on CPUs that compute bf16 natively, Charbonnier loss against the HR frames, Adam with a
cosine schedule, a resumable checkpoint every ``checkpoint_every`` steps. At the end the held-out
clips are upscaled and scored (PSNR-Y against the HR frames, beside bicubic), and the weights
are exported as ``.safetensors`` with a JSON recipe beside them.

The library never prints: progress goes to the ``progress`` callback (the CLI draws a tqdm bar
from it on a terminal).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import multiprocessing as mp
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import save_file

from vsr import runtime
from vsr.degrade import BLIND_FAMILIES
from vsr.errors import OutputExistsError, UsageError, WeightsError
from vsr.metrics import psnr_y
from vsr.models.processors import resize
from vsr.temporal.flow import DISFlow
from vsr.temporal.network import TemporalNet, TemporalNetConfig, count_parameters
from vsr.temporal.processor import load_network, resolve_weights, upscale_sequence
from vsr.temporal.warp import resize_flow, warp
from vsr.train.data import (
    CLEAN_H264_CRF,
    CLEAN_H264_SHARE,
    Batch,
    ClipFrames,
    SequenceSampler,
    ValidationClip,
    load_clip,
    validation_clip,
)

TrainPrecision = Literal["auto", "bf16", "fp32"]
STATE_NAME = "state.pt"
STATE_FORMAT = 1
# Charbonnier epsilon (BasicVSR uses 1e-12 on squared values; 1e-3 is the common image-SR
# choice and keeps gradients bounded on flat areas).
CHARBONNIER_EPS = 1e-3


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; recorded in the exported recipe."""

    clips: tuple[Path, ...]
    output: Path
    val_clips: tuple[Path, ...] = ()
    name: str = "vsr-temporal-x2"
    scale: int = 2
    channels: int = 32
    blocks: int = 6
    bidirectional: bool = False
    upsample_channels: int = 16
    steps: int = 2000
    batch: int = 8
    seq_len: int = 7
    patch: int = 48
    learning_rate: float = 5e-4
    min_learning_rate: float = 1e-6
    seed: int = 0
    precision: TrainPrecision = "auto"
    checkpoint_every: int = 100
    resume: bool = False
    # A shipped model name (vsr-temporal-x2) or a .safetensors path to start from (fine-tune).
    init: str | None = None
    max_frames: int | None = 300
    clean_fraction: float = 0.5
    # Weight of the temporal-consistency loss (see `temporal_loss`); 0 turns it off.
    temporal_weight: float = 0.0
    # Share of samples whose HR is a 2x-downscaled region (sharper targets; see train.data).
    downscale_prob: float = 0.5
    val_frames: int = 16
    # Where resumable state goes; None: a folder beside the output.
    work_dir: Path | None = None
    threads: int | None = None
    # Processes drawing batches ahead of the training step (0: draw them in this process).
    workers: int = 1
    # Stop early (and still export) after this many minutes of wall time; None: no limit.
    max_minutes: float | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not self.clips:
            raise UsageError("expected at least one training clip, got none")
        if self.steps < 1:
            raise UsageError(f"expected --steps of at least 1, got {self.steps}")
        if self.checkpoint_every < 1:
            raise UsageError(
                f"expected --checkpoint-every of at least 1, got {self.checkpoint_every}"
            )
        if not self.learning_rate > 0:
            raise UsageError(f"expected a positive learning rate, got {self.learning_rate}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise UsageError(f"expected --precision auto, bf16 or fp32, got {self.precision!r}")
        if self.output.suffix != ".safetensors":
            raise UsageError(f"expected an output ending in .safetensors, got {self.output}")
        if not 0.0 <= self.temporal_weight <= 10.0 or not math.isfinite(self.temporal_weight):
            raise UsageError(f"expected --temporal-weight in 0-10, got {self.temporal_weight}")
        if self.val_frames < 1:
            raise UsageError(f"expected --val-frames of at least 1, got {self.val_frames}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise UsageError(f"expected --max-minutes above 0, got {self.max_minutes}")
        # The network config validates scale, channels and blocks.
        self.network_config()

    def network_config(self) -> TemporalNetConfig:
        return TemporalNetConfig(
            scale=self.scale,
            channels=self.channels,
            blocks=self.blocks,
            bidirectional=self.bidirectional,
            upsample_channels=self.upsample_channels,
        )

    @property
    def state_dir(self) -> Path:
        return self.work_dir or self.output.with_name(f".{self.output.stem}.train")

    def recipe(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("clips", "val_clips"):
            data[key] = [Path(p).name for p in data[key]]
        for key in ("output", "work_dir", "resume", "overwrite", "threads", "workers"):
            data.pop(key)
        return data


@dataclass(frozen=True)
class TrainProgress:
    """What the progress callback gets after every step (and once per phase change)."""

    step: int
    steps: int
    loss: float
    learning_rate: float
    elapsed: float
    phase: Literal["load", "train", "validate", "export"] = "train"


@dataclass
class ValidationResult:
    clip: str
    frames: int
    psnr: float
    bicubic_psnr: float

    @property
    def gain(self) -> float:
        return self.psnr - self.bicubic_psnr


@dataclass
class TrainResult:
    """Summary of a finished run (also written to the JSON beside the weights)."""

    output: Path
    steps: int
    seconds: float
    loss_curve: list[tuple[int, float]] = field(default_factory=list)
    validation: list[ValidationResult] = field(default_factory=list)


Progress = Callable[[TrainProgress], None]


def schedule_position(config: TrainConfig, step: int, seconds: float = 0.0) -> float:
    """How far through the run we are, in [0, 1]: by steps, or by time under --max-minutes.

    With --max-minutes the run is time-budgeted: the schedule advances by whichever of steps
    and wall time is further along, so the learning rate has reached its minimum when the
    budget ends, however fast the machine is (the steps actually done go in the recipe).
    """
    t = step / max(1, config.steps)
    if config.max_minutes is not None:
        t = max(t, seconds / (60.0 * config.max_minutes))
    return min(1.0, t)


def cosine_rate(config: TrainConfig, step: int, seconds: float = 0.0) -> float:
    """Learning rate at a point of the run: cosine from the initial to the minimum rate.

    A closed form of the position rather than a scheduler's running state, so a resumed run
    (even one resumed with a different --steps to extend or shorten it) follows the curve.
    """
    t = schedule_position(config, step, seconds)
    low, high = config.min_learning_rate, config.learning_rate
    return low + 0.5 * (high - low) * (1.0 + math.cos(math.pi * t))


def charbonnier(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((output - target) ** 2 + CHARBONNIER_EPS**2).mean()


def temporal_loss(
    output: torch.Tensor, target: torch.Tensor, flows_to_previous: torch.Tensor
) -> torch.Tensor:
    """Flicker the output has and the truth has not: frame t-1 of each is warped onto frame t
    (flow from the LR frames, scaled up), and the output's change over the warp is held to the
    target's. Pixels where the warped target is off by over 10 levels (occlusions, flow
    errors, real change) are left out, as the evaluation's flicker measure leaves them out.
    (B, T, 3, H, W) outputs/targets, (B, T-1, 2, h, w) flows from frame t to t-1."""
    b, t, c, h, w = output.shape
    if t < 2:
        return output.new_zeros(())
    flow = resize_flow(
        flows_to_previous.reshape(b * (t - 1), 2, *flows_to_previous.shape[3:]).float(), (h, w)
    )
    previous_out = warp(output[:, :-1].reshape(-1, c, h, w).float(), flow)
    previous_hr = warp(target[:, :-1].reshape(-1, c, h, w).float(), flow)
    current_out = output[:, 1:].reshape(-1, c, h, w).float()
    current_hr = target[:, 1:].reshape(-1, c, h, w).float()
    reliable = ((current_hr - previous_hr).abs().amax(dim=1, keepdim=True) <= 10.0 / 255.0).float()
    change = (current_out - previous_out) - (current_hr - previous_hr)
    eps = 1e-3
    per_pixel = torch.sqrt(change * change + eps * eps) * reliable
    return per_pixel.sum() / (reliable.sum() * c).clamp(min=1.0)


def _precision(requested: TrainPrecision) -> str:
    if requested == "auto":
        return "bf16" if runtime.cpu_supports_bf16() else "fp32"
    return requested


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _loss_curve(losses: list[float], points: int = 20) -> list[tuple[int, float]]:
    """Mean loss over ``points`` equal windows of steps: (last step of window, mean loss)."""
    if not losses:
        return []
    edges = np.linspace(0, len(losses), min(points, len(losses)) + 1).astype(int)
    return [(int(b), float(np.mean(losses[a:b]))) for a, b in itertools.pairwise(edges)]


def validate(
    network: TemporalNet, clips: list[ValidationClip], *, precision: str
) -> list[ValidationResult]:
    """PSNR-Y (border = scale cropped, 8-bit outputs) of the network and of bicubic."""
    results = []
    flow = DISFlow("medium")
    scale = network.scale
    for clip in clips:
        out = upscale_sequence(network, clip.lr, flow=flow, precision=precision)
        out = (out.clamp(0, 1) * 255).round() / 255
        h, w = clip.hr.shape[2:]
        bicubic = (resize(clip.lr, w, h).clamp(0, 1) * 255).round() / 255
        ours = float(np.mean(psnr_y(clip.hr, out, crop_border=scale)))
        base = float(np.mean(psnr_y(clip.hr, bicubic, crop_border=scale)))
        results.append(
            ValidationResult(
                clip=clip.path.name, frames=clip.hr.shape[0], psnr=ours, bicubic_psnr=base
            )
        )
    return results


def _save_state(path: Path, payload: dict[str, Any]) -> None:
    # Written beside and renamed: a run killed mid-write keeps its previous checkpoint.
    tmp = path.with_name(path.name + ".partial")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _load_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, pickle errors, EOFError...
        raise WeightsError(
            f"cannot read the training checkpoint ({exc})",
            path=path,
            hint="delete it to start over without --resume",
        ) from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise WeightsError("is not a vsr training checkpoint", path=path)
    return state


def export(
    network: TemporalNet,
    path: Path,
    *,
    name: str,
    recipe: dict[str, Any],
    report: dict[str, Any],
) -> Path:
    """Write ``path`` (.safetensors, config + recipe in its metadata) and ``path.json`` beside."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().float().contiguous() for k, v in network.state_dict().items()}
    metadata = {
        "format": "vsr-temporal",
        "name": name,
        "architecture": "VSRTemporalNet",
        "config": json.dumps(network.config.to_dict(), sort_keys=True),
        "recipe": json.dumps(recipe, sort_keys=True),
    }
    tmp = path.with_name(path.name + ".partial")
    save_file(tensors, str(tmp), metadata=metadata)
    # safetensors writes 0600; weights are meant to be shared (committed, packaged).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
    document = {
        "name": name,
        "architecture": "VSRTemporalNet",
        "config": network.config.to_dict(),
        "params": count_parameters(network),
        "sha256": _sha256(path),
        "recipe": recipe,
        **report,
    }
    path.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def _initial_network(config: TrainConfig) -> tuple[TemporalNet, str | None, int]:
    """(network, sha256 of the --init weights, how many tensors came from them).

    With --init the network takes the init's shape (channels, blocks, direction); when the init
    was trained at another scale, only the propagation branches are taken over and the
    upsampler starts afresh (an x4 model starts from the x2 one's features).
    """
    torch.manual_seed(config.seed)
    if config.init is None:
        return TemporalNet(config=config.network_config()), None, 0
    weights = resolve_weights(config.init)
    _refuse_non_safetensors(weights)
    source = load_network(weights)
    if source.scale == config.scale:
        return source, _sha256(weights), len(source.state_dict())
    network = TemporalNet(config=replace(source.config, scale=config.scale))
    own = network.state_dict()
    taken = {
        k: v
        for k, v in source.state_dict().items()
        if not k.startswith("upsampler.") and k in own and own[k].shape == v.shape
    }
    network.load_state_dict(taken, strict=False)
    return network, _sha256(weights), len(taken)


def degradation_mix(clean_fraction: float) -> dict[str, Any]:
    """The card's account of the LR damage drawn in training (vsr.train.data.draw_degradation)."""
    blind = 1.0 - clean_fraction
    return {
        "clean_bicubic": round(clean_fraction, 4),
        "clean_bicubic_h264": {"crf": list(CLEAN_H264_CRF), "share_of_clean": CLEAN_H264_SHARE},
        "blind": {name: round(blind * share, 4) for name, share in BLIND_FAMILIES},
    }


def init_card(weights: Path) -> dict[str, Any] | None:
    """What the --init weights were made from (their JSON card's name, recipe and training),
    so a fine-tuned model's card keeps its whole lineage; None without a card."""
    card = weights.with_suffix(".json")
    try:
        doc = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    return {k: doc[k] for k in ("name", "sha256", "recipe", "trained") if k in doc}


def _refuse_non_safetensors(weights: Path) -> None:
    """--init reads only the safetensors `vsr train` writes; say why another file is refused.

    A pickle (.pth) goes through the same restricted reader as any checkpoint first, so one
    that would run code is reported as exactly that, not as an unreadable safetensors file.
    """
    if weights.suffix.lower() == ".safetensors":
        return
    from vsr.models.checkpoint import read_state_dict

    read_state_dict(weights)  # raises UnsafeCheckpointError for a pickle that runs code
    raise WeightsError(
        "expected a .safetensors file written by `vsr train` (or a vsr-temporal-* name) for "
        f"--init, got a {weights.suffix or 'suffix-less'} checkpoint",
        path=weights,
        hint="an ESRGAN/Compact checkpoint can be used with `vsr upscale --model`, not --init",
    )


_WORKER_SAMPLER: SequenceSampler | None = None


def _worker_sample(step: int) -> Batch:
    if _WORKER_SAMPLER is None:  # set in the parent before the fork
        raise RuntimeError("sampler worker started without a sampler")
    # One thread: the worker only shares the CPU with the training step.
    torch.set_num_threads(1)
    return _WORKER_SAMPLER.sample(step)


class _Prefetcher:
    """Draws batch ``step + 1`` in a forked worker while the network trains on ``step``.

    Batches depend only on (seed, step), so prefetching changes nothing in the result. Fork
    (not spawn) lets the worker share the decoded clips instead of pickling them over.
    """

    def __init__(self, sampler: SequenceSampler, start: int, stop: int, *, enabled: bool) -> None:
        self.sampler = sampler
        self.stop = stop
        self.enabled = enabled and "fork" in mp.get_all_start_methods()
        self.pool: Any = None
        self.pending: dict[int, Any] = {}
        self.start = start

    def __enter__(self) -> _Prefetcher:
        global _WORKER_SAMPLER
        if self.enabled:
            _WORKER_SAMPLER = self.sampler
            self.pool = mp.get_context("fork").Pool(1)
            self._submit(self.start)
        return self

    def __exit__(self, *exc: object) -> None:
        global _WORKER_SAMPLER
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None
        _WORKER_SAMPLER = None

    def _submit(self, step: int) -> None:
        if step < self.stop and step not in self.pending and self.pool is not None:
            self.pending[step] = self.pool.apply_async(_worker_sample, (step,))

    def get(self, step: int) -> Batch:
        if self.pool is None:
            return self.sampler.sample(step)
        self._submit(step)
        result = self.pending.pop(step).get()
        self._submit(step + 1)
        return result


def train(config: TrainConfig, *, progress: Progress | None = None) -> TrainResult:
    """Run (or resume) a training run and export it; returns where the weights went."""
    started = time.monotonic()
    if config.threads is not None:
        torch.set_num_threads(max(1, config.threads))
    output = config.output
    if output.exists() and not (config.overwrite or config.resume):
        raise OutputExistsError(
            "already exists", path=output, hint="pass --overwrite to replace it"
        )
    if config.init is not None:
        # Before the clips load (minutes on a big set): a bad --init fails at once.
        _refuse_non_safetensors(resolve_weights(config.init))
    state_path = config.state_dir / STATE_NAME
    if config.resume and not state_path.exists():
        raise UsageError(
            f"--resume asked to continue a run, but there is no checkpoint at {state_path}",
            hint="start without --resume, or point --work-dir at the run's folder",
        )
    if state_path.exists() and not config.resume:
        raise OutputExistsError(
            "holds a checkpoint of an earlier run",
            path=state_path,
            hint="pass --resume to continue it, or delete the folder to start over",
        )

    def report(step: int, loss: float, lr: float, phase: str) -> None:
        if progress is not None:
            progress(
                TrainProgress(
                    step=step,
                    steps=config.steps,
                    loss=loss,
                    learning_rate=lr,
                    elapsed=time.monotonic() - started,
                    phase=phase,  # type: ignore[arg-type]
                )
            )

    report(0, math.nan, config.learning_rate, "load")
    clips: list[ClipFrames] = [load_clip(p, max_frames=config.max_frames) for p in config.clips]
    val: list[ValidationClip] = []
    for p in config.val_clips:
        clip = load_clip(p, max_frames=config.val_frames)
        val.append(validation_clip(clip, scale=config.scale, frames=config.val_frames))
    sampler = SequenceSampler(
        clips,
        scale=config.scale,
        seq_len=config.seq_len,
        patch=config.patch,
        batch=config.batch,
        seed=config.seed,
        clean_fraction=config.clean_fraction,
        downscale_prob=config.downscale_prob,
    )
    network, init_sha, init_tensors = _initial_network(config)
    network.train()
    precision = _precision(config.precision)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, betas=(0.9, 0.99))
    losses: list[float] = []
    start_step = 0
    seconds_before = 0.0
    if config.resume:
        state = _load_state(state_path)
        if state.get("network_config") != network.config.to_dict():
            raise UsageError(
                f"expected the same network as the checkpoint in {state_path}, got "
                f"{network.config.to_dict()} against {state.get('network_config')}",
                hint="resume with the options the run was started with",
            )
        network.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_step = int(state["step"])
        losses = [float(x) for x in state["losses"]]
        seconds_before = float(state.get("seconds", 0.0))

    def checkpoint(step: int) -> None:
        config.state_dir.mkdir(parents=True, exist_ok=True)
        _save_state(
            state_path,
            {
                "format": STATE_FORMAT,
                "step": step,
                "model": network.state_dict(),
                "optimizer": optimizer.state_dict(),
                "losses": losses,
                "network_config": network.config.to_dict(),
                "seconds": seconds_before + time.monotonic() - started,
            },
        )

    step = start_step

    def run_seconds() -> float:
        return seconds_before + time.monotonic() - started

    with _Prefetcher(sampler, step, config.steps, enabled=config.workers > 0) as batches:
        while schedule_position(config, step, run_seconds()) < 1.0:
            batch = batches.get(step)
            rate = cosine_rate(config, step, run_seconds())
            for group in optimizer.param_groups:
                group["lr"] = rate
            with runtime.autocast(torch.device("cpu"), precision):
                out = network(batch.lr, batch.flows_to_previous, batch.flows_to_next)
            loss = charbonnier(out.float(), batch.hr)
            if config.temporal_weight > 0:
                loss = loss + config.temporal_weight * temporal_loss(
                    out, batch.hr, batch.flows_to_previous
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimizer.step()
            step += 1
            value = float(loss.detach())
            if not math.isfinite(value):
                raise WeightsError(
                    f"training diverged at step {step} (loss {value})",
                    hint="lower --lr, or resume from the last checkpoint with a lower --lr",
                )
            losses.append(value)
            report(step, value, rate, "train")
            if step % config.checkpoint_every == 0 or step == config.steps:
                checkpoint(step)
    if step % config.checkpoint_every != 0:
        checkpoint(step)

    network.eval()
    report(step, losses[-1] if losses else math.nan, config.min_learning_rate, "validate")
    with torch.no_grad():
        results = validate(network, val, precision=precision)
    seconds = seconds_before + time.monotonic() - started
    report(step, losses[-1] if losses else math.nan, config.min_learning_rate, "export")
    curve = _loss_curve(losses)
    recipe = config.recipe()
    recipe["data"] = {
        "train": [{"file": p.name, "sha256": _sha256(p)} for p in config.clips],
        "validation": [{"file": p.name, "sha256": _sha256(p)} for p in config.val_clips],
    }
    recipe["degradations"] = degradation_mix(config.clean_fraction)
    if init_sha is not None:
        recipe["init_sha256"] = init_sha
        recipe["init_tensors"] = init_tensors
        if config.init is not None:
            recipe["init_card"] = init_card(resolve_weights(config.init))
    document = {
        "trained": {
            "steps": step,
            "planned_steps": config.steps,
            "seconds": round(seconds, 1),
            "precision": precision,
            "torch": torch.__version__,
            "machine": platform.machine(),
            "threads": torch.get_num_threads(),
        },
        "loss_curve": [{"step": s, "loss": round(v, 6)} for s, v in curve],
        "validation": [{**asdict(r), "gain": round(r.gain, 3)} for r in results],
    }
    if results:
        document["validation_mean"] = {
            "psnr": float(np.mean([r.psnr for r in results])),
            "bicubic_psnr": float(np.mean([r.bicubic_psnr for r in results])),
            "gain": float(np.mean([r.gain for r in results])),
        }
    export(network, output, name=config.name, recipe=recipe, report=document)
    return TrainResult(
        output=output, steps=step, seconds=seconds, loss_curve=curve, validation=results
    )
