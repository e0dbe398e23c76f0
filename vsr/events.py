"""The two callbacks through which the library talks to whoever runs it.

The library never prints: a long job reports through these, and the caller (the CLI's console,
a notebook, a Ray actor) decides how to show them. Every module names them the same way:

- ``notify(text)``: a one-line notice for a person (a fallback taken, a file skipped).
- ``progress(done, total)``: frames written so far and the expected total (None when unknown).
"""

from __future__ import annotations

from collections.abc import Callable

Notify = Callable[[str], None]
"""A one-line notice for a person; the caller decides where it goes."""

ProgressFn = Callable[[int, "int | None"], None]
"""Frames done so far and the expected total (None when the input does not say)."""


def ignore(_text: str) -> None:
    """A `Notify` that drops the notice (the default when nobody listens)."""
