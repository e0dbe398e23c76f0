"""decode -> model -> encode, as three stages joined by bounded queues.

The reader thread demuxes and decodes (FFmpeg threads inside), the calling thread runs the
model, and the writer thread encodes and muxes. Each queue holds at most
``UpscaleOptions.queue_size`` items, so memory is flat whatever the video's length: about
``2 * queue_size`` decoded frames plus one model batch are alive at once. No frame touches
the disk except inside the output file, which is written under a temporary name beside the
target and renamed only when everything succeeded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import itertools
import json
import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import torch

from vsr import resume
from vsr.config import UpscaleOptions
from vsr.errors import InputError, Interrupted, OutputExistsError, UsageError, VsrError
from vsr.media import remux
from vsr.media.decode import (
    DecodedFrame,
    LostTail,
    OutputWindow,
    SeekMissed,
    VideoReader,
    lost_tail,
    packed_bframes_filter,
)
from vsr.media.encode import (
    OutputWriter,
    StreamReport,
    check_encoding,
    choose_video_encoding,
)
from vsr.media.filters import (
    FilterChain,
    FilterSpec,
    StreamGeometry,
    output_size_for_height,
    resize_to_height,
    resolve_spec,
)
from vsr.media.probe import (
    IMAGE_SUFFIXES,
    METADATA_ERRORS,
    MediaInfo,
    VideoInfo,
    open_input,
    probe,
)
from vsr.models.base import FrameGeometry, Processor, output_size

ProgressFn = Callable[[int, "int | None"], None]
NotifyFn = Callable[[str], None]

_END = object()


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
        return self.frames / self.seconds if self.seconds > 0 else 0.0

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


def _describe_filters(spec: FilterSpec) -> str:
    parts: list[str] = []
    if spec.deinterlace != "off":
        parts.append(
            f"deinterlace {spec.deinterlace} ({spec.deinterlacer}, {spec.deinterlace_mode} rate)"
        )
    if spec.crop != "off":
        parts.append(f"crop {spec.crop}")
    if spec.square_pixels:
        parts.append("square pixels")
    if spec.denoise != "off":
        parts.append(f"denoise {spec.denoise} {spec.denoise_strength:g}")
    return ", ".join(parts) or "none needed"


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


# -- the graph -------------------------------------------------------------------------------


class _Stage:
    """Bounded queues with cooperative cancellation, so no thread blocks forever."""

    def __init__(self, size: int) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.size = size

    def new_queue(self) -> queue.Queue[Any]:
        return queue.Queue(maxsize=self.size)

    def put(self, q: queue.Queue[Any], item: Any) -> None:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Cancelled

    def get(self, q: queue.Queue[Any]) -> Any:
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        raise _Cancelled

    def fail(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.stop.set()

    def raise_first(self) -> None:
        for exc in self.errors:
            if not isinstance(exc, _Cancelled):
                raise exc


class _Cancelled(Exception):
    pass


def upscale_file(
    input_path: str | Path,
    output: str | Path,
    options: UpscaleOptions,
    processor: Processor,
    *,
    progress: ProgressFn | None = None,
    notify: NotifyFn | None = None,
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
        return _upscale_locked(input_path, output, options, processor, progress, notify)


def _upscale_locked(
    input_path: Path,
    output: Path,
    options: UpscaleOptions,
    processor: Processor,
    progress: ProgressFn | None,
    notify: NotifyFn | None,
) -> UpscaleResult:
    notices: list[str] = []

    def note(message: str) -> None:
        notices.append(message)
        if notify is not None:
            notify(message)

    if input_path.suffix.lower() in IMAGE_SUFFIXES or output.suffix.lower() in IMAGE_SUFFIXES:
        from vsr.image import upscale_image

        frames, seconds = upscale_image(
            input_path, output, processor, note, max_memory=options.model.max_memory
        )
        return UpscaleResult(
            input_path,
            output,
            frames,
            seconds,
            processor.descriptor.name,
            dict(processor.settings),
            notices=notices,
        )
    fmt = remux.container_format(output)
    info = probe(input_path)
    return _upscale_video(
        input_path, output, info, fmt, options, processor, progress, note, notices
    )


def _upscale_video(
    input_path: Path,
    output: Path,
    info: MediaInfo,
    fmt: str,
    options: UpscaleOptions,
    processor: Processor,
    progress: ProgressFn | None,
    note: NotifyFn,
    notices: list[str],
) -> UpscaleResult:
    source_video = info.video
    spec = options.filters
    if spec.needs_analysis:
        spec = resolve_spec(spec, input_path)
        note(f"restoration filters for this file: {_describe_filters(spec)}")
    geometry: StreamGeometry | None = None
    video = source_video
    if not spec.is_identity:
        with av.open(str(input_path), metadata_errors=METADATA_ERRORS) as peek:
            geometry = StreamGeometry.from_stream(peek.streams.video[source_video.index])
        out = FilterChain(spec, geometry).output
        video = dataclasses.replace(
            source_video,
            width=out.width,
            height=out.height,
            time_base=out.time_base,
            frame_rate=out.frame_rate,
            sample_aspect_ratio=out.sample_aspect_ratio,
            field_order="progressive" if spec.deinterlace != "off" else source_video.field_order,
        )
    elif source_video.is_interlaced:
        note(
            f"the input is interlaced ({source_video.field_order}); upscaling it as it is "
            "blends the fields: add --deinterlace auto"
        )
    info = dataclasses.replace(info, video=video)
    if options.temporal == "stabilize":
        from vsr.temporal.stabilize import StabilizeProcessor

        processor = StabilizeProcessor(processor, strength=options.temporal_strength)
    model_w, model_h = output_size(video.width, video.height, processor.scale)
    out_w, out_h = model_w, model_h
    if options.height is not None:
        out_w, out_h = output_size_for_height(model_w, model_h, options.height)
        processor = _Resized(processor, out_w, out_h)
    encoding = _choose_encoding(video, options, fmt)
    for message in encoding.notices:
        note(message)
    # The chroma plane's size on a 2x2 frame tells the subsampling.
    comps = av.VideoFormat(encoding.pix_fmt, 2, 2).components
    chroma = comps[1] if len(comps) > 2 else comps[0]
    trim_w = out_w % 2 if chroma.width < 2 else 0
    trim_h = out_h % 2 if chroma.height < 2 else 0
    if trim_w or trim_h:
        note(
            f"{encoding.pix_fmt} needs even dimensions: output is {out_w - trim_w}x"
            f"{out_h - trim_h} instead of {out_w}x{out_h} (one edge pixel trimmed)"
        )
    size = (out_w - trim_w, out_h - trim_h)

    processor.init(FrameGeometry(video.width, video.height, float(video.frame_rate or 0) or None))
    batch = max(1, int(str(processor.settings.get("batch", options.model.batch))))
    device_plan = _plan_frame_path(video, encoding.pix_fmt, processor, size, batch, options)
    start = time.perf_counter()
    container = open_input(input_path)
    hw_decision = _hardware_decode(input_path, source_video, options, processor, note)
    try:
        plans = remux.plan_streams(container, video.index, fmt, encoding.codec)
        for plan in plans:
            if plan.note and plan.announce and plan.action in ("transcode", "drop"):
                note(plan.note)
        # Field-rate deinterlacing makes two output frames of each input frame.
        per_packet = 2 if spec.deinterlace != "off" and spec.deinterlace_mode == "field" else 1

        def make_plan() -> resume.JobPlan:
            pts, count, stamped = resume.scan_video(input_path, video.index)
            total, limit = resume.plan_job(
                pts,
                count,
                source_video.time_base,
                max_frames=options.max_frames,
                max_seconds=options.max_seconds,
                frames_per_packet=per_packet,
            )
            return resume.JobPlan(total or video.frames, limit, stamped)

        # Before any resume state is written: an encoder or container that refuses the job
        # fails here and leaves nothing behind.
        check_encoding(
            encoding, info, container, [p for p in plans if p.action == "encode"], fmt, *size
        )
        state = resume.prepare(
            input_path, output, resume.job_settings(options), video.time_base, make_plan
        )
        for message in state.notices:
            note(message)
        passes = _Passes(
            input_path,
            info,
            source_video,
            spec,
            geometry,
            options,
            processor,
            encoding,
            [p for p in plans if p.action == "encode"],
            size,
            batch,
            progress,
            state,
            device_plan,
            hw_decision,
        )
        try:
            passes.run()
            segments = state.manifest.ordered()
            with atomic_output(output) as tmp:
                writer = _final_mux(
                    tmp,
                    fmt,
                    info,
                    input_path,
                    plans,
                    encoding,
                    size,
                    segments,
                    state.directory,
                    options,
                )
        except BaseException as exc:
            # Finished segments stay for the next run to resume (Ctrl-C, disk full, a crash);
            # with none, or when the input itself is damaged, nothing is left.
            state.abandon(keep=not isinstance(exc, InputError))
            raise
        state.finish(output, keep_manifest=options.keep_manifest)
    finally:
        container.close()
    seconds = time.perf_counter() - start
    if writer.audio_packets_dropped:
        note(
            f"{writer.audio_packets_dropped} damaged audio packet(s) left out as silence "
            "(--skip-corrupt); the audio after them keeps its place"
        )
    repeated = sum(s.repeated for s in segments)
    if repeated:
        note(f"{repeated} corrupt frame(s) replaced by the previous frame to keep audio in sync")
    lost = None
    # A file cut short can end without any read error (at a cluster or fragment boundary),
    # so the decoded length is compared with the header's, with or without --skip-corrupt.
    if options.max_frames is None and options.max_seconds is None:
        end = writer.video_end
        lost = lost_tail(source_video, None if end is None else float(end * video.time_base))
        if lost is not None:
            note(
                f"{input_path.name} ends early (truncated or unreadable): the last "
                f"{lost.seconds:.2f} s of video (about {lost.frames} frames) could not be "
                "decoded, so the output is that much shorter"
            )
    return UpscaleResult(
        input_path,
        output,
        writer.frames_written,
        seconds,
        processor.descriptor.name,
        {**processor.settings, "frame_path": _describe_frame_path(device_plan, hw_decision)},
        streams=writer.reports,
        repeated_frames=repeated,
        notices=notices,
        lost=lost,
        encoder={
            "codec": encoding.codec,
            "pix_fmt": encoding.pix_fmt,
            "width": size[0],
            "height": size[1],
            "options": dict(encoding.options),
        },
        resumed_frames=state.resumed_frames,
        total_frames=state.manifest.total_frames,
    )


# -- segments -------------------------------------------------------------------------------


@dataclass
class _Passes:
    """Everything the encoding passes share: what to decode, run and encode, and the state.

    An uninterrupted job is one pass over the whole video; a resumed one makes one pass per
    run of missing frames (usually the tail; also a segment found damaged). Within a pass the
    model runs without a break, so where segments end changes no frame.
    """

    input_path: Path
    info: MediaInfo
    source_video: VideoInfo
    spec: FilterSpec
    geometry: StreamGeometry | None
    options: UpscaleOptions
    processor: Processor
    encoding: Any
    video_plan: list[remux.StreamPlan]
    size: tuple[int, int]
    batch: int
    progress: ProgressFn | None
    state: resume.ResumeState
    # The device frame path (vsr.graph) and the hardware-decode decision, None: the defaults.
    device_plan: Any = None
    hw_decision: Any = None

    def run(self) -> None:
        state = self.state
        total = state.manifest.total_frames
        if self.progress is not None:
            # First report: where the job starts (frames already done by an earlier run).
            self.progress(state.resumed_frames, total)
        for gap in state.manifest.gaps():
            window = self.window_for(gap)
            try:
                self.encode(gap, window)
            except SeekMissed:
                # The container's index put the seek past the frames needed: decode this
                # part from the start instead (slower, same frames).
                assert window is not None
                self.encode(gap, dataclasses.replace(window, seek_pts=None))

    def window_for(self, gap: resume.Gap) -> OutputWindow | None:
        """Where to seek and which frames to drop, run as warm-up, and keep, for one gap."""
        if gap.start_pts is None:
            return None if gap.end_pts is None else OutputWindow(None, None, None, gap.end_pts)
        manifest = self.state.manifest
        warm = manifest.warmup_pts(gap, self.processor.descriptor.warmup, self.state.directory)
        first_needed = warm[0] if warm else gap.start_pts
        seek = None
        if manifest.seekable:
            seconds = Fraction(first_needed) * Fraction(self.info.video.time_base)
            seek = math.floor(seconds / Fraction(self.source_video.time_base))
        return OutputWindow(seek, warm[0] if warm else None, gap.start_pts, gap.end_pts)

    def encode(self, gap: resume.Gap, window: OutputWindow | None) -> None:
        """Decode one gap (with its warm-up), run the model, encode it into segments."""
        container = _open_decoder(self.input_path, self.hw_decision)
        try:
            self.processor.reset()
            chain = FilterChain(self.spec, self.geometry) if self.geometry is not None else None
            stage = _Stage(self.options.queue_size)
            graph = _device_graph(self.device_plan, self.processor, stage)
            reader = VideoReader(
                container,
                self.source_video,
                self.input_path,
                chain=chain,
                out_info=self.info.video,
                copy_indices=set(),
                skip_corrupt=self.options.skip_corrupt,
                max_frames=gap.frames,
                first_index=gap.first_frame,
                window=window,
                arrays=graph.packer if graph is not None else None,
            )
            sink = _SegmentSink(self, container, gap.first_frame)
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
                    _run_graph(
                        stage, reader, self.processor, sink, self.batch, self.size, report, total
                    )
                sink.finish(gap.end_pts)
            except BaseException:
                sink.abort()
                raise
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


class _SegmentSink:
    """The writer side of a pass: frames go into segment files, each closed and recorded in
    the manifest after `checkpoint_every` seconds of work or `segment_seconds` of content.

    A segment may end at any frame: the next one gets an encoder of its own, which starts
    with a keyframe. Runs on the writer thread.
    """

    def __init__(
        self, passes: _Passes, container: av.container.InputContainer, first_frame: int
    ) -> None:
        self.passes = passes
        self.container = container
        self.next_frame = first_frame
        self.frames = 0  # written in this pass
        self._writer: Any = None  # OutputWriter, or FfmpegSegmentWriter
        self._segment: resume.Segment | None = None
        self._tmp: Path | None = None
        self._count = 0
        self._repeated = 0
        self._opened = time.monotonic()

    def write_frame(
        self,
        rgb: np.ndarray,
        alpha: np.ndarray | None,
        pts: int,
        duration: int = 0,
        *,
        repeated: bool = False,
    ) -> None:
        if self._writer is not None and self._due(pts):
            self._close(end_pts=pts)
        writer = self._writer or self._open(pts)
        writer.write_frame(rgb, alpha, pts, duration)
        self._count += 1
        self.frames += 1
        self._repeated += int(repeated)

    def write_video_frame(
        self, frame: av.VideoFrame, pts: int, duration: int = 0, *, repeated: bool = False
    ) -> None:
        """A frame already in the encoder's format (the device graph's output)."""
        if self._writer is not None and self._due(pts):
            self._close(end_pts=pts)
        writer = self._writer or self._open(pts)
        writer.write_video_frame(frame, pts, duration)
        self._count += 1
        self.frames += 1
        self._repeated += int(repeated)

    def write_packet(self, packet: av.Packet) -> None:
        """Segments hold video only; other streams are copied by the final mux."""

    def finish(self, end_pts: int | None) -> None:
        if self._writer is not None:
            self._close(end_pts)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink()

    def _due(self, pts: int) -> bool:
        options = self.passes.options
        if time.monotonic() - self._opened >= options.checkpoint_every:
            return True
        assert self._segment is not None
        span = (pts - self._segment.start_pts) * Fraction(self.passes.info.video.time_base)
        return span >= Fraction(options.segment_seconds)

    def _open(self, pts: int) -> Any:
        p = self.passes
        segment = resume.Segment(p.state.next_index(), self.next_frame, 0, pts, None)
        media = segment.file(p.state.directory)
        self._tmp = media.with_name(media.name + ".partial.mkv")
        writer = _segment_writer(
            self._tmp, p.info, self.container, p.video_plan, p.encoding, p.size, p.options
        )
        writer.open()
        self._writer, self._segment = writer, segment
        self._count = self._repeated = 0
        return writer

    def _close(self, end_pts: int | None) -> None:
        writer, segment, tmp = self._writer, self._segment, self._tmp
        assert writer is not None and segment is not None and tmp is not None
        writer.close()
        self._writer = None
        if writer.frames_written != self._count:
            raise VsrError(
                f"internal error: {self._count} frames given to the encoder but "
                f"{writer.frames_written} encoded; the output was not kept"
            )
        directory = self.passes.state.directory
        stamps = segment.timestamps(directory)
        tmp_stamps = stamps.with_name(stamps.name + ".partial")
        tmp_stamps.write_text(json.dumps({"packets": writer.packet_log}), encoding="utf-8")
        os.replace(tmp, segment.file(directory))
        os.replace(tmp_stamps, stamps)
        self._tmp = None
        segment.frames, segment.end_pts, segment.repeated = self._count, end_pts, self._repeated
        self.passes.state.add_segment(segment)
        self.next_frame += self._count
        self._opened = time.monotonic()


def _plan_frame_path(
    video: VideoInfo,
    pix_fmt: str,
    processor: Processor,
    size: tuple[int, int],
    batch: int,
    options: UpscaleOptions,
) -> Any:
    """The device frame path's plan (vsr.graph), or None for the swscale path."""
    from vsr.graph import plan_device_graph

    return plan_device_graph(
        video,
        pix_fmt,
        processor,
        size,
        batch=batch,
        queue_size=options.queue_size,
        mode=options.color_path,
        timing=GRAPH_TIMING.enabled,
    )


