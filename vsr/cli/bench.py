"""`vsr bench INPUT`: decode, model, encode and end-to-end speed."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vsr.cli.args import (
    add_encode_args,
    add_filter_args,
    add_frame_path_args,
    add_model_args,
    options_from_args,
)


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    be: argparse.ArgumentParser = subparsers.add_parser(name, help=help)
    be.add_argument("input")
    be.add_argument("--frames", type=int, default=30)
    be.add_argument("--json", action="store_true")
    add_model_args(be)
    add_frame_path_args(be)
    add_filter_args(be)
    add_encode_args(be)
    return be


def run(args: argparse.Namespace) -> int:
    from vsr.bench import format_table, run_bench

    options = options_from_args(args)
    report = run_bench(args.input, options, frames=args.frames)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_table(report))
    return 0
