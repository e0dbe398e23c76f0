"""Shared fixtures: run the CLI in-process or as a real subprocess, and a media cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
# Generated clips use the fast bicubic processor at 2x unless a test says otherwise.
FAST = ["--model", "bicubic", "--scale", "2"]


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def check_one_error_line(result: CliResult, code: int, *must_contain: str) -> str:
    """The CLI's contract for failures: the exit code, one `vsr: error:` line, no traceback."""
    assert result.code == code, (
        f"expected exit code {code}, got {result.code}; stderr: {result.err!r}"
    )
    assert "Traceback" not in result.err, result.err
    lines = result.error_lines
    assert len(lines) == 1, f"expected exactly one line on stderr, got {lines!r}"
    line = lines[0]
    assert line.startswith("vsr: error: "), line
    for text in must_contain:
        assert text.lower() in line.lower(), f"expected {text!r} in {line!r}"
    return line


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `vsr ARGS` in this process through `vsr.cli.main` and capture what it prints."""

    def run(*args: str | os.PathLike[str]) -> CliResult:
        from vsr.cli import main

        capsys.readouterr()  # drop anything printed before this call
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # main() should return, but argparse may still exit
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code=code, out=captured.out, err=captured.err)

    return run


def run_vsr_subprocess(
    *args: str | os.PathLike[str], timeout: float = 120, cwd: Path | None = None
) -> CliResult:
    """Run `python -m vsr ARGS` as a user would (a fresh interpreter, no TTY)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "vsr", *[str(a) for a in args]],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    return CliResult(code=proc.returncode, out=proc.stdout, err=proc.stderr)


@pytest.fixture
def vsr_subprocess() -> Callable[..., CliResult]:
    return run_vsr_subprocess


def files_in(directory: Path) -> set[str]:
    """Every entry in a directory, hidden ones included (temporary outputs are hidden)."""
    return {p.name for p in directory.iterdir()}


def media_cache_dir() -> Path:
    """Where real clips from PyPI wheels are kept between runs."""
    env = os.environ.get("VSR_TEST_MEDIA")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "vsr-test-media"
