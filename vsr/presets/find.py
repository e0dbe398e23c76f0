"""Finding presets: a path, the user's folder, then the presets shipped with vsr."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import platformdirs

from vsr.errors import ConfigError
from vsr.presets.checker import suggest


@dataclass(frozen=True)
class PresetInfo:
    """One entry of `vsr presets list`."""

    name: str
    description: str
    path: Path
    builtin: bool
    # For a user preset that has the name of a shipped one: the shipped file it hides.
    shadows: Path | None = None


def shipped_presets_dir() -> Path:
    """The folder of the presets that come with vsr (wheel first, then the source tree)."""
    packaged = resources.files("vsr") / "_presets"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "presets"


def user_presets_dir() -> Path:
    """``$XDG_CONFIG_HOME/vsr/presets``, or the platform's configuration folder."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg:
        return Path(xdg) / "vsr" / "presets"
    return Path(platformdirs.user_config_dir("vsr", appauthor=False)) / "presets"


def toml_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.toml")) if p.is_file()}


def list_presets() -> list[PresetInfo]:
    """Every preset by name, user presets replacing shipped ones of the same name."""
    shipped = toml_files(shipped_presets_dir())
    user = toml_files(user_presets_dir())
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
    user = toml_files(user_presets_dir())
    if text in user:
        return user[text]
    shipped = toml_files(shipped_presets_dir())
    if text in shipped:
        return shipped[text]
    names = sorted(set(user) | set(shipped))
    raise ConfigError(
        f"unknown preset {text!r}",
        hint=suggest(text, names, fallback=f"presets: {', '.join(names)}"),
    )
