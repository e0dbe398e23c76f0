"""`vsr eval`: measure an upscaled clip against its HR reference, make the LR clip, or run
the standard evaluation table (`vsr.evaltable`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vsr.errors import UsageError


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    ev: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description="vsr eval --reference HR.mp4 --test OUT.mp4 --scale N   (PSNR-Y, SSIM-Y, "
        "flicker)\nvsr eval --degrade HR.mp4 -o LR.mp4 --scale N   (make the LR input)\n"
        "vsr eval --table [--clips ...] [--models ...] [--kinds ...] [--scales ...]   (every "
        "model on held-out clips, for LR made by each benchmark degradation)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("--reference", help="the high-resolution original")
    ev.add_argument("--test", help="the upscaled clip to measure")
    ev.add_argument("--degrade", metavar="HR", help="make an LR clip from this HR clip")
    ev.add_argument("-o", "--output", help="where --degrade writes the LR clip")
    ev.add_argument("--scale", type=int, help="the upscale factor (not with --table)")
    ev.add_argument("--frames", type=int, help="only the first N frames (--table: 30)")
    ev.add_argument("--seed", type=int, default=0, help="--degrade: random seed")
    ev.add_argument("--blur", type=float, default=0.0, help="--degrade: blur sigma (pixels)")
    ev.add_argument("--noise", type=float, default=0.0, help="--degrade: noise sigma (0-255)")
    ev.add_argument("--jpeg", type=int, help="--degrade: JPEG quality 1-100")
    ev.add_argument("--crf", type=int, default=18, help="--degrade: H.264 CRF of the LR clip")
    ev.add_argument("--no-temporal", action="store_true", help="skip the flicker measurement")
    ev.add_argument("--overwrite", "-y", action="store_true")
    ev.add_argument("--json", action="store_true")
    _add_table_arguments(ev)
    return ev


def _add_table_arguments(ev: argparse.ArgumentParser) -> None:
    from vsr.evaltable import HELD_OUT, MODELS

    table = ev.add_argument_group("the evaluation table (--table)")
    table.add_argument(
        "--table",
        action="store_true",
        help="PSNR-Y, SSIM-Y, flicker and cost of every model for each degradation and scale",
    )
    table.add_argument(
        "--clips",
        nargs="+",
        metavar="CLIP",
        help="held-out clip names or HR files of your own (default: "
        + ", ".join(c.name for c in HELD_OUT)
        + ")",
    )
    table.add_argument(
        "--models",
        nargs="+",
        metavar="MODEL",
        help=f"among {', '.join(m.label for m in MODELS)} (bicubic always runs: the baseline)",
    )
    table.add_argument("--kinds", nargs="+", metavar="KIND", help="degradations (default: all)")
    table.add_argument("--scales", nargs="+", type=int, metavar="N", help="default: 2 4")
    table.add_argument("--width", type=int, default=360, help="HR width clips are resized to")
    table.add_argument(
        "--threads", type=int, help="torch threads (1 gives steadier costs on a busy CPU)"
    )
    table.add_argument("--media", nargs="+", metavar="DIR", help="folders holding the clips")
    table.add_argument("--work", metavar="DIR", help="where the LR and output clips are made")


def run(args: argparse.Namespace) -> int:
    if args.table:
        return _table(args)
    if args.scale is None:
        raise UsageError("expected --scale N (or --table)")
    if args.degrade:
        return _degrade(args)
    if not (args.reference and args.test):
        raise UsageError("expected --reference HR and --test OUT (or --degrade HR -o LR)")
    from vsr.metrics import evaluate

    report = evaluate(
        args.reference,
        args.test,
        scale=args.scale,
        temporal=not args.no_temporal,
        max_frames=args.frames,
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
    return 0


def _degrade(args: argparse.Namespace) -> int:
    if args.reference or args.test or not args.output:
        raise UsageError("expected 'vsr eval --degrade HR -o LR.mp4 --scale N'")
    from vsr.degrade import Degradation, DegradeRound, degrade_file

    damage = DegradeRound(blur_sigma=args.blur, noise_sigma=args.noise, jpeg_quality=args.jpeg)
    made = degrade_file(
        args.degrade,
        args.output,
        scale=args.scale,
        degradation=Degradation(first=damage),
        crf=args.crf,
        seed=args.seed,
        overwrite=args.overwrite,
        max_frames=args.frames,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "output": str(made.output),
                    "frames": made.frames,
                    "width": made.width,
                    "height": made.height,
                },
                indent=2,
            )
        )
    else:
        print(f"{made.output}: {made.frames} frames, {made.width}x{made.height}")
    return 0


def _table(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vsr.cli.console import Console
    from vsr.evaltable import HELD_OUT, MEDIA_DIRS, TableSettings, find_held_out, run_table

    if args.reference or args.test or args.degrade or args.scale is not None:
        raise UsageError("expected --table without --reference, --test, --degrade or --scale")
    given = {
        "scales": tuple(args.scales) if args.scales else None,
        "kinds": tuple(args.kinds) if args.kinds else None,
        "models": tuple(args.models) if args.models else None,
        "frames": args.frames,
    }
    settings = TableSettings(
        **{k: v for k, v in given.items() if v is not None},
        width=args.width,
        seed=args.seed,
        threads=args.threads,
    )
    media = tuple(Path(m) for m in args.media) if args.media else MEDIA_DIRS
    names = args.clips or [c.name for c in HELD_OUT]
    clips = [Path(n) if Path(n).is_file() else find_held_out(n, media) for n in names]
    console = Console(notices=True)
    table = run_table(
        clips,
        settings,
        work=Path(args.work) if args.work else None,
        on_cell=console.notify,
    )
    print(json.dumps(table.to_dict(), indent=2) if args.json else table.markdown())
    # A failed cell is in the table as an error; the exit code says the first one's kind.
    return next((c.exit_code for c in table.cells if c.exit_code is not None), 0)
