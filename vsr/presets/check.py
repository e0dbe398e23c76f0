"""Presets: complete job descriptions in TOML, shipped with vsr or kept by the user.

This module is the only reader of preset files. A preset names the model and its scale (or a
target height), the temporal mode, the restoration filters, the encoder settings, tiling and
precision. Everything is checked when the file is loaded, before any work starts: unknown
keys, wrong types and bad values raise :class:`vsr.errors.ConfigError` naming the file and the
key, with a "did you mean" suggestion where one is close.

Where presets come from, first match wins:

1. a path to a ``.toml`` file;
2. the user's folder, ``$XDG_CONFIG_HOME/vsr/presets/NAME.toml`` (``platformdirs``'
   configuration folder when ``XDG_CONFIG_HOME`` is not set); a user preset shadows a
   shipped one of the same name;
3. the presets shipped with vsr (``presets/`` in the source tree, ``vsr/_presets/`` in a wheel).

Schema (every key is optional; what is left out takes the default shown)::

    description = ""            # one line for `vsr presets list`
    extends = "anime"           # start from another preset (name or path), then apply this one
    duration = 10.0             # process only the first N seconds (used by `preview`)
    checkpoint_every = 60.0     # save finished work after this many seconds of processing

    [model]
    name = "realesr-animevideov3"   # a model name, or a path to a checkpoint
    scale = 2                   # model output / input size; omit for the model's own scale
    tile = "off"                # "off", "auto", or tile size in input pixels (>= 16)
    precision = "auto"          # "auto", "fp32", "fp16", "bf16"
    temporal = "off"            # "off" or "stabilize"

    [output]
    height = 1080               # resize the model's output to this height (width keeps aspect)

    [filters]                   # run before the model (vsr.media.filters)
    deinterlace = "off"         # "auto", "off", "tff", "bff"
    deinterlace_mode = "frame"  # "frame" (one frame per frame) or "field" (double rate)
    deinterlacer = "bwdif"      # "bwdif" or "yadif"
    crop = "off"                # "off", "auto", or [width, height, x, y]
    square_pixels = false       # resample anamorphic video to square pixels
    denoise = "off"             # "off", "nlmeans", "atadenoise", "fftdnoiz", "hqdn3d"
    denoise_strength = 1.0      # 0 < s <= 10; 1 is moderate

    [encode]
    codec = "libx264"           # omit: libx264, or libx265 for sources above 8 bits
    crf = 18
    preset = "medium"           # the encoder's speed preset
    pix_fmt = "yuv420p10le"     # omit: keep the source's bit depth and chroma layout
    options = { tune = "film" } # passed to the encoder as-is

Command-line options override a preset through :func:`merge`; only options the user gave
count, and they win.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import av
import platformdirs

from vsr.config import PRECISIONS, EncodeOptions, ModelOptions, Precision
from vsr.errors import ConfigError, UnknownModelError, UsageError
from vsr.media.filters import (
    DEINTERLACE_CHOICES,
    DEINTERLACE_MODES,
    DEINTERLACERS,
    DENOISERS,
    FilterSpec,
    parse_crop,
)

Temporal = Literal["off", "stabilize"]
TEMPORAL_MODES: tuple[str, ...] = ("off", "stabilize")

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
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
COMMAND_LINE = "command line"

# Encoder options that name a file the encoder writes or reads: two-pass statistics (x264/x265
# `stats`, `passlogfile`, `pass` with its default file), CSV logs, YUV/reconstruction dumps,
# analysis save/load, quantiser, zone, lambda and scaling-list files, film-grain tables, Dolby
# Vision RPUs, HDR10+ metadata. A shared preset or job file must not make vsr overwrite or read
# a file elsewhere, so these are taken from the command line only.
_FILE_OPTION_KEYS = frozenset(
    {
        "stats",
        "passlogfile",
        "x265-stats",
        "pass",
        "scaling-list",
        "dhdr10-info",
        "abr-ladder",
        "vmaf-model-path",
        "second-pass-log",
    }
)
_FILE_OPTION_MARKERS = ("file", "stat", "csv", "dump", "recon", "analysis", "path", "table", "rpu")
# Options whose value is a ':'-separated list of an encoder library's own key=value settings.
_PARAM_LIST_OPTIONS = frozenset(
    {"x264-params", "x264opts", "x265-params", "svtav1-params", "aom-params", "qsv_params"}
)
# A value that looks like a path (a separator, ~, a leading dot) or a file name with an
# extension ("grain.tbl"); fractions such as 16/15 and numbers such as 4.1 are not.
_PATH_LIKE = re.compile(r"^[~.]|[/\\]|^[^=]*[A-Za-z_][^=]*\.[A-Za-z][A-Za-z0-9]{0,4}$")


def _names_a_file(key: str, value: str) -> bool:
    name = key.strip().lower().replace("_", "-")
    if name in _FILE_OPTION_KEYS or any(m in name for m in _FILE_OPTION_MARKERS):
        return True
    text = value.strip()
    if not text or re.fullmatch(r"[\d./:+-]+", text):
        return False
    return bool(_PATH_LIKE.search(text))


def file_naming_options(options: Mapping[str, object] | Iterable[tuple[str, object]]) -> list[str]:
    """The encoder options (``key`` or ``key: sub=value``) that name a file, if any."""
    pairs = options.items() if isinstance(options, Mapping) else options
    found: list[str] = []
    for key, raw in pairs:
        value = str(raw)
        if key.strip().lower() == "flags" and re.search(r"pass[12]", value):
            found.append(f"{key}={value}")
        elif key.strip().lower() in _PARAM_LIST_OPTIONS:
            for item in re.split(r"[:,]", value):
                sub, _sep, sub_value = item.partition("=")
                if sub.strip() and _names_a_file(sub, sub_value):
                    found.append(f"{key}: {item.strip()}")
        elif _names_a_file(key, value):
            found.append(f"{key}={value}")
    return found


def option_keys(options: object) -> list[str]:
    """The keys of encoder options given as a mapping or as KEY=VALUE / (key, value) items."""
    if options is None or isinstance(options, str):
        return []
    if isinstance(options, Mapping):
        return [str(k) for k in options]
    keys: list[str] = []
    if isinstance(options, Iterable):
        for item in options:
            if isinstance(item, str):
                keys.append(item.partition("=")[0].strip())
            elif isinstance(item, tuple) and item:
                keys.append(str(item[0]))
    return keys


def refuse_file_options(
    options: Mapping[str, object] | Iterable[tuple[str, object]],
    trusted: Iterable[str],
    fail: Any,
    where: str,
) -> None:
    """Raise ``fail(message, hint)`` for an option naming a file the command line didn't give."""
    given = set(trusted)
    pairs = list(options.items() if isinstance(options, Mapping) else options)
    found = file_naming_options([(k, v) for k, v in pairs if k not in given])
    if found:
        key = found[0].split(":")[0].split("=")[0]
        raise fail(
            f"{where}.{key} names a file ({'; '.join(found)}): a preset or job file may not "
            "make vsr "
            "write or read files",
            f"if you mean it, pass -e {key}=... on the command line yourself",
        )


