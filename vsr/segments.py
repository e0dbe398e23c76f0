"""The segment files of an encoding pass, and the encoders that write them side by side.

A pass writes its frames into segment files, the unit `vsr.resume` keeps: one is closed and
recorded in the manifest after ``checkpoint_every`` seconds of work or ``segment_seconds`` of
content. The next segment gets an encoder of its own, which starts with a keyframe, so a
segment may end at any frame; the model runs on without a break, so where segments end changes
no frame, and the final mux (vsr.media.assemble) joins them with exact timestamps.

**Parallel encoders** (``--encode-workers``). When the model outruns one encoder (a GPU feeding
libx264 at 4K, where x264's own threads stop scaling), segments are encoded side by side, each
on its own thread (PyAV and FFmpeg release the GIL while they encode, so the threads run in
parallel): frames go into the current segment's bounded queue; when that encoder has fallen
behind (its queue is full) and another is idle, the segment ends there and the next frames start
a new one on the idle encoder. An encoder that keeps up keeps its segment as before (no extra
keyframe is made); one that does not is joined by up to ``workers - 1`` others. Host memory is
bounded by the queues (`EncoderPool.queue_bytes` in all). Finished segments are recorded in
the manifest in order, so a run killed midway leaves the frames before the first unfinished
segment resumable and nothing else behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vsr import resume
from vsr.config import MAX_ENCODE_WORKERS, check_encode_workers
from vsr.errors import VsrError
from vsr.media.encode import OutputWriter
from vsr.media.facts import InputContainer, Packet, VideoFrame
from vsr.threads import Cancelled

if TYPE_CHECKING:
    from vsr.plan import VideoPlan

# Encoders that run on a hardware unit: their sessions are few (consumer NVENC allows a
# handful per machine), so `auto` gives them one.
HARDWARE_ENCODER_SUFFIXES = ("_nvenc", "_qsv", "_vaapi", "_videotoolbox", "_amf", "_v4l2m2m", "_mf")
# `auto` runs encoders side by side from this many usable cores, one per this many cores ...
PARALLEL_FROM_CPUS = 8
CPUS_PER_ENCODER = 4
# ... and at most this many (past it x264's threads inside each encoder do the work).
MAX_AUTO_ENCODERS = 4
MAX_ENCODERS = MAX_ENCODE_WORKERS
# Host memory the queues of parallel encoders may hold: this share of what is available,
# within these bounds.
QUEUE_MEMORY_SHARE = 8
QUEUE_BYTES_MIN = 256 << 20
QUEUE_BYTES_MAX = 2 << 30
# A segment is cut to hand frames to an idle encoder once its encoder is this far behind (that
# many seconds of frames wait in its queue) and it holds at least that much content: each cut
# costs a keyframe, so a passing hiccup must not make one.
BEHIND_SECONDS = 2.0
QUEUE_FRAMES = (4, 256)  # bounds of one encoder's queue, in frames
DEFAULT_RATE = 25  # frames per second assumed for a video without a nominal rate
_POLL = 0.1  # seconds between checks of a stop flag or a failed encoder while blocked


@dataclass(frozen=True)
class EncoderPool:
    """How many encoders run side by side, and with what (decided with the plan)."""

    workers: int = 1
    queue_bytes: int = 0  # host memory all queues together may hold (parallel only)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def is_hardware_encoder(codec: str) -> bool:
    return codec.endswith(HARDWARE_ENCODER_SUFFIXES)


def plan_encoders(requested: int | None, codec: str, cpus: int, memory: int) -> EncoderPool:
    """The encoders of a job: ``requested`` (None: auto) on a host with ``cpus`` usable cores
    and ``memory`` bytes available."""
    check_encode_workers(requested)
    cpus = max(1, cpus)
    if requested is None:
        if is_hardware_encoder(codec):
            return EncoderPool(1, 0, f"auto: {codec} is a hardware encoder")
        if cpus < PARALLEL_FROM_CPUS:
            return EncoderPool(1, 0, f"auto: one encoder ({cpus} usable cores)")
        workers = min(MAX_AUTO_ENCODERS, cpus // CPUS_PER_ENCODER)
        reason = f"auto: {cpus} usable cores"
    else:
        workers, reason = requested, "asked for"
    if workers == 1:
        return EncoderPool(1, 0, reason)
    budget = min(QUEUE_BYTES_MAX, max(QUEUE_BYTES_MIN, memory // QUEUE_MEMORY_SHARE))
    return EncoderPool(workers, budget, reason)


def host_encoders(requested: int | None, codec: str) -> EncoderPool:
    """`plan_encoders` for this host: its usable cores and its available memory now."""
    from vsr.runtime import available_memory

    return plan_encoders(requested, codec, usable_cpus(), available_memory(torch.device("cpu")))


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask and a cgroup's CPU quota)."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text(encoding="ascii").split()[:2]
        if quota != "max" and int(period) > 0:
            count = min(count, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, count)


def segment_writer(path: Path, plan: VideoPlan, container: InputContainer) -> Any:
    """The encoder of one segment file: PyAV's, or the system ffmpeg's (--encoder-backend)."""
    width, height = plan.size
    if plan.options.encoder_backend == "ffmpeg":
        from vsr.media.ffmpeg_encode import FfmpegSegmentWriter

        return FfmpegSegmentWriter(path, plan.info, plan.encoding, width, height)
    return OutputWriter(
        path,
        "matroska",
        plan.info,
        container,
        plan.encoded_streams,
        plan.encoding,
        width,
        height,
        segment=True,
    )


_CLOSE = object()  # tells an encoder thread its segment is over


class _Encoding:
    """One open segment: its writer, and (parallel) the thread and queue that feed it."""

    def __init__(self, segment: resume.Segment, tmp: Path, writer: Any) -> None:
        self.segment = segment
        self.tmp = tmp
        self.writer = writer
        self.count = 0  # frames given to it
        self.repeated = 0
        self.end_pts: int | None = None
        self.opened = time.monotonic()
        self.queue: queue.Queue[Any] | None = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()  # its writer closed (or failed)
        self.busy = 0.0  # seconds its writer worked (encoding, and colour for RGB frames)

    def start(self, capacity: int) -> None:
        self.queue = queue.Queue(maxsize=capacity)
        self.thread = threading.Thread(
            target=self._run, name=f"vsr-encode-{self.segment.index}", daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        assert self.queue is not None
        try:
            while True:
                item = self.queue.get()
                if item is None:  # aborted
                    return
                if item is _CLOSE:
                    self.close()
                    return
                self.write(item)
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def write(self, item: tuple[Any, ...]) -> None:
        start = time.perf_counter()
        if isinstance(item[0], VideoFrame):
            self.writer.write_video_frame(*item)
        else:
            self.writer.write_frame(*item)
        self.busy += time.perf_counter() - start

    def close(self) -> None:
        start = time.perf_counter()
        self.writer.close()
        self.busy += time.perf_counter() - start

    def span(self, pts: int, time_base: Fraction) -> Fraction:
        """Seconds of content from the segment's first frame to ``pts``."""
        return (pts - self.segment.start_pts) * time_base

    @property
    def backlog(self) -> int:
        return 0 if self.queue is None else self.queue.qsize()


