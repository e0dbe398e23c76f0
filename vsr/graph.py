"""The device frame path: decoded planes -> pinned ring -> device colour + model -> ring -> encoder.

What crosses between host and device is the frames' own integer planes (1.5 bytes a pixel for
8-bit 4:2:0, against 12 for float32 RGB), through two rings of fixed-size host buffers (pinned
on CUDA) so host memory stays bounded whatever the video's length:

    decode thread   decode -> planes packed straight into a free input slot
    main thread     upload (upload stream) -> colour + model + colour back (compute stream)
                    -> download into a free output slot (download stream), all queued
                    without waiting, ordered by CUDA events
    encode thread   wait for the batch's download -> frame in the encoder's format -> encode

The upload of batch N+1 and the download of batch N-1 run on their own streams while the model
works on batch N; the host blocks only when a ring is full (back pressure) or the encoder waits
for its batch. On the CPU the same code runs in plain order (no streams, no pinning).

The timestamps, the stream plan and the segment files are the caller's, unchanged: this module
only replaces how pixels travel between `VideoReader` and `OutputWriter`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vsr import runtime
from vsr.errors import Interrupted, VsrError
from vsr.events import ProgressFn
from vsr.media.color import HDR_TRANSFERS, ColorInfo, tag_frame
from vsr.media.decode import DecodedFrame, VideoReader
from vsr.media.frames import VideoFrame
from vsr.media.probe import VideoInfo
from vsr.media.tensor_color import (
    PlaneFormat,
    Siting,
    frame_to_packed,
    packed_to_frame,
    planes_to_rgb,
    rgb_to_planes,
    siting_for_codec,
)
from vsr.threads import Cancelled, Stage, join

_END = object()

# Stages timed for `vsr bench` (seconds busy, summed over the run).
STAGES = ("decode", "upload", "colour", "model", "download", "encode")


@dataclass
class GraphStats:
    """Busy seconds per stage, frames, ring high-water marks: what `vsr bench` reports."""

    busy: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    frames: int = 0
    batches: int = 0
    wall: float = 0.0
    peak_input_slots: int = 0
    peak_output_slots: int = 0
    input_slots: int = 0
    output_slots: int = 0
    model_pixels: int = 0  # input pixels the model ran on (for the FLOP figure)


@dataclass(frozen=True)
class DevicePlan:
    """How frames travel for one job; see `plan_device_graph`."""

    device: torch.device
    in_fmt: PlaneFormat
    out_fmt: PlaneFormat
    width: int  # model input (decoded, after filters)
    height: int
    out_width: int  # encoder frame (even-trimmed)
    out_height: int
    color: ColorInfo
    siting_in: Siting
    siting_out: Siting
    encoder_pix_fmt: str
    batch: int
    slots: int
    timing: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "color_path": "tensor",
            "device": str(self.device),
            "decoded_planes": self.in_fmt.pix_fmt,
            "encoded_planes": self.out_fmt.pix_fmt,
            "chroma_siting": self.siting_in,
            "ring_slots": self.slots,
            "pinned": self.device.type == "cuda",
        }


def processor_on_device(processor: object) -> torch.device | None:
    """The device of a processor that can take frames already there, else None."""
    if not hasattr(processor, "process_device"):
        return None
    device = getattr(processor, "device", None)
    return device if isinstance(device, torch.device) else None


def plan_device_graph(
    video: VideoInfo,
    encoder_pix_fmt: str,
    processor: object,
    size: tuple[int, int],
    *,
    batch: int,
    queue_size: int,
    mode: str = "auto",
    timing: bool = False,
) -> DevicePlan | None:
    """The device path for this job, or None where frames take the swscale path.

    `mode`: "tensor" or "swscale" force a path; "auto" takes the tensor path wherever it
    applies, on the CPU too, where it measured faster (1.10x end to end on two cores, and less
    memory: `vsr bench` times both; README).
    Sources or outputs with alpha, paletted or float formats, PQ/HLG sources (their model
    domain is mapped on the host), and processors that need frames on the host (temporal
    ones, --height) always take the swscale path.
    """
    if mode == "swscale":
        return None
    device = processor_on_device(processor)
    if device is None or video.has_alpha:
        return None
    if video.color.trc in HDR_TRANSFERS:
        # PQ/HLG reach the model in an SDR-like domain through swscale-side lookup tables
        # (vsr.media.color); the tensor path does not apply them yet.
        return None
    in_fmt = PlaneFormat.for_pix_fmt(video.pix_fmt)
    out_fmt = PlaneFormat.for_pix_fmt(encoder_pix_fmt)
    if in_fmt is None or out_fmt is None:
        return None
    siting = siting_for_codec(video.codec)
    # Enough slots for a batch being filled, one being uploaded and the queue's depth.
    slots = max(2 * batch, queue_size) + batch
    return DevicePlan(
        device=device,
        in_fmt=in_fmt,
        out_fmt=out_fmt,
        width=video.width,
        height=video.height,
        out_width=size[0],
        out_height=size[1],
        color=video.color,
        siting_in=siting,
        # The encoders vsr writes (x264, x265, VP9, AV1) tag or assume left-sited 4:2:0.
        siting_out="left",
        encoder_pix_fmt=encoder_pix_fmt,
        batch=max(1, batch),
        slots=slots,
        timing=timing,
    )


class Packer:
    """The decode side: each decoded frame's planes go straight into a free input slot."""

    def __init__(self, plan: DevicePlan, stop: threading.Event) -> None:
        self.plan = plan
        elements = plan.in_fmt.elements(plan.width, plan.height)
        pin = plan.device.type == "cuda"
        self.ring = runtime.HostRing(
            plan.slots, elements, plan.in_fmt.torch_dtype, pin=pin, stop=stop
        )
        self.slots: deque[int] = deque()
        self.seconds = 0.0
        self.waited = 0.0  # blocked on a full ring: back pressure, not decode work

    def __call__(self, frame: VideoFrame) -> tuple[np.ndarray, np.ndarray | None]:
        start = time.perf_counter()
        slot = self.ring.acquire()
        self.waited += time.perf_counter() - start
        start = time.perf_counter()
        target = self.ring.view(slot).numpy().view(self.plan.in_fmt.numpy_dtype)
        frame_to_packed(frame, self.plan.in_fmt, self.plan.width, self.plan.height, out=target)
        self.seconds += time.perf_counter() - start
        self.slots.append(slot)
        return target, None


