"""`vsr preview INPUT`: a before/after PNG and a short clip (the work is in vsr.preview)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from vsr.cli.args import add_option_groups, add_options, model_extra_from_args, preset_from_args
from vsr.cli.console import Console
from vsr.errors import UsageError


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description="Write a split-view PNG (bicubic | model) of the frame at --at and a "
        "short clip made by the real pipeline, to judge a preset before a long run.",
    )
    p.add_argument("input")
    p.add_argument("--at", default="0", help="time of the frame: 00:01:30, 1:30.5 or 90")
    p.add_argument("-o", "--output", help="the PNG (default: INPUT-compare.png here)")
    # No default here: the library's DEFAULT_SECONDS applies, and building this parser does
    # not import vsr.preview (PyAV, OpenCV) on every start.
    p.add_argument("--seconds", type=float, help="clip length (default: 3)")
    p.add_argument("--clip", help="the clip's path (default: the PNG's name with .mp4)")
    p.add_argument("--no-clip", action="store_true", help="only the PNG")
    add_options(p, name, "overwrite")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress or notices")
    add_option_groups(p, name)
    return p


def run(args: argparse.Namespace) -> int:
    from vsr.batch import resolve_job_options
    from vsr.preview import DEFAULT_SECONDS, parse_time, preview

    at = parse_time(args.at)
    if args.no_clip and args.clip:
        raise UsageError("expected --clip PATH or --no-clip, not both")
    png = Path(args.output) if args.output else Path(f"{Path(args.input).stem}-compare.png")
    clip = None if args.no_clip else (Path(args.clip) if args.clip else png.with_suffix(".mp4"))
    name, overrides = preset_from_args(args, "preview")
    preset, options = resolve_job_options(
        name,
        overrides,
        model_extra=model_extra_from_args(args),
        temporal_strength=args.temporal_strength,
        overwrite=args.overwrite,
    )
    show = not args.quiet
    console = Console(notices=show and not args.json, progress=show)
    bar = console.bar(f"preview {os.path.basename(args.input)}")
    try:
        result = preview(
            args.input,
            png,
            options,
            preset,
            at=at,
            seconds=DEFAULT_SECONDS if args.seconds is None else args.seconds,
            clip=clip,
            progress=bar,
            notify=console.notify,
        )
    finally:
        bar.close()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.still.path)
        if result.clip is not None:
            print(result.clip)
    return 0
