"""The one place a model name is resolved: `--model`, presets, `vsr models` and the API.

A name is offered to each source of `SOURCES` in order; the first that claims it describes it
(`describe_model`) or builds its processor (`create_processor`), and `vsr models list` lists the
sources' rows in the same order. A name nobody claims is an unknown model, with a did-you-mean
from the zoo (where a misspelt name was most likely meant).

The order is the precedence: ``bicubic`` is a word, not a file; the zoo's names come before any
file so that a model name always means that model; vsr's temporal ``.safetensors`` files are
told apart from other checkpoints by their metadata, so the temporal source asks first; and
any other path is a checkpoint (whose architecture is found by `vsr.models.archs`, else by
spandrel for community architectures).

Sources import their modules when first asked, so importing the registry stays cheap.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Protocol, TypeVar

from vsr.config import ModelOptions
from vsr.events import Notify
from vsr.models.base import ModelDescriptor, Processor

BICUBIC = "bicubic"
# Bicubic has no native scale; without --scale it doubles, a common and cheap baseline.
DEFAULT_BICUBIC_SCALE = 2.0
# An ncnn graph is a file too: a preset naming one is read as a path, so loading it explains
# which files work instead of calling it an unknown model.
NCNN_SUFFIX = ".param"

_T = TypeVar("_T")


class ModelSource(Protocol):
    """Where models come from; each answers for the names it claims."""

    def owns(self, name: str) -> bool:
        """True when `name` (stripped) is this source's to describe and build."""
        ...

    def describe(self, name: str, scale: float | None = None) -> ModelDescriptor:
        """What `build` would load for `name` at `scale` (None: the model's own), from facts
        alone: a dry run and `vsr models info` read this without loading weights."""
        ...

    def build(self, name: str, options: ModelOptions, notify: Notify | None) -> Processor: ...

    def names(self) -> list[str]:
        """The names a preset or `--model` may use (lower case); none for path sources."""
        ...

    def rows(self) -> list[dict[str, Any]]:
        """What `vsr models list --json` shows for this source (JSON-serialisable)."""
        ...

    def info(self, name: str) -> dict[str, Any] | None:
        """What `vsr models info NAME` shows, or None when this source has no such entry."""
        ...


def _checkpoint_suffixes() -> tuple[str, ...]:
    from vsr.models.checkpoint import CHECKPOINT_SUFFIXES

    return CHECKPOINT_SUFFIXES


def is_checkpoint_path(name: str) -> bool:
    """True when --model names a file rather than a model: a checkpoint suffix or a path."""
    if name.lower().endswith(_checkpoint_suffixes()):
        return True
    return "/" in name or "\\" in name or Path(name).is_file()


def names_a_file(name: str) -> bool:
    """True when a preset's model name is written as a file (read without touching the disk,
    so a preset checks the same on every machine)."""
    suffixes = (*_checkpoint_suffixes(), NCNN_SUFFIX)
    return name.lower().endswith(suffixes) or "/" in name or os.sep in name


class BicubicSource:
    """``bicubic``: no network, the baseline every model is compared with."""

    def owns(self, name: str) -> bool:
        return name.lower() == BICUBIC

    def describe(self, name: str, scale: float | None = None) -> ModelDescriptor:
        from vsr.models.processors import BicubicProcessor

        return BicubicProcessor(scale or DEFAULT_BICUBIC_SCALE).descriptor

    def build(self, name: str, options: ModelOptions, notify: Notify | None) -> Processor:
        from vsr.models.processors import BicubicProcessor

        return BicubicProcessor(options.scale or DEFAULT_BICUBIC_SCALE)

    def names(self) -> list[str]:
        return [BICUBIC]

    def rows(self) -> list[dict[str, Any]]:
        return []

    def info(self, name: str) -> dict[str, Any] | None:
        return None


class ZooSource:
    """The named Real-ESRGAN models converted from a PyPI package (`vsr.models.zoo`)."""

    def owns(self, name: str) -> bool:
        from vsr.models import zoo

        return name.lower() in zoo.names()

    def describe(self, name: str, scale: float | None = None) -> ModelDescriptor:
        from vsr.models import zoo

        # The same variant `build` picks: a family name at --scale 2 is its x2 model.
        return zoo.get_entry(name, scale).descriptor

    def build(self, name: str, options: ModelOptions, notify: Notify | None) -> Processor:
        """Family names pick the variant for the scale (x2/x3/x4 of animevideov3)."""
        from vsr.models import zoo

        entry = zoo.get_entry(name, options.scale)
        network = zoo.build_network(entry, notify=notify)
        return _torch_processor(network, entry.descriptor, options, notify)

    def names(self) -> list[str]:
        from vsr.models import zoo

        return zoo.names()

    def rows(self) -> list[dict[str, Any]]:
        from vsr.models import zoo

        return [zoo.model_info(e) for e in zoo.list_models()]

    def info(self, name: str) -> dict[str, Any] | None:
        from vsr.models import zoo

        return zoo.model_info(zoo.get_entry(name)) if self.owns(name.strip()) else None


