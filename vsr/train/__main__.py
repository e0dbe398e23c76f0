"""`python -m vsr.train ...`: the `vsr train` command without going through vsr.cli."""

from __future__ import annotations

import argparse
import sys

from vsr.errors import VsrError
from vsr.train.loop import add_train_parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vsr.train")
    sub = parser.add_subparsers(dest="command", required=True)
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
