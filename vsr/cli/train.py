"""`vsr train CLIP... -o OUT.safetensors`: train or fine-tune the temporal model.

The training itself is vsr.train; here are its arguments and its progress lines. This
parser is built only when the command is `train`: its defaults come from TrainConfig,
whose module imports torch (a second of start-up for every other command).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vsr.train.loop import TrainConfig, TrainProgress


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    from vsr.train.loop import TrainConfig

    p: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=(
            "Train the temporal network (vsr-temporal-*) on HR video clips, degraded on the fly "
            "(bicubic, blur, noise, JPEG, H.264). Checkpoints every --checkpoint-every steps; "
            "--resume continues an interrupted run. Use --init vsr-temporal-x2 to fine-tune the "
            "shipped model on your own footage."
        ),
    )
    d = TrainConfig(clips=(Path("x"),), output=Path("x.safetensors"))
    p.add_argument("clips", nargs="+", type=Path, help="HR video clips to train on")
    p.add_argument(
        "-o", "--output", type=Path, required=True, help="weights to write (.safetensors)"
    )
    p.add_argument(
        "--val",
        dest="val_clips",
        action="append",
        type=Path,
        default=[],
        help="held-out clip to score at the end (repeatable)",
    )
    p.add_argument("--name", default=None, help="model name stored in the weights")
    p.add_argument("--scale", type=int, default=d.scale, choices=(2, 4))
    p.add_argument("--channels", type=int, default=d.channels)
    p.add_argument("--blocks", type=int, default=d.blocks)
    p.add_argument(
        "--bidirectional", action="store_true", help="train the chunked bidirectional model"
    )
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--seq-len", type=int, default=d.seq_len, help="frames per training sequence")
    p.add_argument("--patch", type=int, default=d.patch, help="LR crop size in pixels")
    p.add_argument("--lr", dest="learning_rate", type=float, default=d.learning_rate)
    p.add_argument("--min-lr", dest="min_learning_rate", type=float, default=d.min_learning_rate)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default=d.precision)
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--resume", action="store_true", help="continue the run in --work-dir")
    p.add_argument(
        "--init",
        default=None,
        help="start from these weights (a vsr-temporal-* name or a .safetensors file)",
    )
    p.add_argument("--max-frames", type=int, default=d.max_frames, help="frames read per clip")
    p.add_argument(
        "--clean-fraction",
        type=float,
        default=d.clean_fraction,
        help="share of samples with a clean bicubic downscale (rest: blind damage)",
    )
    p.add_argument(
        "--temporal-weight",
        type=float,
        default=d.temporal_weight,
        help="weight of the loss on flicker the target has not (0: off)",
    )
    p.add_argument(
        "--downscale-prob",
        type=float,
        default=d.downscale_prob,
        help="share of samples whose HR is a 2x-downscaled region (sharper targets)",
    )
    p.add_argument("--val-frames", type=int, default=d.val_frames)
    p.add_argument("--work-dir", type=Path, default=None, help="where resumable checkpoints go")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--workers", type=int, default=d.workers, help="processes drawing batches ahead (0: none)"
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop after this much wall time and export what was learnt",
    )
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's frozen config from `vsr train` arguments."""
    from vsr.train.loop import TrainConfig

    base = TrainConfig(clips=tuple(args.clips), output=args.output)
    name = args.name or f"vsr-temporal-x{args.scale}{'-bi' if args.bidirectional else ''}"
    return replace(
        base,
        val_clips=tuple(args.val_clips),
        name=name,
        scale=args.scale,
        channels=args.channels,
        blocks=args.blocks,
        bidirectional=args.bidirectional,
        steps=args.steps,
        batch=args.batch,
        seq_len=args.seq_len,
        patch=args.patch,
        learning_rate=args.learning_rate,
        min_learning_rate=args.min_learning_rate,
        seed=args.seed,
        precision=args.precision,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        init=args.init,
        max_frames=args.max_frames,
        clean_fraction=args.clean_fraction,
        temporal_weight=args.temporal_weight,
        downscale_prob=args.downscale_prob,
        val_frames=args.val_frames,
        work_dir=args.work_dir,
        threads=args.threads,
        workers=args.workers,
        max_minutes=args.max_minutes,
        overwrite=args.overwrite,
    )


class _Bar:
    """tqdm on a terminal; a line every `every` steps otherwise (logs stay readable)."""

    def __init__(self, every: int = 25) -> None:
        self.tty = sys.stderr.isatty()
        self.every = every
        self.bar: Any = None
        self.first: tuple[int, float] | None = None  # (step, elapsed) when training began

    def __call__(self, p: TrainProgress) -> None:
        if p.phase != "train":
            if self.bar is not None:
                self.bar.set_description(p.phase)
            elif not self.tty:
                print(f"[{p.elapsed:7.1f}s] {p.phase}", file=sys.stderr, flush=True)
            return
        if self.first is None:
            self.first = (p.step - 1, p.elapsed)
        if self.tty:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=p.steps, initial=p.step - 1, unit="step", desc="train")
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{p.loss:.4f}", lr=f"{p.learning_rate:.1e}")
        elif p.step % self.every == 0 or p.step == p.steps:
            done = p.step - self.first[0]
            per_step = (p.elapsed - self.first[1]) / max(1, done)
            eta = per_step * (p.steps - p.step)
            print(
                f"[{p.elapsed:7.1f}s] step {p.step}/{p.steps} loss {p.loss:.4f} "
                f"lr {p.learning_rate:.2e} {per_step:.2f} s/step eta {eta / 60:.1f} min",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    from vsr.train.loop import train

    config = config_from_args(args)
    bar = _Bar()
    try:
        result = train(config, progress=bar)
    finally:
        bar.close()
    if getattr(args, "json", False):
        print(result.output.with_suffix(".json").read_text(encoding="utf-8"), end="")
        return 0
    print(f"wrote {result.output} ({result.steps} steps, {result.seconds / 60:.1f} min)")
    for r in result.validation:
        print(
            f"  {r.clip}: {r.psnr:.2f} dB PSNR-Y, bicubic {r.bicubic_psnr:.2f} dB "
            f"({r.gain:+.2f} dB)"
        )
    return 0
