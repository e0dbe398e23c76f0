"""The resolved preset: one frozen object with every field typed and checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vsr.config import DEFAULT_MODEL, EncodeOptions, ModelOptions, Precision, Temporal
from vsr.media.filters import FilterSpec
from vsr.presets.write import dump_toml, to_table


@dataclass(frozen=True)
class Preset:
    """A resolved preset: every field typed and checked."""

    name: str
    description: str = ""
    model: str = DEFAULT_MODEL
    scale: float | None = None
    # None: no tiling; 0: automatic; N: tiles of N x N input pixels (as ModelOptions.tile).
    tile: int | None = None
    precision: Precision = "auto"
    temporal: Temporal = "off"
    height: int | None = None
    filters: FilterSpec = field(default_factory=FilterSpec)
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    duration: float | None = None
    # Seconds of processing between resume checkpoints; None: vsr's default.
    checkpoint_every: float | None = None
    # The file this preset was read from (None for one built in code).
    source: Path | None = None

    def model_options(self, **extra: Any) -> ModelOptions:
        """ModelOptions for this preset; ``extra`` sets what presets do not hold (device...)."""
        return ModelOptions(
            name=self.model,
            scale=self.scale,
            tile=self.tile,
            precision=self.precision,
            **extra,
        )

    def encode_options(self) -> EncodeOptions:
        return self.encode

    def filter_spec(self) -> FilterSpec:
        return self.filters

    def to_toml(self) -> str:
        """The resolved preset as TOML that loads back to an equal preset."""
        return dump_toml(to_table(self))
