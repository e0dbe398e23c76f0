"""One exception tree for everything vsr reports to a user.

Every error carries a message a user can act on (what went wrong, which file, what to do) and
the exit code the CLI uses for it. The library raises these; only `vsr.cli` prints them.
Errors that mirror a built-in also inherit it (as PyAV does), so callers that catch
``FileNotFoundError`` or ``ValueError`` keep working.
"""

from __future__ import annotations

from pathlib import Path


class VsrError(Exception):
    """Base of every error vsr raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        self.message = message
        self.path = Path(path) if path is not None else None
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = self.message
        if self.path is not None and str(self.path) not in text:
            text = f"{self.path}: {text}"
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class UsageError(VsrError, ValueError):
    """Options that contradict each other or are out of range."""

    exit_code = 2


class ConfigError(UsageError):
    """A preset, job file or configuration value that is not valid."""


class InputError(VsrError):
    """Something is wrong with an input file."""

    exit_code = 3


class InputNotFoundError(InputError, FileNotFoundError):
    pass


class InputPermissionError(InputError, PermissionError):
    """An input vsr may not read, or that sits in a folder it may not search."""


class NotMediaError(InputError, ValueError):
    """The file is not a video, image or any format FFmpeg can read."""


class NoVideoStreamError(InputError, ValueError):
    pass


class UnsupportedCodecError(InputError):
    pass


class CorruptInputError(InputError, ValueError):
    """Undecodable data: a truncated file or a corrupt frame."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        hint: str | None = None,
        frame: int | None = None,
        time: float | None = None,
    ):
        self.frame = frame
        self.time = time
        super().__init__(message, path=path, hint=hint)


class EmptyInputError(InputError, ValueError):
    """The file has a video stream with no decodable frames."""


class OutputError(VsrError):
    exit_code = 5


class OutputExistsError(OutputError, FileExistsError):
    pass


class OutputBusyError(OutputError):
    """Another vsr process is writing the same output (it holds the job's lock)."""


class OutputPermissionError(OutputError, PermissionError):
    """The output folder is read-only or not ours to write."""


class NoSpaceError(OutputError):
    """The disk (or quota) filled up while writing the output."""


class ContainerError(OutputError):
    """The output container cannot hold a stream or codec."""


class EncoderError(OutputError):
    pass


class ModelError(VsrError):
    exit_code = 4


class UnknownModelError(ModelError, LookupError):
    pass


class WeightsError(ModelError, ValueError):
    """A checkpoint that cannot be read or does not match its architecture."""


class UnsafeCheckpointError(WeightsError):
    """A pickle that would run code on load."""


class DeviceError(VsrError):
    """The asked-for device or precision is not available."""

    exit_code = 6


class OutOfMemoryError(DeviceError, MemoryError):
    pass


class ResumeError(VsrError):
    exit_code = 7


class Interrupted(VsrError):
    """Ctrl-C: the run stopped and nothing was left under the final name."""

    exit_code = 130

    def __init__(self, message: str = "Aborted!") -> None:
        super().__init__(message)
