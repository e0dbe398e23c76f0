"""What runs inside one cluster worker: a loaded model and one unit of work at a time.

This module does not import Ray; vsr.cluster.ray_backend makes an actor of :class:`Worker`.
A worker keeps its processors (one per distinct model setting) for its whole life, so weights
are loaded once per worker, not once per chunk or file. Every unit returns an outcome instead
of raising, so a bad file is an ordinary result for the driver; only a worker's death (a kill,
a lost node) reaches it as an error, which it answers by running the unit again elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vsr.config import ModelOptions
from vsr.errors import Interrupted, VsrError

if TYPE_CHECKING:
    from vsr.batch import BatchJob, FileResult
    from vsr.cluster.chunks import Chunk
    from vsr.models.base import Processor
    from vsr.pipeline import UpscaleResult
    from vsr.plan import VideoPlan
    from vsr.resume import Segment


@dataclass(frozen=True)
class ChunkTask:
    """One chunk of a job for a worker: the job's frozen plan and where the chunk goes."""

    job: BatchJob
    plan: VideoPlan
    chunk: Chunk
    folder: Path  # the chunk's folder, named the same for every attempt


@dataclass
class ChunkOutcome:
    status: Literal["done", "failed", "interrupted"]
    segments: list[Segment] = field(default_factory=list)
    seconds: float = 0.0
    model: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    exit_code: int = 0


class Worker:
    """One worker slot: its torch threads and its loaded models (the device is the one Ray
    gave the process: a GPU worker sees only its GPU)."""

    def __init__(self, threads: int, gpu: bool) -> None:
        import torch

        if not gpu:
            # One torch thread per CPU slot: workers on one machine must not fight over cores.
            torch.set_num_threads(max(1, threads))
        self.gpu = gpu
        self._processors: dict[str, Processor] = {}
        self._stop = threading.Event()
        self._done = 0

    # -- called while a unit runs (the actor takes two calls at once) ----------------------

    def info(self) -> tuple[int, str]:
        """(pid, host): for the report, and for a test that kills the worker."""
        return os.getpid(), socket.gethostname()

    def progress(self) -> int:
        """Frames written by the unit running now."""
        return self._done

    def stop(self) -> None:
        """Ctrl-C on the driver: the running unit stops at its next frame."""
        self._stop.set()

    # -- units -------------------------------------------------------------------------------

    def run_chunk(self, task: ChunkTask) -> ChunkOutcome:
        from vsr.pipeline import encode_part

        self._begin()
        start = time.perf_counter()
        tmp = task.folder.with_name(f".{task.folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex}")
        try:
            processor = self._processor(task.job.options.model)
            tmp.mkdir(parents=True)
            segments = encode_part(task.plan, processor, task.chunk.part, tmp, self._step)
            _commit(tmp, task.folder)
        except (Interrupted, KeyboardInterrupt):
            return ChunkOutcome("interrupted", reason="stopped by Ctrl-C", exit_code=130)
        except VsrError as exc:
            return ChunkOutcome("failed", reason=str(exc), exit_code=exc.exit_code)
        except Exception as exc:  # one broken file must not end the batch
            return ChunkOutcome("failed", reason=f"unexpected {type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return ChunkOutcome(
            "done",
            segments,
            time.perf_counter() - start,
            processor.descriptor.name,
            dict(processor.settings),
        )

    def run_file(self, job: BatchJob) -> FileResult:
        """A whole file through the ordinary pipeline (resume included), with this worker's
        loaded model."""
        from vsr.api import run
        from vsr.batch import file_result

        self._begin()
        notices: list[str] = []

        def attempt() -> UpscaleResult:
            processor = self._processor(job.options.model)
            job.output.parent.mkdir(parents=True, exist_ok=True)
            return run(
                job.input,
                job.output,
                job.options,
                progress=self._step,
                notify=notices.append,
                processor=processor,
            )

        return file_result(job, attempt, notices)

    # -- helpers -----------------------------------------------------------------------------

    def _begin(self) -> None:
        self._stop.clear()
        self._done = 0

    def _step(self, done: int, _total: int | None) -> None:
        if self._stop.is_set():
            raise Interrupted()
        self._done = done

    def _processor(self, model: ModelOptions) -> Processor:
        from vsr.models.registry import create_processor

        # "auto" stays as it is (it is part of the job's settings, which resume checks): Ray
        # shows a worker only the GPU it was given, and none to a CPU worker.
        key = repr(model)
        if key not in self._processors:
            self._processors[key] = create_processor(model)
        return self._processors[key]


def _commit(tmp: Path, folder: Path) -> None:
    """Rename the finished chunk into place; if another attempt got there first, its copy
    (the same frames) stays and this one goes: a chunk finished twice is written once."""
    try:
        os.rename(tmp, folder)
    except OSError:
        if not folder.is_dir():
            raise
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
