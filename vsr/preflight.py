"""Checks before a run, and what an OS error during one means for the user.

The checks run in the order a user fixes things: the input (there, reachable, readable,
media), then the model (a checkpoint file that is there), then the output (not there unless
--overwrite, in a folder vsr may write). So an existing output never hides a missing input or
a misspelt checkpoint, and nothing is written before all of them pass.

While a job runs, the OS errors of writing become one-line output errors: a full disk or
quota says roughly how much more room the job needs (estimated from the bytes written per
frame so far), a read-only or forbidden folder says so; both exit 5.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from vsr.config import ModelOptions
from vsr.errors import (
    InputError,
    InputNotFoundError,
    InputPermissionError,
    NoSpaceError,
    NotMediaError,
    OutputError,
    OutputPermissionError,
    ResumeError,
)
from vsr.events import ProgressFn

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_MB = 1 << 20


# -- before the run --------------------------------------------------------------------------


def check_reachable(path: Path, what: str = "file") -> os.stat_result:
    """The input's stat; a missing path or one behind a folder vsr may not search, said so.

    (``Path.exists()`` raises PermissionError for a file in a folder without the x bit.)
    """
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise InputNotFoundError(f"no such {what}", path=path) from None
    except PermissionError:
        raise InputPermissionError(
            "permission denied: a folder on its path cannot be searched",
            path=path,
            hint="check the permissions of the folders above it",
        ) from None
    except OSError as exc:
        raise InputError(f"cannot be reached ({exc.strerror})", path=path) from None


def check_input(path: Path) -> None:
    """There, reachable, readable and media (a header FFmpeg or OpenCV can read)."""
    from vsr.media.probe import IMAGE_SUFFIXES, open_input, pick_video_stream

    info = check_reachable(path)
    if path.is_dir():
        raise InputError("is a folder, not a media file", path=path)
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise InputPermissionError(
            "permission denied: vsr may not read it", path=path, hint="check its permissions"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror})", path=path) from None
    if path.suffix.lower() in IMAGE_SUFFIXES:
        import cv2

        if info.st_size == 0 or not cv2.haveImageReader(str(path)):
            raise NotMediaError("is not an image OpenCV can read", path=path)
        return
    container = open_input(path)
    try:
        pick_video_stream(container, path)
    finally:
        container.close()


def check_model(model: ModelOptions) -> None:
    """A checkpoint path must name a readable file; model names were checked with the preset."""
    from vsr.models.checkpoint import _check_path
    from vsr.models.registry import BICUBIC, is_checkpoint_path

    name = model.name.strip()
    if name.lower() == BICUBIC:
        return
    if is_checkpoint_path(name):
        path = Path(name).expanduser()
        try:
            path.stat()
        except PermissionError:
            raise InputPermissionError(
                "permission denied reading the model checkpoint", path=path
            ) from None
        except OSError:
            pass  # _check_path names a missing file
        _check_path(path)


def check_output_folder(output: Path) -> None:
    """The folder that will hold the output (or its nearest existing parent) is writable."""
    folder = _existing_folder(output)
    if os.access(folder, os.W_OK | os.X_OK):
        return
    raise OutputPermissionError(
        f"cannot write into {folder}: {_why_not_writable(folder)}",
        path=output,
        hint="choose another output folder",
    )


def _existing_folder(output: Path) -> Path:
    folder = output.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _why_not_writable(folder: Path) -> str:
    with contextlib.suppress(OSError):
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "read-only file system"
    return "permission denied"


# -- during the run ----------------------------------------------------------------------------


class SpaceTracker:
    """Follows a job's progress and the bytes its segments take, for the disk-full estimate."""

    def __init__(self, input_path: Path, output: Path) -> None:
        self.input = input_path
        self.output = output
        self.done = 0
        self.total: int | None = None
        # (frames done, bytes in the segment folder) at the last look, taken at most twice a
        # second: the folder is a handful of files, but a frame can take a millisecond.
        self.sample = (0, 0)
        self._looked = 0.0

    def wrap(self, progress: ProgressFn | None) -> ProgressFn:
        def call(done: int, total: int | None) -> None:
            self.done, self.total = done, total
            now = time.monotonic()
            if now - self._looked > 0.5:
                self._looked = now
                self.sample = (done, _tree_bytes(self._segments()))
            if progress is not None:
                progress(done, total)

        return call

    def _segments(self) -> Path:
        from vsr import resume

        return resume.segments_dir(self.output)

    def needed_bytes(self) -> int:
        """How many more bytes the job needs than the disk has free now (at least 1 MB).

        The output video is estimated from the bytes per frame written so far (finished
        segments, else the last look at the one being written, else the input's size). At its
        peak a job holds its segments and the final file (the segments' video plus the copied
        streams) at once.
        """
        from vsr import resume

        used = _tree_bytes(self._segments())
        total = self.total
        per_frame: float | None = None
        manifest = resume.read_manifest(resume.manifest_path(self.output))
        if manifest is not None:
            done = sum(s.frames for s in manifest.segments if s.done)
            total = manifest.total_frames or total
            if done and used:
                per_frame = used / done
        if per_frame is None and self.sample[0] and self.sample[1]:
            per_frame = self.sample[1] / self.sample[0]
        if per_frame is not None and total:
            video = per_frame * total
        else:
            video = float(_file_bytes(self.input))
        peak = 2 * video + self._other_streams_bytes()
        free = 0
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(_existing_folder(self.output)).free
        return max(int(peak - used - free), _MB)

    def _other_streams_bytes(self) -> float:
        """Audio, subtitles ...: copied into the final file; from their bit rates."""
        from vsr.media.scan import other_streams_bytes

        return other_streams_bytes(self.input)


