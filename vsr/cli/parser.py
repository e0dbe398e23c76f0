"""The argument parser every vsr command is built from: one-line usage errors, no prefixes."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any, ClassVar, NoReturn

from vsr.errors import UsageError
from vsr.spelling import did_you_mean


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line and exit code 2 like every other usage error.

    Prefixes of long options are not accepted (``--scal`` is not ``--scale``): a shortened
    flag in a script would silently change meaning the day another option starts the same
    way. A misspelt option or command gets a did-you-mean instead.
    """

    # Every parser that parsed, outermost first: the last is the (sub)command's own, whose
    # options are the ones a misspelt flag was meant to be.
    parsed: ClassVar[list[argparse.ArgumentParser]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        Parser.parsed.append(self)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        parser = Parser.parsed[-1] if Parser.parsed else self
        guess = _guess(message, parser)
        see = f"see '{parser.prog} --help'"
        raise UsageError(f"{message} ({f'{guess} ' if guess else ''}{see})")


def _guess(message: str, parser: argparse.ArgumentParser) -> str | None:
    """'did you mean ...?' for an unknown option or an invalid choice (a command name)."""
    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        word, options = choice.group(1), re.findall(r"'([^']*)'", choice.group(2))
    else:
        unknown = re.search(r"unrecognized arguments: (.*)", message)
        flags = [w.split("=")[0] for w in (unknown.group(1).split() if unknown else ())]
        flags = [w for w in flags if w.startswith("--")]
        if not flags:
            return None
        word = flags[0]
        options = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
    return did_you_mean(word, options)
