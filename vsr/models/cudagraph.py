"""`--cuda-graphs`: the model's forward pass recorded once per input shape and replayed.

A frame-wise model runs the same kernels on every batch of the same shape; launching them one
by one costs the host a few microseconds each, which on a fast GPU and a small model (the
compact animevideov3 has ~35 layers per batch) leaves the device idle between kernels. A CUDA
graph records the launches once and replays them with one call. Shapes are fixed within a job
(the batch, the frame or tile size), so few graphs are recorded: each shape gets one, up to
`MAX_SHAPES` (a partial last batch or edge tiles add a shape or two); past that, and wherever
recording fails (memory, an operation a graph cannot hold), the model runs eagerly, with a
notice. The output of a replay lives in the graph's own memory and is overwritten by the next
replay, so it is copied out (one device copy per batch) before it is returned.

``capture`` is where the recording happens; the default is CUDA's, and the tests give a fake
one to check the caching and fallbacks on machines without a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

MAX_SHAPES = 3
WARMUP_RUNS = 2  # eager runs on a side stream before recording (cuDNN picks its algorithms)


class Replay(Protocol):
    def __call__(self) -> None: ...


Capture = Callable[[Callable[[torch.Tensor], torch.Tensor], torch.Tensor], tuple[Replay, Any]]


def cuda_capture(
    forward: Callable[[torch.Tensor], torch.Tensor], static_input: torch.Tensor
) -> tuple[Replay, torch.Tensor]:
    """Record ``forward(static_input)`` into a CUDA graph: (its replay, its static output)."""
    side = torch.cuda.Stream(device=static_input.device)
    side.wait_stream(torch.cuda.current_stream(static_input.device))
    with torch.cuda.stream(side):
        for _ in range(WARMUP_RUNS):
            forward(static_input)
    torch.cuda.current_stream(static_input.device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_output = forward(static_input)
    return graph.replay, static_output


@dataclass
class _Recorded:
    replay: Replay
    static_input: torch.Tensor
    static_output: torch.Tensor


class GraphedForward:
    """A forward function that replays a recorded graph per input shape (see the module)."""

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        *,
        capture: Capture = cuda_capture,
        notify: Callable[[str], None] | None = None,
        max_shapes: int = MAX_SHAPES,
    ) -> None:
        self.forward = forward
        self.capture = capture
        self.notify = notify
        self.max_shapes = max_shapes
        self._recorded: dict[tuple[Any, ...], _Recorded] = {}
        self._eager: set[tuple[Any, ...]] = set()  # shapes that run without a graph
        self.replays = 0
        self.eager_runs = 0

    @property
    def shapes(self) -> int:
        return len(self._recorded)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, x.device, x.stride())
        recorded = self._recorded.get(key)
        if recorded is None and key not in self._eager:
            recorded = self._record(key, x)
        if recorded is None:
            self.eager_runs += 1
            return self.forward(x)
        recorded.static_input.copy_(x)
        recorded.replay()
        self.replays += 1
        # The next replay overwrites the graph's output: hand out a copy.
        return recorded.static_output.clone()

    def _record(self, key: tuple[Any, ...], x: torch.Tensor) -> _Recorded | None:
        if len(self._recorded) >= self.max_shapes:
            self._eager.add(key)
            self._say(
                f"--cuda-graphs: more than {self.max_shapes} input shapes; "
                f"{tuple(x.shape)} runs without a graph"
            )
            return None
        static_input = x.clone()
        try:
            replay, static_output = self.capture(self.forward, static_input)
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            self._eager.add(key)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self._say(
                f"--cuda-graphs: could not record the model for {tuple(x.shape)} ({first}); "
                "it runs without a graph"
            )
            return None
        recorded = _Recorded(replay, static_input, static_output)
        self._recorded[key] = recorded
        return recorded

    def _say(self, message: str) -> None:
        if self.notify is not None:
            self.notify(message)
