"""decode -> model -> encode, as three stages joined by bounded queues: the runner of a plan.

What a job does is decided first, before any frame is decoded (vsr.plan: sizes, encoder,
streams, filters); this module executes that plan. The reader thread demuxes and decodes
(FFmpeg threads inside), the calling thread runs the model, and the writer thread encodes
into segment files (vsr.resume keeps them for an interrupted run), which the final mux joins
with the copied streams (vsr.media.assemble). Each queue holds at most
``UpscaleOptions.queue_size`` items, so memory is flat whatever the video's length: about
``2 * queue_size`` decoded frames plus one model batch are alive at once. No frame touches
the disk except inside the output file, which is written under a temporary name beside the
target and renamed only when everything succeeded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from vsr import resume
from vsr.config import UpscaleOptions
from vsr.errors import InputError, Interrupted, VsrError
from vsr.events import Notify, ProgressFn, ignore
from vsr.media import remux
from vsr.media.assemble import MuxJob, SegmentPart, assemble
from vsr.media.decode import (
    DecodedFrame,
    LostTail,
    OutputWindow,
    SeekMissed,
    VideoReader,
    lost_tail,
)
from vsr.media.encode import OutputWriter, StreamReport, check_encoding
from vsr.media.facts import InputContainer
from vsr.media.filters import FilterChain, FilterSpec, resize_to_height, resolve_spec
from vsr.media.probe import open_input, probe
from vsr.models.base import FrameGeometry, Processor
from vsr.outputs import atomic_output, check_paths
from vsr.plan import FilterPlan, ModelFacts, VideoPlan, frame_count, is_image_job, plan_video
from vsr.segments import EncoderPool, SegmentSink
from vsr.threads import END, Cancelled, Stage, join

if TYPE_CHECKING:
    from vsr.graph import DeviceGraph, DevicePlan
    from vsr.media.hardware import HwDecode


@dataclass
class UpscaleResult:
    input: Path
    output: Path
    frames: int
    seconds: float
    model: str
    settings: dict[str, Any]
    streams: list[StreamReport] = field(default_factory=list)
    repeated_frames: int = 0
    notices: list[str] = field(default_factory=list)
    encoder: dict[str, Any] = field(default_factory=dict)
    # A resumed job: frames found done in finished segments when it started, of how many.
    resumed_frames: int = 0
    total_frames: int | None = None
    lost: LostTail | None = None  # a truncated file: the video its header promises but lacks

    @property
    def fps(self) -> float:
        """Frames this run made per second: a resumed job's finished segments were made by an
        earlier run, and counting them would make the speed look higher than it is."""
        made = max(self.frames - self.resumed_frames, 0)
        return made / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": str(self.input),
            "output": str(self.output),
            "frames": self.frames,
            "seconds": round(self.seconds, 6),
            "fps": round(self.fps, 3),
            "model": self.model,
            "settings": self.settings,
            "encoder": self.encoder,
            "streams": [s.to_dict() for s in self.streams],
            "repeated_frames": self.repeated_frames,
            "lost": self.lost.to_dict() if self.lost is not None else None,
            "notices": self.notices,
            "resumed": (
                {"frames_done": self.resumed_frames, "of": self.total_frames}
                if self.resumed_frames
                else None
            ),
        }


class _Resized:
    """A processor whose output is resized to a fixed size (--height), antialiased."""

    def __init__(self, inner: Processor, width: int, height: int) -> None:
        self.inner = inner
        self.width, self.height = width, height

    @property
    def descriptor(self) -> Any:
        return self.inner.descriptor

    @property
    def scale(self) -> float:
        return self.inner.scale

    @property
    def settings(self) -> dict[str, object]:
        return {**self.inner.settings, "output_height": self.height}

    def init(self, geometry: FrameGeometry) -> None:
        self.inner.init(geometry)

    def _fit(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.shape[0] == 0 or frames.shape[-2:] == (self.height, self.width):
            return frames
        out = resize_to_height(frames, self.height)
        return out[..., : self.height, : self.width]

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        return self._fit(self.inner.process(frames))

    def flush(self) -> torch.Tensor:
        return self._fit(self.inner.flush())

    def reset(self) -> None:
        self.inner.reset()


# -- frame conversion ------------------------------------------------------------------------


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    scale = 65535.0 if rgb.dtype == np.uint16 else 255.0
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(scale)


def from_tensor(frame: torch.Tensor, deep: bool) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> H x W x 3 uint8/uint16."""
    peak = 65535.0 if deep else 255.0
    out = frame.detach().to("cpu", torch.float32).clamp_(0, 1).mul_(peak).round_()
    dtype = torch.int32 if deep else torch.uint8
    array = out.to(dtype).permute(1, 2, 0).contiguous().numpy()
    return array.astype(np.uint16) if deep else array


