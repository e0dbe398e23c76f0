"""Checking a preset table: every key known, every value typed and in range, before work starts.

Errors are :class:`vsr.errors.ConfigError` naming the file (or the command line) and the key,
with a did-you-mean where one is close. Which keys each section holds comes from the option
table (vsr.options); how each value is checked is here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vsr.config import EncodeOptions
from vsr.errors import UnknownModelError, UsageError
from vsr.media import capabilities
from vsr.media.filters import DENOISERS, FilterSpec, parse_crop
from vsr.options import PRESET_SECTIONS, Option, option, preset_keys
from vsr.presets.checker import COMMAND_LINE, Checker, show, suggest
from vsr.presets.preset import Preset
from vsr.presets.trust import refuse_file_options

# x264 and x265 share these speed presets; other encoders are checked when they open.
X26X_PRESETS: tuple[str, ...] = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)

# The keys a preset file holds: its own (description, extends), the options' top-level keys,
# then one [section] per group of option keys.
_TOP_KEYS = ("description", "extends", *preset_keys(None), *PRESET_SECTIONS)


def parse_table(
    table: Mapping[str, Any],
    *,
    name: str,
    origin: Path | str,
    source: Path | None,
    trusted: frozenset[str] = frozenset(),
) -> Preset:
    check = Checker(origin)
    check.keys(table, _TOP_KEYS, "")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise check.fail(f"expected description to be a string, got {show(description)}")
    if "extends" in table:
        raise check.fail("'extends' is only allowed in a preset file")
    duration = _number(check, table, option("duration"))
    checkpoint_every = _number(check, table, option("checkpoint_every"))

    model = check.section(table, "model")
    check.keys(model, preset_keys("model"), "model")
    # Checkpoint paths in a file are relative to that file; on the command line, to the cwd.
    model_name = _model_name(check, model, origin if isinstance(origin, Path) else None)
    scale = _number(check, model, option("scale"))
    tile = _tile(check, model)
    precision = _choice(check, model, option("precision"))
    temporal = _choice(check, model, option("temporal"))

    output = check.section(table, "output")
    check.keys(output, preset_keys("output"), "output")
    height = _number(check, output, option("height"))
    if height is not None and int(height) % 2:
        raise check.fail(f"expected output.height to be even, got {int(height)}")

    filters = check.section(table, "filters")
    check.keys(filters, preset_keys("filters"), "filters")
    filter_spec = _filters(check, filters)

    encode = check.section(table, "encode")
    check.keys(encode, preset_keys("encode"), "encode")
    encode_options = _encode(check, encode)
    if isinstance(origin, Path):
        refuse_file_options(encode_options.options, trusted, check.fail, "encode.options")

    return Preset(
        name=name,
        description=description,
        model=model_name,
        scale=scale,
        tile=tile,
        precision=precision,  # type: ignore[arg-type]
        temporal=temporal,  # type: ignore[arg-type]
        height=int(height) if height is not None else None,
        filters=filter_spec,
        encode=encode_options,
        duration=duration,
        checkpoint_every=checkpoint_every,
        source=source,
    )


def _choice(
    check: Checker, table: Mapping[str, Any], opt: Option, choices: tuple[str, ...] | None = None
) -> str:
    """One of the option's choices (or ``choices``, where the preset knows more than the CLI)."""
    section, key = opt.preset or (None, opt.name)
    return check.choice(table, key, section or "preset", choices or opt.choices or (), opt.default)


def _bounds(opt: Option) -> tuple[float, float]:
    return opt.bounds or (-math.inf, math.inf)


def _number(check: Checker, table: Mapping[str, Any], opt: Option) -> float | None:
    """The option's number, checked against its type and bounds; None when not given."""
    section, key = opt.preset or (None, opt.name)
    low, high = _bounds(opt)
    integer = opt.accepts == (int,)
    where = section or "preset"
    return check.number(
        table, key, where, low=low, high=high, integer=integer, low_open=opt.above_low
    )


def _model_name(check: Checker, model: Mapping[str, Any], preset_file: Path | None) -> str:
    """A model name the registry knows (lower case), or a path to a weights file."""
    from vsr.models import registry

    value = model.get("name", option("model").default)
    if not isinstance(value, str) or not value.strip():
        raise check.fail(f"expected model.name to be a model name or path, got {show(value)}")
    value = value.strip()
    names = registry.model_names()
    if value.lower() in names:
        return value.lower()
    if registry.names_a_file(value):
        path = Path(value).expanduser()
        if (
            not path.is_absolute()
            and preset_file is not None
            and (preset_file.parent / path).exists()
        ):
            # A checkpoint named next to the preset that uses it.
            path = preset_file.parent / path
        return str(path)
    hint = suggest(value, names, fallback=f"models: {', '.join(names)}, or a checkpoint path")
    if check.origin == COMMAND_LINE:
        # --model NAME is a model error, like the same name reaching the registry.
        raise UnknownModelError(f"unknown model {value!r}", hint=hint)
    raise check.fail(f"unknown model.name {value!r}", hint=hint)


