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

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vsr.errors import EncoderError, OutputExistsError, UsageError
from vsr.media.transcode import H264Settings, codec_roundtrip, rewrite_h264

# Resampling kernels `resample` knows (see DegradeRound.kernel).
RESAMPLE_KERNELS: tuple[str, ...] = ("bicubic", "bilinear", "area", "lanczos", "nearest")


def _check_kernel(kernel: str) -> None:
    if kernel not in RESAMPLE_KERNELS:
        raise UsageError(
            f"expected a resampling kernel in {', '.join(RESAMPLE_KERNELS)}, got {kernel!r}"
        )


@dataclass(frozen=True)
class DegradeRound:
    """One round of damage: blur, resize, noise, JPEG."""

    blur_sigma: float = 0.0  # Gaussian blur before resizing, in pixels of this round's input
    noise_sigma: float = 0.0  # Gaussian noise after resizing, in 0-255 levels
    gray_noise: bool = False  # same noise on R, G and B (sensor-like luma noise)
    jpeg_quality: int | None = None  # 1-100; None: no JPEG
    # How the round resizes (see `resample`): what a camera, a capture card or a careless
    # script did. Antialiased bicubic is the literature's "BI"; without antialiasing it is
    # OpenCV's INTER_CUBIC downscale; "nearest" after blur is the literature's "BD".
    kernel: str = "bicubic"
    antialias: bool = True
    # Anisotropic blur: sigma along the rotated y axis = blur_sigma * blur_ratio.
    blur_ratio: float = 1.0
    blur_angle: float = 0.0  # radians
    chroma_noise: float = 0.0  # blotchy noise on Cb/Cr only (0-255 levels), as cheap sensors
    ringing: float = 0.0  # unsharp-mask overshoot after resizing (old scalers' halos), 0-2
    # Field remnants of a poor deinterlacer: every frame keeps one field, alternating, and
    # interpolates the other (half vertical detail, and "bob" shimmer on fine lines).
    bob: bool = False

    def __post_init__(self) -> None:
        _check_kernel(self.kernel)
        for name in ("blur_ratio", "chroma_noise", "ringing"):
            value = getattr(self, name)
            if value < 0 or not math.isfinite(value):
                raise UsageError(f"expected {name.replace('_', ' ')} >= 0, got {value}")
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
    mpeg2_qscale: int | None = None  # MPEG-2 round trip (DVD/broadcast damage), 2-31

    def __post_init__(self) -> None:
        if self.intermediate < 1.0:
            raise UsageError(f"expected an intermediate factor >= 1, got {self.intermediate}")
        if self.h264_crf is not None and not 0 <= self.h264_crf <= 51:
            raise UsageError(f"expected an H.264 CRF in 0-51, got {self.h264_crf}")
        if self.mpeg2_qscale is not None and not 2 <= self.mpeg2_qscale <= 31:
            raise UsageError(f"expected an MPEG-2 quantiser scale in 2-31, got {self.mpeg2_qscale}")


# The LR kinds of the standard evaluation table (scripts/eval_table.py, `vsr eval`):
BENCHMARK_KINDS: tuple[str, ...] = ("bi", "bd", "aliased", "bi-h264")


def benchmark_degradation(kind: str) -> Degradation:
    """The literature's fixed LR kinds: "bi" (antialiased bicubic, MATLAB-imresize-like),
    "bd" (Gaussian blur sigma 1.6 in HR pixels, then every n-th pixel from the first),
    "aliased" (bicubic without antialiasing, as OpenCV's INTER_CUBIC downscale) and "bi-h264"
    (BI, then an H.264 CRF 28 round trip)."""
    if kind == "bi":
        return Degradation()
    if kind == "bd":
        return Degradation(first=DegradeRound(blur_sigma=1.6, kernel="nearest", antialias=False))
    if kind == "aliased":
        return Degradation(first=DegradeRound(kernel="bicubic", antialias=False))
    if kind == "bi-h264":
        return Degradation(h264_crf=28)
    raise UsageError(f"expected an LR kind in {', '.join(BENCHMARK_KINDS)}, got {kind!r}")


