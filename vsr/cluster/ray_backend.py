"""The driver of a cluster batch on Ray: worker actors, the unit queue, faults, the report.

Why actors and not Ray Data: a worker's cost is its loaded model (weights, a CUDA context, a
tile plan), which an actor keeps for its whole life, so weights load once per worker and not
once per chunk. Ray Data's ``map_batches`` with actors keeps models loaded too, but it streams
*rows* (frames) between operators through the object store: every decoded frame would cross
process boundaries, and the video encoder, which must see one chunk's frames in order in one
process, would sit outside it. Here a unit of work is a whole file or a chunk of one, and a
worker decodes, upscales and encodes it locally (reading from and writing to storage every
node sees), so only small descriptions and results cross the network. A hand-rolled pool of
actors (``ray.wait`` over one call per worker) also gives the driver what the issue asks of
faults: a chunk whose worker died runs again (``max_retries``), a failed file is isolated,
and Ctrl-C stops the workers at their next frame, leaving each job's manifest to resume from.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
import ray.exceptions

from vsr import resume
from vsr.batch import BatchJob, BatchReport, FileDoneFn, FileResult, expected_frames, is_finished
from vsr.cluster import ClusterSpec, check_reachable
from vsr.cluster.chunks import Chunk, chunk_folder, cut_chunks, plan_for_chunks
from vsr.cluster.resources import plan_workers
from vsr.cluster.worker import ChunkOutcome, ChunkTask, Worker
from vsr.errors import VsrError
from vsr.events import Notify, ProgressFn
from vsr.pipeline import UpscaleResult, mux_segments, start_job
from vsr.plan import VideoPlan

# A worker is alive for the whole batch; Ray restarts one whose process died (its in-flight
# call fails and the driver runs that unit again).
_ACTOR_OPTIONS: dict[str, Any] = {"max_restarts": -1, "max_task_retries": 0, "max_concurrency": 2}
_POLL_SECONDS = 0.5
_STOP_WAIT_SECONDS = 30.0
_RESTART_WAIT_SECONDS = 60.0


def connect(spec: ClusterSpec) -> bool:
    """Join (or start) the cluster; True when this call started Ray (and must shut it down)."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False}
    if spec.local:
        ray.init(include_dashboard=False, **kwargs)
    else:
        assert spec.address is not None
        check_reachable(spec.address)
        for attempt in range(_CLIENT_START_RETRIES + 1):
            try:
                ray.init(address=spec.address, **kwargs)
                break
            except (ConnectionError, RuntimeError, ValueError) as exc:
                if _client_server_failed(spec.address, exc) and attempt < _CLIENT_START_RETRIES:
                    time.sleep(_CLIENT_RETRY_SECONDS * (attempt + 1))
                    continue
                raise VsrError(
                    f"cannot join the Ray cluster at {spec.address}: {_last_line(exc)}"
                ) from exc
    return True


# The Ray client server (ray://) starts a process per driver; on a loaded head that process
# sometimes dies while starting ("Starting Ray client server failed") and a second try works.
_CLIENT_START_RETRIES = 2
_CLIENT_RETRY_SECONDS = 2.0


def _client_server_failed(address: str, exc: BaseException) -> bool:
    return address.startswith("ray://") and "client server failed" in str(exc).lower()


