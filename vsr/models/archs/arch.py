"""`Arch`: everything vsr knows about one network architecture, as one object.

Before, one architecture's facts sat in four files (the module, the checkpoint detector, the
zoo's parameter count, the ncnn graph template). Like spandrel's ``ArchSupport`` (a detector
paired with a loader) and torchvision's weights that carry their own metadata, an `Arch` holds
them together: the checkpoint loader asks it to recognise a state dict, the zoo asks it for the
cost of a configuration it ships, the ncnn converter asks it for the graph that configuration
exports to. The modules that use an `Arch` never test its name.

A configuration is the constructor's keyword arguments (``num_feat``, ``scale`` ...), the same
mapping a detector returns and a zoo entry records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vsr.models.archs.ncnn_pattern import GraphBuilder

StateDict = dict[str, torch.Tensor]
Config = Mapping[str, Any]


@dataclass(frozen=True)
class Arch:
    """One architecture: how to build it, recognise it, cost it and match its ncnn export."""

    name: str
    network: Callable[..., nn.Module]
    # The constructor argument holding the native scale ("scale" or "upscale").
    scale_key: str
    # The configuration of a state dict in exactly this layout, else None (read from shapes;
    # the caller still checks every key against a built network).
    detect: Callable[[StateDict], dict[str, Any] | None]
    # Configurations a *partial* state dict could come from, to name what a damaged file lacks.
    candidates: Callable[[StateDict], list[dict[str, Any]]]
    count_params: Callable[[Config], int]
    # Multiply-adds per input pixel, for the benchmark's FLOP figure.
    count_macs: Callable[[Config], float]
    # Emits the canonical graph this configuration exports to ncnn; returns the output blob.
    ncnn_graph: Callable[[GraphBuilder, str, Config], str]

    def build(self, config: Config) -> nn.Module:
        return self.network(**config)

    def scale(self, config: Config) -> int:
        return int(config.get(self.scale_key, 1))


def shape_of(state: StateDict, key: str) -> tuple[int, ...] | None:
    tensor = state.get(key)
    return tuple(tensor.shape) if tensor is not None else None


def first_dim(state: StateDict, keys: Sequence[str], dim: int = 0) -> int | None:
    """Size `dim` of the first of `keys` present with that many dimensions (partial files)."""
    for key in keys:
        shape = shape_of(state, key)
        if shape is not None and len(shape) > dim:
            return int(shape[dim])
    return None
