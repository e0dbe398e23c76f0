"""Encoder options in a preset or job file that would make vsr write or read a file.

Presets and job files get shared, so they are not trusted to name files: two-pass statistics,
logs, dumps and the like are taken from the command line (or the Python caller) only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

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
