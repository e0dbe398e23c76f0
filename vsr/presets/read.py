"""Reading a preset: the TOML file, its ``extends`` chain, and `vsr presets show`."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vsr.errors import ConfigError
from vsr.presets.check import parse_table
from vsr.presets.find import find_preset, shipped_presets_dir, toml_files, user_presets_dir
from vsr.presets.merge import deep_merge
from vsr.presets.preset import Preset
from vsr.presets.write import to_table


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
            shipped = toml_files(shipped_presets_dir()).get(parent)
            if shipped is None:
                raise ConfigError(f"preset {parent!r} extends itself", path=path)
            base = _load(shipped, (*chain, resolved), trusted)
        else:
            try:
                base = _load(find_preset(parent), (*chain, resolved), trusted)
            except ConfigError as exc:
                raise ConfigError(f"extends: {exc}", path=path) from exc
    merged = deep_merge(to_table(base), table) if base is not None else table
    merged.pop("extends", None)
    return parse_table(merged, name=path.stem, origin=path, source=path, trusted=trusted)


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
    shipped = toml_files(shipped_presets_dir()).get(path.stem)
    in_user_dir = path.resolve().parent == user_presets_dir().resolve()
    if in_user_dir and shipped is not None and path.resolve() != shipped.resolve():
        lines.append(f"# user preset; it shadows the shipped preset at {shipped}")
    lines.append("# resolved values (defaults filled in, 'extends' applied):")
    return "\n".join(lines) + "\n" + preset.to_toml()