def _last_line(exc: BaseException) -> str:
    """The last line of an error: a server's traceback ends with what went wrong."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def run_on_ray(
    jobs: list[BatchJob],
    spec: ClusterSpec,
    *,
    skip_finished: bool = True,
    output_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
    notify: Notify | None = None,
    on_file: FileDoneFn | None = None,
) -> ClusterReport:
    """Run a planned batch on Ray; the report is `vsr batch`'s, plus the workers' figures."""
    started = connect(spec)
    try:
        driver = _Driver(jobs, spec, _Listen(progress, notify, on_file))
        return driver.run(skip_finished, Path(output_dir) if output_dir else None)
    finally:
        if started:
            ray.shutdown()


class _RayWorker(Worker):
    """The worker as an actor: it also says which Ray node it runs on (worker.py has no Ray)."""

    def where(self) -> tuple[int, str, str, dict[str, float]]:
        """(pid, host, Ray node id, the resources Ray gave this actor)."""
        pid, host = self.info()
        context = ray.get_runtime_context()
        return pid, host, context.get_node_id(), context.get_assigned_resources()


# --------------------------------------------------------------------------- the report


@dataclass
class WorkerStats:
    """What one worker slot did: busy seconds, units and frames, units lost when it died."""

    number: int
    node: str = ""  # the host's name
    node_id: str = ""  # Ray's id of the node (two nodes may share a host)
    pids: list[int] = field(default_factory=list)
    seconds: float = 0.0  # from handing a unit over to its result, as the driver sees it
    compute: float = 0.0  # of which inside the worker (the rest: Ray's scheduling, transfers)
    units: int = 0
    frames: int = 0
    lost: int = 0
    resources: dict[str, float] = field(default_factory=dict)  # what Ray gave the actor

    def place(self, where: tuple[int, str, str, dict[str, float]]) -> None:
        """Where the worker's actor (re)started: `_RayWorker.where`'s answer."""
        pid, self.node, self.node_id, self.resources = where
        self.pids.append(pid)

    def to_dict(self) -> dict[str, Any]:
        return {
            "worker": self.number,
            "node": self.node,
            "node_id": self.node_id,
            "pids": self.pids,
            "seconds": round(self.seconds, 3),
            "compute": round(self.compute, 3),
            "units": self.units,
            "frames": self.frames,
            "lost": self.lost,
            "resources": self.resources,
        }


@dataclass
class ClusterReport(BatchReport):
    """`vsr batch`'s report, with the cluster's: workers, chunks and retries per file."""

    address: str = "local"
    workers: list[WorkerStats] = field(default_factory=list)
    chunks: dict[str, int] = field(default_factory=dict)  # input -> chunks run
    retries: dict[str, int] = field(default_factory=dict)  # input -> units run again

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["cluster"] = {
            "address": self.address,
            "workers": [w.to_dict() for w in self.workers],
            "chunks": self.chunks,
            "retries": self.retries,
        }
        return data


# --------------------------------------------------------------------------- the driver


@dataclass
class _Listen:
    progress: ProgressFn | None
    notify: Notify | None
    on_file: FileDoneFn | None

    def note(self, message: str) -> None:
        if self.notify is not None:
            self.notify(message)


@dataclass
class _Unit:
    job: BatchJob
    chunk: Chunk | None = None  # None: the whole file
    attempts: int = 0

    def describe(self) -> str:
        if self.chunk is None:
            return str(self.job.input)
        gap = self.chunk.part.gap
        last = "end" if gap.frames is None else f"{gap.first_frame + gap.frames - 1:,}"
        return f"{self.job.input} frames {gap.first_frame:,}-{last}"


@dataclass
class _Slot:
    actor: Any
    stats: WorkerStats
    unit: _Unit | None = None
    ref: Any = None
    started: float = 0.0


@dataclass
class _Split:
    """A chunked file: its plan, its manifest (held under the job lock), its chunks."""

    job: BatchJob
    plan: VideoPlan
    state: resume.ResumeState
    lock: contextlib.ExitStack
    pending: set[str]
    started: float
    chunks: int
    frames: int = 0
    model: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    closed: bool = False


class _Driver:
    """One batch on the cluster: plan each file, keep every worker busy, collect the results."""

    def __init__(self, jobs: list[BatchJob], spec: ClusterSpec, listen: _Listen) -> None:
        self.jobs, self.spec, self.listen = jobs, spec, listen
        self.results: dict[int, FileResult] = {}
        self.queue: deque[_Unit] = deque()
        self.splits: dict[int, _Split] = {}
        self.slots: list[_Slot] = []
        self.totals: dict[int, int | None] = {}  # frames each job writes (None: unknown)
        self.done = 0  # frames of finished units (and of earlier runs, resumed)
        self.retries: dict[str, int] = {}
        self.notices: list[str] = []

    def run(self, skip_finished: bool, output_dir: Path | None) -> ClusterReport:
        start = time.perf_counter()
        interrupted = False
        self._start_workers()
        try:
            for job in self.jobs:
                if skip_finished and not job.options.overwrite and _finished(job):
                    self._record(FileResult(job, "skipped", reason="already done"))
                    self._note(f"{job.input}: skipped: already done ({job.output})")
                else:
                    self._enqueue(job)
            self._loop()
        except KeyboardInterrupt:
            interrupted = True
            self._interrupt()
        finally:
            for slot in self.slots:
                with contextlib.suppress(Exception):
                    ray.kill(slot.actor)
        return self._report(time.perf_counter() - start, output_dir, interrupted)

    # -- workers -----------------------------------------------------------------------------

    def _start_workers(self) -> None:
        """The actor pool: as many workers as the nodes hold, each asking Ray for a GPU or a
        CPU share and the memory the tile planner plans for the batch's largest frame."""
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        plan = plan_workers(self.jobs, nodes, self.spec.workers)
        for notice in plan.notices:
            self._note(notice)
        actor = ray.remote(**_ACTOR_OPTIONS)(_RayWorker).options(**plan.options)
        for n in range(1, plan.count + 1):
            self.slots.append(_Slot(actor.remote(1, plan.gpu), WorkerStats(n)))
        places = ray.get([s.actor.where.remote() for s in self.slots])
        for slot, where in zip(self.slots, places, strict=True):
            slot.stats.place(where)

    def _loop(self) -> None:
        while self.queue or any(s.unit is not None for s in self.slots):
            self._assign()
            busy = {s.ref: s for s in self.slots if s.unit is not None}
            ready, _ = ray.wait(list(busy), num_returns=1, timeout=_POLL_SECONDS)
            for ref in ready:
                self._handle(busy[ref])
            self._report_progress()

    def _assign(self) -> None:
        for slot in self.slots:
            if slot.unit is not None or not self.queue:
                continue
            unit = self.queue.popleft()
            split = self.splits.get(unit.job.number)
            if unit.chunk is None:
                slot.ref = slot.actor.run_file.remote(unit.job)
            elif split is not None and not split.closed:
                folder = chunk_folder(unit.job.output, unit.chunk)
                task = ChunkTask(unit.job, split.plan, unit.chunk, folder)
                slot.ref = slot.actor.run_chunk.remote(task)
            else:
                continue  # its file failed meanwhile
            slot.unit, slot.started = unit, time.perf_counter()

    def _handle(self, slot: _Slot) -> None:
        unit, ref = slot.unit, slot.ref
        assert unit is not None
        slot.unit = slot.ref = None
        try:
            outcome = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            self._worker_died(slot, unit, exc)
            return
        except ray.exceptions.RayError as exc:
            outcome = _failed(unit, f"the worker failed: {type(exc).__name__}: {exc}")
        slot.stats.seconds += time.perf_counter() - slot.started
        slot.stats.units += 1
        slot.stats.compute += outcome.seconds or 0.0
        if isinstance(outcome, FileResult):
            slot.stats.frames += outcome.frames or 0
            self.done += outcome.frames or 0
            self._record(outcome)
            return
        split = self.splits[unit.job.number]
        if outcome.status == "done":
            frames = sum(s.frames for s in outcome.segments)
            slot.stats.frames += frames
            self.done += frames
        self._chunk_done(split, unit, outcome)

    def _worker_died(self, slot: _Slot, unit: _Unit, exc: Exception) -> None:
        """Its unit runs again (on whichever worker is free first), up to max_retries times."""
        slot.stats.lost += 1
        unit.attempts += 1
        key = str(unit.job.input)
        self.retries[key] = self.retries.get(key, 0) + 1
        self._await_restart(slot)
        if unit.attempts > self.spec.max_retries:
            reason = f"its worker died {unit.attempts} times ({type(exc).__name__})"
            self._fail(unit, reason, 1)
            return
        self._note(
            f"worker {slot.stats.number} died while running {unit.describe()}; running it "
            f"again (retry {unit.attempts} of {self.spec.max_retries})"
        )
        self.queue.appendleft(unit)

    def _await_restart(self, slot: _Slot) -> None:
        """Wait (a bounded time) until Ray has restarted the slot's actor, maybe on another
        node. A call sent before Ray has noticed the death fails like the one that died, so
        without this the retried unit could be lost to the same death a second time."""
        deadline = time.monotonic() + _RESTART_WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                where = ray.get(slot.actor.where.remote(), timeout=_RESTART_WAIT_SECONDS)
            except ray.exceptions.RayActorError:
                time.sleep(_POLL_SECONDS / 5)
                continue
            except ray.exceptions.RayError:
                return
            slot.stats.place(where)
            return

    def _fail(self, unit: _Unit, reason: str, exit_code: int) -> None:
        split = self.splits.get(unit.job.number)
        if split is not None:
            self._close_split(
                split, FileResult(unit.job, "failed", reason=reason, exit_code=exit_code)
            )
        else:
            self._record(FileResult(unit.job, "failed", reason=reason, exit_code=exit_code))

    # -- files -------------------------------------------------------------------------------

    def _enqueue(self, job: BatchJob) -> None:
        """A long file's chunks, or the whole file, onto the queue (a planning error fails it)."""
        try:
            split, chunks = self._split(job)
        except VsrError as exc:
            self._record(FileResult(job, "failed", reason=str(exc), exit_code=exc.exit_code))
            return
        if split is None:
            self.totals[job.number] = _safe_expected(job)
            self.queue.append(_Unit(job))
            return
        self.totals[job.number] = split.state.manifest.total_frames
        self.done += split.state.resumed_frames
        if not chunks:
            self._finish_split(split)  # every chunk was done by an earlier run
        for chunk in chunks:
            self.queue.append(_Unit(job, chunk))

    def _split(self, job: BatchJob) -> tuple[_Split | None, list[Chunk]]:
        planned = plan_for_chunks(job, self.spec.chunk_seconds)
        if planned is None:
            return None, []
        plan, frames = planned
        lock = contextlib.ExitStack()
        try:
            job.output.parent.mkdir(parents=True, exist_ok=True)
            lock.enter_context(resume.job_lock(job.output))
            resume.clean_leftovers(job.output)
            state = _start_state(plan, self._note)
        except BaseException:
            lock.close()
            raise
        chunks = cut_chunks(
            state.manifest.gaps(), frames, plan.video.time_base, self.spec.chunk_seconds
        )
        pending = {c.name for c in chunks}
        now = time.perf_counter()
        run = _Split(job, plan, state, lock, pending, now, len(chunks))
        self.splits[job.number] = run
        if chunks:
            self._note(f"{job.input}: {len(chunks)} chunks of about {self.spec.chunk_seconds:g} s")
        return run, chunks

    def _chunk_done(self, split: _Split, unit: _Unit, outcome: ChunkOutcome) -> None:
        assert unit.chunk is not None
        if split.closed or unit.chunk.name not in split.pending:
            return  # its file failed, or this chunk was finished twice: kept once already
        if outcome.status != "done":
            if outcome.status == "interrupted":
                return  # Ctrl-C: the driver is stopping; the chunk runs again on a rerun
            reason = outcome.reason or "failed"
            self._close_split(
                split, FileResult(split.job, "failed", reason=reason, exit_code=outcome.exit_code)
            )
            return
        _adopt(split.state, chunk_folder(split.job.output, unit.chunk), outcome.segments)
        split.pending.discard(unit.chunk.name)
        split.model, split.settings = outcome.model, outcome.settings
        if not split.pending:
            self._finish_split(split)

    def _finish_split(self, split: _Split) -> None:
        """Every chunk is in: the final mux (exact timestamps, other streams once)."""
        try:
            writer = mux_segments(split.plan, split.state)
        except VsrError as exc:
            result = FileResult(split.job, "failed", reason=str(exc), exit_code=exc.exit_code)
            self._close_split(split, result, abandon=False)
            return
        seconds = time.perf_counter() - split.started
        upscaled = UpscaleResult(
            split.plan.input,
            split.plan.output,
            writer.frames_written,
            seconds,
            split.model or split.plan.model.name,
            {**split.settings, "chunks": split.chunks},
            streams=writer.reports,
            encoder=split.plan.encoder_report(),
            resumed_frames=split.state.resumed_frames,
            total_frames=split.state.manifest.total_frames,
        )
        result = FileResult(
            split.job, "done", frames=writer.frames_written, seconds=seconds, result=upscaled
        )
        self._close_split(split, result, abandon=False)

    def _close_split(self, split: _Split, result: FileResult, *, abandon: bool = True) -> None:
        """Release the file: its lock, and (unless it finished) what a rerun cannot use."""
        if split.closed:
            return
        split.closed = True
        if abandon:
            # Finished chunks stay for a rerun, unless the input itself is bad (exit 3).
            split.state.abandon(keep=result.exit_code != 3)
        split.lock.close()
        self.queue = deque(u for u in self.queue if u.job.number != split.job.number)
        self._record(result)

    def _record(self, result: FileResult) -> None:
        self.results[result.job.number] = result
        if self.listen.on_file is not None:
            self.listen.on_file(result)

    def _note(self, message: str) -> None:
        self.notices.append(message)
        self.listen.note(message)

    # -- Ctrl-C, progress, the report ---------------------------------------------------------

    def _interrupt(self) -> None:
        """Stop every worker at its next frame, keep what finished, leave the rest resumable."""
        busy = [s for s in self.slots if s.unit is not None]
        for slot in busy:
            with contextlib.suppress(Exception):
                slot.actor.stop.remote()
        refs = {s.ref: s for s in busy}
        with contextlib.suppress(Exception):
            ray.wait(list(refs), num_returns=len(refs), timeout=_STOP_WAIT_SECONDS)
        for ref, slot in refs.items():
            done, _ = ray.wait([ref], timeout=0)
            if done:
                with contextlib.suppress(Exception):
                    self._handle(slot)
        for split in list(self.splits.values()):
            stopped = FileResult(
                split.job, "interrupted", reason="stopped by Ctrl-C", exit_code=130
            )
            self._close_split(split, stopped)
        for slot in busy:
            if slot.unit is not None and slot.unit.chunk is None:
                stopped = FileResult(
                    slot.unit.job, "interrupted", reason="stopped by Ctrl-C", exit_code=130
                )
                self._record(stopped)
        self.queue.clear()

    def _report_progress(self) -> None:
        if self.listen.progress is None:
            return
        busy = [s for s in self.slots if s.unit is not None]
        running = 0
        with contextlib.suppress(Exception):
            running = sum(ray.get([s.actor.progress.remote() for s in busy], timeout=5))
        totals = list(self.totals.values())
        total = None if any(t is None for t in totals) else sum(t or 0 for t in totals)
        self.listen.progress(self.done + running, total)

    def _report(self, seconds: float, output_dir: Path | None, interrupted: bool) -> ClusterReport:
        results = []
        for job in self.jobs:
            result = self.results.get(job.number)
            results.append(result or FileResult(job, "not run", reason="batch interrupted"))
        chunks = {str(s.job.input): s.chunks for s in self.splits.values()}
        return ClusterReport(
            results,
            seconds,
            output_dir,
            interrupted,
            self.notices,
            address=self.spec.address or "local",
            workers=[s.stats for s in self.slots],
            chunks=chunks,
            retries=dict(self.retries),
        )


