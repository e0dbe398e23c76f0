"""`vsr upscale INPUT -o OUTPUT`: one file through the pipeline."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from vsr.cli.args import add_option_groups, add_options, options_from_args
from vsr.cli.console import Console


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    up: argparse.ArgumentParser = subparsers.add_parser(name, help=help)
    up.add_argument("input")
    up.add_argument("-o", "--output", required=True)
    add_options(up, name, "overwrite", "skip_corrupt", "max_frames")
    up.add_argument("--json", action="store_true", help="print a JSON summary")
    up.add_argument(
        "--dry-run",
        action="store_true",
        help="print the job's plan (sizes, encoder, streams, frames) and stop: nothing is "
        "decoded, loaded or written; with --json, as JSON",
    )
    up.add_argument("--quiet", "-q", action="store_true", help="no progress bar or notices")
    add_options(up, name, "segment_seconds", "checkpoint_every")
    add_option_groups(up, name)
    return up


def summary_line(result: Any) -> str:
    """One line for the end of a run, on a terminal or not (as FFmpeg prints its own)."""
    settings = result.settings
    how = ", ".join(
        str(v) for v in (result.model, settings.get("device"), settings.get("precision")) if v
    )
    return (
        f"vsr: {result.input} -> {result.output}: {result.frames} frames in "
        f"{result.seconds:.1f} s ({result.fps:.2f} fps; {how})"
    )


def run(args: argparse.Namespace) -> int:
    from vsr.api import run as run_upscale

    options = options_from_args(args, "upscale")
    if args.dry_run:
        return _dry_run(args, options)
    show = not args.quiet
    console = Console(notices=show and not args.json, progress=show)
    progress = console.bar(os.path.basename(args.input))
    try:
        result = run_upscale(
            args.input,
            args.output,
            options,
            progress=progress,
            notify=console.notify,
            on_model=progress.describe,
        )
    finally:
        progress.close()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    elif show:
        print(summary_line(result), file=sys.stderr)
    return 0


def _dry_run(args: argparse.Namespace, options: Any) -> int:
    """Print what a run would do (vsr.plan), with the same checks and errors as a run."""
    from vsr.api import plan

    planned = plan(args.input, args.output, options)
    if args.json:
        print(json.dumps(planned.to_dict(), indent=2))
    else:
        print("\n".join(planned.describe()))
    return 0
