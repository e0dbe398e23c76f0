"""One option table: the CLI flags, preset keys, job-file keys and API keywords all come from it.

Nothing here lists options by hand: each surface is read back from what vsr built (the argparse
parsers, the preset checker's and the job-file checker's own "keys: ..." lists, the API's
signature) and compared with vsr.options.OPTIONS.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vsr.config import ModelOptions, UpscaleOptions
from vsr.errors import ConfigError, UsageError
from vsr.options import (
    API_OPTIONS,
    JOB_COMMANDS,
    JOB_OPTIONS,
    OPTIONS,
    OVERRIDES,
    PRESET_SECTIONS,
    did_you_mean,
    edit_distance,
    option,
    type_error,
)


@pytest.fixture(autouse=True)
def no_user_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


# --------------------------------------------------------------------------- the table itself


def test_names_and_flags_are_unique() -> None:
    names = [o.name for o in OPTIONS]
    assert len(names) == len(set(names))
    for command in JOB_COMMANDS:
        flags = [f for o in OPTIONS if command in o.commands for f in o.flags]
        assert len(flags) == len(set(flags)), command
    for o in OPTIONS:
        assert (o.flags == ()) == (not o.commands), o.name
        assert o.target != "preset" or (o.preset is not None and o.job), o.name
        assert o.choices is None or o.default is None or o.default in o.choices, o.name


def test_one_did_you_mean() -> None:
    assert did_you_mean("sacle", ["scale", "tile"]) == "did you mean 'scale'?"
    assert did_you_mean("libx246", ["libx264", "libx265"]) == "did you mean 'libx264'?"
    assert did_you_mean("zzzz", ["scale"]) is None
    assert edit_distance("libx246", "libx264") == 1


# --------------------------------------------------------------------------- the command line


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _group_of(parser: argparse.ArgumentParser) -> dict[int, str | None]:
    titles: dict[int, str | None] = {}
    for group in parser._action_groups:
        for action in group._group_actions:
            titles[id(action)] = group.title
    return titles


def _parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    from vsr.cli import build_parser

    commands = _subparsers(build_parser())
    for command in JOB_COMMANDS:
        yield command, commands[command]


def test_cli_flags_are_the_tables() -> None:
    table_dests = {o.dest for o in OPTIONS}
    for command, parser in _parsers():
        expected = {o.name: o for o in OPTIONS if command in o.commands}
        found: dict[str, argparse.Action] = {}
        for action in parser._actions:
            matches = [o for o in expected.values() if set(o.flags) == set(action.option_strings)]
            if matches:
                found[matches[0].name] = action
            else:
                # A command's own flag (--json, --dry-run ...) is no job option in disguise.
                assert action.dest not in table_dests, (command, action.option_strings)
                assert action.dest not in JOB_OPTIONS + API_OPTIONS, (command, action.dest)
        assert set(found) == set(expected), command
        groups = _group_of(parser)
        for name, action in found.items():
            o = expected[name]
            assert list(action.option_strings) == list(o.flags), (command, name)
            assert action.dest == o.dest
            assert action.default == o.cli_default(command), (command, name)
            assert (tuple(action.choices) if action.choices else None) == o.choices, name
            hidden = action.help == argparse.SUPPRESS
            assert hidden == o.hidden, name
            assert hidden or action.help == o.help_for(command), (command, name)
            assert action.metavar == o.metavar, name
            assert action.type is o.parse, (command, name)
            assert groups[id(action)] == (o.group or "options"), (command, name)
            switch = isinstance(action, argparse._StoreTrueAction)
            assert switch == (o.flag == "switch"), name
            assert isinstance(action, argparse._AppendAction) == (o.flag == "append"), name


def test_cli_groups_keep_the_tables_order() -> None:
    for command, parser in _parsers():
        by_flags = {o.flags: o for o in OPTIONS if command in o.commands}
        seen = [
            by_flags[tuple(a.option_strings)].name
            for a in parser._actions
            if tuple(a.option_strings) in by_flags
        ]
        assert seen == [o.name for o in OPTIONS if command in o.commands], command


# --------------------------------------------------------------------------- presets


def _listed_keys(error: pytest.ExceptionInfo[Exception]) -> list[str]:
    match = re.search(r"keys: ([a-z_, ]+)", str(error.value))
    assert match, str(error.value)
    return [k.strip() for k in match.group(1).split(",")]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_preset_keys_are_the_tables(tmp_path: Path) -> None:
    from vsr.presets import load_preset

    with pytest.raises(ConfigError) as err:
        load_preset(_write(tmp_path / "top.toml", "zzzzzzzz = 1\n"))
    top = _listed_keys(err)
    top_level = [k for s, k in OVERRIDES.values() if s is None]
    assert top == ["description", "extends", *top_level, *PRESET_SECTIONS]
    for section in PRESET_SECTIONS:
        with pytest.raises(ConfigError) as err:
            load_preset(_write(tmp_path / f"{section}.toml", f"[{section}]\nzzzzzzzz = 1\n"))
        assert _listed_keys(err) == [k for s, k in OVERRIDES.values() if s == section], section
    assert set(OVERRIDES) == {o.name for o in OPTIONS if o.target == "preset"}


def test_preset_defaults_and_choices_are_the_tables(tmp_path: Path) -> None:
    from vsr.presets import Preset, load_preset
    from vsr.presets.write import to_table

    written = to_table(Preset(name="defaults"))
    for name, (section, key) in OVERRIDES.items():
        o = option(name)
        where = written if section is None else written.get(section, {})
        if key in where:
            assert where[key] == o.default, name
        else:
            assert o.default is None or name == "checkpoint_every", name
        if o.choices is None:
            continue
        text = f'{key} = "zzzz"\n' if section is None else f'[{section}]\n{key} = "zzzz"\n'
        with pytest.raises(ConfigError, match=rf"one of {', '.join(o.choices)}, got"):
            load_preset(_write(tmp_path / f"{name}.toml", text))
    assert option("checkpoint_every").default == UpscaleOptions.checkpoint_every


def test_preset_numbers_keep_the_tables_bounds(tmp_path: Path) -> None:
    from vsr.presets import load_preset

    numbers = [o for o in OPTIONS if o.bounds is not None and o.preset and o.name != "tile"]
    assert numbers
    for o in numbers:
        assert o.preset is not None and o.bounds is not None
        section, key = o.preset
        low, high = o.bounds
        head = "" if section is None else f"[{section}]\n"
        load_preset(_write(tmp_path / "ok.toml", f"{head}{key} = {int(high)}\n"))
        with pytest.raises(ConfigError, match=rf"at most {high:g}, got"):
            load_preset(_write(tmp_path / "high.toml", f"{head}{key} = {int(high) * 2}\n"))
        below = f"above {low:g}" if o.above_low else f"at least {low:g}"
        with pytest.raises(ConfigError, match=below):
            load_preset(_write(tmp_path / "low.toml", f"{head}{key} = {int(low) - 2}\n"))
    with pytest.raises(ConfigError, match="a size from 16 to 16384"):
        load_preset(_write(tmp_path / "tile.toml", "[model]\ntile = 8\n"))


# --------------------------------------------------------------------------- job files


def test_job_file_keys_are_the_tables(tmp_path: Path) -> None:
    from vsr.batch import plan_job_file

    (tmp_path / "in.mp4").write_bytes(b"")
    job = '[[job]]\ninput = "in.mp4"\n'
    with pytest.raises(ConfigError) as err:
        plan_job_file(_write(tmp_path / "top.toml", "zzzzzzzz = 1\n" + job))
    assert _listed_keys(err) == ["job", "output_dir", *JOB_OPTIONS]
    with pytest.raises(ConfigError) as err:
        plan_job_file(_write(tmp_path / "job.toml", job + "zzzzzzzz = 1\n"))
    assert _listed_keys(err) == ["input", "output", *JOB_OPTIONS]
    assert set(JOB_OPTIONS) == {o.name for o in OPTIONS if o.job}


@pytest.mark.parametrize("name", JOB_OPTIONS)
def test_job_file_values_are_typed_by_the_table(name: str, tmp_path: Path) -> None:
    from vsr.batch import plan_job_file

    o = option(name)
    wrong: Any = {"x": 1} if dict not in o.accepts else "text"
    assert type_error(name, wrong) == f"expected {name} to be {o.expects}, got {wrong!r}"
    toml = "{ x = 1 }" if dict not in o.accepts else '"text"'
    path = _write(tmp_path / "jobs.toml", f'{name} = {toml}\n[[job]]\ninput = "in.mp4"\n')
    with pytest.raises(ConfigError, match=re.escape(f"expected {name} to be {o.expects}")):
        plan_job_file(path)


# --------------------------------------------------------------------------- the Python API


def test_api_keywords_are_the_tables() -> None:
    import vsr

    params = inspect.signature(vsr.upscale).parameters
    keywords = [p for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    names = [p.name for p in keywords if p.name not in ("progress", "notify")]
    assert names == list(API_OPTIONS)
    assert set(API_OPTIONS) == {o.name for o in OPTIONS if o.api}
    for p in keywords:
        if p.name in API_OPTIONS:
            assert p.default == option(p.name).api_default, p.name


def test_api_refuses_an_unknown_keyword_with_a_suggestion(tmp_path: Path) -> None:
    import vsr

    with pytest.raises(TypeError, match=r"'sacle' \(did you mean 'scale'\?\)"):
        vsr.upscale(tmp_path / "in.mp4", tmp_path / "out.mp4", sacle=2)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'zzzzzz'$"):
        vsr.upscale(tmp_path / "in.mp4", tmp_path / "out.mp4", zzzzzz=2)


def test_run_defaults_are_the_dataclasses() -> None:
    """What presets don't hold lands on ModelOptions or UpscaleOptions with the same default."""
    fields = {
        "model": {f.name: f for f in dataclasses.fields(ModelOptions)},
        "run": {f.name: f for f in dataclasses.fields(UpscaleOptions)},
    }
    for o in OPTIONS:
        if o.target in fields:
            assert fields[o.target][o.name].default == o.default, o.name
            if o.choices is not None:
                with pytest.raises(UsageError, match=", ".join(o.choices)):
                    if o.target == "run":
                        UpscaleOptions(**{o.name: "zzzz"})
                    else:
                        ModelOptions(**{o.name: "zzzz"})


def test_overrides_of_every_surface_reach_the_same_option(tmp_path: Path) -> None:
    """A value given through the API and through a job file resolves to the same options."""
    from vsr.api import build_options
    from vsr.batch import plan_job_file

    (tmp_path / "in.mp4").write_bytes(b"")
    values = {"crf": 20, "encoder_preset": "fast", "scale": 2, "deinterlacer": "yadif"}
    toml = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in values.items())
    path = _write(tmp_path / "jobs.toml", toml + '[[job]]\ninput = "in.mp4"\n')
    try:
        jobs = plan_job_file(path, output_dir=tmp_path / "out")
    except UsageError as exc:  # an empty input is refused only when it runs
        pytest.fail(str(exc))
    assert jobs[0].options.encode == build_options(overrides=values).encode
    assert jobs[0].options.filters == build_options(overrides=values).filters