def _describe_frame_path(plan: Any, hw: Any) -> dict[str, Any]:
    described = plan.describe() if plan is not None else {"color_path": "swscale"}
    return {**described, "hwaccel": hw.to_dict()}


def _hardware_decode(
    path: Path, video: VideoInfo, options: UpscaleOptions, processor: Processor, note: NotifyFn
) -> Any:
    """A container decoding through NVDEC when --hwaccel allows it (vsr.media.hardware)."""
    from vsr.media.hardware import choose_hwaccel

    device = getattr(processor, "device", None)
    on_cuda = isinstance(device, torch.device) and device.type == "cuda"
    decision, notice = choose_hwaccel(options.hwaccel, path, video.codec, video.index, on_cuda)
    if notice:
        note(notice)
    elif decision.used == "cuda":
        note(f"decoding on the GPU with NVDEC (--hwaccel {options.hwaccel})")
    return decision


def _open_decoder(path: Path, decision: Any) -> av.container.InputContainer:
    """The container a pass decodes from: through NVDEC when that was decided, else software."""
    from vsr.media.hardware import open_with

    hardware = open_with(decision, path) if decision is not None else None
    return hardware if hardware is not None else open_input(path)


def _choose_encoding(video: VideoInfo, options: UpscaleOptions, fmt: str) -> Any:
    """The video encoder's settings; with the ffmpeg back end, also encoders only it has."""
    codec = options.encode.codec
    if options.encoder_backend == "ffmpeg" and codec and codec not in av.codecs_available:
        from vsr.media.ffmpeg_encode import system_encoding

        return system_encoding(codec, video.pix_fmt, options.encode)
    return _usable_encoding(choose_video_encoding(video, options.encode, fmt), video, options, fmt)


