"""Inputs and outputs at fsspec URLs (``s3://``, ``gs://``, ``file://`` ...) for a cluster batch.

The driver stages: each input URL (a file, or a folder's files) is copied into the batch's work
folder before planning, under a temporary name renamed when whole, and the batch runs on those
copies as it would on a shared folder. Each finished output (and the report) is written there
too and uploaded afterwards, under a temporary name moved to its final one, so no reader ever
sees half an object under the final name (on S3 the move is a server-side copy: whole or not
at all). A rerun finds its copies and outputs in the work folder and resumes from them.

Why a copy and not PyAV's file-object input: a job opens its input several times (probe,
keyframe scan, the decoder, every chunk's decoder on another worker, the final mux copying
audio and subtitles), each with seeks. Over an object store each open and seek is a ranged
request, and the chunks of one file would fetch it once per worker; one copy in the work
folder, which every node reads, costs one transfer.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from vsr.errors import UsageError, VsrError

INSTALL_HINT = 'pip install "vsr[fsspec]"'
WORK_ENV = "VSR_WORK_DIR"  # the work folder when -o is a URL (default ./.vsr-work)
_URL = re.compile(r"\A[A-Za-z][A-Za-z0-9+.\-]*://")


def is_url(text: str) -> bool:
    return bool(_URL.match(text))


def _filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path within it) for a URL; a usage error without fsspec."""
    try:
        import fsspec
    except ImportError:
        raise UsageError(f"{url} is a URL, which needs fsspec ({INSTALL_HINT})") from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:  # an unknown scheme, or its package is missing
        raise UsageError(f"cannot open {url}: {exc}") from None
    return fs, str(path)


def _key(url: str) -> str:
    """A short folder name per URL, so equal names from different places stay apart."""
    return hashlib.sha1(url.encode()).hexdigest()[:12]


@dataclass
class Staging:
    """A batch's URLs mapped onto its work folder: what to plan with, what to upload."""

    inputs: list[str]  # local paths for the planner
    output: str  # local output folder
    upload_to: str | None = None  # -o's URL (None: -o is a local folder)
    staged: int = 0  # input files copied this run

    def upload(self, outputs: Iterable[Path], report_dir: Path) -> None:
        """Each finished output, then the report files, to -o's URL (nothing when -o is local)."""
        if self.upload_to is None:
            return
        fs, root = _filesystem(self.upload_to)
        local = Path(self.output)
        reports = [p for p in report_dir.glob("vsr-report.*") if p.is_file()]
        for path in [*outputs, *reports]:
            rel = path.resolve().relative_to(local.resolve()).as_posix()
            _put(fs, path, str(PurePosixPath(root) / rel))


def stage(inputs: list[str], output: str | None) -> Staging | None:
    """Copy the input URLs into the work folder and choose the local output folder; None when
    no input or output is a URL (the batch then runs on its paths as they are)."""
    if not any(is_url(i) for i in inputs) and not (output and is_url(output)):
        return None
    if not output:
        raise UsageError("expected -o OUTDIR, the folder to write the results into")
    if is_url(output):
        work = Path(os.environ.get(WORK_ENV) or ".vsr-work")
        local_out = work / "out" / _key(output)
        upload_to: str | None = output
    else:
        local_out = Path(output)
        work = local_out / ".vsr-work"
        upload_to = None
    staging = Staging([], str(local_out), upload_to)
    for item in inputs:
        if not is_url(item):
            staging.inputs.append(item)
            continue
        folder = work / "in" / _key(item)
        staging.inputs.append(str(_fetch(item, folder, staging)))
    return staging


def _fetch(url: str, folder: Path, staging: Staging) -> Path:
    """A file URL to folder/NAME, or a folder URL's files to folder/ (not recursive)."""
    fs, path = _filesystem(url)
    try:
        if fs.isdir(path):
            names = [p for p in fs.ls(path, detail=False) if fs.isfile(p)]
            for name in sorted(names):
                staging.staged += _get(fs, name, folder / PurePosixPath(name).name)
            return folder
        if not fs.isfile(path):
            raise UsageError(f"no file or folder at {url}")
        staging.staged += _get(fs, path, folder / PurePosixPath(path).name)
    except OSError as exc:
        raise VsrError(f"cannot read {url}: {exc}") from None
    return folder / PurePosixPath(path).name


def _get(fs: Any, path: str, dest: Path) -> int:
    """Download unless a whole copy is there already (same size); 1 when copied."""
    size = fs.size(path)
    if dest.is_file() and dest.stat().st_size == size:
        return 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part-{uuid.uuid4().hex[:8]}")
    try:
        fs.get_file(path, str(tmp))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return 1


def _put(fs: Any, local: Path, path: str) -> None:
    """Upload under a temporary name, then move it to the final one."""
    parent, name = str(PurePosixPath(path).parent), PurePosixPath(path).name
    tmp = f"{parent}/.{name}.part-{uuid.uuid4().hex[:8]}"
    try:
        if fs.isfile(path) and fs.size(path) == local.stat().st_size:
            return  # uploaded by an earlier run (a rerun skips the finished files)
        fs.makedirs(parent, exist_ok=True)
        fs.put_file(str(local), tmp)
        fs.mv(tmp, path)
    except OSError as exc:
        raise VsrError(f"cannot upload {local} to {path}: {exc}") from None
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)
