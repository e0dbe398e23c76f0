"""Presets: complete job descriptions in TOML, shipped with vsr or kept by the user.

This package is the only reader of preset files. A preset names the model and its scale (or a
target height), the temporal mode, the restoration filters, the encoder settings, tiling and
precision. Everything is checked when the file is loaded, before any work starts: unknown
keys, wrong types and bad values raise :class:`vsr.errors.ConfigError` naming the file and the
key, with a "did you mean" suggestion where one is close.

Where presets come from, first match wins (:mod:`vsr.presets.find`):

1. a path to a ``.toml`` file;
2. the user's folder, ``$XDG_CONFIG_HOME/vsr/presets/NAME.toml`` (``platformdirs``'
   configuration folder when ``XDG_CONFIG_HOME`` is not set); a user preset shadows a
   shipped one of the same name;
3. the presets shipped with vsr (``presets/`` in the source tree, ``vsr/_presets/`` in a wheel).

Schema: ``description`` (one line for `vsr presets list`), ``extends`` (start from another
preset, by name or path, then apply this one), and every option of :data:`vsr.options.OPTIONS`
that has a preset key, at the top level (``duration``, ``checkpoint_every``) or in its section
(``[model]``, ``[output]``, ``[filters]``, ``[encode]``); every key is optional and what is left
out takes the option's default. `vsr presets show NAME` prints a preset with every key filled in.

The jobs, one module each: :mod:`~vsr.presets.find` (where), :mod:`~vsr.presets.read` (load
and ``extends``), :mod:`~vsr.presets.check` (keys, types, ranges), :mod:`~vsr.presets.trust`
(encoder options that name files), :mod:`~vsr.presets.merge` (command-line options over a
preset: only options the user gave count, and they win), :mod:`~vsr.presets.write` (TOML).
"""

from __future__ import annotations

from vsr.config import TEMPORAL_MODES, Temporal
from vsr.presets.check import X26X_PRESETS
from vsr.presets.checker import COMMAND_LINE
from vsr.presets.find import (
    PresetInfo,
    find_preset,
    list_presets,
    shipped_presets_dir,
    user_presets_dir,
)
from vsr.presets.merge import merge
from vsr.presets.preset import Preset
from vsr.presets.read import load_preset, show_preset
from vsr.presets.trust import file_naming_options, option_keys, refuse_file_options

__all__ = [
    "COMMAND_LINE",
    "TEMPORAL_MODES",
    "X26X_PRESETS",
    "Preset",
    "PresetInfo",
    "Temporal",
    "file_naming_options",
    "find_preset",
    "list_presets",
    "load_preset",
    "merge",
    "option_keys",
    "refuse_file_options",
    "shipped_presets_dir",
    "show_preset",
    "user_presets_dir",
]
