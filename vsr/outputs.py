"""Where an output is written: a hidden temporary name beside it, renamed only on success.

Shared by the video pipeline, still images and preview clips, so a failed or interrupted job
never leaves a half-written file under the name the user asked for.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from vsr.errors import OutputExistsError, UsageError


def temp_path_for(output: Path) -> Path:
    """A hidden name beside the target, on the same file system so the rename is atomic."""
    return output.with_name(f".{output.stem}.vsr-tmp-{os.getpid()}{output.suffix}")


def check_paths(input_path: Path, output: Path, overwrite: bool) -> None:
    if output.exists() and output.is_dir():
        raise UsageError(f"the output {output} is a folder; expected a file name")
    with contextlib.suppress(OSError):
        if input_path.exists() and output.exists() and os.path.samefile(input_path, output):
            raise UsageError(
                f"the output {output} is the input file; vsr never overwrites its input"
            )
    if output.exists() and not overwrite:
        raise OutputExistsError(
            "already exists", path=output, hint="pass --overwrite to replace it"
        )


@contextlib.contextmanager
def atomic_output(output: Path) -> Iterator[Path]:
    """Yield a temp path; rename it onto `output` on success, delete it on any failure."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(output)
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.replace(tmp, output)