class SegmentSink:
    """The writer side of a pass: frames into segment files (see the module docstring).

    Runs on the pass's writer thread; with parallel encoders, each segment's encoding runs on
    a thread of its own and this one only hands frames over. ``stop`` is the pass's stop flag:
    a hand-over blocked on a full queue gives up when it is set.
    """

    def __init__(
        self,
        plan: VideoPlan,
        state: resume.ResumeState,
        container: InputContainer,
        first_frame: int,
        stop: threading.Event | None = None,
    ) -> None:
        self.plan = plan
        self.state = state
        self.container = container
        self.next_frame = first_frame
        self.frames = 0  # written in this pass
        self.stop = stop
        self.pool: EncoderPool = plan.encoders
        self.segments_cut = 0  # segments ended early to hand frames to an idle encoder
        self.encode_seconds = 0.0  # the encoders' work, summed over them (`vsr bench`)
        self._current: _Encoding | None = None
        self._inflight: deque[_Encoding] = deque()  # closed, not yet recorded (in order)
        self._next_index = state.next_index()
        self._capacity: int | None = None  # frames per encoder queue, set by the first frame
        self._behind_frames = 0  # a backlog that makes a cut (set with the capacity)
        self._time_base = Fraction(plan.video.time_base)

    # -- frames in ----------------------------------------------------------------------
    def write_frame(
        self,
        rgb: np.ndarray,
        alpha: np.ndarray | None,
        pts: int,
        duration: int = 0,
        *,
        repeated: bool = False,
    ) -> None:
        self._write((rgb, alpha, pts, duration), pts, repeated)

    def write_video_frame(
        self, frame: VideoFrame, pts: int, duration: int = 0, *, repeated: bool = False
    ) -> None:
        """A frame already in the encoder's format (the device graph's output)."""
        self._write((frame, pts, duration), pts, repeated)

    def write_packet(self, packet: Packet) -> None:
        """Segments hold video only; other streams are copied by the final mux."""

    def finish(self, end_pts: int | None) -> None:
        if self._current is not None:
            self._close(end_pts)
        while self._inflight:
            self._wait(self._inflight[0])
            self._record_finished()

    def abort(self) -> None:
        """Stop every encoder; keep the segments finished in order, delete the rest."""
        with contextlib.suppress(Exception):
            self._record_finished()
        pending = list(self._inflight)
        if self._current is not None:
            pending.append(self._current)
        self._inflight.clear()
        self._current = None
        for enc in pending:
            if enc.queue is not None:
                # Drop what the thread has not started, then tell it to end.
                with contextlib.suppress(queue.Empty):
                    while True:
                        enc.queue.get_nowait()
                enc.queue.put_nowait(None)
        for enc in pending:
            if enc.thread is not None:
                enc.thread.join(timeout=30)
            with contextlib.suppress(Exception):
                enc.writer.abort()
            self._discard(enc)

    # -- internals ----------------------------------------------------------------------
    @property
    def parallel(self) -> bool:
        return self.pool.workers > 1

    def _write(self, item: tuple[Any, ...], pts: int, repeated: bool) -> None:
        current = self._current
        if current is not None and (self._due(current, pts) or self._behind(current, pts)):
            self._close(end_pts=pts)
            current = None
        if current is None:
            current = self._open(pts, item)
        if current.queue is None:
            current.write(item)
        else:
            self._hand_over(current, item)
        current.count += 1
        current.repeated += int(repeated)
        self.frames += 1
        if self._inflight:
            self._record_finished()

    def _due(self, current: _Encoding, pts: int) -> bool:
        options = self.plan.options
        if time.monotonic() - current.opened >= options.checkpoint_every:
            return True
        return current.span(pts, self._time_base) >= Fraction(options.segment_seconds)

    def _behind(self, current: _Encoding, pts: int) -> bool:
        """Cut here for an idle encoder: the current one is behind and another one is free."""
        if not self.parallel or current.backlog < self._behind_frames:
            return False
        if current.span(pts, self._time_base) < Fraction(BEHIND_SECONDS):
            return False
        self._record_finished()
        if self._busy() + 1 >= self.pool.workers:
            return False
        self.segments_cut += 1
        return True

    def _busy(self) -> int:
        """Closed segments whose encoders are still at work."""
        return sum(1 for enc in self._inflight if not enc.done.is_set())

    def _open(self, pts: int, item: tuple[Any, ...]) -> _Encoding:
        if self.parallel:
            # Every encoder busy: wait for the oldest to finish (back pressure on the model).
            while self._busy() >= self.pool.workers:
                self._wait(self._inflight[0])
                self._record_finished()
        index = self._next_index
        self._next_index += 1
        segment = resume.Segment(index, self.next_frame, 0, pts, None)
        media = segment.file(self.state.directory)
        tmp = media.with_name(media.name + ".partial.mkv")
        enc = _Encoding(segment, tmp, segment_writer(tmp, self.plan, self.container))
        # Current before its file exists: a failure from here on is cleaned up by abort().
        self._current = enc
        enc.writer.open()
        if self.parallel:
            if self._capacity is None:
                per_encoder = self.pool.queue_bytes // (self.pool.workers * _bytes_of(item))
                low, high = QUEUE_FRAMES
                self._capacity = int(min(high, max(low, per_encoder)))
                rate = float(self.plan.video.frame_rate or DEFAULT_RATE)
                self._behind_frames = max(1, min(self._capacity, round(BEHIND_SECONDS * rate)))
            enc.start(self._capacity)
        return enc

    def _hand_over(self, enc: _Encoding, item: Any) -> None:
        assert enc.queue is not None
        while True:
            if enc.error is not None:
                raise enc.error
            if self.stop is not None and self.stop.is_set():
                raise Cancelled
            try:
                enc.queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _close(self, end_pts: int | None) -> None:
        enc = self._current
        assert enc is not None
        enc.end_pts = end_pts
        if enc.queue is None:
            enc.close()
            enc.done.set()
        else:
            self._hand_over(enc, _CLOSE)
        # Only now: if closing failed, abort() still finds it (and deletes its file).
        self._current = None
        self.next_frame += enc.count
        self._inflight.append(enc)
        self._record_finished()

    def _wait(self, enc: _Encoding) -> None:
        while not enc.done.wait(_POLL):
            if self.stop is not None and self.stop.is_set():
                raise Cancelled
        if enc.error is not None:
            raise enc.error

    def _record_finished(self) -> None:
        """Record, in order, the segments whose encoders have finished."""
        while self._inflight and self._inflight[0].done.is_set():
            enc = self._inflight[0]
            if enc.error is not None:
                raise enc.error
            self._record(enc)
            self._inflight.popleft()

    def _record(self, enc: _Encoding) -> None:
        writer, segment = enc.writer, enc.segment
        if writer.frames_written != enc.count:
            raise VsrError(
                f"internal error: {enc.count} frames given to the encoder but "
                f"{writer.frames_written} encoded; the output was not kept"
            )
        directory = self.state.directory
        stamps = segment.timestamps(directory)
        tmp_stamps = stamps.with_name(stamps.name + ".partial")
        tmp_stamps.write_text(json.dumps({"packets": writer.packet_log}), encoding="utf-8")
        os.replace(enc.tmp, segment.file(directory))
        os.replace(tmp_stamps, stamps)
        segment.frames, segment.end_pts, segment.repeated = enc.count, enc.end_pts, enc.repeated
        self.state.add_segment(segment)
        self.encode_seconds += enc.busy

    def _discard(self, enc: _Encoding) -> None:
        """Delete every file of a segment that was not recorded (a failed or dropped one)."""
        directory = self.state.directory
        stamps = enc.segment.timestamps(directory)
        for path in (
            enc.tmp,
            stamps.with_name(stamps.name + ".partial"),
            enc.segment.file(directory),
            stamps,
        ):
            with contextlib.suppress(OSError):
                path.unlink()


def _bytes_of(item: tuple[Any, ...]) -> int:
    """Host bytes one queued frame holds (planes in the encoder's format, or RGB)."""
    first = item[0]
    if isinstance(first, VideoFrame):
        return max(1, sum(plane.buffer_size for plane in first.planes))
    return max(1, int(first.nbytes))
