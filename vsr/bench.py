"""`vsr bench`: where the time goes, stage by stage, on the same clip in one run.

Decode-only, model-only and encode-only speeds are measured on the same first N frames, then
the whole pipeline end to end, through both frame paths where the tensor one applies (integer
planes, colour on the model's device: `vsr.graph`; and the float32 RGB host path it replaces),
so the ratio between them comes from one run on one machine. The ratio end-to-end /
model-only says how much of the model's speed the streaming graph keeps: 1.0 means decoding,
conversions, copies and encoding hide entirely behind the model.

On CUDA the device graph's stages are timed with CUDA events (upload, colour, model, download
on their streams) and the host ones (decode, encode) with clocks; each stage's busy share is
its busy time over the run's wall time, so overlapped stages add up to more than 100%. The
model's achieved TFLOP/s (from the descriptor's multiply-adds per pixel) is set against the
device's bf16 and fp16 matrix-multiply peak, measured in the same run.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsr import runtime
from vsr.config import UpscaleOptions
from vsr.media import remux
from vsr.media.color import from_rgb, rgb_frame
from vsr.media.decode import DecodedFrame, VideoReader
from vsr.media.encode import OutputWriter, choose_video_encoding
from vsr.media.probe import open_input, probe
from vsr.models.base import FrameGeometry, output_size
from vsr.pipeline import GRAPH_TIMING, from_tensor, to_tensor, upscale_file
from vsr.segments import EncoderPool, host_encoders


def run_bench(
    input_path: str | Path, options: UpscaleOptions, *, frames: int = 30
) -> dict[str, Any]:
    from vsr.models.registry import create_processor

    path = Path(input_path)
    info = probe(path)
    video = info.video
    processor = create_processor(options.model)
    geometry = FrameGeometry(video.width, video.height, float(video.frame_rate or 0) or None)
    device = _device_of(processor)

    # Decode only (including the colour conversion to RGB the host path does).
    container = open_input(path)
    decoded: list[DecodedFrame] = []
    start = time.perf_counter()
    try:
        with VideoReader(container, video, path, copy_indices=set(), max_frames=frames) as reader:
            decoded.extend(item for item in reader if isinstance(item, DecodedFrame))
    finally:
        container.close()
    decode_s = time.perf_counter() - start
    n = len(decoded)

    # Model only, after one warm-up batch so one-time costs (allocation, autotune) don't count.
    # On a device the frames are already there: this is the model's own speed.
    batch = max(1, int(str(processor.settings.get("batch", 1))))
    processor.init(geometry)
    on_device = device is not None and device.type == "cuda"
    tensors = [to_tensor(f.rgb) for f in decoded]
    if on_device:
        assert device is not None
        dtype = getattr(processor, "input_dtype", torch.float32)
        tensors = [t.to(device, dtype) for t in tensors]
    run = getattr(processor, "process_device") if on_device else processor.process  # noqa: B009
    run(torch.stack(tensors[:batch]))
    processor.flush()
    processor.reset()
    runtime.synchronize(device or torch.device("cpu"))
    outputs: list[torch.Tensor] = []
    start = time.perf_counter()
    for i in range(0, n, batch):
        out = run(torch.stack(tensors[i : i + batch]))
        if not on_device:
            # Kept as 16-bit on the host: float32 copies of every output would dominate memory.
            outputs.extend(_quantise(out[j]) for j in range(out.shape[0]))
    outputs.extend(_quantise(t) for t in processor.flush())
    runtime.synchronize(device or torch.device("cpu"))
    model_s = time.perf_counter() - start
    if on_device:
        # The device's own speed was timed without copies back; the encoder-only stage still
        # needs the pictures, made again untimed.
        for i in range(0, n, batch):
            out = run(torch.stack(tensors[i : i + batch]))
            outputs.extend(_quantise(out[j]) for j in range(out.shape[0]))
        outputs.extend(_quantise(t) for t in processor.flush())
    del tensors

    # Encode only: the model's outputs through colour conversion, encoder and muxer.
    deep = video.bit_depth > 8
    out_w, out_h = output_size(video.width, video.height, processor.scale)
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="vsr-bench-") as tmp:
        target = Path(tmp) / "encode.mkv"
        encoding = choose_video_encoding(video, options.encode, "matroska")
        container = open_input(path)
        try:
            plans = [
                p
                for p in remux.plan_streams(container, video.index, "matroska", encoding.codec)
                if p.action == "encode"
            ]
            out_w -= out_w % 2
            out_h -= out_h % 2
            writer = OutputWriter(
                target, "matroska", info, container, plans, encoding, out_w, out_h
            )
            writer.open()
            arrays = [_to_array(t, deep)[:out_h, :out_w] for t in outputs]
            del outputs
            # The old path's host conversion (RGB -> the encoder's YUV through swscale) is
            # timed on its own; the encoder then gets frames already in its pixel format.
            start = time.perf_counter()
            yuv = [from_rgb(rgb_frame(a), video.color, encoding.pix_fmt) for a in arrays]
            convert_s = time.perf_counter() - start
            del arrays
            start = time.perf_counter()
            for frame, picture in zip(decoded, yuv, strict=True):
                writer.write_video_frame(picture, frame.pts)
            writer.close()
            encode_s = time.perf_counter() - start
            pool = host_encoders(options.encode_workers, encoding.codec)
            parallel_s = None
            if pool.workers > 1:
                # The same frames as `pool.workers` segments encoded side by side, as
                # --encode-workers runs them when the model outruns one encoder.
                parallel_s = _encode_side_by_side(
                    Path(tmp), (info, container, plans, encoding, out_w, out_h), decoded, yuv, pool
                )
        finally:
            container.close()
        del yuv, decoded

        # End to end, the real pipeline with every stream, through each frame path.
        paths = _paths(options)
        # On a shared CPU a run's speed drifts: alternate the paths and keep each one's best,
        # so neither is favoured by going first. A GPU run is steady enough for one pass.
        repeats = 1 if device is not None and device.type == "cuda" else 2
        for _ in range(repeats):
            for color_path in list(paths):
                run_e2e = _end_to_end(path, Path(tmp), options, processor, color_path, frames)
                if run_e2e["color_path"] != color_path:
                    # This job can't take the tensor path (alpha, a temporal model ...).
                    paths.remove(color_path)
                    continue
                if color_path not in result or run_e2e["fps"] > result[color_path]["fps"]:
                    result[color_path] = run_e2e
        if not paths:
            paths = ["swscale"]
            result["swscale"] = _end_to_end(path, Path(tmp), options, processor, "swscale", frames)

    def fps(seconds: float) -> float:
        return n / seconds if seconds > 0 else 0.0

    model_fps = fps(model_s)
    main = result[paths[0]]
    e2e_fps = main["fps"]
    report: dict[str, Any] = {
        "input": str(path),
        "frames": n,
        "size": f"{video.width}x{video.height}",
        "output_size": f"{out_w}x{out_h}",
        "model": processor.descriptor.name,
        "settings": dict(processor.settings),
        "encoder": {"codec": encoding.codec, "pix_fmt": encoding.pix_fmt, **encoding.options},
        "decode_fps": round(fps(decode_s), 2),
        "model_fps": round(model_fps, 2),
        "encode_fps": round(fps(encode_s), 2),
        "encode_workers": pool.to_dict(),
        "host_rgb_to_yuv_fps": round(fps(convert_s), 2),
        "end_to_end_fps": round(e2e_fps, 2),
        "ratio_end_to_end_to_model": round(e2e_fps / model_fps, 3) if model_fps else None,
        "color_path": main["color_path"],
        "paths": result,
    }
    if parallel_s is not None:
        report["encode_side_by_side_fps"] = round(fps(parallel_s), 2)
    # What the job's encoders can take: one, or the segments side by side.
    slower = min(model_fps, fps(parallel_s if parallel_s is not None else encode_s))
    if slower:
        report["ratio_end_to_end_to_slower_of_model_and_encoder"] = round(e2e_fps / slower, 3)
    if "tensor" in result and "swscale" in result and result["swscale"]["fps"]:
        report["ratio_tensor_to_swscale"] = round(
            result["tensor"]["fps"] / result["swscale"]["fps"], 3
        )
    macs = float(processor.descriptor.macs_per_pixel or 0.0)
    if macs:
        flops = 2 * macs * video.width * video.height * model_fps
        report["model_tflops"] = round(flops / 1e12, 4)
        if on_device:
            assert device is not None
            peaks = matmul_peaks(device)
            report["device_peak_tflops"] = peaks
            if peaks.get("bf16"):
                report["model_share_of_bf16_peak"] = round(flops / 1e12 / peaks["bf16"], 4)
    if on_device:
        assert device is not None
        report["device"] = torch.cuda.get_device_name(device)
    return report


def _encode_side_by_side(
    tmp: Path,
    writer_args: tuple[Any, ...],
    decoded: list[DecodedFrame],
    pictures: list[Any],
    pool: EncoderPool,
) -> float:
    """Seconds to encode ``pictures`` as ``pool.workers`` segments, each on its own thread."""
    parts = np.array_split(np.arange(len(pictures)), pool.workers)
    writers = [
        OutputWriter(tmp / f"encode-part{k}.mkv", "matroska", *writer_args)
        for k in range(len(parts))
    ]
    for writer in writers:
        writer.open()
    errors: list[BaseException] = []

    def encode(writer: OutputWriter, indices: np.ndarray) -> None:
        try:
            for i in indices:
                writer.write_video_frame(pictures[i], decoded[i].pts)
            writer.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=encode, args=(w, idx), daemon=True)
        for w, idx in zip(writers, parts, strict=True)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start


def _device_of(processor: object) -> torch.device | None:
    device = getattr(processor, "device", None)
    return device if isinstance(device, torch.device) else None


def _paths(options: UpscaleOptions) -> list[str]:
    """The frame paths to time end to end: the job's own first, the other for the ratio.

    "auto" is the tensor path on every device, as the pipeline takes it (vsr.graph); a job
    that can't take it (alpha, a temporal model ...) falls back to swscale in the run.
    """
    chosen = "tensor" if options.color_path == "auto" else options.color_path
    return [chosen, "swscale" if chosen == "tensor" else "tensor"]


def _quantise(frame: torch.Tensor) -> torch.Tensor:
    return (
        frame.detach().float().clamp(0, 1).mul(65535).round().to(torch.int32).cpu().to(torch.uint16)
    )


def _to_array(frame: torch.Tensor, deep: bool) -> Any:
    return from_tensor(frame.to(torch.float32).div_(65535), deep)


def _end_to_end(
    path: Path,
    tmp: Path,
    options: UpscaleOptions,
    processor: Any,
    color_path: str,
    frames: int,
) -> dict[str, Any]:
    end_opts = UpscaleOptions(
        model=options.model,
        encode=options.encode,
        overwrite=True,
        max_frames=frames,
        color_path=color_path,  # type: ignore[arg-type]
        encode_workers=options.encode_workers,
    )
    processor.reset()
    device = _device_of(processor) or torch.device("cpu")
    baseline = runtime.peak_memory_start(device)
    GRAPH_TIMING.enabled = True
    GRAPH_TIMING.graphs.clear()
    GRAPH_TIMING.sinks.clear()
    try:
        # MKV holds every stream, so nothing is transcoded that the real job would copy.
        result = upscale_file(path, tmp / f"e2e-{color_path}.mkv", end_opts, processor)
        graphs = list(GRAPH_TIMING.graphs)
        sinks = list(GRAPH_TIMING.sinks)
    finally:
        GRAPH_TIMING.enabled = False
        GRAPH_TIMING.graphs.clear()
        GRAPH_TIMING.sinks.clear()
    out: dict[str, Any] = {
        "color_path": result.settings.get("frame_path", {}).get("color_path", color_path),
        "fps": round(result.fps, 2),
        "seconds": round(result.seconds, 3),
        "frames": result.frames,
    }
    if device.type == "cuda":
        out["peak_device_memory_mib"] = round(runtime.peak_memory_since(device, 0) / 2**20, 1)
        del baseline
    if graphs:
        out["stages"] = stage_table(graphs, result.seconds)
    workers = result.encoder.get("workers", {}).get("workers", 1)
    if workers > 1 and sinks:
        # The encoders' own work (the "encode" stage above is then only the hand-over); its
        # busy share counts encoders at work at once, so it may pass 1.
        work = sum(sink.encode_seconds for sink in sinks)
        out.setdefault("stages", {})[f"encoders ({workers} side by side)"] = {
            "fps": round(result.frames / work, 2) if work > 0 else 0.0,
            "busy_share": round(work / result.seconds, 3) if result.seconds > 0 else 0.0,
        }
        out["segments_cut_for_idle_encoders"] = sum(sink.segments_cut for sink in sinks)
    return out


def stage_table(graphs: list[Any], seconds: float) -> dict[str, dict[str, float]]:
    """Per stage: fps while busy and busy share of the wall time (summed over segments)."""
    busy: dict[str, float] = {}
    frames = 0
    for graph in graphs:
        frames += graph.stats.frames
        for name, value in graph.stats.busy.items():
            busy[name] = busy.get(name, 0.0) + value
    table = {}
    for name, value in busy.items():
        table[name] = {
            "fps": round(frames / value, 2) if value > 0 else 0.0,
            "busy_share": round(value / seconds, 3) if seconds > 0 else 0.0,
        }
    return table


def matmul_peak(device: torch.device, dtype: torch.dtype, *, size: int = 8192) -> float:
    """TFLOP/s of a large square matmul in `dtype`, best of a few timed runs."""
    a = torch.randn((size, size), device=device, dtype=dtype)
    b = torch.randn((size, size), device=device, dtype=dtype)
    for _ in range(3):
        torch.matmul(a, b)
    runtime.synchronize(device)
    best = float("inf")
    reps = 10
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            torch.matmul(a, b)
        runtime.synchronize(device)
        best = min(best, (time.perf_counter() - start) / reps)
    return 2 * size**3 / best / 1e12


def matmul_peaks(device: torch.device) -> dict[str, float]:
    peaks = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        try:
            peaks[name] = round(matmul_peak(device, dtype), 1)
        except RuntimeError:
            continue  # a dtype this device lacks
    torch.cuda.empty_cache()
    return peaks


def format_table(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        f"{report['input']}: {report['frames']} frames, {report['size']} -> "
        f"{report['output_size']}, {report['model']} ({s.get('device')}, "
        f"{s.get('precision')}, batch {s.get('batch')}), {report['encoder']['codec']}",
        f"  decode only   {report['decode_fps']:>9.2f} fps",
        f"  model only    {report['model_fps']:>9.2f} fps",
        f"  encode only   {report['encode_fps']:>9.2f} fps  (frames already in "
        f"{report['encoder']['pix_fmt']}; host RGB -> YUV alone: "
        f"{report['host_rgb_to_yuv_fps']:.2f} fps)",
    ]
    if "encode_side_by_side_fps" in report:
        workers = report["encode_workers"]["workers"]
        lines.append(
            f"  encode only   {report['encode_side_by_side_fps']:>9.2f} fps  ({workers} segments "
            "side by side, --encode-workers)"
        )
    for name, path in report["paths"].items():
        lines.append(f"  end to end    {path['fps']:>9.2f} fps  ({name} frame path)")
        for stage, row in path.get("stages", {}).items():
            lines.append(
                f"    {stage:<9} {row['fps']:>9.2f} fps while busy, "
                f"busy {100 * row['busy_share']:5.1f}% of the run"
            )
        if "peak_device_memory_mib" in path:
            lines.append(f"    peak device memory {path['peak_device_memory_mib']:.0f} MiB")
    lines.append(
        f"  end to end / model only = {report['ratio_end_to_end_to_model']} "
        f"({report['color_path']} path)"
    )
    if "ratio_end_to_end_to_slower_of_model_and_encoder" in report:
        lines.append(
            "  end to end / slower of model and encoder only = "
            f"{report['ratio_end_to_end_to_slower_of_model_and_encoder']}"
        )
    if "ratio_tensor_to_swscale" in report:
        lines.append(f"  tensor / swscale path end to end = {report['ratio_tensor_to_swscale']}")
    if "model_tflops" in report:
        line = f"  model {report['model_tflops']:.3f} TFLOP/s"
        if "model_share_of_bf16_peak" in report:
            peaks = report["device_peak_tflops"]
            line += (
                f" = {100 * report['model_share_of_bf16_peak']:.1f}% of the measured bf16 "
                f"matmul peak ({peaks.get('bf16')} TFLOP/s; fp16 {peaks.get('fp16')})"
            )
        lines.append(line)
    return "\n".join(lines)