def _tile(check: Checker, model: Mapping[str, Any]) -> int | None:
    value = model.get("tile", option("tile").default)
    if value == "off":
        return None
    if value == "auto":
        return 0
    low, high = (int(v) for v in _bounds(option("tile")))
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    hint = suggest(value, ["off", "auto"]) if isinstance(value, str) else None
    raise check.fail(
        f'expected model.tile "off", "auto" or a size from {low} to {high}, got {show(value)}',
        hint,
    )


def _filters(check: Checker, filters: Mapping[str, Any]) -> FilterSpec:
    deinterlace = _choice(check, filters, option("deinterlace"))
    mode = _choice(check, filters, option("deinterlace_mode"))
    deinterlacer = _choice(check, filters, option("deinterlacer"))
    crop_value = filters.get("crop", option("crop").default)
    crop: Any
    if isinstance(crop_value, str):
        if crop_value not in ("off", "auto"):
            try:
                crop = parse_crop(crop_value)
            except UsageError:
                raise check.fail(
                    f'expected filters.crop "off", "auto" or [width, height, x, y], '
                    f"got {show(crop_value)}",
                    suggest(crop_value, ["off", "auto"], fallback=""),
                ) from None
        else:
            crop = crop_value
    elif (
        isinstance(crop_value, list | tuple)
        and len(crop_value) == 4
        and all(isinstance(v, int) and not isinstance(v, bool) for v in crop_value)
    ):
        crop = tuple(crop_value)
    else:
        raise check.fail(
            f'expected filters.crop "off", "auto" or [width, height, x, y], got {show(crop_value)}'
        )
    square = check.boolean(filters, "square_pixels", "filters", False)
    denoise = _choice(check, filters, option("denoise"), DENOISERS)
    strength = _number(check, filters, option("denoise_strength"))
    try:
        return FilterSpec(
            deinterlace=deinterlace,  # type: ignore[arg-type]
            deinterlace_mode=mode,  # type: ignore[arg-type]
            deinterlacer=deinterlacer,  # type: ignore[arg-type]
            crop=crop,
            square_pixels=square,
            denoise=denoise,  # type: ignore[arg-type]
            denoise_strength=strength
            if strength is not None
            else option("denoise_strength").default,
        )
    except UsageError as exc:
        raise check.fail(f"[filters]: {exc.message}", exc.hint) from exc


def _video_encoders() -> list[str]:
    return capabilities.video_encoders()


def _pixel_formats() -> list[str]:
    return capabilities.pixel_formats()


def _encode(check: Checker, encode: Mapping[str, Any]) -> EncodeOptions:
    codec = check.string(encode, "codec", "encode")
    if codec is not None and not capabilities.is_video_encoder(codec):
        raise check.fail(
            f"expected encode.codec to be a video encoder of this FFmpeg, got {codec!r}",
            suggest(
                codec,
                _video_encoders(),
                fallback="e.g. libx264, libx265, libsvtav1, libvpx-vp9, ffv1, prores_ks",
            ),
        )
    crf = _number(check, encode, option("crf"))
    speed = check.string(encode, "preset", "encode")
    x26x = (codec or "libx264") in ("libx264", "libx265", "libx264rgb")
    if speed is not None and x26x and speed not in X26X_PRESETS:
        raise check.fail(
            f"expected encode.preset one of {', '.join(X26X_PRESETS)}, got {speed!r}",
            suggest(speed, X26X_PRESETS),
        )
    pix_fmt = check.string(encode, "pix_fmt", "encode")
    if pix_fmt is not None and not capabilities.is_pixel_format(pix_fmt):
        raise check.fail(
            f"expected encode.pix_fmt to be a pixel format, got {pix_fmt!r}",
            suggest(pix_fmt, _pixel_formats()),
        )
    options_value = encode.get("options", {})
    if not isinstance(options_value, Mapping):
        raise check.fail(
            f"expected encode.options to be a table of key = value, got {show(options_value)}"
        )
    pairs: list[tuple[str, str]] = []
    for key, value in options_value.items():
        if isinstance(value, bool):
            text = "1" if value else "0"
        elif isinstance(value, str | int | float):
            text = str(value)
        else:
            raise check.fail(
                f"expected encode.options.{key} to be a string or number, got {show(value)}"
            )
        pairs.append((str(key), text))
    try:
        return EncodeOptions(
            codec=codec, crf=crf, preset=speed, pix_fmt=pix_fmt, options=tuple(pairs)
        )
    except UsageError as exc:
        raise check.fail(f"[encode]: {exc.message}", exc.hint) from exc