def resize_alpha(alpha: np.ndarray, width: int, height: int) -> np.ndarray:
    resized = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.asarray(resized, dtype=alpha.dtype)


# -- one file: a still, or a video planned and then run -----------------------------------------


@dataclass
class _Listeners:
    """Where a run reports: progress, and notices (kept for the result and passed on)."""

    progress: ProgressFn | None
    forward: Notify | None  # the caller's notify
    notices: list[str] = field(default_factory=list)

    def notify(self, message: str) -> None:
        self.notices.append(message)
        if self.forward is not None:
            self.forward(message)


def upscale_file(
    input_path: str | Path,
    output: str | Path,
    options: UpscaleOptions,
    processor: Processor,
    *,
    progress: ProgressFn | None = None,
    notify: Notify | None = None,
) -> UpscaleResult:
    """Upscale one video or image file into `output` with an initialised-or-not processor."""
    input_path, output = Path(input_path), Path(output)
    check_paths(input_path, output, options.overwrite)
    # One writer per output: a second run on the same output stops here, before it touches
    # anything the first one owns. Under the lock, what killed runs left is ours to clear.
    with contextlib.suppress(OSError):  # if it can't be made, the lock says so clearly
        output.parent.mkdir(parents=True, exist_ok=True)
    with resume.job_lock(output):
        resume.clean_leftovers(output)
        listen = _Listeners(progress, notify)
        return _upscale_locked(input_path, output, options, processor, listen)


def _upscale_locked(
    input_path: Path,
    output: Path,
    options: UpscaleOptions,
    processor: Processor,
    listen: _Listeners,
) -> UpscaleResult:
    if is_image_job(input_path, output):
        return _upscale_still(input_path, output, options, processor, listen)
    remux.container_format(output)  # a wrong output name is told before anything else
    info = probe(input_path)
    filters = _settle_filters(options.filters, input_path, listen.notify)
    plan = plan_video(input_path, output, info, options, ModelFacts.of(processor), filters)
    return _run(plan, processor, listen)


def _upscale_still(
    input_path: Path,
    output: Path,
    options: UpscaleOptions,
    processor: Processor,
    listen: _Listeners,
) -> UpscaleResult:
    from vsr.image import upscale_image

    frames, seconds = upscale_image(
        input_path, output, processor, listen.notify, max_memory=options.model.max_memory
    )
    return UpscaleResult(
        input_path,
        output,
        frames,
        seconds,
        processor.descriptor.name,
        dict(processor.settings),
        notices=listen.notices,
    )


def _settle_filters(spec: FilterSpec, path: Path, notify: Notify) -> FilterSpec:
    """ "auto" crop and deinterlacing, settled by analysing a sample of the file's frames."""
    if not spec.needs_analysis:
        return spec
    spec = resolve_spec(spec, path)
    notify(f"restoration filters for this file: {FilterPlan(spec).describe()}")
    return spec


