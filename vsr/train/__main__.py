"""`python -m vsr.train ...`: the `vsr train` command without going through vsr.cli."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vsr.errors import VsrError
from vsr.train.loop import add_train_parser


class _Parser(argparse.ArgumentParser):
    """No prefix abbreviations (``--ste`` is not ``--steps``), as in `vsr train`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m vsr.train")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_train_parser(sub)
    args = parser.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except VsrError as exc:
        print(f"vsr train: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Aborted!", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