# Families of blind training damage and their shares. Each keeps the HR/LR pixel grids aligned
# the way its real counterpart does: "nearest" sampling (phase 0) only ever follows a strong
# blur, as in BD, so the network can tell it from the centred kernels by the blur alone.
BLIND_FAMILIES: tuple[tuple[str, float], ...] = (
    ("clean", 0.2),  # an antialiased kernel (BI and its cousins), light compression
    ("aliased", 0.2),  # a kernel without antialiasing (careless scripts, old hardware)
    ("blur-subsample", 0.2),  # BD: optics or a soft master, then plain subsampling
    ("second-order", 0.4),  # Real-ESRGAN-like mix: blur, noise, ringing, JPEG, fields, codecs
)


@dataclass(frozen=True)
class _Codec:
    h264_crf: int | None = None
    mpeg2_qscale: int | None = None


def _draw_codec(rng: np.random.Generator, *, h264: float, mpeg2: float) -> _Codec:
    """An H.264 (CRF 16-36) or MPEG-2 (q 2-12) round trip with these chances, or none."""
    roll = rng.random()
    if roll < h264:
        return _Codec(h264_crf=int(rng.integers(16, 37)))
    if roll < h264 + mpeg2:
        return _Codec(mpeg2_qscale=int(rng.integers(2, 13)))
    return _Codec()


def _draw_blur(rng: np.random.Generator, low: float, high: float, **rest: Any) -> DegradeRound:
    """A round with isotropic, or (a quarter of the time) anisotropic and rotated, Gaussian
    blur; ``rest`` are the round's other fields."""
    sigma = float(rng.uniform(low, high))
    ratio, angle = 1.0, 0.0
    if rng.random() < 0.25:
        ratio, angle = float(rng.uniform(0.4, 1.0)), float(rng.uniform(0.0, math.pi))
    return dataclasses.replace(
        DegradeRound(blur_sigma=sigma, blur_ratio=ratio, blur_angle=angle), **rest
    )


def _with_codec(first: DegradeRound, codec: _Codec, **rest: Any) -> Degradation:
    spec = Degradation(first=first, h264_crf=codec.h264_crf, mpeg2_qscale=codec.mpeg2_qscale)
    return dataclasses.replace(spec, **rest) if rest else spec


def draw_blind(rng: np.random.Generator, *, scale: int) -> Degradation:
    """One clip's damage for blind training (see BLIND_FAMILIES); drawn once per clip so it is
    consistent in time, like real footage."""
    names = [name for name, _ in BLIND_FAMILIES]
    shares = np.array([share for _, share in BLIND_FAMILIES])
    family = names[int(rng.choice(len(names), p=shares / shares.sum()))]
    if family == "clean":
        kernel = str(rng.choice(["bicubic", "bicubic", "lanczos", "bilinear", "area"]))
        return _with_codec(DegradeRound(kernel=kernel), _draw_codec(rng, h264=0.5, mpeg2=0.1))
    if family == "aliased":
        kernel = str(rng.choice(["bicubic", "bicubic", "bilinear", "lanczos"]))
        if rng.random() < 0.3:
            first = _draw_blur(rng, 0.2, 0.6, kernel=kernel, antialias=False)
        else:
            first = DegradeRound(kernel=kernel, antialias=False)
        return _with_codec(first, _draw_codec(rng, h264=0.4, mpeg2=0.1))
    if family == "blur-subsample":
        first = _draw_blur(rng, 0.9, 2.2, kernel="nearest", antialias=False)
        return _with_codec(first, _draw_codec(rng, h264=0.4, mpeg2=0.1))
    return _draw_second_order(rng, scale=scale)


