"""Merging: options given on the command line, in a job file or to the API, over a preset.

Which preset key an option sets comes from the option table (vsr.options): ``encoder_preset``
is ``[encode] preset``, ``height`` is ``[output] height``. The merged table goes through the
preset checker again, so an override is checked exactly like a preset file's value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from vsr.errors import ConfigError, UsageError
from vsr.media.filters import parse_crop
from vsr.options import OVERRIDES
from vsr.presets.check import parse_table
from vsr.presets.checker import COMMAND_LINE, suggest
from vsr.presets.preset import Preset
from vsr.presets.write import to_table


def merge(preset: Preset, overrides: Mapping[str, object]) -> Preset:
    """Apply command-line options over a preset; CLI options win.

    Only options the user actually gave should be passed; a value of None means "not given"
    and is skipped. ``tile`` takes "off", "auto" or a number; ``crop`` takes "off", "auto",
    "W:H:X:Y" or a 4-tuple; ``encoder_options`` takes a mapping or KEY=VALUE pairs and is
    merged key by key. When the codec changes, the preset's encoder speed preset and options
    (written for the old codec) are dropped unless given again.
    """
    patch: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in OVERRIDES:
            raise ConfigError(
                f"unknown option {key!r}",
                path=None,
                hint=suggest(key, list(OVERRIDES)),
            )
        section, name = OVERRIDES[key]
        value = _override_value(key, value)
        if section is None:
            patch[name] = value
        else:
            patch.setdefault(section, {})[name] = value
    table = to_table(preset)
    encode_patch = patch.get("encode", {})
    new_codec = encode_patch.get("codec")
    if new_codec is not None and new_codec != table.get("encode", {}).get("codec"):
        old = table.setdefault("encode", {})
        old.pop("preset", None)
        old.pop("options", None)
    merged = deep_merge(table, patch)
    return parse_table(merged, name=preset.name, origin=COMMAND_LINE, source=preset.source)


def _override_value(key: str, value: object) -> object:
    if key == "tile" and isinstance(value, int) and not isinstance(value, bool):
        return "auto" if value == 0 else value
    if key == "crop":
        if isinstance(value, str):
            try:
                value = parse_crop(value)
            except UsageError as exc:
                raise ConfigError(f"{COMMAND_LINE}: --crop: {exc.message}") from exc
        return list(value) if isinstance(value, tuple) else value
    if key == "encoder_options" and not isinstance(value, Mapping):
        if not isinstance(value, Iterable) or isinstance(value, str):
            raise ConfigError(
                f"expected --encoder-option KEY=VALUE pairs, got {value!r}", path=None
            )
        pairs: dict[str, object] = {}
        for item in value:
            if isinstance(item, str):
                k, sep, v = item.partition("=")
                if not sep or not k.strip():
                    raise ConfigError(f"expected --encoder-option KEY=VALUE, got {item!r}")
                pairs[k.strip()] = v.strip()
            else:
                k, v = item
                pairs[str(k)] = v
        return pairs
    return value


def deep_merge(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
