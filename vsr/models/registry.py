"""Turn --model (a built-in name, a zoo name or a checkpoint path) into a ready processor."""

from __future__ import annotations

import math
from pathlib import Path

from vsr.config import ModelOptions
from vsr.models import zoo
from vsr.models.base import ModelDescriptor, Processor
from vsr.models.checkpoint import CHECKPOINT_SUFFIXES, describe_checkpoint, load_checkpoint
from vsr.models.processors import BicubicProcessor, Notify, TorchProcessor

BICUBIC = "bicubic"
# Bicubic has no native scale; without --scale it doubles, a common and cheap baseline.
DEFAULT_BICUBIC_SCALE = 2.0


def is_checkpoint_path(name: str) -> bool:
    """True when --model names a file rather than a model: a checkpoint suffix or a path."""
    if name.lower().endswith(CHECKPOINT_SUFFIXES):
        return True
    return "/" in name or "\\" in name or Path(name).is_file()


def _post_scale(requested: float | None, native: int) -> float | None:
    """The overall scale to resize to after the model, or None when the model's own is wanted."""
    if requested is None or math.isclose(requested, native):
        return None
    return float(requested)


def create_processor(options: ModelOptions, *, notify: Notify | None = None) -> Processor:
    """The processor for `options.name` at `options.scale`, with device and precision resolved.

    Zoo names pick the variant for the scale (x2/x3/x4 of animevideov3); other scales run the
    model's native scale and then an antialiased bicubic resize, which is announced.
    """
    name = options.name.strip()
    if name.lower() == BICUBIC:
        return BicubicProcessor(options.scale or DEFAULT_BICUBIC_SCALE)
    # vsr's own temporal models (and checkpoints `vsr train` wrote); None for anything else.
    from vsr.temporal.processor import create_temporal_processor

    temporal = create_temporal_processor(name, options, notify)
    if temporal is not None:
        return temporal
    if is_checkpoint_path(name):
        loaded = load_checkpoint(Path(name).expanduser())
        network, descriptor = loaded.network, loaded.descriptor
        min_size, square = loaded.min_size, loaded.square
    else:
        entry = zoo.get_entry(name, options.scale)
        network = zoo.build_network(entry, on_convert=notify)
        descriptor, min_size, square = entry.descriptor, 0, False
    post_scale = _post_scale(options.scale, descriptor.scale)
    processor = TorchProcessor(
        network,
        descriptor,
        options,
        post_scale=post_scale,
        notify=notify,
        min_size=min_size,
        square=square,
    )
    if post_scale is not None:
        message = (
            f"{descriptor.name} upscales x{descriptor.scale}; the result is resized to "
            f"x{post_scale:g} with antialiased bicubic"
        )
        processor.notices.append(message)
        if notify is not None:
            notify(message)
    return processor


def describe_model(name_or_path: str) -> ModelDescriptor:
    """The descriptor of a built-in name, a zoo name or a checkpoint file (which is read)."""
    name = name_or_path.strip()
    from vsr.temporal.processor import describe_temporal_model

    described = describe_temporal_model(name)
    if described is not None:
        return described
    if name.lower() == BICUBIC:
        return BicubicProcessor(DEFAULT_BICUBIC_SCALE).descriptor
    if is_checkpoint_path(name):
        return describe_checkpoint(Path(name).expanduser())
    return zoo.get_entry(name).descriptor