def _tree_bytes(folder: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            with contextlib.suppress(OSError):
                total += entry.stat().st_size
    return total


def _file_bytes(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _errnos(exc: BaseException) -> Iterator[tuple[int, BaseException]]:
    """The errno of the error and of those it was raised from (PyAV's errors carry one too)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "errno", None)
        if isinstance(code, int) and code > 0:
            yield code, current
        current = current.__cause__ or current.__context__


def _inside(path: object, folder: Path) -> bool:
    if not isinstance(path, str | os.PathLike):
        return False
    try:
        Path(path).absolute().relative_to(folder)
    except ValueError:
        return False
    return True


def output_failure(exc: BaseException, tracker: SpaceTracker) -> OutputError | None:
    """The output error an OS failure while writing means, or None when it means another."""
    output = tracker.output
    for code, source in _errnos(exc):
        if code in _NO_SPACE:
            needed = math.ceil(tracker.needed_bytes() / _MB)
            if _tree_bytes(tracker._segments()):
                then = "free that much and run the same command again: it resumes"
            else:
                then = "free that much or write to another drive"
            return NoSpaceError(
                f"no space left on device writing {output}",
                hint=f"needs about {needed} MB more; {then}",
            )
        if code == errno.EFBIG:
            return OutputError(
                f"the file system refuses a file this large writing {output}",
                hint="write to a drive formatted with a larger file limit (not FAT32)",
            )
        if code == errno.EROFS:
            return OutputPermissionError(
                f"cannot write {output}: read-only file system", hint="choose another folder"
            )
        if code in (errno.EACCES, errno.EPERM) and (
            isinstance(exc, ResumeError)
            or _inside(getattr(source, "filename", None), _existing_folder(output))
        ):
            return OutputPermissionError(
                f"cannot write {output}: permission denied", hint="choose another folder"
            )
    return None


@contextlib.contextmanager
def output_errors(tracker: SpaceTracker) -> Iterator[None]:
    """Re-raise OS failures of writing the output as the output errors they are."""
    try:
        yield
    except Exception as exc:
        mapped = output_failure(exc, tracker)
        if mapped is None:
            raise
        raise mapped from exc