# -- running a plan --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """A plan with what only a loaded model decides: the processor as run, its batch, the
    device frame path (vsr.graph; None: swscale) and the hardware-decode decision."""

    plan: VideoPlan
    processor: Processor
    batch: int
    device_plan: DevicePlan | None
    hw: HwDecode


@dataclass(frozen=True)
class _Outcome:
    writer: OutputWriter  # the final mux's, with the stream reports
    segments: list[resume.Segment]
    state: resume.ResumeState
    seconds: float


def _run(plan: VideoPlan, processor: Processor, listen: _Listeners) -> UpscaleResult:
    """Execute a video plan: passes that encode the segments, then the final mux."""
    for message in plan.notices:
        listen.notify(message)
    processor = _ready(processor, plan)
    batch = max(1, int(str(processor.settings.get("batch", plan.options.model.batch))))
    device_plan = _plan_frame_path(plan, processor, batch)
    start = time.perf_counter()
    container = open_input(plan.input)
    job = _Job(
        plan, processor, batch, device_plan, _hardware_decode(plan, processor, listen.notify)
    )
    try:
        state = start_job(plan, container, listen.notify)
        writer, segments = _encode_and_mux(job, state, listen.progress)
    finally:
        container.close()
    done = _Outcome(writer, segments, state, time.perf_counter() - start)
    return _result(job, done, listen)


def _ready(processor: Processor, plan: VideoPlan) -> Processor:
    """The processor as the plan runs it (stabilised, resized to --height), initialised."""
    options, video = plan.options, plan.video
    if options.temporal == "stabilize":
        from vsr.temporal.stabilize import StabilizeProcessor

        processor = StabilizeProcessor(processor, strength=options.temporal_strength)
    if options.height is not None:
        processor = _Resized(processor, *plan.geometry.output)
    processor.init(FrameGeometry(video.width, video.height, float(video.frame_rate or 0) or None))
    return processor


def start_job(plan: VideoPlan, container: InputContainer, notify: Notify) -> resume.ResumeState:
    """Check that the encoder takes the job, then load or start the resume state."""
    for message in plan.stream_notices:
        notify(message)
    # Before any resume state is written: an encoder or container that refuses the job
    # fails here and leaves nothing behind.
    check_encoding(
        plan.encoding, plan.info, container, plan.encoded_streams, plan.container, *plan.size
    )

    def count() -> resume.JobPlan:
        counted = frame_count(plan)
        return resume.JobPlan(counted.total, counted.limit, counted.seekable)

    settings = resume.job_settings(plan.options)
    state = resume.prepare(plan.input, plan.output, settings, plan.video.time_base, count)
    for message in state.notices:
        notify(message)
    return state


def _encode_and_mux(
    job: _Job, state: resume.ResumeState, progress: ProgressFn | None
) -> tuple[OutputWriter, list[resume.Segment]]:
    try:
        _Passes(job, state, progress).run()
    except BaseException as exc:
        state.abandon(keep=not isinstance(exc, InputError))
        raise
    segments = state.manifest.ordered()
    return mux_segments(job.plan, state), segments


def mux_segments(plan: VideoPlan, state: resume.ResumeState) -> OutputWriter:
    """The final mux of every finished segment with the copied streams, then the cleanup."""
    try:
        segments = state.manifest.ordered()
        parts = [
            SegmentPart(s.file(state.directory), s.timestamps(state.directory)) for s in segments
        ]
        with atomic_output(plan.output) as tmp:
            writer = assemble(tmp, _mux_job(plan), parts)
    except BaseException as exc:
        # Finished segments stay for the next run to resume (Ctrl-C, disk full, a crash);
        # with none, or when the input itself is damaged, nothing is left.
        state.abandon(keep=not isinstance(exc, InputError))
        raise
    state.finish(plan.output, keep_manifest=plan.options.keep_manifest)
    return writer


def _mux_job(plan: VideoPlan) -> MuxJob:
    return MuxJob(
        plan.input,
        plan.container,
        plan.info,
        plan.streams,
        plan.encoding,
        plan.size,
        cut=plan.cut.active,
        skip_corrupt=plan.options.skip_corrupt,
    )


def _result(job: _Job, done: _Outcome, listen: _Listeners) -> UpscaleResult:
    plan, processor, writer = job.plan, job.processor, done.writer
    repeated, lost = _closing_notes(plan, done, listen.notify)
    return UpscaleResult(
        plan.input,
        plan.output,
        writer.frames_written,
        done.seconds,
        processor.descriptor.name,
        {**processor.settings, "frame_path": _describe_frame_path(job.device_plan, job.hw)},
        streams=writer.reports,
        repeated_frames=repeated,
        notices=listen.notices,
        lost=lost,
        encoder=plan.encoder_report(),
        resumed_frames=done.state.resumed_frames,
        total_frames=done.state.manifest.total_frames,
    )


def _closing_notes(plan: VideoPlan, done: _Outcome, notify: Notify) -> tuple[int, LostTail | None]:
    """What the run found on the way: dropped audio, repeated frames, a truncated end."""
    writer = done.writer
    if writer.audio_packets_dropped:
        notify(
            f"{writer.audio_packets_dropped} damaged audio packet(s) left out as silence "
            "(--skip-corrupt); the audio after them keeps its place"
        )
    repeated = sum(s.repeated for s in done.segments)
    if repeated:
        notify(f"{repeated} corrupt frame(s) replaced by the previous frame to keep audio in sync")
    if plan.cut.active:
        return repeated, None
    # A file cut short can end without any read error (at a cluster or fragment boundary),
    # so the decoded length is compared with the header's, with or without --skip-corrupt.
    end = writer.video_end
    lost = lost_tail(plan.source, None if end is None else float(end * plan.video.time_base))
    if lost is not None:
        notify(
            f"{plan.input.name} ends early (truncated or unreadable): the last "
            f"{lost.seconds:.2f} s of video (about {lost.frames} frames) could not be "
            "decoded, so the output is that much shorter"
        )
    return repeated, lost


# -- segments -------------------------------------------------------------------------------


@dataclass
class _Passes:
    """The encoding passes of one job, and the resume state they fill.

    An uninterrupted job is one pass over the whole video; a resumed one makes one pass per
    run of missing frames (usually the tail; also a segment found damaged). Within a pass the
    model runs without a break, so where segments end changes no frame.
    """

    job: _Job
    state: resume.ResumeState
    progress: ProgressFn | None

    def run(self) -> None:
        state = self.state
        total = state.manifest.total_frames
        if self.progress is not None:
            # First report: where the job starts (frames already done by an earlier run).
            self.progress(state.resumed_frames, total)
        for gap in state.manifest.gaps():
            self.encode_gap(gap, self.window_for(gap))

    def window_for(self, gap: resume.Gap) -> OutputWindow | None:
        """Where to seek and which frames to drop, run as warm-up, and keep, for one gap."""
        if gap.start_pts is None:
            return None if gap.end_pts is None else OutputWindow(None, None, None, gap.end_pts)
        manifest = self.state.manifest
        warmup = self.job.processor.descriptor.warmup
        warm = manifest.warmup_pts(gap, warmup, self.state.directory)
        return window_between(self.job.plan, gap, warm, seekable=manifest.seekable)

    def encode_gap(self, gap: resume.Gap, window: OutputWindow | None) -> None:
        """One gap, decoded from its start when the seek landed after it."""
        try:
            self.encode(gap, window)
        except SeekMissed:
            # The container's index put the seek past the frames needed: decode this
            # part from the start instead (slower, same frames).
            assert window is not None
            self.encode(gap, dataclasses.replace(window, seek_pts=None))

    def encode(self, gap: resume.Gap, window: OutputWindow | None) -> None:
        """Decode one gap (with its warm-up), run the model, encode it into segments."""
        job = self.job
        container = _open_decoder(job.plan.input, job.hw)
        try:
            job.processor.reset()
            chain = job.plan.filters.chain()
            stage = Stage(job.plan.options.queue_size)
            graph = _device_graph(job.device_plan, job.processor, stage)
            reader = self.reader(container, gap, window, chain, graph)
            sink = SegmentSink(job.plan, self.state, container, gap.first_frame, stage.stop)
            if GRAPH_TIMING.enabled:
                GRAPH_TIMING.sinks.append(sink)
            self.run_pass(stage, graph, reader, sink, gap)
        finally:
            container.close()
        if sink.frames != reader.stats.frames:
            raise VsrError(
                f"internal error: {reader.stats.frames} frames decoded but "
                f"{sink.frames} encoded; the output was not kept"
            )
        if gap.end_pts is not None and gap.frames is not None and sink.frames != gap.frames:
            raise VsrError(
                f"internal error: frames {gap.first_frame:,}+ should be {gap.frames} frames, "
                f"got {sink.frames}; the output was not kept"
            )

    def reader(
        self,
        container: InputContainer,
        gap: resume.Gap,
        window: OutputWindow | None,
        chain: FilterChain | None,
        graph: DeviceGraph | None,
    ) -> VideoReader:
        plan = self.job.plan
        return VideoReader(
            container,
            plan.source,
            plan.input,
            chain=chain,
            out_info=plan.video,
            copy_indices=set(),
            skip_corrupt=plan.options.skip_corrupt,
            max_frames=gap.frames,
            first_index=gap.first_frame,
            window=window,
            arrays=graph.packer if graph is not None else None,
        )

    def run_pass(
        self,
        stage: Stage,
        graph: DeviceGraph | None,
        reader: VideoReader,
        sink: SegmentSink,
        gap: resume.Gap,
    ) -> None:
        """Frames through the model into segments, on the device path or the swscale one."""
        done_before = self.state.manifest.done_frames
        total = self.state.manifest.total_frames

        def report(done: int, _total: int | None) -> None:
            if self.progress is not None:
                self.progress(done_before + done, total)

        try:
            if graph is not None:
                from vsr.graph import run_device_graph

                run_device_graph(graph, reader, sink, stage, report, total)
            else:
                _run_graph(stage, reader, sink, self.job, report)
            sink.finish(gap.end_pts)
        except BaseException:
            sink.abort()
            raise


def window_between(
    plan: VideoPlan, gap: resume.Gap, warm: list[int], *, seekable: bool
) -> OutputWindow:
    """The window of a gap that starts mid-video, with `warm`: the output pts of the frames
    just before it that a temporal model runs as warm-up (and drops)."""
    assert gap.start_pts is not None
    first_needed = warm[0] if warm else gap.start_pts
    seek = None
    if seekable:
        seconds = Fraction(first_needed) * Fraction(plan.video.time_base)
        seek = math.floor(seconds / Fraction(plan.source.time_base))
    return OutputWindow(seek, warm[0] if warm else None, gap.start_pts, gap.end_pts)


@dataclass(frozen=True)
class Part:
    """One part of a job that is encoded on its own (a vsr.cluster chunk)."""

    gap: resume.Gap
    # The output pts of the frames just before the part (sorted): a temporal model runs its
    # warm-up on the last of them, as a resumed pass does, so that its state where the part
    # starts matches an uninterrupted run's.
    before: tuple[int, ...] = ()
    seekable: bool = True  # every packet has a pts: seek, rather than decode from the start


def encode_part(
    plan: VideoPlan,
    processor: Processor,
    part: Part,
    directory: Path,
    progress: ProgressFn | None = None,
) -> list[resume.Segment]:
    """Encode one part of a job into segment files in `directory`, and return them.

    The segments are not recorded in the job's manifest: the caller owns it (a driver that
    collects the parts of many workers). One encoder: the parts themselves run side by side
    (the driver planned the job on another host, whose cores say nothing about this one).
    """
    plan = dataclasses.replace(plan, encoders=EncoderPool(1, 0, "a cluster part: one encoder"))
    processor = _ready(processor, plan)
    batch = max(1, int(str(processor.settings.get("batch", plan.options.model.batch))))
    hw = _hardware_decode(plan, processor, ignore)
    job = _Job(plan, processor, batch, _plan_frame_path(plan, processor, batch), hw)
    gap = part.gap
    tb = str(plan.video.time_base)
    manifest = resume.Manifest(resume.MANIFEST_VERSION, {}, "", {}, tb, [], gap.frames)
    state = resume.ResumeState(manifest, directory / "part.vsr.json", directory)
    window: OutputWindow | None = None
    if gap.start_pts is not None:
        warmup = processor.descriptor.warmup
        warm = list(part.before[-warmup:]) if warmup > 0 else []
        window = window_between(plan, gap, warm, seekable=part.seekable)
    elif gap.end_pts is not None:
        window = OutputWindow(None, None, None, gap.end_pts)
    _Passes(job, state, progress).encode_gap(gap, window)
    return state.manifest.ordered()


# -- frame paths and decoding ----------------------------------------------------------------


def _plan_frame_path(plan: VideoPlan, processor: Processor, batch: int) -> DevicePlan | None:
    """The device frame path's plan (vsr.graph), or None for the swscale path."""
    from vsr.graph import plan_device_graph

    return plan_device_graph(
        plan.video,
        plan.encoding.pix_fmt,
        processor,
        plan.size,
        batch=batch,
        queue_size=plan.options.queue_size,
        mode=plan.options.color_path,
        timing=GRAPH_TIMING.enabled,
    )


