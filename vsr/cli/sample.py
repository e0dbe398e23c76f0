"""`vsr sample [OUTPUT]`: a short generated clip to try vsr on."""

from __future__ import annotations

import argparse
from typing import Any

from vsr.errors import UsageError


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    sa: argparse.ArgumentParser = subparsers.add_parser(name, help=help)
    sa.add_argument("output", nargs="?", default="sample.mp4")
    sa.add_argument("--seconds", type=float, default=3.0)
    sa.add_argument("--size", default="480x270", help="WIDTHxHEIGHT")
    return sa


def run(args: argparse.Namespace) -> int:
    from vsr.sample import make_sample

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise UsageError(f"expected --size WIDTHxHEIGHT, got {args.size!r}") from None
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise UsageError(f"expected an even --size of at least 64x64, got {args.size}")
    if not 0 < args.seconds <= 600:
        raise UsageError(f"expected --seconds between 0 and 600, got {args.seconds}")
    path = make_sample(args.output, seconds=args.seconds, width=width, height=height)
    print(path)
    return 0