def _finished(job: BatchJob) -> bool:
    try:
        return is_finished(job)
    except VsrError:
        return False


def _safe_expected(job: BatchJob) -> int | None:
    try:
        return expected_frames(job)
    except VsrError:
        return None


def _failed(unit: _Unit, reason: str) -> FileResult | ChunkOutcome:
    if unit.chunk is None:
        return FileResult(unit.job, "failed", reason=reason, exit_code=1)
    return ChunkOutcome("failed", reason=reason, exit_code=1)


def _start_state(plan: VideoPlan, note: Notify) -> resume.ResumeState:
    """The job's manifest: a matching one from an interrupted run, or a fresh one."""
    from vsr.media.probe import open_input

    container = open_input(plan.input)
    try:
        state = start_job(plan, container, note)
    finally:
        container.close()
    # Chunk folders an interrupted run left (finished chunks it never recorded, half-written
    # ones): their frames are redone, so they go.
    with contextlib.suppress(OSError):
        for path in state.directory.iterdir():
            if path.is_dir() and "chunk-" in path.name:
                shutil.rmtree(path, ignore_errors=True)
    return state


def _adopt(state: resume.ResumeState, folder: Path, segments: list[resume.Segment]) -> None:
    """A finished chunk's segments into the job's segment folder and manifest, then its folder
    goes. Recorded one by one, so a driver killed half-way loses at most this chunk."""
    for seg in sorted(segments, key=lambda s: s.first_frame):
        moved = resume.Segment(
            state.next_index(),
            seg.first_frame,
            seg.frames,
            seg.start_pts,
            seg.end_pts,
            seg.repeated,
        )
        seg.file(folder).replace(moved.file(state.directory))
        seg.timestamps(folder).replace(moved.timestamps(state.directory))
        state.add_segment(moved)
    shutil.rmtree(folder, ignore_errors=True)
