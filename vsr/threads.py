"""Bounded queues between the pipeline's threads, with cooperative cancellation.

Both frame paths (the swscale one in `vsr.pipeline` and the device graph in `vsr.graph`) run a
decode thread, the calling thread and an encode thread joined by these queues. A failure on any
thread sets `stop`, and every blocked `put`/`get` then gives up within a tenth of a second, so no
thread waits forever on a queue nobody serves.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

# The item that tells the next stage its input is over.
END = object()


class Cancelled(Exception):
    """Raised in a thread whose queue operation gave up because another thread failed."""


class Stage:
    """Bounded queues with cooperative cancellation, so no thread blocks forever."""

    def __init__(self, size: int) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.size = size

    def new_queue(self) -> queue.Queue[Any]:
        return queue.Queue(maxsize=self.size)

    def put(self, q: queue.Queue[Any], item: Any) -> None:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise Cancelled

    def get(self, q: queue.Queue[Any]) -> Any:
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        raise Cancelled

    def fail(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.stop.set()

    def raise_first(self) -> None:
        for exc in self.errors:
            if not isinstance(exc, Cancelled):
                raise exc


def join(threads: list[threading.Thread]) -> None:
    """Wait for the stage threads; a bounded wait, since they give up once `stop` is set."""
    for t in threads:
        t.join(timeout=10)