def _describe_frame_path(plan: DevicePlan | None, hw: HwDecode) -> dict[str, Any]:
    described = plan.describe() if plan is not None else {"color_path": "swscale"}
    return {**described, "hwaccel": hw.to_dict()}


def _hardware_decode(plan: VideoPlan, processor: Processor, notify: Notify) -> HwDecode:
    """A container decoding through NVDEC when --hwaccel allows it (vsr.media.hardware)."""
    from vsr.media.hardware import choose_hwaccel

    device = getattr(processor, "device", None)
    on_cuda = isinstance(device, torch.device) and device.type == "cuda"
    mode, video = plan.options.hwaccel, plan.source
    decision, notice = choose_hwaccel(mode, plan.input, video.codec, video.index, on_cuda)
    if notice:
        notify(notice)
    elif decision.used == "cuda":
        notify(f"decoding on the GPU with NVDEC (--hwaccel {mode})")
    return decision


def _open_decoder(path: Path, decision: HwDecode | None) -> InputContainer:
    """The container a pass decodes from: through NVDEC when that was decided, else software."""
    from vsr.media.hardware import open_with

    hardware = open_with(decision, path) if decision is not None else None
    return hardware if hardware is not None else open_input(path)


def _device_graph(
    plan: DevicePlan | None, processor: Processor, stage: Stage
) -> DeviceGraph | None:
    if plan is None:
        return None
    from vsr.graph import DeviceGraph

    graph = DeviceGraph(plan, processor, stage.stop)
    if GRAPH_TIMING.enabled:
        GRAPH_TIMING.graphs.append(graph)
    return graph


