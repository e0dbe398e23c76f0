"""The checker every preset value goes through, naming the file (or the command line) and key."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vsr.errors import ConfigError
from vsr.options import did_you_mean

# The origin of overrides, as errors name it ("command line: expected encode.crf ...").
COMMAND_LINE = "command line"


def suggest(word: str, choices: Iterable[str], fallback: str | None = None) -> str | None:
    """did-you-mean for ``word``; else ``fallback``, or the list of choices when there is none."""
    options = list(choices)
    close = did_you_mean(word, options)
    if close is not None:
        return close
    if fallback is not None:
        return fallback
    return f"expected one of: {', '.join(options)}" if options else None


class Checker:
    """Reads one table, naming the origin (a file or the command line) in every error."""

    def __init__(self, origin: Path | str) -> None:
        self.origin = origin

    def fail(self, message: str, hint: str | None = None) -> ConfigError:
        if isinstance(self.origin, Path):
            return ConfigError(message, path=self.origin, hint=hint)
        return ConfigError(f"{self.origin}: {message}", hint=hint)

    def keys(self, table: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
        allowed = list(allowed)
        for key in table:
            if key not in allowed:
                dotted = f"{where}.{key}" if where else key
                raise self.fail(
                    f"unknown key {dotted!r}",
                    hint=suggest(key, allowed, fallback=f"keys: {', '.join(allowed)}"),
                )

    def section(self, table: Mapping[str, Any], name: str) -> dict[str, Any]:
        value = table.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(f"expected [{name}] to be a table, got {show(value)}")
        return value

    def choice(
        self, table: Mapping[str, Any], key: str, where: str, choices: Iterable[str], default: str
    ) -> str:
        value = table.get(key, default)
        options = list(choices)
        if not isinstance(value, str) or value not in options:
            hint = suggest(value, options) if isinstance(value, str) else None
            raise self.fail(
                f"expected {where}.{key} one of {', '.join(options)}, got {show(value)}", hint
            )
        return value

    def number(
        self,
        table: Mapping[str, Any],
        key: str,
        where: str,
        *,
        low: float,
        high: float,
        integer: bool = False,
        low_open: bool = False,
    ) -> float | None:
        if key not in table:
            return None
        value = table[key]
        kind = "an integer" if integer else "a number"
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type or not math.isfinite(value):
            raise self.fail(f"expected {where}.{key} to be {kind}, got {show(value)}")
        too_low = value <= low if low_open else value < low
        if too_low or value > high:
            low_text = f"above {low:g}" if low_open else f"at least {low:g}"
            raise self.fail(
                f"expected {where}.{key} {low_text} and at most {high:g}, got {value!r}"
            )
        return float(value)

    def string(self, table: Mapping[str, Any], key: str, where: str) -> str | None:
        if key not in table:
            return None
        value = table[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"expected {where}.{key} to be a non-empty string, got {show(value)}")
        return value.strip()

    def boolean(self, table: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"expected {where}.{key} to be true or false, got {show(value)}")
        return value


def show(value: object) -> str:
    kind = {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)
    return f"{kind} {value!r}" if not isinstance(value, dict) else kind
