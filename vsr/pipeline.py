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
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import torch

from vsr.config import UpscaleOptions
from vsr.errors import Interrupted, OutputExistsError, UsageError, VsrError
from vsr.media import remux
from vsr.media.decode import DecodedFrame, VideoReader
from vsr.media.encode import OutputWriter, StreamReport, choose_video_encoding
from vsr.media.probe import IMAGE_SUFFIXES, MediaInfo, open_input, probe
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

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": str(self.input),
            "output": str(self.output),
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 3),
            "model": self.model,
            "settings": self.settings,
            "streams": [s.to_dict() for s in self.streams],
            "repeated_frames": self.repeated_frames,
            "notices": self.notices,
        }


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
    notices: list[str] = []

    def note(message: str) -> None:
        notices.append(message)
        if notify is not None:
            notify(message)

    if input_path.suffix.lower() in IMAGE_SUFFIXES or output.suffix.lower() in IMAGE_SUFFIXES:
        from vsr.image import upscale_image

        frames, seconds = upscale_image(input_path, output, processor, note)
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
    video = info.video
    out_w, out_h = output_size(video.width, video.height, processor.scale)
    encoding = choose_video_encoding(video, options.encode, fmt)
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
    enc_w, enc_h = out_w - trim_w, out_h - trim_h

    processor.init(FrameGeometry(video.width, video.height, float(video.frame_rate or 0) or None))
    batch = max(1, int(str(processor.settings.get("batch", options.model.batch))))
    start = time.perf_counter()
    container = open_input(input_path)
    stage = _Stage(options.queue_size)
    try:
        plans = remux.plan_streams(container, video.index, fmt, encoding.codec)
        for plan in plans:
            if plan.note and plan.action in ("transcode", "drop"):
                note(plan.note)
        copy_indices = {p.input_index for p in plans if p.action in ("copy", "transcode")}
        reader = VideoReader(
            container,
            video,
            input_path,
            copy_indices=copy_indices,
            skip_corrupt=options.skip_corrupt,
            max_frames=options.max_frames,
        )
        with atomic_output(output) as tmp:
            writer = OutputWriter(tmp, fmt, info, container, plans, encoding, enc_w, enc_h)
            writer.open()
            try:
                _run_graph(
                    stage,
                    reader,
                    processor,
                    writer,
                    batch,
                    (enc_w, enc_h),
                    progress,
                    video.frames
                    if options.max_frames is None
                    else min(options.max_frames, video.frames or options.max_frames),
                )
            except BaseException:
                writer.abort()
                raise
            writer.close()
            if writer.frames_written != reader.stats.frames:
                raise VsrError(
                    f"internal error: {reader.stats.frames} frames decoded but "
                    f"{writer.frames_written} written; the output was not kept"
                )
    finally:
        container.close()
    seconds = time.perf_counter() - start
    if reader.stats.repeated:
        note(
            f"{reader.stats.repeated} corrupt frame(s) replaced by the previous frame "
            "to keep audio in sync"
        )
    if reader.stats.damage and options.skip_corrupt:
        note(f"the input is damaged ({reader.stats.damage}); kept what could be decoded")
    return UpscaleResult(
        input_path,
        output,
        writer.frames_written,
        seconds,
        processor.descriptor.name,
        dict(processor.settings),
        streams=writer.reports,
        repeated_frames=reader.stats.repeated,
        notices=notices,
    )


def _run_graph(
    stage: _Stage,
    reader: VideoReader,
    processor: Processor,
    writer: OutputWriter,
    batch: int,
    size: tuple[int, int],
    progress: ProgressFn | None,
    total: int | None,
) -> None:
    q_in = stage.new_queue()
    q_out = stage.new_queue()

    def read() -> None:
        try:
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
                    rgb = from_tensor(tensor, frame.rgb.dtype == np.uint16)
                    w, h = size
                    rgb = rgb[:h, :w]
                    alpha = None
                    if frame.alpha is not None:
                        alpha = resize_alpha(frame.alpha, rgb.shape[1], rgb.shape[0])
                    writer.write_frame(rgb, alpha, frame.pts)
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
