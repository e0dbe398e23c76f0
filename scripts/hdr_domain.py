#!/usr/bin/env python
"""Which domain should an SDR-trained model see HDR frames in? Measured, for issue 14.

For each real SDR clip: its first ``--frames`` frames become a 10-bit HDR reference (BT.709
gamma -> display light with white at 203 cd/m2 (ITU-R BT.2408) -> BT.2020 primaries -> PQ or
HLG -> BT.2020nc 4:2:0 10-bit, never lossy-encoded). The LR input is that picture halved
(antialiased bicubic on the code values, as a scaler in the signal domain does) and encoded
with x265 CRF 18. Each method upscales the LR clip twice:

- **code**: the model sees the PQ/HLG code values as RGB (what vsr does);
- **sdr-like**: the model sees display light relative to reference white, gamma-encoded like
  SDR, highlights compressed by a knee (``vsr.media.transfer.to_model_domain``, what
  ``vsr.media.color.to_rgb`` does for PQ/HLG), and its output is converted back.

Both outputs are converted to 10-bit YUV and encoded exactly as vsr encodes (x265 CRF 18,
preset medium, hdr10-opt for PQ), decoded, and scored with PSNR-Y on 10-bit code values
against the reference. One run prints one markdown table.

    nice python scripts/hdr_domain.py --frames 24 --clips ~/.cache/vsr-test-media/bikes.mp4
"""

from __future__ import annotations

import argparse
import io
import math
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from vsr.config import ModelOptions
from vsr.media.color import ColorInfo, from_rgb, to_rgb
from vsr.media.frames import frame_rgb
from vsr.media.transfer import bt709_to_bt2020, bt1886_to_nits, from_nits
from vsr.models.base import FrameGeometry
from vsr.models.registry import create_processor

TRC = {"pq": 16, "hlg": 18}


def read_sdr(path: Path, frames: int, start: float) -> torch.Tensor:
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time < start:
                continue
            out.append(torch.from_numpy(frame_rgb(frame)).permute(2, 0, 1).float() / 255)
            if len(out) == frames:
                break
    rgb = torch.stack(out)
    h, w = rgb.shape[-2] // 4 * 4, rgb.shape[-1] // 4 * 4
    return rgb[..., :h, :w]


def color_of(transfer: str) -> ColorInfo:
    return ColorInfo(9, 9, TRC[transfer], 1, True, True)


def to_yuv_frame(rgb: torch.Tensor, color: ColorInfo, model_domain: bool = False) -> av.VideoFrame:
    arr = (rgb.clamp(0, 1) * 65535).round().to(torch.int32).permute(1, 2, 0).numpy()
    frame = av.VideoFrame.from_ndarray(arr.astype(np.uint16), format="rgb48le")
    return from_rgb(frame, color, "yuv420p10le", model_domain=model_domain)


def luma(frame: av.VideoFrame) -> np.ndarray:
    plane = frame.planes[0]
    arr = np.frombuffer(bytes(plane), np.uint16).reshape(plane.height, plane.line_size // 2)
    return arr[:, : plane.width].astype(np.float64)


def encode(frames: list[av.VideoFrame], transfer: str) -> bytes:
    """x265 CRF 18 as vsr encodes (preset medium, hdr10-opt for PQ), into Matroska."""
    buffer = io.BytesIO()
    color = color_of(transfer)
    with av.open(buffer, "w", format="matroska") as out:
        stream = out.add_stream("libx265", rate=25)
        cc = stream.codec_context
        cc.width, cc.height, cc.pix_fmt = frames[0].width, frames[0].height, "yuv420p10le"
        cc.colorspace, cc.color_primaries = color.matrix, color.primaries
        cc.color_trc, cc.color_range = color.trc, color.range
        params = "log-level=error" + (":hdr10-opt=1" if transfer == "pq" else "")
        cc.options = {"crf": "18", "preset": "medium", "x265-params": params}
        for i, frame in enumerate(frames):
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def decode(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data)) as container:
        return list(container.decode(video=0))


def psnr_y(frames: list[av.VideoFrame], reference: list[np.ndarray]) -> float:
    values = []
    for frame, ref in zip(frames, reference, strict=True):
        mse = float(np.mean((luma(frame) - ref) ** 2))
        values.append(99.0 if mse == 0 else 10 * math.log10(1023**2 / mse))
    return float(np.mean(values))


def upscale(
    lr: list[av.VideoFrame], transfer: str, model: str, domain: str, precision: str
) -> tuple[list[av.VideoFrame], float]:
    color = color_of(transfer)
    processor = create_processor(ModelOptions(name=model, scale=2, precision=precision))  # type: ignore[arg-type]
    processor.init(FrameGeometry(lr[0].width, lr[0].height, 25.0))
    outputs: list[torch.Tensor] = []
    start = time.perf_counter()
    mapped = domain == "sdr-like"
    for frame in lr:
        rgb = to_rgb(
            frame, color, "rgb48le", frame.width, frame.height, model_domain=mapped
        ).to_ndarray()
        x = torch.from_numpy(rgb.astype(np.float32) / 65535).permute(2, 0, 1)[None]
        outputs.extend(processor.process(x))
    outputs.extend(processor.flush())
    seconds = time.perf_counter() - start
    return [to_yuv_frame(y, color, model_domain=mapped) for y in outputs], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", nargs="+", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--start", type=float, default=0.0, help="seconds to skip in each clip")
    parser.add_argument("--models", nargs="+", default=["bicubic", "realesr-animevideov3"])
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    print("| clip | transfer | method | PSNR-Y code values | PSNR-Y sdr-like | difference |")
    print("|---|---|---|---|---|---|")
    for path in args.clips:
        sdr = read_sdr(path, args.frames, args.start)
        for transfer in ("pq", "hlg"):
            color = color_of(transfer)
            hr_code = from_nits(bt709_to_bt2020(bt1886_to_nits(sdr)), transfer)
            hr = [to_yuv_frame(x, color) for x in hr_code]
            reference = [luma(f) for f in hr]
            small = F.interpolate(hr_code, scale_factor=0.5, mode="bicubic", antialias=True)
            lr = decode(encode([to_yuv_frame(x, color) for x in small], transfer))
            for model in args.models:
                scores = {}
                for domain in ("code", "sdr-like"):
                    out, _ = upscale(lr, transfer, model, domain, args.precision)
                    scores[domain] = psnr_y(decode(encode(out, transfer)), reference)
                diff = scores["sdr-like"] - scores["code"]
                print(
                    f"| {path.name} {sdr.shape[-1]}x{sdr.shape[-2]} from {args.start:g} s | "
                    f"{transfer.upper()} | "
                    f"{model} | {scores['code']:.2f} | {scores['sdr-like']:.2f} | {diff:+.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
