"""`vsr eval`: measure an upscaled clip against its HR reference, or make the LR clip."""

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
        "flicker)\nvsr eval --degrade HR.mp4 -o LR.mp4 --scale N   (make the LR input)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("--reference", help="the high-resolution original")
    ev.add_argument("--test", help="the upscaled clip to measure")
    ev.add_argument("--degrade", metavar="HR", help="make an LR clip from this HR clip")
    ev.add_argument("-o", "--output", help="where --degrade writes the LR clip")
    ev.add_argument("--scale", type=int, required=True)
    ev.add_argument("--frames", type=int, help="only the first N frames")
    ev.add_argument("--seed", type=int, default=0, help="--degrade: random seed")
    ev.add_argument("--blur", type=float, default=0.0, help="--degrade: blur sigma (pixels)")
    ev.add_argument("--noise", type=float, default=0.0, help="--degrade: noise sigma (0-255)")
    ev.add_argument("--jpeg", type=int, help="--degrade: JPEG quality 1-100")
    ev.add_argument("--crf", type=int, default=18, help="--degrade: H.264 CRF of the LR clip")
    ev.add_argument("--no-temporal", action="store_true", help="skip the flicker measurement")
    ev.add_argument("--overwrite", "-y", action="store_true")
    ev.add_argument("--json", action="store_true")
    return ev


def run(args: argparse.Namespace) -> int:
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
