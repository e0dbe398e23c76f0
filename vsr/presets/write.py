"""Writing a preset as TOML (`vsr presets show`, and the table overrides are merged into)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vsr.presets.preset import Preset


def to_table(preset: Preset) -> dict[str, Any]:
    """The preset as a TOML-shaped table (None values left out)."""
    table: dict[str, Any] = {}
    if preset.description:
        table["description"] = preset.description
    if preset.duration is not None:
        table["duration"] = _num(preset.duration)
    if preset.checkpoint_every is not None:
        table["checkpoint_every"] = _num(preset.checkpoint_every)
    model: dict[str, Any] = {"name": preset.model}
    if preset.scale is not None:
        model["scale"] = _num(preset.scale)
    model["tile"] = "off" if preset.tile is None else ("auto" if preset.tile == 0 else preset.tile)
    model["precision"] = preset.precision
    model["temporal"] = preset.temporal
    table["model"] = model
    if preset.height is not None:
        table["output"] = {"height": preset.height}
    spec = preset.filters
    table["filters"] = {
        "deinterlace": spec.deinterlace,
        "deinterlace_mode": spec.deinterlace_mode,
        "deinterlacer": spec.deinterlacer,
        "crop": list(spec.crop) if isinstance(spec.crop, tuple) else spec.crop,
        "square_pixels": spec.square_pixels,
        "denoise": spec.denoise,
        "denoise_strength": _num(spec.denoise_strength),
    }
    enc = preset.encode
    encode: dict[str, Any] = {}
    for key in ("codec", "crf", "preset", "pix_fmt"):
        value = getattr(enc, key)
        if value is not None:
            encode[key] = _num(value) if key == "crf" else value
    if enc.options:
        encode["options"] = dict(enc.options)
    table["encode"] = encode
    return table


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def dump_toml(table: Mapping[str, Any]) -> str:
    lines: list[str] = []
    for key, value in table.items():
        if not isinstance(value, Mapping):
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in table.items():
        if isinstance(value, Mapping):
            lines.append("")
            lines.append(f"[{key}]")
            for sub_key, sub_value in value.items():
                lines.append(f"{_toml_key(sub_key)} = {_toml_value(sub_value)}")
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
