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

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vsr.errors import EncoderError, OutputExistsError, UsageError
from vsr.media.transcode import H264Settings, h264_roundtrip, rewrite_h264


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
    frames = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    back = torch.from_numpy(h264_roundtrip(frames, crf)).permute(0, 3, 1, 2)
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
    count, size = rewrite_h264(
        src,
        dst,
        _Degrader(scale, spec, rng, src),
        H264Settings(crf=crf, preset=preset, max_frames=max_frames),
    )
    return DegradeResult(output=dst, frames=count, width=size[0], height=size[1], degradation=spec)


class _Degrader:
    """`degrade_frames` one frame at a time, for `rewrite_h264`."""

    def __init__(self, scale: int, spec: Degradation, rng: np.random.Generator, src: Path) -> None:
        self.scale, self.spec, self.rng, self.src = scale, spec, rng, src

    def size(self, width: int, height: int) -> tuple[int, int]:
        out_w, out_h = lr_size(width, height, self.scale)
        if out_w < 1 or out_h < 1:
            raise UsageError(
                f"expected a video larger than the scale {self.scale}, got {width}x{height}",
                path=self.src,
            )
        return out_w, out_h

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)
        lr = degrade_frames(
            x.float() / 255.0, scale=self.scale, rng=self.rng, degradation=self.spec
        )
        return (lr[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
