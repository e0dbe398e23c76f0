"""`vsr bench`: where the time goes, stage by stage, on the same clip in one run.

Decode-only, model-only and encode-only speeds are measured on the same first N frames, then
the whole pipeline end to end. The ratio end-to-end / model-only says how much of the
model's speed the streaming graph keeps: 1.0 means decoding and encoding hide entirely
behind the model on other threads.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from vsr.config import UpscaleOptions
from vsr.media import remux
from vsr.media.decode import DecodedFrame, VideoReader
from vsr.media.encode import OutputWriter, choose_video_encoding
from vsr.media.probe import open_input, probe
from vsr.models.base import FrameGeometry, output_size
from vsr.pipeline import from_tensor, to_tensor, upscale_file


def run_bench(
    input_path: str | Path, options: UpscaleOptions, *, frames: int = 30
) -> dict[str, Any]:
    from vsr.models.registry import create_processor

    path = Path(input_path)
    info = probe(path)
    video = info.video
    processor = create_processor(options.model)
    geometry = FrameGeometry(video.width, video.height, float(video.frame_rate or 0) or None)

    # Decode only (including the colour conversion to RGB the pipeline does).
    container = open_input(path)
    decoded: list[DecodedFrame] = []
    start = time.perf_counter()
    try:
        for item in VideoReader(container, video, path, copy_indices=set(), max_frames=frames):
            if isinstance(item, DecodedFrame):
                decoded.append(item)
    finally:
        container.close()
    decode_s = time.perf_counter() - start
    n = len(decoded)
    tensors = [to_tensor(f.rgb) for f in decoded]

    # Model only, after one warm-up batch so one-time costs (allocation, autotune) don't count.
    batch = max(1, int(str(processor.settings.get("batch", 1))))
    processor.init(geometry)
    processor.process(torch.stack(tensors[:batch]))
    processor.flush()
    processor.reset()
    outputs: list[torch.Tensor] = []
    start = time.perf_counter()
    for i in range(0, n, batch):
        out = processor.process(torch.stack(tensors[i : i + batch]))
        outputs.extend(out[j] for j in range(out.shape[0]))
    outputs.extend(processor.flush())
    model_s = time.perf_counter() - start

    # Encode only: the model's outputs through colour conversion, encoder and muxer.
    deep = video.bit_depth > 8
    out_w, out_h = output_size(video.width, video.height, processor.scale)
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
            arrays = [from_tensor(t, deep)[:out_h, :out_w] for t in outputs]
            start = time.perf_counter()
            for frame, array in zip(decoded, arrays, strict=True):
                writer.write_frame(array, None, frame.pts)
            writer.close()
            encode_s = time.perf_counter() - start
        finally:
            container.close()

        # End to end, the real pipeline with every stream.
        end_opts = UpscaleOptions(
            model=options.model, encode=options.encode, overwrite=True, max_frames=frames
        )
        processor.reset()
        # MKV holds every stream, so nothing is transcoded that the real job would copy.
        result = upscale_file(path, Path(tmp) / "e2e.mkv", end_opts, processor)
        e2e_s = result.seconds

    def fps(seconds: float) -> float:
        return n / seconds if seconds > 0 else 0.0

    model_fps = fps(model_s)
    e2e_fps = result.frames / e2e_s if e2e_s > 0 else 0.0
    return {
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
        "end_to_end_fps": round(e2e_fps, 2),
        "ratio_end_to_end_to_model": round(e2e_fps / model_fps, 3) if model_fps else None,
    }


def format_table(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        f"{report['input']}: {report['frames']} frames, {report['size']} -> "
        f"{report['output_size']}, {report['model']} ({s.get('device')}, "
        f"{s.get('precision')}, batch {s.get('batch')}), {report['encoder']['codec']}",
        f"  decode only   {report['decode_fps']:>9.2f} fps",
        f"  model only    {report['model_fps']:>9.2f} fps",
        f"  encode only   {report['encode_fps']:>9.2f} fps",
        f"  end to end    {report['end_to_end_fps']:>9.2f} fps",
        f"  end to end / model only = {report['ratio_end_to_end_to_model']}",
    ]
    return "\n".join(lines)
