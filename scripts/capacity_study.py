#!/usr/bin/env python
"""Capacity study for the temporal model (issue 10): which shape buys the most dB per MAC?

Trains each variant from scratch with the same blind recipe, seed, data and number of steps
(`vsr.train`, as scripts/train_temporal.sh's stage 2 but from scratch), then runs each through
the real pipeline on the held-out clips at x2 (`vsr.evaltable.run_cell`: lossless LR in, FFV1
out, PSNR-Y over bicubic, flicker), beside its multiply-accumulates per LR pixel and its measured
seconds per frame. Prints markdown; ``--json`` writes every figure. Finished weights are kept in
``--out`` and reused when the script is run again (delete them to retrain).

    nice -n 10 python scripts/capacity_study.py --data ~/.cache/vsr/train-data/clips \\
        --out capacity --steps 1200 --threads 1 --json capacity.json

Variants: uni|bi CHANNELS x BLOCKS, e.g. uni32x6 (the shipped shape), uni48x8, bi32x6 (the
bidirectional network, run in chunks of 16 frames with 4 of overlap). ``--train-only`` lets
several processes train different variants at once (one thread each); a last run without it
evaluates them all.
Equal steps, not equal time: a bigger network gets as many updates, so the comparison does not
favour the cheap one; all are under-trained against the shipped model, which is why the gains
are compared with each other.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsr.errors import VsrError
from vsr.evaltable import (
    HELD_OUT,
    MEDIA_DIRS,
    Cell,
    TableModel,
    TableSettings,
    find_held_out,
    iter_cells,
)
from vsr.temporal.processor import describe_temporal_model
from vsr.train import TrainConfig, train

VARIANT = re.compile(r"^(?P<dir>uni|bi)(?P<channels>\d+)x(?P<blocks>\d+)$")
TRAIN_FILES = (
    "bigbuckbunny.mp4",
    "world.mp4",
    "astronaut.png",
    "brick.png",
    "camera.png",
    "coffee.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
    "chelsea.png",
)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--variants", nargs="+", default=["uni32x6", "bi32x6", "uni48x8"])
    parser.add_argument(
        "--data", type=Path, required=True, help="scripts/train_temporal.sh's clips"
    )
    parser.add_argument("--out", type=Path, required=True, help="weights and work go here")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kinds", nargs="+", default=["bi", "bd", "aliased", "bi-h264"])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--width", type=int, default=360)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--train-only", action="store_true", help="train (or resume) the variants, evaluate none"
    )
    return parser.parse_args(argv)


def train_variant(name: str, args: argparse.Namespace) -> Path:
    match = VARIANT.match(name)
    if match is None:
        raise SystemExit(f"capacity_study: expected a variant like uni32x6 or bi32x6, got {name!r}")
    output = args.out / f"{name}.safetensors"
    if output.is_file():
        return output
    clips = tuple(args.data / f for f in TRAIN_FILES)
    missing = [str(c) for c in clips if not c.is_file()]
    if missing:
        raise SystemExit(
            f"capacity_study: missing training clips (run train_temporal.sh): {missing}"
        )
    config = TrainConfig(
        clips=clips,
        output=output,
        name=name,
        scale=2,
        channels=int(match["channels"]),
        blocks=int(match["blocks"]),
        bidirectional=match["dir"] == "bi",
        steps=args.steps,
        batch=6,
        seq_len=6,
        patch=48,
        learning_rate=1e-3,
        min_learning_rate=1e-5,
        seed=0,
        precision="bf16",
        checkpoint_every=100,
        resume=(args.out / name / "state.pt").is_file(),
        clean_fraction=0.25,
        temporal_weight=0.5,
        work_dir=args.out / name,
        threads=args.threads,
        workers=0,
        overwrite=True,
    )
    started = time.monotonic()
    train(config)
    print(f"{name}: trained in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return output


def evaluate(weights: dict[str, Path], args: argparse.Namespace) -> list[Cell]:
    import torch

    torch.set_num_threads(args.threads)
    models = [TableModel("bicubic", "bicubic")]
    models += [TableModel(name, str(path)) for name, path in weights.items()]
    # The standard table's settings, at x2; the columns are the variants' weights files.
    settings = TableSettings(
        scales=(2,), kinds=tuple(args.kinds), frames=args.frames, width=args.width
    )
    work = args.out / "eval"
    work.mkdir(parents=True, exist_ok=True)
    cells: list[Cell] = []
    for clip in (find_held_out(c.name, MEDIA_DIRS) for c in HELD_OUT):
        for cell in iter_cells(clip, settings, work, models=models):
            if not isinstance(cell, Cell):
                continue
            if cell.error is not None:
                raise SystemExit(f"capacity_study: {cell.model} failed: {cell.error}")
            print(f"{clip.name} {cell.kind} {cell.model}: {cell.psnr:.3f} dB", file=sys.stderr)
            cells.append(cell)
    return cells


def summarise(weights: dict[str, Path], cells: list[Cell], kinds: Sequence[str]) -> dict[str, Any]:
    def psnr(label: str, kind: str) -> list[float]:
        return [c.psnr for c in cells if c.model == label and c.kind == kind]

    rows: dict[str, Any] = {}
    for name, path in weights.items():
        desc = describe_temporal_model(str(path))
        gains = {k: float(np.mean(np.subtract(psnr(name, k), psnr("bicubic", k)))) for k in kinds}
        # Whole-clip time over frames: a chunked (bidirectional) model writes a chunk's frames
        # at once, so the median interval between frames would hide its cost.
        frame_s = [c.seconds / c.frames for c in cells if c.model == name and c.frames]
        card = json.loads(path.with_suffix(".json").read_text())
        rows[name] = {
            "params": desc.params if desc else None,
            "macs_per_lr_pixel": desc.macs_per_pixel if desc else None,
            "seconds_per_frame": float(np.median(frame_s)),
            "train_seconds": card["trained"]["seconds"],
            "steps": card["trained"]["steps"],
            "gain_db": gains,
            "mean_gain_db": float(np.mean(list(gains.values()))),
        }
    base = next(iter(rows.values()))
    for row in rows.values():
        extra = (row["macs_per_lr_pixel"] or 0) - (base["macs_per_lr_pixel"] or 0)
        more = row["mean_gain_db"] - base["mean_gain_db"]
        row["db_per_extra_kmac"] = more / (extra / 1000) if extra > 0 else math.nan
    return rows


def markdown(rows: dict[str, Any], kinds: Sequence[str]) -> str:
    head = ["variant", "params", "kMAC / LR px", "s / frame", *kinds, "mean", "dB per extra kMAC"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        cells = [
            name,
            f"{r['params']:,}",
            f"{r['macs_per_lr_pixel'] / 1000:.0f}",
            f"{r['seconds_per_frame']:.4f}",
            *(f"{r['gain_db'][k]:+.2f}" for k in kinds),
            f"{r['mean_gain_db']:+.2f}",
            "n/a" if math.isnan(r["db_per_extra_kmac"]) else f"{r['db_per_extra_kmac']:+.4f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        weights = {name: train_variant(name, args) for name in args.variants}
        if args.train_only:
            return 0
        cells = evaluate(weights, args)
    except VsrError as exc:
        print(f"capacity_study: error: {exc}", file=sys.stderr)
        return exc.exit_code
    rows = summarise(weights, cells, args.kinds)
    print(markdown(rows, args.kinds))
    if args.json is not None:
        figures = {"variants": rows, "cells": [c.__dict__ for c in cells], "steps": args.steps}
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
