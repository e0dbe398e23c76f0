"""What every model (processor) looks like to the pipeline.

A processor receives batches of RGB frames as float32 tensors shaped (N, 3, H, W) with values
in [0, 1] on the CPU, in presentation order, and returns upscaled frames in the same order.
Frame-wise processors return one output per input at once; temporal processors may hold frames
back (look-ahead) and return them later, but the total count after `flush` always equals the
number of frames given, and order is kept. The pipeline pairs outputs with input timestamps by
position, so a processor must never drop, duplicate or reorder frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import torch

Tiling = Literal["supported", "discouraged", "internal"]


@dataclass(frozen=True)
class ModelDescriptor:
    """Facts about a model that callers ask instead of testing its name."""

    name: str
    architecture: str
    scale: int
    in_channels: int = 3
    out_channels: int = 3
    supports_half: bool = True
    supports_bfloat16: bool = True
    # Input height and width must be multiples of this; the processor pads internally.
    size_multiple: int = 1
    tiling: Tiling = "supported"
    temporal: bool = False
    # Frames of look-ahead a temporal model needs before it can emit a frame.
    delay: int = 0
    # Frames of past context a temporal model must run (outputs dropped) to reach, within its
    # precision, the state an uninterrupted run has: what a resumed job runs before its seam.
    warmup: int = 0
    params: int = 0
    license: str = ""
    source: str = ""
    # Multiply-adds per input pixel (for the benchmark's FLOP figure); 0 when unknown.
    macs_per_pixel: float = 0.0


@dataclass(frozen=True)
class FrameGeometry:
    """What a processor is told before the first frame arrives."""

    width: int
    height: int
    fps: float | None = None


@runtime_checkable
class Processor(Protocol):
    """init / process / flush, the shape every model stage implements."""

    @property
    def descriptor(self) -> ModelDescriptor: ...

    @property
    def scale(self) -> float:
        """Output size / input size (may differ from the descriptor's native scale)."""
        ...

    @property
    def settings(self) -> dict[str, object]:
        """What was chosen (device, precision, tile, batch) for `--json` and the progress line."""
        ...

    def init(self, geometry: FrameGeometry) -> None: ...

    def process(self, frames: torch.Tensor) -> torch.Tensor: ...

    def flush(self) -> torch.Tensor: ...

    def reset(self) -> None:
        """Forget temporal state (scene cut, new file)."""
        ...


def output_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """Output size for a scale, rounded the way every processor must round it."""
    return max(1, round(width * scale)), max(1, round(height * scale))
