"""Make low-resolution clips from high-resolution ones, for evaluation and training.

`vsr eval --degrade IN -o LR.mp4 --scale N` needs an LR clip whose upscaled result can be
compared with IN pixel for pixel; training needs the same with realistic damage. Both go
through `degrade_frames`: blur -> antialiased bicubic downscale -> noise -> JPEG, optionally a
second round at an intermediate size (Real-ESRGAN's "second-order" degradation), optionally an
H.264 round trip over the whole clip (the artefact video SR sees most in practice). The blur
kernel, noise level and qualities are drawn once per clip, so the damage is consistent in time
like real footage; the noise itself is drawn per frame.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vsr.errors import (
    EmptyInputError,
    EncoderError,
    NotMediaError,
    NoVideoStreamError,
    OutputError,
    OutputExistsError,
    UsageError,
)
from vsr.media.color import CONVERT_FLAGS, from_rgb, resolve_color


@dataclass(frozen=True)
class DegradeRound:
    """One round of damage: blur, resize, noise, JPEG."""

    blur_sigma: float = 0.0  # Gaussian blur before resizing, in pixels of this round's input
    noise_sigma: float = 0.0  # Gaussian noise after resizing, in 0-255 levels
    gray_noise: bool = False  # same noise on R, G and B (sensor-like luma noise)
    jpeg_quality: int | None = None  # 1-100; None: no JPEG

    def __post_init__(self) -> None:
        if self.blur_sigma < 0 or not math.isfinite(self.blur_sigma):
            raise UsageError(f"expected a blur sigma >= 0, got {self.blur_sigma}")
        if self.noise_sigma < 0 or not math.isfinite(self.noise_sigma):
            raise UsageError(f"expected a noise sigma >= 0, got {self.noise_sigma}")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise UsageError(f"expected a JPEG quality in 1-100, got {self.jpeg_quality}")


@dataclass(frozen=True)
class Degradation:
    """What happens to an HR clip on its way down. The default is a clean bicubic downscale."""

    first: DegradeRound = DegradeRound()
    # Second-order: the first round resizes by 1 / intermediate only, the second to the final
    # size. None: one round straight to the final size.
    second: DegradeRound | None = None
    intermediate: float = 1.0
    h264_crf: int | None = None  # H.264 round trip of the LR clip (degrade_frames only)

    def __post_init__(self) -> None:
        if self.intermediate < 1.0:
            raise UsageError(f"expected an intermediate factor >= 1, got {self.intermediate}")
        if self.h264_crf is not None and not 0 <= self.h264_crf <= 51:
            raise UsageError(f"expected an H.264 CRF in 0-51, got {self.h264_crf}")

    @classmethod
    def random(
        cls, rng: np.random.Generator, *, scale: int, second_order: bool = True
    ) -> Degradation:
        """Draw a degradation for one clip; milder than Real-ESRGAN's image ranges, since video
        SR sees camera and codec damage rather than internet re-uploads of re-uploads."""

        def draw_round(blur: tuple[float, float], noise: tuple[float, float]) -> DegradeRound:
            return DegradeRound(
                blur_sigma=float(rng.uniform(*blur)) if rng.random() < 0.8 else 0.0,
                noise_sigma=float(rng.uniform(*noise)) if rng.random() < 0.6 else 0.0,
                gray_noise=bool(rng.random() < 0.4),
                jpeg_quality=int(rng.integers(60, 96)) if rng.random() < 0.5 else None,
            )

        first = draw_round((0.2, 1.5), (0.5, 6.0))
        crf = int(rng.integers(18, 31)) if rng.random() < 0.7 else None
        if not second_order or scale < 2:
            return cls(first=first, h264_crf=crf)
        return cls(
            first=first,
            second=draw_round((0.2, 1.0), (0.5, 4.0)),
            intermediate=float(rng.uniform(1.0, scale / 1.5)),
            h264_crf=crf,
        )


def _seeded(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    kx = k.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    ky = k.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    # Reflect, not zero padding: zeros would darken the frame edges.
    pad_w, pad_h = min(radius, x.shape[3] - 1), min(radius, x.shape[2] - 1)
    if pad_w < radius or pad_h < radius:
        x = F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="replicate")
        x = F.pad(x, (radius - pad_w,) * 2 + (radius - pad_h,) * 2, mode="replicate")
    else:
        x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    return F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[2:]) == size:
        return x
    # antialias=True: a true low-pass downscale (like PIL/MATLAB imresize), not aliasing taps.
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    frames = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for rgb in frames:
        ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise EncoderError(
                f"OpenCV could not JPEG-encode a {rgb.shape[1]}x{rgb.shape[0]} frame"
            )
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if decoded is None:
            raise EncoderError("OpenCV could not decode the JPEG it just wrote")
        out.append(decoded[..., ::-1])
    back = torch.from_numpy(np.ascontiguousarray(np.stack(out))).permute(0, 3, 1, 2)
    return back.to(x.dtype).div(255.0).to(x.device)


def _h264_roundtrip(x: torch.Tensor, crf: int) -> torch.Tensor:
    """Encode the clip (N, 3, H, W) with libx264 in memory and decode it back."""
    n, _, h, w = x.shape
    frames = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    # 4:2:0 needs even sizes; 4:4:4 keeps odd ones exact (chroma damage is then milder).
    pix_fmt = "yuv420p" if h % 2 == 0 and w % 2 == 0 else "yuv444p"
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        stream.codec_context.colorspace = 5
        stream.codec_context.color_range = 1
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame = frame.reformat(
                format=pix_fmt, dst_colorspace=5, dst_color_range=1, interpolation=CONVERT_FLAGS
            )
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    buf.seek(0)
    decoded = []
    with av.open(buf, "r") as inp:
        for frame in inp.decode(video=0):
            decoded.append(
                frame.to_ndarray(
                    format="rgb24", src_colorspace=5, src_color_range=1, interpolation=CONVERT_FLAGS
                )
            )
    if len(decoded) != n:
        raise EncoderError(f"H.264 round trip returned {len(decoded)} frames for {n}")
    back = torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2)
    return back.to(x.dtype).div(255.0).to(x.device)


def _apply_round(
    x: torch.Tensor, spec: DegradeRound, size: tuple[int, int], gen: torch.Generator
) -> torch.Tensor:
    x = _gaussian_blur(x, spec.blur_sigma)
    x = _resize(x, size)
    if spec.noise_sigma > 0:
        shape = (x.shape[0], 1 if spec.gray_noise else 3, *x.shape[2:])
        noise = torch.randn(shape, generator=gen, dtype=x.dtype) * (spec.noise_sigma / 255.0)
        x = x + noise.to(x.device)
    x = x.clamp(0, 1)
    if spec.jpeg_quality is not None:
        x = _jpeg(x, spec.jpeg_quality)
    return x


def lr_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """(width, height) of the LR clip: the HR size divided by the scale, rounded down."""
    return width // scale, height // scale


def degrade_frames(
    frames: torch.Tensor,
    *,
    scale: int,
    rng: np.random.Generator | int | None = None,
    degradation: Degradation | None = None,
) -> torch.Tensor:
    """HR frames (N, 3, H, W) in [0, 1] -> LR frames (N, 3, H // scale, W // scale).

    The HR frames are cropped to a multiple of ``scale`` first (BasicSR's mod-crop), so the LR
    grid maps exactly onto the HR one. ``rng`` seeds the noise; a fixed seed gives the same
    output.
    """
    if not isinstance(scale, int) or scale < 1:
        raise UsageError(f"expected an integer scale >= 1, got {scale!r}")
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise UsageError(f"expected frames shaped (N, 3, H, W), got {tuple(frames.shape)}")
    h, w = frames.shape[2:]
    out_w, out_h = lr_size(w, h, scale)
    if out_w < 1 or out_h < 1:
        raise UsageError(f"expected frames of at least {scale}x{scale} pixels, got {w}x{h}")
    spec = degradation or Degradation()
    gen = torch.Generator().manual_seed(int(_seeded(rng).integers(0, 2**63 - 1)))
    x = frames[:, :, : out_h * scale, : out_w * scale].float()
    if spec.second is not None and spec.intermediate > 1.0:
        mid = (
            max(out_h, round(x.shape[2] / spec.intermediate)),
            max(out_w, round(x.shape[3] / spec.intermediate)),
        )
        x = _apply_round(x, spec.first, mid, gen)
        x = _apply_round(x, spec.second, (out_h, out_w), gen)
    else:
        x = _apply_round(x, spec.first, (out_h, out_w), gen)
        if spec.second is not None:
            x = _apply_round(x, spec.second, (out_h, out_w), gen)
    if spec.h264_crf is not None:
        x = _h264_roundtrip(x, spec.h264_crf)
    return x.clamp(0, 1)


@dataclass(frozen=True)
class DegradeResult:
    output: Path
    frames: int
    width: int
    height: int
    degradation: Degradation


def degrade_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    scale: int,
    degradation: Degradation | None = None,
    seed: int = 0,
    crf: int = 18,
    preset: str = "medium",
    overwrite: bool = False,
    max_frames: int | None = None,
) -> DegradeResult:
    """Write an LR H.264 clip made from the HR clip at ``input_path``.

    Every frame keeps its timestamp (same time base and pts), audio streams are copied. The
    video is encoded at ``crf`` (18: visually clean, so that the clip measures the SR model
    rather than our encoder; raise it to add compression damage). ``degradation.h264_crf`` is
    not used here: the encode itself is the compression.
    """
    src, dst = Path(input_path), Path(output_path)
    if not isinstance(scale, int) or scale < 1:
        raise UsageError(f"expected an integer --scale >= 1, got {scale!r}")
    if not 0 <= crf <= 51:
        raise UsageError(f"expected an H.264 CRF in 0-51, got {crf}")
    from vsr.preflight import check_reachable

    check_reachable(src)  # missing, or behind a folder that can't be searched
    if dst.exists() and not overwrite:
        raise OutputExistsError("already exists", path=dst, hint="pass --overwrite to replace it")
    if dst.resolve() == src.resolve():
        raise UsageError(f"expected an output other than the input, got {dst} for both")
    spec = degradation or Degradation()
    if spec.h264_crf is not None:
        spec = Degradation(first=spec.first, second=spec.second, intermediate=spec.intermediate)
    rng = np.random.default_rng(seed)
    try:
        inp = av.open(str(src))
    except av.FFmpegError as exc:
        raise NotMediaError(f"not a media file FFmpeg can read ({exc})", path=src) from exc
    # Local import: vsr.metrics imports vsr.temporal, which this module does not otherwise need.
    from vsr.metrics import frame_to_rgb

    tmp = dst.with_name(f".{dst.name}.partial{dst.suffix}")
    count = 0
    size: tuple[int, int] | None = None
    try:
        with inp:
            if not inp.streams.video:
                raise NoVideoStreamError("has no video stream", path=src)
            vin = inp.streams.video[0]
            vin.thread_type = "AUTO"
            audio_in = list(inp.streams.audio)
            out_w, out_h = lr_size(vin.codec_context.width, vin.codec_context.height, scale)
            if out_w < 1 or out_h < 1:
                raise UsageError(
                    f"expected a video larger than the scale {scale}, got "
                    f"{vin.codec_context.width}x{vin.codec_context.height}",
                    path=src,
                )
            pix_fmt = "yuv420p" if out_w % 2 == 0 and out_h % 2 == 0 else "yuv444p"
            # The LR clip keeps the source's colour (matrix, range, primaries, transfer), tagged
            # explicitly: a player guessing from the smaller size could pick another matrix.
            cc = vin.codec_context
            # Resolved before anything is muxed: the MP4 header (written with the first packet,
            # often an audio one) carries the video's colour tags.
            color = resolve_color(
                matrix=int(cc.colorspace),
                primaries=int(cc.color_primaries),
                trc=int(cc.color_trc),
                color_range=int(cc.color_range),
                pix_fmt=cc.pix_fmt or "yuv420p",
                height=cc.height,
            )
            if color.matrix == 0:
                # An RGB source written as YUV: the matrix players assume for the LR size.
                color = resolve_color(
                    matrix=2,
                    primaries=color.primaries,
                    trc=color.trc,
                    color_range=0,
                    pix_fmt=pix_fmt,
                    height=out_h,
                )
            try:
                out = av.open(str(tmp), "w")
            except av.FFmpegError as exc:
                raise OutputError(f"cannot create the output ({exc})", path=dst) from exc
            with out:
                rate = vin.average_rate or vin.guessed_rate
                if rate is None:
                    rate = Fraction(25)
                vout = out.add_stream("libx264", rate=rate)
                vout.width, vout.height, vout.pix_fmt = out_w, out_h, pix_fmt
                time_base = vin.time_base or Fraction(1, 90000)
                vout.time_base = time_base
                vout.codec_context.time_base = time_base
                vout.options = {"crf": str(crf), "preset": preset}
                vout.codec_context.colorspace = color.matrix
                vout.codec_context.color_range = color.range
                vout.codec_context.color_primaries = color.primaries
                vout.codec_context.color_trc = color.trc
                aout = {s.index: out.add_stream_from_template(s) for s in audio_in}
                last_pts: int | None = None
                for packet in inp.demux(vin, *audio_in):
                    if max_frames is not None and count >= max_frames:
                        break
                    if packet.stream.type == "audio":
                        if packet.dts is None or packet.size == 0:
                            continue
                        packet.stream = aout[packet.stream.index]
                        out.mux(packet)
                        continue
                    if packet.size == 0 and packet.dts is not None:
                        continue
                    for frame in packet.decode():
                        if not isinstance(frame, av.VideoFrame):
                            continue
                        if max_frames is not None and count >= max_frames:
                            break
                        rgb = torch.from_numpy(frame_to_rgb(frame, color))
                        rgb = rgb.permute(2, 0, 1).unsqueeze(0)
                        lr = degrade_frames(
                            rgb.float() / 255.0, scale=scale, rng=rng, degradation=spec
                        )
                        arr = (lr[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
                        new = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), "rgb24")
                        new = from_rgb(new, color, pix_fmt)
                        # Keep the source's timestamps; invent one only for frames without.
                        pts = frame.pts if frame.pts is not None else (last_pts or -1) + 1
                        new.pts, new.time_base = pts, time_base
                        last_pts = pts
                        out.mux(vout.encode(new))
                        count += 1
                        size = (out_w, out_h)
                out.mux(vout.encode(None))
        if count == 0:
            raise EmptyInputError("has a video stream but no decodable frames", path=src)
        tmp.replace(dst)
    except av.FFmpegError as exc:
        raise EncoderError(f"cannot write the LR clip ({exc})", path=dst) from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    if size is None:
        raise EmptyInputError("has a video stream but no decodable frames", path=src)
    return DegradeResult(output=dst, frames=count, width=size[0], height=size[1], degradation=spec)