def _draw_second_order(rng: np.random.Generator, *, scale: int) -> Degradation:
    def draw_round(blur_high: float, noise_high: float) -> DegradeRound:
        damage: dict[str, Any] = {
            "kernel": str(rng.choice(["bicubic", "bilinear", "area", "lanczos"])),
            "antialias": bool(rng.random() < 0.6),
            "noise_sigma": float(rng.uniform(0.5, noise_high)) if rng.random() < 0.5 else 0.0,
            "gray_noise": bool(rng.random() < 0.4),
            "chroma_noise": float(rng.uniform(1.0, 6.0)) if rng.random() < 0.2 else 0.0,
            "jpeg_quality": int(rng.integers(50, 96)) if rng.random() < 0.3 else None,
            "ringing": float(rng.uniform(0.2, 1.0)) if rng.random() < 0.15 else 0.0,
        }
        if rng.random() < 0.7:
            return _draw_blur(rng, 0.2, blur_high, **damage)
        return dataclasses.replace(DegradeRound(), **damage)

    first = draw_round(1.5, 6.0)
    codec = _draw_codec(rng, h264=0.5, mpeg2=0.25)
    if rng.random() < 0.08:
        first = dataclasses.replace(first, bob=True)
    if scale < 2 or rng.random() < 0.6:
        return _with_codec(first, codec)
    return _with_codec(
        first,
        codec,
        second=draw_round(1.0, 4.0),
        intermediate=float(rng.uniform(1.0, scale / 1.5)),
    )