@dataclass
class _GraphTiming:
    """`vsr bench` turns this on to time the device graph's stages with CUDA events."""

    enabled: bool = False
    graphs: list[Any] = field(default_factory=list)
    sinks: list[Any] = field(default_factory=list)  # the passes' SegmentSinks


GRAPH_TIMING = _GraphTiming()


# -- the swscale frame path ------------------------------------------------------------------


def _run_graph(
    stage: Stage, reader: VideoReader, sink: SegmentSink, job: _Job, progress: ProgressFn
) -> None:
    """decode / model / encode threads for one pass, frames as float RGB (swscale's)."""
    q_in, q_out = stage.new_queue(), stage.new_queue()
    threads = [
        threading.Thread(
            target=_read_frames, args=(stage, reader, q_in), name="vsr-decode", daemon=True
        ),
        threading.Thread(
            target=_write_frames,
            args=(stage, q_out, sink, job.plan.size, progress),
            name="vsr-encode",
            daemon=True,
        ),
    ]
    for t in threads:
        t.start()
    try:
        _run_model(stage, (q_in, q_out), job.processor, job.batch)
        threads[1].join()
    except KeyboardInterrupt:
        stage.stop.set()
        join(threads)
        raise Interrupted() from None
    except Cancelled:
        join(threads)
        stage.raise_first()
        raise
    except BaseException:
        stage.stop.set()
        join(threads)
        stage.raise_first()
        raise
    join(threads)
    stage.raise_first()


