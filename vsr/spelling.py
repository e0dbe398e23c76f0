"""The one did-you-mean of the package: option names, flags, preset keys, presets, codecs.

Plain standard library, so that the command line's parser can use it without importing the
rest of vsr (start-up stays fast).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """``did you mean 'X'?`` for the closest choice, or None when nothing is close.

    The one suggester of the package: option names, preset keys, presets, models, codecs.
    `cutoff` is difflib's similarity floor (0..1); long names such as model names can take a
    lower one, since more of their letters must already agree.
    """
    options = list(choices)
    close = difflib.get_close_matches(word, options, n=5, cutoff=cutoff)
    if not close:
        return None
    # difflib scores a swap of two letters ("libx246") like any two changes; among its
    # candidates, prefer the fewest edits counting a swap as one.
    best = min(close, key=lambda c: (edit_distance(word, c), close.index(c)))
    return f"did you mean {best!r}?"


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, changes, adjacent swaps."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[-1]