def _segment_writer(
    path: Path,
    info: MediaInfo,
    container: av.container.InputContainer,
    video_plan: list[remux.StreamPlan],
    encoding: Any,
    size: tuple[int, int],
    options: UpscaleOptions,
) -> Any:
    """The encoder of one segment file: PyAV's, or the system ffmpeg's (--encoder-backend)."""
    if options.encoder_backend == "ffmpeg":
        from vsr.media.ffmpeg_encode import FfmpegSegmentWriter

        return FfmpegSegmentWriter(path, info, encoding, size[0], size[1])
    return OutputWriter(
        path, "matroska", info, container, video_plan, encoding, size[0], size[1], segment=True
    )


def _usable_encoding(encoding: Any, video: VideoInfo, options: UpscaleOptions, fmt: str) -> Any:
    """An NVENC encoder this machine can't open is replaced by its software twin, announced."""
    from vsr.media.hardware import check_encoder_usable

    why = check_encoder_usable(encoding.codec)
    if why is None:
        return encoding
    twin = {"h264_nvenc": "libx264", "hevc_nvenc": "libx265", "av1_nvenc": "libsvtav1"}
    fallback = twin.get(encoding.codec, "libx264")
    dropped = " (its -e options were dropped)" if options.encode.options else ""
    replaced = dataclasses.replace(options.encode, codec=fallback, options=())
    chosen = choose_video_encoding(video, replaced, fmt)
    notice = f"{encoding.codec} can't be used here: {why}; encoding with {fallback}{dropped}"
    return dataclasses.replace(chosen, notices=(*chosen.notices, notice))


