"""FFmpeg's error lines, wanted while decoding or checking an encoder, without PyAV's race.

PyAV's log level is process-wide. Restoring its default (``set_level(None)``) while a decoder
thread is already inside PyAV's log callback makes that thread compare the message level with
None and print a ``TypeError`` traceback from ``av.logging``. So the level is raised once for
all readers at a time (counted), and the quiet state afterwards is FFmpeg's own C callback at
AV_LOG_QUIET: it prints nothing, takes no GIL, and PyAV's level stays a number.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import av.logging

_AV_LOG_QUIET = -8
_lock = threading.Lock()
_users = 0
_saved: int | None = None
# True while the quiet state is the one this module put in place (PyAV's level still reads
# ERROR then, but nothing is captured or printed).
_quieted = False


@contextlib.contextmanager
def errors_logged() -> Iterator[None]:
    """PyAV's level at ERROR inside (for av.logging.Capture); the previous state after."""
    global _users, _saved, _quieted
    with _lock:
        if _users == 0:
            _saved = None if _quieted else av.logging.get_level()
            av.logging.set_level(av.logging.ERROR)
            _quieted = False
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                if _saved is None:
                    av.logging.restore_default_callback()
                    av.logging.set_libav_level(_AV_LOG_QUIET)
                    _quieted = True
                else:
                    av.logging.set_level(_saved)


@contextlib.contextmanager
def native_stderr() -> Iterator[list[str]]:
    """What C code writes straight to file descriptor 2 inside, as lines (filled on exit).

    x264 and x265 check ``tune``, ``preset`` and ``profile`` before FFmpeg's log callback is
    theirs, and report a bad value with their own logger on stderr ("x264 [error]: invalid
    tune 'flim'"), around FFmpeg's error and vsr's. The caller folds those lines into its one
    error line, or passes them on unchanged (`pass_on`) when nothing failed. Only for short,
    single-threaded steps (opening an encoder): the descriptor is the whole process's.
    """
    import os
    import tempfile

    # (Python's own stderr is not flushed first: what it writes inside lands in the sink and is
    # passed on with the rest.)
    lines: list[str] = []
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", errors="replace")
            lines.extend(line for line in text.splitlines() if line.strip())


def pass_on(lines: list[str]) -> None:
    """Lines `native_stderr` caught that explain no error: back where their writer sent them."""
    import os

    if lines:
        os.write(2, ("\n".join(lines) + "\n").encode())


def native_reason(lines: list[str]) -> str | None:
    """The last error a library printed itself, without its "x264 [error]: " prefix."""
    for line in reversed(lines):
        _head, sep, rest = line.partition("[error]:")
        if sep and rest.strip():
            return rest.strip()
    return None
