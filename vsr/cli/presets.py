"""`vsr presets list|show`: the shipped presets and the user's own."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vsr.cli.parser import Parser


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    ps: argparse.ArgumentParser = subparsers.add_parser(name, help=help)
    psub = ps.add_subparsers(dest="presets_command", metavar="ACTION", parser_class=Parser)
    psub.required = True
    pl = psub.add_parser("list", help="every preset, shipped and yours")
    pl.add_argument("--json", action="store_true")
    pw = psub.add_parser("show", help="one preset, resolved, as TOML")
    pw.add_argument("name")
    return ps


def run(args: argparse.Namespace) -> int:
    from vsr import presets

    if args.presets_command == "show":
        print(presets.show_preset(args.name), end="")
        return 0
    rows = presets.list_presets()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": r.name,
                        "description": r.description,
                        "path": str(r.path),
                        "builtin": r.builtin,
                        "shadows": str(r.shadows) if r.shadows else None,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return 0
    width = max((len(r.name) for r in rows), default=4)
    for r in rows:
        where = "shipped" if r.builtin else f"yours ({r.path})"
        print(f"{r.name.ljust(width)}  {r.description}  [{where}]")
    return 0