# --------------------------------------------------------------------------- the preset


@dataclass(frozen=True)
class Preset:
    """A resolved preset: every field typed and checked."""

    name: str
    description: str = ""
    model: str = "realesr-animevideov3"
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
        return _dump_toml(_to_table(self))


@dataclass(frozen=True)
class PresetInfo:
    """One entry of `vsr presets list`."""

    name: str
    description: str
    path: Path
    builtin: bool
    # For a user preset that has the name of a shipped one: the shipped file it hides.
    shadows: Path | None = None


# --------------------------------------------------------------------------- where presets live


def shipped_presets_dir() -> Path:
    """The folder of the presets that come with vsr (wheel first, then the source tree)."""
    packaged = resources.files("vsr") / "_presets"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "presets"


def user_presets_dir() -> Path:
    """``$XDG_CONFIG_HOME/vsr/presets``, or the platform's configuration folder."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg:
        return Path(xdg) / "vsr" / "presets"
    return Path(platformdirs.user_config_dir("vsr", appauthor=False)) / "presets"


def _toml_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.toml")) if p.is_file()}


def list_presets() -> list[PresetInfo]:
    """Every preset by name, user presets replacing shipped ones of the same name."""
    shipped = _toml_files(shipped_presets_dir())
    user = _toml_files(user_presets_dir())
    infos: list[PresetInfo] = []
    for name in sorted(set(shipped) | set(user)):
        if name in user:
            path, builtin, shadows = user[name], False, shipped.get(name)
        else:
            path, builtin, shadows = shipped[name], True, None
        infos.append(PresetInfo(name, _description(path), path, builtin, shadows))
    return infos


def _description(path: Path) -> str:
    # Listing must not fail on one broken user file; `show` or `--preset` reports it fully.
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return f"(cannot be read: {exc})"
    value = table.get("description", "")
    return value if isinstance(value, str) else ""


def find_preset(name_or_path: str | Path) -> Path:
    """The file a preset name or path refers to, or ConfigError with a suggestion."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith(".toml") or os.sep in text or "/" in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigError("preset file not found", path=path)
        return path
    user = _toml_files(user_presets_dir())
    if text in user:
        return user[text]
    shipped = _toml_files(shipped_presets_dir())
    if text in shipped:
        return shipped[text]
    names = sorted(set(user) | set(shipped))
    raise ConfigError(
        f"unknown preset {text!r}",
        hint=_did_you_mean(text, names, fallback=f"presets: {', '.join(names)}"),
    )


