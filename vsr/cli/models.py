"""`vsr models list|info|convert`: the models vsr knows."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vsr.cli.console import Console
from vsr.cli.parser import Parser


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    mo: argparse.ArgumentParser = subparsers.add_parser(name, help=help)
    msub = mo.add_subparsers(dest="models_command", metavar="ACTION", parser_class=Parser)
    msub.required = True
    ml = msub.add_parser("list", help="every model vsr knows")
    ml.add_argument("--json", action="store_true")
    mi = msub.add_parser("info", help="one model")
    mi.add_argument("name")
    mi.add_argument("--json", action="store_true")
    mc = msub.add_parser("convert", help="convert shipped weights ahead of time")
    mc.add_argument("names", nargs="*")
    mc.add_argument("--all", action="store_true")
    return mo


def run(args: argparse.Namespace) -> int:
    from vsr.models import registry

    if args.models_command == "list":
        rows = registry.list_models()
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        _print_table(rows)
        print("\nAny ESRGAN/Compact .pth or .safetensors file works too: --model path/to/file")
        return 0
    if args.models_command == "info":
        info = registry.model_info(args.name)
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            for key, value in info.items():
                print(f"{key}: {value}")
        return 0
    # Only the zoo's models are converted (from their PyPI package) and cached.
    from vsr.models import zoo

    names = [e.name for e in zoo.list_models()] if args.all or not args.names else args.names
    console = Console()
    for name in names:
        entry = zoo.get_entry(name)
        zoo.load_state_dict(entry, notify=console.notify)
        print(f"{entry.name}: cached")
    return 0


def _print_table(rows: list[dict[str, Any]]) -> None:
    header = ("name", "arch", "scale", "params", "licence", "source", "cached")
    table = [header] + [
        (
            str(r["name"]),
            str(r["architecture"]),
            f"x{r['scale']}",
            f"{int(r['params']):,}",
            str(r["license"]),
            str(r["source"]),
            "yes" if r["cached"] else "no",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