def _device_graph(plan: Any, processor: Processor, stage: _Stage) -> Any:
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


GRAPH_TIMING = _GraphTiming()


def _final_mux(
    tmp: Path,
    fmt: str,
    info: MediaInfo,
    input_path: Path,
    plans: list[remux.StreamPlan],
    encoding: Any,
    size: tuple[int, int],
    segments: list[resume.Segment],
    directory: Path,
    options: UpscaleOptions,
) -> OutputWriter:
    """One output file: the segments' video packets interleaved with the copied streams."""
    tb = info.video.time_base
    end_time = None
    if options.max_frames is not None or options.max_seconds is not None:
        # A cut job (preview, --frames): other streams stop where the last frame ends.
        ends = [
            int(p[0]) + int(p[2] or 0) for p in _stamps(segments[-1], directory) if p[0] is not None
        ]
        end_time = float(max(ends) * tb) if ends else None
    # Its own input container: the copied streams are read from the start, negative
    # timestamps (AAC priming) included, whatever the segment passes did to the other one.
    offset = Fraction(0)
    if fmt == "ogg":
        copied = {p.input_index for p in plans if p.action in ("copy", "transcode")}
        with av.open(str(input_path), metadata_errors=METADATA_ERRORS) as peek:
            offset = remux.lead_before_zero(peek, copied)
        if offset and info.video.frame_rate:
            # Whole frames, so that the video's timestamps stay exact on Ogg's frame grid.
            step = 1 / Fraction(info.video.frame_rate)
            offset = math.ceil(offset / step) * step
    with (
        av.open(str(input_path), metadata_errors=METADATA_ERRORS) as source,
        av.open(str(segments[0].file(directory))) as first,
    ):
        writer = OutputWriter(
            tmp,
            fmt,
            info,
            source,
            plans,
            encoding,
            size[0],
            size[1],
            video_template=first.streams.video[0],
            time_offset=offset,
            skip_corrupt=options.skip_corrupt,
        )
        writer.open()
        expected = [0]  # video packets the segments hold, counted while they are read
        try:
            merged = heapq.merge(
                _segment_packets(segments, directory, tb, expected),
                _copied_packets(source, plans, end_time),
                key=lambda item: item[0],
            )
            for _t, kind, packet, stamp in merged:
                if kind == 0:
                    writer.write_video_packet(packet, stamp[0], stamp[1], stamp[2])
                else:
                    writer.write_packet(packet)
            writer.close()
        except BaseException:
            writer.abort()
            raise
    if writer.frames_written != expected[0]:
        raise VsrError(
            f"internal error: {expected[0]} video packets encoded but {writer.frames_written} "
            "written; the output was not kept"
        )
    return writer