def load_preset(name_or_path: str | Path, *, trusted_options: Iterable[str] = ()) -> Preset:
    """Load, resolve (``extends``) and check a preset by name or path.

    Encoder options that name a file are refused (a shared preset must not make vsr overwrite
    one) unless their key is in ``trusted_options``: the command line gives them, and its value
    replaces the preset's.
    """
    return _load(find_preset(name_or_path), chain=(), trusted=frozenset(trusted_options))


def _load(path: Path, chain: tuple[Path, ...], trusted: frozenset[str] = frozenset()) -> Preset:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(p.stem for p in (*chain, resolved))
        raise ConfigError(f"presets extend each other in a circle: {cycle}", path=path)
    table = _read_toml(path)
    base: Preset | None = None
    parent = table.get("extends")
    if parent is not None:
        if not isinstance(parent, str) or not parent:
            raise ConfigError(
                f"expected 'extends' to be a preset name or path, got {parent!r}", path=path
            )
        parent_path = Path(parent)
        if parent.endswith(".toml") and not parent_path.is_absolute():
            # A relative path is relative to the preset that names it, not the working dir.
            parent = str(path.parent / parent_path)
        if not parent.endswith(".toml") and parent == path.stem:
            # `extends = "anime"` inside the user's anime.toml means the shipped anime.
            shipped = _toml_files(shipped_presets_dir()).get(parent)
            if shipped is None:
                raise ConfigError(f"preset {parent!r} extends itself", path=path)
            base = _load(shipped, (*chain, resolved), trusted)
        else:
            try:
                base = _load(find_preset(parent), (*chain, resolved), trusted)
            except ConfigError as exc:
                raise ConfigError(f"extends: {exc}", path=path) from exc
    merged = _deep_merge(_to_table(base), table) if base is not None else table
    merged.pop("extends", None)
    return _parse(merged, name=path.stem, origin=path, source=path, trusted=trusted)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read preset ({exc.strerror or exc})", path=path) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("expected a UTF-8 text file", path=path) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path) from exc


def show_preset(name_or_path: str | Path) -> str:
    """Text for `vsr presets show`: where the preset comes from, then its resolved TOML."""
    path = find_preset(name_or_path)
    preset = _load(path, chain=())
    lines = [f"# preset: {preset.name}", f"# source: {path}"]
    shipped = _toml_files(shipped_presets_dir()).get(path.stem)
    in_user_dir = path.resolve().parent == user_presets_dir().resolve()
    if in_user_dir and shipped is not None and path.resolve() != shipped.resolve():
        lines.append(f"# user preset; it shadows the shipped preset at {shipped}")
    lines.append("# resolved values (defaults filled in, 'extends' applied):")
    return "\n".join(lines) + "\n" + preset.to_toml()


# --------------------------------------------------------------------------- overrides