@dataclass
class _Batch:
    frames: list[DecodedFrame]
    out_slots: list[int]
    done: torch.cuda.Event | None
    events: dict[str, tuple[Any, Any]]
    cpu_seconds: dict[str, float]


class DeviceGraph:
    """Runs one segment through the device path (see the module docstring)."""

    def __init__(self, plan: DevicePlan, processor: Any, stop: threading.Event) -> None:
        self.plan = plan
        self.processor = processor
        self.stop = stop
        self.streams = runtime.Streams(plan.device, timing=plan.timing)
        self.packer = Packer(plan, stop)
        elements = plan.out_fmt.elements(plan.out_width, plan.out_height)
        self.out_ring = runtime.HostRing(
            plan.slots,
            elements,
            plan.out_fmt.torch_dtype,
            pin=plan.device.type == "cuda",
            stop=stop,
        )
        self.stats = GraphStats(input_slots=plan.slots, output_slots=plan.slots)

    # -- the main thread's work -------------------------------------------------------------
    def submit(self, frames: list[DecodedFrame], in_slots: list[int]) -> _Batch:
        """Queue upload, colour, model, colour back and download for one batch; no waiting
        on the device except for free output slots."""
        events: dict[str, tuple[Any, Any]] = {}
        cpu: dict[str, float] = {}
        staged, uploaded = self._upload(in_slots, events, cpu)
        packed, computed = self._compute(staged, uploaded, events, cpu)
        self.stats.model_pixels += len(frames) * self.plan.width * self.plan.height
        out_slots, done = self._download(packed, computed, len(frames), events, cpu)
        return _Batch(frames, out_slots, done, events, cpu)

    def _upload(
        self, in_slots: list[int], events: dict[str, tuple[Any, Any]], cpu: dict[str, float]
    ) -> tuple[torch.Tensor, Any]:
        """The batch's input slots onto the device; the slots are released behind a fence."""
        plan, streams = self.plan, self.streams
        host = self.packer.ring.buffers
        t0 = time.perf_counter()
        with streams.on("upload"):
            e0 = streams.record("upload")
            if streams.cuda:
                staged = torch.empty(
                    (len(in_slots), host.shape[1]), dtype=host.dtype, device=plan.device
                )
                for i, slot in enumerate(in_slots):
                    staged[i].copy_(host[slot], non_blocking=True)
            else:
                # On the CPU the slots are already where the model runs: gather, no upload.
                staged = host.index_select(0, torch.tensor(in_slots))
            uploaded = streams.record("upload")
            events["upload"] = (e0, uploaded)
        cpu["upload"] = time.perf_counter() - t0
        # The input slots are free once their upload has run (the decoder waits for that).
        fence = runtime.Fence(uploaded)
        for slot in in_slots:
            self.packer.ring.release(slot, fence)
        return staged, uploaded

    def _compute(
        self,
        staged: torch.Tensor,
        uploaded: Any,
        events: dict[str, tuple[Any, Any]],
        cpu: dict[str, float],
    ) -> tuple[torch.Tensor, Any]:
        """Planes to RGB, the model, RGB back to the encoder's planes, on the compute stream."""
        plan, streams = self.plan, self.streams
        streams.wait("compute", uploaded)
        streams.hand_over(staged, "compute")
        with streams.on("compute"):
            t0 = time.perf_counter()
            c0 = streams.record("compute")
            rgb = planes_to_rgb(
                staged,
                plan.in_fmt,
                plan.width,
                plan.height,
                plan.color,
                siting=plan.siting_in,
                dtype=self.processor.input_dtype,
            )
            c1 = streams.record("compute")
            cpu["colour"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            y = self.processor.process_device(rgb)
            c2 = streams.record("compute")
            cpu["model"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            y = y[..., : plan.out_height, : plan.out_width]
            packed = rgb_to_planes(y, plan.out_fmt, plan.color, siting=plan.siting_out)
            c3 = streams.record("compute")
            cpu["colour"] += time.perf_counter() - t0
            events["colour"] = (c0, c1)
            events["model"] = (c1, c2)
            events["colour_back"] = (c2, c3)
        return packed, c3

    def _download(
        self,
        packed: torch.Tensor,
        computed: Any,
        count: int,
        events: dict[str, tuple[Any, Any]],
        cpu: dict[str, float],
    ) -> tuple[list[int], Any]:
        """The result into free output slots (waiting for them is the graph's back-pressure)."""
        streams = self.streams
        out_slots = [self.out_ring.acquire() for _ in range(count)]
        t0 = time.perf_counter()
        streams.wait("download", computed)
        streams.hand_over(packed, "download")
        with streams.on("download"):
            d0 = streams.record("download")
            out = self.out_ring.buffers
            for i, slot in enumerate(out_slots):
                out[slot].copy_(packed[i], non_blocking=streams.cuda)
            done = streams.record("download")
            events["download"] = (d0, done)
        cpu["download"] = time.perf_counter() - t0
        return out_slots, done

    # -- the encode thread's work -----------------------------------------------------------
    def encode(self, batch: _Batch, writer: Any) -> int:
        """Encode one batch's frames; returns how many were written."""
        runtime.Fence(batch.done).wait()
        self._account(batch)
        plan = self.plan
        start = time.perf_counter()
        written = 0
        for frame, slot in zip(batch.frames, batch.out_slots, strict=True):
            if frame.warmup:
                self.out_ring.release(slot)
                continue  # run only to warm a temporal model up; not part of the output
            data = self.out_ring.view(slot).numpy()
            video = packed_to_frame(
                data, plan.out_fmt, plan.out_width, plan.out_height, plan.encoder_pix_fmt
            )
            # The frame is a copy: the slot can take the next batch while this one encodes.
            self.out_ring.release(slot)
            tag_frame(video, plan.color)
            writer.write_video_frame(video, frame.pts, frame.duration, repeated=frame.repeated)
            written += 1
        self.stats.busy["encode"] += time.perf_counter() - start
        return written

    def _account(self, batch: _Batch) -> None:
        stats = self.stats
        stats.batches += 1
        stats.frames += len(batch.frames)
        if self.streams.timing:
            for name, (a, b) in batch.events.items():
                key = "colour" if name == "colour_back" else name
                stats.busy[key] += a.elapsed_time(b) / 1000
        else:
            for name, seconds in batch.cpu_seconds.items():
                stats.busy[name] += seconds


def run_device_graph(
    graph: DeviceGraph,
    reader: VideoReader,
    writer: Any,
    stage: Stage,
    progress: ProgressFn | None,
    total: int | None,
) -> None:
    """decode / device / encode threads for one pass (the swscale path's contract, vsr.pipeline).

    `writer` is the pipeline's segment sink (`write_video_frame`, `write_packet`).

    `stage` holds the bounded queues and the cancellation (vsr.threads); `reader`
    must have been built with `arrays=graph.packer`. The decode and encode stages run on their
    own threads; the device stage (upload, model, download submission) runs on this one.
    """
    q_in: queue.Queue[Any] = stage.new_queue()
    q_out: queue.Queue[Any] = stage.new_queue()
    started = time.perf_counter()
    threads = [
        threading.Thread(
            target=_decode_stage, args=(graph, reader, stage, q_in), name="vsr-decode", daemon=True
        ),
        threading.Thread(
            target=_encode_stage,
            args=(graph, writer, stage, q_out, (progress, total)),
            name="vsr-encode",
            daemon=True,
        ),
    ]
    for t in threads:
        t.start()
    try:
        _device_stage(graph, stage, q_in, q_out)
        threads[1].join()
    except KeyboardInterrupt:
        stage.stop.set()
        join(threads)
        raise Interrupted() from None
    except (Cancelled, runtime.RingClosed):
        stage.stop.set()
        join(threads)
        stage.raise_first()
        raise VsrError("internal error: the device graph was cancelled") from None
    except BaseException:
        stage.stop.set()
        join(threads)
        stage.raise_first()
        raise
    join(threads)
    stage.raise_first()
    graph.stats.wall += time.perf_counter() - started
    graph.stats.peak_input_slots = max(graph.stats.peak_input_slots, graph.packer.ring.peak_live)
    graph.stats.peak_output_slots = max(graph.stats.peak_output_slots, graph.out_ring.peak_live)


def _decode_stage(graph: DeviceGraph, reader: VideoReader, stage: Stage, q_in: Any) -> None:
    """The decode thread: frames (each with its pinned input slot) and packets to copy."""
    packer = graph.packer
    try:
        iterator = iter(reader)
        while True:
            t0 = time.perf_counter()
            waited = packer.waited
            try:
                item = next(iterator)
            except StopIteration:
                break
            # Decode time is the reader's own, not the wait for a free slot.
            busy = time.perf_counter() - t0 - (packer.waited - waited)
            graph.stats.busy["decode"] += busy
            if isinstance(item, DecodedFrame):
                stage.put(q_in, (item, packer.slots.popleft()))
            else:
                stage.put(q_in, item)
        stage.put(q_in, _END)
    except runtime.RingClosed:
        stage.fail(Cancelled())
    except BaseException as exc:
        stage.fail(exc)
    finally:
        reader.close()  # on this thread, before anyone closes the container


def _encode_stage(
    graph: DeviceGraph,
    writer: Any,
    stage: Stage,
    q_out: Any,
    report: tuple[ProgressFn | None, int | None],
) -> None:
    """The encode thread: finished batches to the encoder, copied packets to the muxer."""
    progress, total = report
    written = 0
    try:
        while True:
            item = stage.get(q_out)
            if item is _END:
                return
            if isinstance(item, _Batch):
                written += graph.encode(item, writer)
                if progress is not None:
                    progress(written, total)
            else:
                writer.write_packet(item)
    except runtime.RingClosed:
        stage.fail(Cancelled())
    except BaseException as exc:
        stage.fail(exc)


def _device_stage(graph: DeviceGraph, stage: Stage, q_in: Any, q_out: Any) -> None:
    """The device stage, on the calling thread: frames gathered into batches and submitted."""
    frames: list[DecodedFrame] = []
    slots: list[int] = []
    while True:
        item = stage.get(q_in)
        if item is _END:
            break
        if isinstance(item, tuple):
            frames.append(item[0])
            slots.append(item[1])
            if len(frames) >= graph.plan.batch:
                stage.put(q_out, graph.submit(frames, slots))
                frames, slots = [], []
        else:
            stage.put(q_out, item)
    if frames:
        stage.put(q_out, graph.submit(frames, slots))
    stage.put(q_out, _END)