class TemporalSource:
    """vsr's own temporal models: the shipped ``vsr-temporal-*`` and files `vsr train` wrote."""

    def owns(self, name: str) -> bool:
        from vsr.temporal import processor as temporal

        if temporal.parse_name(name) is not None:
            return True
        return temporal.is_temporal_checkpoint(Path(name).expanduser())

    def describe(self, name: str, scale: float | None = None) -> ModelDescriptor:
        from vsr.temporal.processor import describe_temporal_model

        return _claimed(describe_temporal_model(name), name)

    def build(self, name: str, options: ModelOptions, notify: Notify | None) -> Processor:
        from vsr.temporal.processor import create_temporal_processor

        return _claimed(create_temporal_processor(name, options, notify), name)

    def names(self) -> list[str]:
        from vsr.temporal.processor import shipped_names

        return shipped_names()

    def rows(self) -> list[dict[str, Any]]:
        from vsr.temporal.processor import list_temporal_models

        return list_temporal_models()

    def info(self, name: str) -> dict[str, Any] | None:
        # Only the exact file name of a shipped model, as `vsr models list` spells it.
        if name not in self.names():
            return None
        return next((row for row in self.rows() if row["name"] == name), None)


class CheckpointSource:
    """Any other file: BasicSR-layout weights of a `vsr.models.archs` architecture, or a
    community architecture through spandrel."""

    def owns(self, name: str) -> bool:
        return is_checkpoint_path(name)

    def describe(self, name: str, scale: float | None = None) -> ModelDescriptor:
        from vsr.models.checkpoint import describe_checkpoint

        return describe_checkpoint(Path(name).expanduser())

    def build(self, name: str, options: ModelOptions, notify: Notify | None) -> Processor:
        from vsr.models.checkpoint import load_checkpoint

        loaded = load_checkpoint(Path(name).expanduser())
        return _torch_processor(
            loaded.network,
            loaded.descriptor,
            options,
            notify,
            min_size=loaded.min_size,
            square=loaded.square,
        )

    def names(self) -> list[str]:
        return []

    def rows(self) -> list[dict[str, Any]]:
        return []

    def info(self, name: str) -> dict[str, Any] | None:
        return None


# The precedence order (see the module docstring); `vsr models list` lists in this order too.
SOURCES: tuple[ModelSource, ...] = (
    BicubicSource(),
    ZooSource(),
    TemporalSource(),
    CheckpointSource(),
)


def _claimed(found: _T | None, name: str) -> _T:
    # A source only builds what it claimed; None here means owns() and build() disagree.
    if found is None:
        raise RuntimeError(f"a model source claimed {name!r} but could not load it")
    return found


def source_for(name: str) -> ModelSource:
    """The first source that claims `name`; an unknown name raises `UnknownModelError`."""
    name = name.strip()
    for source in SOURCES:
        if source.owns(name):
            return source
    from vsr.models.zoo import unknown_model

    raise unknown_model(name)


def create_processor(options: ModelOptions, *, notify: Notify | None = None) -> Processor:
    """The processor for `options.name` at `options.scale`, with device and precision resolved.

    Models with a native scale other than the one asked for run at their own and then resize
    with antialiased bicubic, which is announced.
    """
    name = options.name.strip()
    return source_for(name).build(name, options, notify)


def describe_model(name_or_path: str, scale: float | None = None) -> ModelDescriptor:
    """The descriptor of a built-in name, a zoo name or a checkpoint file (which is read): of
    the model `create_processor` would load at `scale` (a family's variant for that scale)."""
    name = name_or_path.strip()
    return source_for(name).describe(name, scale)


def model_names() -> list[str]:
    """Every name a preset or `--model` may use, sorted (paths to files are accepted besides)."""
    return sorted({n for source in SOURCES for n in source.names()})


def list_models() -> list[dict[str, Any]]:
    """The rows of `vsr models list`, source by source in registry order."""
    return [row for source in SOURCES for row in source.rows()]


def model_info(name: str) -> dict[str, Any]:
    """The facts `vsr models info NAME` shows; an unknown name raises `UnknownModelError`."""
    for source in SOURCES:
        info = source.info(name)
        if info is not None:
            return info
    from vsr.models.zoo import unknown_model

    raise unknown_model(name)


def _post_scale(requested: float | None, native: int) -> float | None:
    """The overall scale to resize to after the model, or None when the model's own is wanted."""
    if requested is None or math.isclose(requested, native):
        return None
    return float(requested)


def _torch_processor(
    network: Any,
    descriptor: ModelDescriptor,
    options: ModelOptions,
    notify: Notify | None,
    *,
    min_size: int = 0,
    square: bool = False,
) -> Processor:
    """A network with weights as a processor, resized afterwards when another scale is asked."""
    from vsr.models.processors import TorchProcessor

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