# CLI option (its argparse/click destination name) -> (section, key) in the preset table.
OVERRIDE_KEYS: dict[str, tuple[str | None, str]] = {
    "model": ("model", "name"),
    "scale": ("model", "scale"),
    "tile": ("model", "tile"),
    "precision": ("model", "precision"),
    "temporal": ("model", "temporal"),
    "height": ("output", "height"),
    "deinterlace": ("filters", "deinterlace"),
    "deinterlace_mode": ("filters", "deinterlace_mode"),
    "deinterlacer": ("filters", "deinterlacer"),
    "crop": ("filters", "crop"),
    "square_pixels": ("filters", "square_pixels"),
    "denoise": ("filters", "denoise"),
    "denoise_strength": ("filters", "denoise_strength"),
    "codec": ("encode", "codec"),
    "crf": ("encode", "crf"),
    # Named apart from --preset, which picks the vsr preset itself.
    "encoder_preset": ("encode", "preset"),
    "pix_fmt": ("encode", "pix_fmt"),
    "encoder_options": ("encode", "options"),
    "duration": (None, "duration"),
    "checkpoint_every": (None, "checkpoint_every"),
}


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
        if key not in OVERRIDE_KEYS:
            raise ConfigError(
                f"unknown option {key!r}",
                path=None,
                hint=_did_you_mean(key, list(OVERRIDE_KEYS)),
            )
        section, name = OVERRIDE_KEYS[key]
        value = _override_value(key, value)
        if section is None:
            patch[name] = value
        else:
            patch.setdefault(section, {})[name] = value
    table = _to_table(preset)
    encode_patch = patch.get("encode", {})
    new_codec = encode_patch.get("codec")
    if new_codec is not None and new_codec != table.get("encode", {}).get("codec"):
        old = table.setdefault("encode", {})
        old.pop("preset", None)
        old.pop("options", None)
    merged = _deep_merge(table, patch)
    return _parse(merged, name=preset.name, origin=COMMAND_LINE, source=preset.source)


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