def _read_frames(stage: Stage, reader: VideoReader, q_in: Any) -> None:
    """The decode thread: frames (with their tensors) and packets into `q_in`."""
    try:
        with reader:  # closed on this thread, before anyone closes the container
            for item in reader:
                if isinstance(item, DecodedFrame):
                    stage.put(q_in, (item, to_tensor(item.rgb)))
                else:
                    stage.put(q_in, item)
        stage.put(q_in, END)
    except BaseException as exc:
        stage.fail(exc)


def _write_frames(
    stage: Stage, q_out: Any, sink: SegmentSink, size: tuple[int, int], progress: ProgressFn
) -> None:
    """The encode thread: the model's frames, cut to the encoder's size, into the sink."""
    written = 0
    try:
        while True:
            item = stage.get(q_out)
            if item is END:
                return
            if not isinstance(item, tuple):
                sink.write_packet(item)
                continue
            frame, tensor = item
            if frame.warmup:
                continue  # run only to warm a temporal model up; not part of the output
            rgb = from_tensor(tensor, frame.rgb.dtype == np.uint16)
            w, h = size
            rgb = rgb[:h, :w]
            alpha = None
            if frame.alpha is not None:
                alpha = resize_alpha(frame.alpha, rgb.shape[1], rgb.shape[0])
            sink.write_frame(rgb, alpha, frame.pts, frame.duration, repeated=frame.repeated)
            written += 1
            progress(written, None)  # the pass's report adds the job's total
    except BaseException as exc:
        stage.fail(exc)


def _run_model(stage: Stage, queues: tuple[Any, Any], processor: Processor, batch: int) -> None:
    """The calling thread: decoded frames in batches through the model, in order."""
    q_in, q_out = queues
    pending: deque[DecodedFrame] = deque()
    frames: list[torch.Tensor] = []

    def run_model(tensors: list[torch.Tensor] | None) -> None:
        out = processor.process(torch.stack(tensors)) if tensors else processor.flush()
        for i in range(out.shape[0]):
            if not pending:
                raise VsrError("internal error: the model returned more frames than it was given")
            stage.put(q_out, (pending.popleft(), out[i]))

    while True:
        item = stage.get(q_in)
        if item is END:
            break
        if isinstance(item, tuple):
            frame, tensor = item
            pending.append(frame)
            frames.append(tensor)
            if len(frames) >= batch:
                run_model(frames)
                frames = []
        else:
            stage.put(q_out, item)
    if frames:
        run_model(frames)
    run_model(None)
    if pending:
        raise VsrError(f"internal error: the model kept {len(pending)} frame(s) back after flush")
    stage.put(q_out, END)
