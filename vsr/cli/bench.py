"""`vsr bench INPUT`: decode, model, encode and end-to-end speed."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vsr.cli.args import add_option_groups, add_options, options_from_args


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    be: argparse.ArgumentParser = subparsers.add_parser(name, help=help)
    be.add_argument("input")
    add_options(be, name, "max_frames")
    be.add_argument("--json", action="store_true")
    add_option_groups(be, name)
    return be


def run(args: argparse.Namespace) -> int:
    from vsr.bench import format_table, run_bench

    options = options_from_args(args, "bench")
    report = run_bench(args.input, options, frames=args.frames)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_table(report))
    return 0
