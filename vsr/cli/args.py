"""The job options' flags, generated from the option table, and turning them back into options.

`vsr upscale`, `bench`, `batch` and `preview` take the options of vsr.options.OPTIONS: each
option's flag, help, type, choices, default and group come from its row there, so the commands
cannot drift apart and a new option is one row. A command adds its own flags (input, -o,
--json ...) itself and places the table's ungrouped options among them with `add_options`.
"""

from __future__ import annotations

import argparse
from typing import Any

from vsr.config import UpscaleOptions, parse_key_values
from vsr.options import GROUPS, MODEL_DEFAULTS, OPTIONS, Option, for_command, option


def add_option(parser: Any, opt: Option, command: str) -> None:
    """One option's flag on a parser or argument group, as `command` shows it."""
    kwargs: dict[str, Any] = {}
    default = opt.cli_default(command)
    if opt.flag == "switch":
        kwargs["action"] = "store_true"
    elif opt.flag == "append":
        kwargs["action"] = "append"
    else:
        kwargs.update(type=opt.parse, choices=opt.choices)
    if default is not False:
        kwargs["default"] = default
    if opt.metavar is not None:
        kwargs["metavar"] = opt.metavar
    kwargs["help"] = argparse.SUPPRESS if opt.hidden else opt.help_for(command)
    parser.add_argument(*opt.flags, **kwargs)


def add_options(parser: argparse.ArgumentParser, command: str, *names: str) -> None:
    """The table's ungrouped options of `command`, where the command wants them among its own."""
    for name in names:
        opt = option(name)
        if command not in opt.commands or opt.group is not None:
            raise ValueError(f"option {name!r} is not one of {command}'s own options")
        add_option(parser, opt, command)


def add_option_groups(parser: argparse.ArgumentParser, command: str) -> None:
    """The argument groups (model, frame path, restoration, encoding) `command` takes."""
    for title in GROUPS:
        options = for_command(command, title)
        if options:
            group = parser.add_argument_group(title)
            for opt in options:
                add_option(group, opt, command)


def _given(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Every table option of `command`, by name, as parsed."""
    return {o.name: getattr(args, o.dest) for o in OPTIONS if command in o.commands}


def preset_from_args(
    args: argparse.Namespace, command: str
) -> tuple[str | None, dict[str, object]]:
    """(vsr preset, the preset keys the user gave) from a command's arguments."""
    from vsr.api import split_preset

    given = _given(args, command)
    preset, speed = split_preset(given["preset"], given["encoder_preset"])
    pairs = parse_key_values(given["encoder_options"] or [], "--encoder-option")
    overrides = {o.name: given[o.name] for o in OPTIONS if o.target == "preset" and o.name in given}
    overrides["encoder_preset"] = speed
    overrides["encoder_options"] = dict(pairs) if pairs else None
    return preset, {k: v for k, v in overrides.items() if v is not None}


def model_extra_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Model options presets do not hold; a value left at its default is not an override."""
    extra: dict[str, Any] = {}
    for key, default in MODEL_DEFAULTS.items():
        value = getattr(args, key, None)
        if value is not None and value != default:
            extra[key] = value
    return extra


def options_from_args(args: argparse.Namespace, command: str) -> UpscaleOptions:
    """The pipeline options of `vsr upscale` and `vsr bench` arguments."""
    from vsr.api import build_options

    preset, overrides = preset_from_args(args, command)
    given = _given(args, command)
    run = {k: v for k, v in given.items() if option(k).target in ("model", "run")}
    return build_options(preset=preset, overrides=overrides, **run)
