"""The command line: the only place that parses argv, prints, and picks exit codes.

Each command is a module here (upscale.py, batch.py ...) with ``add_parser`` and ``run``; the
library never imports this package. A command's module is imported only when that command
runs (or its help is asked for): ``vsr --help`` and ``vsr probe`` do not pay for torch or for
every other command's parser. :func:`main` is the one place that turns an error into a
message and an exit code, and Ctrl-C or SIGTERM into "Aborted!".
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

from vsr import __version__
from vsr.cli.console import Aborted
from vsr.cli.parser import Parser
from vsr.errors import Interrupted, VsrError

# Every command, in the order `vsr --help` lists them, with its one-line help: the list is
# shown without importing the commands' modules (vsr.cli.<name>).
COMMANDS: dict[str, str] = {
    "upscale": "upscale a video or image file",
    "probe": "show the facts vsr sees in a file",
    "bench": "measure decode, model, encode and end-to-end speed",
    "batch": "upscale many files or a TOML job file, with a report",
    "preview": "a before/after PNG and a short clip, to judge settings",
    "train": "train or fine-tune the temporal model on your own clips",
    "eval": "measure an upscaled clip against its HR reference, or make the LR clip",
    "presets": "list and show presets",
    "sample": "write a short sample clip to try vsr on",
    "models": "list, describe and convert models",
}


def _command(name: str) -> ModuleType:
    return importlib.import_module(f"vsr.cli.{name}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of `vsr`, with every command's own (None) or only that of ``command``.

    The other commands are still listed (for --help and a did-you-mean), but their options
    are not built: training's defaults alone import torch.
    """
    parser = Parser(prog="vsr", description="Video super-resolution, faithful to the source.")
    parser.add_argument("--version", action="version", version=f"vsr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name, help in COMMANDS.items():
        if command is None or name == command:
            _command(name).add_parser(sub, name, help)
        else:
            sub.add_parser(name, help=help)
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that a run stops the same clean way."""


@contextlib.contextmanager
def _sigterm_stops_cleanly() -> Iterator[list[bool]]:
    """While the CLI runs, SIGTERM (kill, systemd, docker stop) acts like Ctrl-C.

    The handler raises in the main thread, where every ``except KeyboardInterrupt`` already
    cleans up (temporary files go, finished segments stay for a resume); the flag tells the
    exit code apart: 143, as a shell reports a process SIGTERM ended.
    """
    seen = [False]

    def handler(_signum: int, _frame: Any) -> None:
        if not seen[0]:
            seen[0] = True
            raise _Terminated

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding app): leave signals alone
        yield seen
        return
    try:
        yield seen
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    debug = bool(os.environ.get("VSR_DEBUG"))
    with _sigterm_stops_cleanly() as terminated:
        code = _main(argv, debug, terminated)
        # The pipeline and batch turn the interrupt into their own "stopped" result (130).
        return 143 if terminated[0] and code == Interrupted.exit_code else code


def _main(argv: Sequence[str] | None, debug: bool, terminated: list[bool]) -> int:
    try:
        words = list(sys.argv[1:] if argv is None else argv)
        Parser.parsed.clear()
        command = words[0] if words and words[0] in COMMANDS else ""
        args = build_parser(command).parse_args(words)
        code: int = _command(args.command).run(args)
        return code
    except Interrupted as exc:
        print(f"{exc.message} (terminated)" if terminated[0] else exc.message, file=sys.stderr)
        return exc.exit_code
    except _Terminated:
        print("Aborted! (terminated)", file=sys.stderr)
        return 143
    except (KeyboardInterrupt, Aborted):
        print("Aborted!", file=sys.stderr)
        return 130
    except VsrError as exc:
        if debug:
            raise
        print(f"vsr: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return 1
    except Exception as exc:
        if debug:
            raise
        print(
            f"vsr: error: unexpected {type(exc).__name__}: {exc} "
            "(rerun with VSR_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1