def _stamps(segment: resume.Segment, directory: Path) -> list[list[int | None]]:
    """The segment's packets' [pts, dts, duration, key], with every duration filled in.

    Encoders leave some durations out (the last packets after a flush); the gap to the next
    frame, or the typical frame step for the very last one, is what a player would use.
    """
    data = json.loads(segment.timestamps(directory).read_text(encoding="utf-8"))
    packets: list[list[int | None]] = list(data["packets"])
    order = sorted((p[0], i) for i, p in enumerate(packets) if p[0] is not None)
    steps = [b[0] - a[0] for a, b in itertools.pairwise(order) if b[0] > a[0]]
    typical = sorted(steps)[len(steps) // 2] if steps else 1
    for (pts, i), nxt in zip(order, [*order[1:], None], strict=True):
        if packets[i][2] and int(packets[i][2] or 0) > 0:
            continue
        packets[i][2] = (nxt[0] - pts) if nxt is not None and nxt[0] > pts else typical
    return packets


def _segment_packets(
    segments: list[resume.Segment], directory: Path, tb: Any, count: list[int]
) -> Iterator[tuple[float, int, av.Packet, list[int | None]]]:
    for segment in segments:
        stamps = _stamps(segment, directory)
        count[0] += len(stamps)
        with av.open(str(segment.file(directory))) as seg:
            packets = (p for p in seg.demux(video=0) if p.size)
            for packet, stamp in zip(packets, stamps, strict=False):
                when = stamp[1] if stamp[1] is not None else stamp[0]
                yield (float((when or 0) * tb), 0, packet, stamp)


def _copied_packets(
    container: av.container.InputContainer, plans: list[remux.StreamPlan], end_time: float | None
) -> Iterator[tuple[float, int, av.Packet, list[int | None]]]:
    indices = {p.input_index for p in plans if p.action in ("copy", "transcode")}
    streams = [s for s in container.streams if s.index in indices]
    if not streams:
        return
    last = 0.0
    repair = remux.TimestampRepair()

    def ready(packets: list[av.Packet]) -> Iterator[tuple[float, int, av.Packet, list[int | None]]]:
        nonlocal last
        for packet in packets:
            stamp = packet.dts if packet.dts is not None else packet.pts
            if stamp is not None and packet.time_base is not None:
                last = float(stamp * packet.time_base)
            if end_time is not None and last >= end_time:
                continue
            yield (last, 1, packet, [])

    # A copied DivX/Xvid stream gets its packed B-frames unpacked, as the decoded one does.
    unpackers = {
        s.index: f for s in streams if s.type == "video" and (f := packed_bframes_filter(s))
    }
    try:
        for packet in container.demux(*streams):
            if packet.size == 0 and packet.stream.type != "subtitle":
                continue
            unpack = unpackers.get(packet.stream.index)
            if unpack is None:
                yield from ready(repair.feed(packet))
                continue
            source = packet.stream
            for out in unpack.filter(packet):
                out.stream = source
                yield from ready(repair.feed(out))
    except av.error.FFmpegError:
        # Damage in the input was already reported (or accepted with --skip-corrupt) while
        # decoding; what could be read is kept.
        pass
    yield from ready(repair.flush())


def _run_graph(
    stage: _Stage,
    reader: VideoReader,
    processor: Processor,
    writer: _SegmentSink,
    batch: int,
    size: tuple[int, int],
    progress: ProgressFn | None,
    total: int | None,
) -> None:
    q_in = stage.new_queue()
    q_out = stage.new_queue()

    def read() -> None:
        try:
            with reader:  # closed on this thread, before anyone closes the container
                for item in reader:
                    if isinstance(item, DecodedFrame):
                        stage.put(q_in, (item, to_tensor(item.rgb)))
                    else:
                        stage.put(q_in, item)
            stage.put(q_in, _END)
        except BaseException as exc:
            stage.fail(exc)

    def write() -> None:
        written = 0
        try:
            while True:
                item = stage.get(q_out)
                if item is _END:
                    return
                if isinstance(item, tuple):
                    frame, tensor = item
                    if frame.warmup:
                        continue  # run only to warm a temporal model up; not part of the output
                    rgb = from_tensor(tensor, frame.rgb.dtype == np.uint16)
                    w, h = size
                    rgb = rgb[:h, :w]
                    alpha = None
                    if frame.alpha is not None:
                        alpha = resize_alpha(frame.alpha, rgb.shape[1], rgb.shape[0])
                    writer.write_frame(
                        rgb, alpha, frame.pts, frame.duration, repeated=frame.repeated
                    )
                    written += 1
                    if progress is not None:
                        progress(written, total)
                else:
                    writer.write_packet(item)
        except BaseException as exc:
            stage.fail(exc)

    threads = [
        threading.Thread(target=read, name="vsr-decode", daemon=True),
        threading.Thread(target=write, name="vsr-encode", daemon=True),
    ]
    for t in threads:
        t.start()
    pending: deque[DecodedFrame] = deque()
    frames: list[torch.Tensor] = []

    def run_model(tensors: list[torch.Tensor] | None) -> None:
        out = processor.process(torch.stack(tensors)) if tensors else processor.flush()
        for i in range(out.shape[0]):
            if not pending:
                raise VsrError("internal error: the model returned more frames than it was given")
            stage.put(q_out, (pending.popleft(), out[i]))

    try:
        while True:
            item = stage.get(q_in)
            if item is _END:
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
            raise VsrError(
                f"internal error: the model kept {len(pending)} frame(s) back after flush"
            )
        stage.put(q_out, _END)
        threads[1].join()
    except KeyboardInterrupt:
        stage.stop.set()
        _join(threads)
        raise Interrupted() from None
    except _Cancelled:
        _join(threads)
        stage.raise_first()
        raise
    except BaseException:
        stage.stop.set()
        _join(threads)
        stage.raise_first()
        raise
    _join(threads)
    stage.raise_first()


def _join(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(timeout=10)