def _seeded(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _pad_edges(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Pad (N, C, H, W) by ``radius`` on every side for a blur: reflected, not zeros (zeros
    would darken the frame edges); frames too small to reflect that far are replicated."""
    pad_w, pad_h = min(radius, x.shape[3] - 1), min(radius, x.shape[2] - 1)
    if pad_w < radius or pad_h < radius:
        x = F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="replicate")
        return F.pad(x, (radius - pad_w,) * 2 + (radius - pad_h,) * 2, mode="replicate")
    return F.pad(x, (radius, radius, radius, radius), mode="reflect")


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
    x = _pad_edges(x, radius)
    return F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)


def _lanczos_matrix(
    size_in: int, size_out: int, antialias: bool, device: torch.device
) -> torch.Tensor:
    """(size_out, size_in) weights of a Lanczos-3 resize, pixel centres aligned (as OpenCV and
    PIL); with ``antialias`` the kernel is stretched by the downscale factor (PIL's LANCZOS),
    without it the taps sample the input directly (OpenCV's INTER_LANCZOS4, give or take a lobe).
    Taps falling off the edge are dropped and the rest renormalised (edge replication's effect)."""
    ratio = size_in / size_out
    stretch = max(1.0, ratio) if antialias else 1.0
    centre = (torch.arange(size_out, dtype=torch.float64) + 0.5) * ratio - 0.5
    taps = torch.arange(size_in, dtype=torch.float64)
    t = (taps[None, :] - centre[:, None]) / stretch
    w = torch.where(t.abs() < 3.0, torch.sinc(t) * torch.sinc(t / 3.0), torch.zeros_like(t))
    w = w / w.sum(dim=1, keepdim=True)
    return w.to(device=device, dtype=torch.float32)


def resample(
    x: torch.Tensor, size: tuple[int, int], kernel: str = "bicubic", antialias: bool = True
) -> torch.Tensor:
    """Resize frames (N, C, H, W) to ``size`` (h, w) the way some real scaler would.

    - bicubic/bilinear with ``antialias``: a true low-pass downscale (MATLAB imresize, PIL);
      without it: OpenCV's INTER_CUBIC/INTER_LINEAR, whose taps alias fine detail.
    - area: the box average (OpenCV INTER_AREA), always antialiased.
    - lanczos: Lanczos-3, antialiased (PIL) or not (OpenCV).
    - nearest: every n-th pixel starting at the first (OpenCV INTER_NEAREST, NumPy's
      ``[::n]``), the subsampling of the literature's BD degradation.
    """
    _check_kernel(kernel)
    if tuple(x.shape[2:]) == size:
        return x
    if kernel in ("bicubic", "bilinear"):
        return F.interpolate(x, size=size, mode=kernel, align_corners=False, antialias=antialias)
    if kernel == "area":
        return F.interpolate(x, size=size, mode="area")
    if kernel == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    wy = _lanczos_matrix(x.shape[2], size[0], antialias, x.device)
    wx = _lanczos_matrix(x.shape[3], size[1], antialias, x.device)
    return torch.einsum("oh,nchw,pw->ncop", wy, x.float(), wx).to(x.dtype)


def _blur(x: torch.Tensor, spec: DegradeRound) -> torch.Tensor:
    """Gaussian blur of the round: separable when isotropic, a rotated 2-D kernel otherwise."""
    if spec.blur_sigma <= 0:
        return x
    if spec.blur_ratio == 1.0:
        return _gaussian_blur(x, spec.blur_sigma)
    sx, sy = spec.blur_sigma, spec.blur_sigma * spec.blur_ratio
    radius = max(1, math.ceil(3.0 * max(sx, sy)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    c, s_ = math.cos(spec.blur_angle), math.sin(spec.blur_angle)
    u, v = c * xx + s_ * yy, -s_ * xx + c * yy
    k = torch.exp(-(u**2) / (2 * sx**2) - (v**2) / (2 * max(sy, 1e-3) ** 2))
    k = (k / k.sum()).to(x.dtype)
    ch = x.shape[1]
    x = _pad_edges(x, radius)
    return F.conv2d(x, k.view(1, 1, *k.shape).expand(ch, 1, -1, -1), groups=ch)


# BT.601 luma weights: chroma noise is drawn on the colour-difference axes only.
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def _chroma_noise(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    """Blotchy colour noise (drawn at quarter resolution, as a sensor's after demosaicing and
    4:2:0 subsampling leave it) that leaves the luma unchanged."""
    n, _, h, w = x.shape
    small = torch.randn((n, 3, max(1, h // 4), max(1, w // 4)), generator=gen) * (sigma / 255.0)
    noise = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    luma = (noise * _LUMA.view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    return x + (noise - luma).to(x.device, x.dtype)


def _ringing(x: torch.Tensor, amount: float) -> torch.Tensor:
    """Unsharp-mask overshoot: the halos a sharpening scaler draws around every edge."""
    return x + amount * (x - _gaussian_blur(x, 1.0))


def _bob(x: torch.Tensor) -> torch.Tensor:
    """Keep one field per frame (even lines on even frames, odd on odd) and interpolate the
    other from its neighbours: what a cheap bob deinterlacer leaves behind."""
    if x.shape[2] < 4:
        return x
    out = x.clone()
    for i in range(x.shape[0]):
        drop = 1 - i % 2  # the field this frame lost
        rows = torch.arange(drop, x.shape[2], 2)
        above = (rows - 1).clamp(min=0)
        below = (rows + 1).clamp(max=x.shape[2] - 1)
        above = torch.where(above % 2 == drop, below, above)
        below = torch.where(below % 2 == drop, above, below)
        out[i, :, rows] = 0.5 * (x[i, :, above] + x[i, :, below])
    return out


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


def _codec_roundtrip(x: torch.Tensor, codec: str, quality: int) -> torch.Tensor:
    """Encode the clip (N, 3, H, W) with ``codec`` in memory and decode it back."""
    frames = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    back = torch.from_numpy(codec_roundtrip(frames, codec, quality)).permute(0, 3, 1, 2)
    return back.to(x.dtype).div(255.0).to(x.device)


def _apply_round(
    x: torch.Tensor, spec: DegradeRound, size: tuple[int, int], gen: torch.Generator
) -> torch.Tensor:
    x = _blur(x, spec)
    x = resample(x, size, spec.kernel, spec.antialias)
    if spec.ringing > 0:
        x = _ringing(x, spec.ringing)
    if spec.bob:
        x = _bob(x)
    if spec.chroma_noise > 0:
        x = _chroma_noise(x, spec.chroma_noise, gen)
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
        x = _codec_roundtrip(x, "h264", spec.h264_crf)
    if spec.mpeg2_qscale is not None:
        x = _codec_roundtrip(x, "mpeg2", spec.mpeg2_qscale)
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
    if spec.h264_crf is not None or spec.mpeg2_qscale is not None:
        spec = dataclasses.replace(spec, h264_crf=None, mpeg2_qscale=None)
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
