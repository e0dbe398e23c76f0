"""A handful of random mutations through scripts/fuzz_inputs.py's mutator, run in-process.

The script runs many more as subprocesses with a timeout (see its docstring); this keeps the
classification honest in CI: every damaged file either works or fails with one clean line,
and leaves nothing behind.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import clips
import pytest
from conftest import FAST, CliResult, files_in

REPO = Path(__file__).resolve().parent.parent


def fuzz_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_inputs", REPO / "scripts/fuzz_inputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("kind", "seed", "skip"),
    [
        ("truncate", 1, False),
        ("truncate", 2, True),
        ("bitflip", 3, True),
        ("zero", 4, False),
        ("random", 5, True),
        ("header", 6, False),
    ],
)
def test_damaged_clip_fails_cleanly_or_works(
    cli: Callable[..., CliResult], tmp_path: Path, kind: str, seed: int, skip: bool
) -> None:
    fuzz = fuzz_module()
    src = clips.write_video(
        tmp_path / "src.mkv", frames=16, audio=[("aac", 48000, "stereo")], options={"bf": "2"}
    )
    data, detail = fuzz.mutate(src.path.read_bytes(), kind, random.Random(seed))
    damaged = tmp_path / "in" / "damaged.mkv"
    damaged.parent.mkdir()
    damaged.write_bytes(data)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "out.mp4"
    result = cli("upscale", damaged, "-o", out, *FAST, *(["--skip-corrupt"] if skip else []))
    context = f"{kind} ({detail}): exit {result.code}, stderr {result.err!r}"
    assert result.code in fuzz.GOOD_CODES, context
    assert "Traceback" not in result.err and "unexpected" not in result.err.lower(), context
    if result.code == 0:
        assert fuzz.output_holds_video(out), context
        assert files_in(out_dir) == {"out.mp4"}, context
    else:
        assert [line for line in result.err.splitlines() if line.startswith("vsr: error:")]
        assert files_in(out_dir) == set(), context