def _deep_merge(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- checking


def _did_you_mean(word: str, choices: Iterable[str], fallback: str | None = None) -> str | None:
    options = list(choices)
    close = difflib.get_close_matches(word, options, n=5, cutoff=0.6)
    if close:
        # difflib scores a swap of two letters ("libx246") like any two changes; among its
        # candidates, prefer the fewest edits counting a swap as one.
        best = min(close, key=lambda c: (_edit_distance(word, c), close.index(c)))
        return f"did you mean {best!r}?"
    if fallback is not None:
        return fallback
    return f"expected one of: {', '.join(options)}" if options else None


def _edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, changes, adjacent swaps."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[-1]


class _Checker:
    """Reads one table, naming the origin (a file or the command line) in every error."""

    def __init__(self, origin: Path | str) -> None:
        self.origin = origin

    def fail(self, message: str, hint: str | None = None) -> ConfigError:
        if isinstance(self.origin, Path):
            return ConfigError(message, path=self.origin, hint=hint)
        return ConfigError(f"{self.origin}: {message}", hint=hint)

    def keys(self, table: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
        allowed = list(allowed)
        for key in table:
            if key not in allowed:
                dotted = f"{where}.{key}" if where else key
                raise self.fail(
                    f"unknown key {dotted!r}",
                    hint=_did_you_mean(key, allowed, fallback=f"keys: {', '.join(allowed)}"),
                )

    def section(self, table: Mapping[str, Any], name: str) -> dict[str, Any]:
        value = table.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(f"expected [{name}] to be a table, got {_show(value)}")
        return value

    def choice(
        self, table: Mapping[str, Any], key: str, where: str, choices: Iterable[str], default: str
    ) -> str:
        value = table.get(key, default)
        options = list(choices)
        if not isinstance(value, str) or value not in options:
            hint = _did_you_mean(value, options) if isinstance(value, str) else None
            raise self.fail(
                f"expected {where}.{key} one of {', '.join(options)}, got {_show(value)}", hint
            )
        return value

    def number(
        self,
        table: Mapping[str, Any],
        key: str,
        where: str,
        *,
        low: float,
        high: float,
        integer: bool = False,
        low_open: bool = False,
    ) -> float | None:
        if key not in table:
            return None
        value = table[key]
        kind = "an integer" if integer else "a number"
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type or not math.isfinite(value):
            raise self.fail(f"expected {where}.{key} to be {kind}, got {_show(value)}")
        too_low = value <= low if low_open else value < low
        if too_low or value > high:
            low_text = f"above {low:g}" if low_open else f"at least {low:g}"
            raise self.fail(
                f"expected {where}.{key} {low_text} and at most {high:g}, got {value!r}"
            )
        return float(value)

    def string(self, table: Mapping[str, Any], key: str, where: str) -> str | None:
        if key not in table:
            return None
        value = table[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"expected {where}.{key} to be a non-empty string, got {_show(value)}")
        return value.strip()

    def boolean(self, table: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"expected {where}.{key} to be true or false, got {_show(value)}")
        return value


def _show(value: object) -> str:
    kind = {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)
    return f"{kind} {value!r}" if not isinstance(value, dict) else kind


_TOP_KEYS = (
    "description",
    "extends",
    "duration",
    "checkpoint_every",
    "model",
    "output",
    "filters",
    "encode",
)
_MODEL_KEYS = ("name", "scale", "tile", "precision", "temporal")
_OUTPUT_KEYS = ("height",)
_FILTER_KEYS = (
    "deinterlace",
    "deinterlace_mode",
    "deinterlacer",
    "crop",
    "square_pixels",
    "denoise",
    "denoise_strength",
)
_ENCODE_KEYS = ("codec", "crf", "preset", "pix_fmt", "options")


def _parse(
    table: Mapping[str, Any],
    *,
    name: str,
    origin: Path | str,
    source: Path | None,
    trusted: frozenset[str] = frozenset(),
) -> Preset:
    check = _Checker(origin)
    check.keys(table, _TOP_KEYS, "")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise check.fail(f"expected description to be a string, got {_show(description)}")
    if "extends" in table:
        raise check.fail("'extends' is only allowed in a preset file")
    duration = check.number(table, "duration", "preset", low=0, high=10 * 24 * 3600, low_open=True)
    checkpoint_every = check.number(
        table, "checkpoint_every", "preset", low=0, high=10 * 24 * 3600, low_open=True
    )

    model = check.section(table, "model")
    check.keys(model, _MODEL_KEYS, "model")
    # Checkpoint paths in a file are relative to that file; on the command line, to the cwd.
    model_name = _model_name(check, model, origin if isinstance(origin, Path) else None)
    scale = check.number(model, "scale", "model", low=0, high=16, low_open=True)
    tile = _tile(check, model)
    precision = check.choice(model, "precision", "model", PRECISIONS, "auto")
    temporal = check.choice(model, "temporal", "model", TEMPORAL_MODES, "off")

    output = check.section(table, "output")
    check.keys(output, _OUTPUT_KEYS, "output")
    height = check.number(output, "height", "output", low=16, high=8640, integer=True)
    if height is not None and int(height) % 2:
        raise check.fail(f"expected output.height to be even, got {int(height)}")

    filters = check.section(table, "filters")
    check.keys(filters, _FILTER_KEYS, "filters")
    filter_spec = _filters(check, filters)

    encode = check.section(table, "encode")
    check.keys(encode, _ENCODE_KEYS, "encode")
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


def _model_name(check: _Checker, model: Mapping[str, Any], preset_file: Path | None) -> str:
    """A model name the registry knows (lower case), or a path to a weights file."""
    from vsr.models import registry

    value = model.get("name", "realesr-animevideov3")
    if not isinstance(value, str) or not value.strip():
        raise check.fail(f"expected model.name to be a model name or path, got {_show(value)}")
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
    hint = _did_you_mean(value, names, fallback=f"models: {', '.join(names)}, or a checkpoint path")
    if check.origin == COMMAND_LINE:
        # --model NAME is a model error, like the same name reaching the registry.
        raise UnknownModelError(f"unknown model {value!r}", hint=hint)
    raise check.fail(f"unknown model.name {value!r}", hint=hint)


def _tile(check: _Checker, model: Mapping[str, Any]) -> int | None:
    value = model.get("tile", "off")
    if value == "off":
        return None
    if value == "auto":
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and 16 <= value <= 16384:
        return value
    hint = _did_you_mean(value, ["off", "auto"]) if isinstance(value, str) else None
    raise check.fail(
        f'expected model.tile "off", "auto" or a size from 16 to 16384, got {_show(value)}',
        hint,
    )


def _filters(check: _Checker, filters: Mapping[str, Any]) -> FilterSpec:
    deinterlace = check.choice(filters, "deinterlace", "filters", DEINTERLACE_CHOICES, "off")
    mode = check.choice(filters, "deinterlace_mode", "filters", DEINTERLACE_MODES, "frame")
    deinterlacer = check.choice(filters, "deinterlacer", "filters", DEINTERLACERS, "bwdif")
    crop_value = filters.get("crop", "off")
    crop: Any
    if isinstance(crop_value, str):
        if crop_value not in ("off", "auto"):
            try:
                crop = parse_crop(crop_value)
            except UsageError:
                raise check.fail(
                    f'expected filters.crop "off", "auto" or [width, height, x, y], '
                    f"got {_show(crop_value)}",
                    _did_you_mean(crop_value, ["off", "auto"], fallback=""),
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
            f'expected filters.crop "off", "auto" or [width, height, x, y], got {_show(crop_value)}'
        )
    square = check.boolean(filters, "square_pixels", "filters", False)
    denoise = check.choice(filters, "denoise", "filters", DENOISERS, "off")
    strength = check.number(filters, "denoise_strength", "filters", low=0, high=10, low_open=True)
    try:
        return FilterSpec(
            deinterlace=deinterlace,  # type: ignore[arg-type]
            deinterlace_mode=mode,  # type: ignore[arg-type]
            deinterlacer=deinterlacer,  # type: ignore[arg-type]
            crop=crop,
            square_pixels=square,
            denoise=denoise,  # type: ignore[arg-type]
            denoise_strength=strength if strength is not None else 1.0,
        )
    except UsageError as exc:
        raise check.fail(f"[filters]: {exc.message}", exc.hint) from exc


def _video_encoders() -> list[str]:
    names = []
    for codec_name in av.codecs_available:
        try:
            if av.Codec(codec_name, "w").type == "video":
                names.append(codec_name)
        except (ValueError, av.FFmpegError):
            continue
    return sorted(names)


def _pixel_formats() -> list[str]:
    import av.video.format as video_format

    return sorted(getattr(video_format, "names", ()))


def _encode(check: _Checker, encode: Mapping[str, Any]) -> EncodeOptions:
    codec = check.string(encode, "codec", "encode")
    if codec is not None:
        try:
            is_video_encoder = av.Codec(codec, "w").type == "video"
        except (ValueError, av.FFmpegError):
            is_video_encoder = False
        if not is_video_encoder:
            raise check.fail(
                f"expected encode.codec to be a video encoder of this FFmpeg, got {codec!r}",
                _did_you_mean(
                    codec,
                    _video_encoders(),
                    fallback="e.g. libx264, libx265, libsvtav1, libvpx-vp9, ffv1, prores_ks",
                ),
            )
    crf = check.number(encode, "crf", "encode", low=0, high=63)
    speed = check.string(encode, "preset", "encode")
    x26x = (codec or "libx264") in ("libx264", "libx265", "libx264rgb")
    if speed is not None and x26x and speed not in X26X_PRESETS:
        raise check.fail(
            f"expected encode.preset one of {', '.join(X26X_PRESETS)}, got {speed!r}",
            _did_you_mean(speed, X26X_PRESETS),
        )
    pix_fmt = check.string(encode, "pix_fmt", "encode")
    if pix_fmt is not None:
        try:
            av.VideoFormat(pix_fmt)
        except ValueError:
            raise check.fail(
                f"expected encode.pix_fmt to be a pixel format, got {pix_fmt!r}",
                _did_you_mean(pix_fmt, _pixel_formats()),
            ) from None
    options_value = encode.get("options", {})
    if not isinstance(options_value, Mapping):
        raise check.fail(
            f"expected encode.options to be a table of key = value, got {_show(options_value)}"
        )
    pairs: list[tuple[str, str]] = []
    for key, value in options_value.items():
        if isinstance(value, bool):
            text = "1" if value else "0"
        elif isinstance(value, str | int | float):
            text = str(value)
        else:
            raise check.fail(
                f"expected encode.options.{key} to be a string or number, got {_show(value)}"
            )
        pairs.append((str(key), text))
    try:
        return EncodeOptions(
            codec=codec, crf=crf, preset=speed, pix_fmt=pix_fmt, options=tuple(pairs)
        )
    except UsageError as exc:
        raise check.fail(f"[encode]: {exc.message}", exc.hint) from exc


# --------------------------------------------------------------------------- writing


def _to_table(preset: Preset) -> dict[str, Any]:
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


def _dump_toml(table: Mapping[str, Any]) -> str:
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
