"""Where a command's notices and progress go: stderr, a tqdm bar only on a terminal.

The library never prints; it reports through the two callbacks of vsr/events.py. A command
makes one :class:`Console` and hands the library ``console.notify`` (a ``Notify``) and a
:meth:`Console.bar` (a ``ProgressFn``); what the user sees is decided here alone.
"""

from __future__ import annotations

import sys
from typing import Any


class Aborted(Exception):
    """The user stopped a run whose partial result was still reported (a batch's table).

    The command has shown what it has; ``vsr.cli.main`` prints "Aborted!" and exits 130, as
    for any Ctrl-C.
    """


class Bar:
    """A tqdm bar on a terminal (frames, fps, ETA); nothing at all otherwise.

    Called as ``bar(done, total)``, it is a ``ProgressFn``.
    """

    def __init__(self, enabled: bool, label: str) -> None:
        self.bar: Any = None
        self.enabled = enabled and sys.stderr.isatty()
        self.label = label

    def describe(self, settings: Any) -> None:
        """Once the model is loaded: its device and precision join the label."""
        detail = " ".join(str(settings[k]) for k in ("device", "precision") if settings.get(k))
        if detail:
            self.label = f"{self.label} [{detail}]"
            if self.bar is not None:
                self.bar.set_description(self.label)

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            # A resumed job reports the frames already done first: the bar starts there, and
            # its rate counts only this run's frames.
            self.bar = tqdm(
                total=total,
                initial=done,
                unit="frame",
                desc=f"{self.label} (resumed at {done:,})" if done else self.label,
                dynamic_ncols=True,
                leave=False,
                file=sys.stderr,
            )
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Console:
    """One command's notices ("vsr: ..." lines on stderr) and progress bars.

    ``notices`` and ``progress`` switch each off: --quiet silences both, --json the notices
    (stdout then holds only the JSON, and stderr only what went wrong).
    """

    def __init__(self, *, notices: bool = True, progress: bool = True) -> None:
        self.notices = notices
        self.progress = progress

    def notify(self, text: str) -> None:
        """A ``Notify``: one line for a person, prefixed as every vsr message is."""
        if self.notices:
            print(f"vsr: {text}", file=sys.stderr, flush=True)

    def bar(self, label: str) -> Bar:
        """A progress bar for one file, drawn only on a terminal; close it when done."""
        return Bar(self.progress, label)
