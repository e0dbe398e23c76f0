"""The resampling kernels, the benchmark LR kinds, blind training draws and codec round trips."""

from __future__ import annotations

import math
from collections import Counter

import cv2
import numpy as np
import pytest
import torch

from vsr.degrade import (
    BENCHMARK_KINDS,
    BLIND_FAMILIES,
    Degradation,
    DegradeRound,
    benchmark_degradation,
    degrade_frames,
    draw_blind,
    resample,
)
from vsr.errors import EncoderError, UsageError
from vsr.media.transcode import codec_roundtrip
from vsr.metrics import rgb_to_y


def _texture(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(n, h, w, 3) uint8: smoothed noise with edges, moving one pixel right per frame."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((h, w + n, 3)).astype(np.float32), (0, 0), 1.2)
    base = (base - base.min()) / (base.max() - base.min())
    base[h // 3 : h // 2] = 0.9  # a hard bar
    return np.stack([(base[:, i : i + w] * 255).round().astype(np.uint8) for i in range(n)])


def _tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0


def _levels(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).numpy() * 255.0


def test_kernels_match_the_scalers_they_imitate() -> None:
    frames = _texture(2, 48, 64)
    hr = _tensor(frames)
    nearest = resample(hr, (24, 32), "nearest", antialias=False)
    assert torch.equal(nearest, hr[:, :, ::2, ::2])  # every 2nd pixel from the first
    aliased = _levels(resample(hr, (24, 32), "bicubic", antialias=False).clamp(0, 1))
    cv_cubic = np.stack([cv2.resize(f, (32, 24), interpolation=cv2.INTER_CUBIC) for f in frames])
    assert np.abs(aliased - cv_cubic).max() <= 1.0
    area = _levels(resample(hr, (24, 32), "area"))
    cv_area = np.stack([cv2.resize(f, (32, 24), interpolation=cv2.INTER_AREA) for f in frames])
    assert np.abs(area - cv_area).max() <= 1.0
    lanczos = _levels(resample(hr, (24, 32), "lanczos", antialias=False))
    cv_lanczos = np.stack(
        [
            cv2.resize(f.astype(np.float32), (32, 24), interpolation=cv2.INTER_LANCZOS4)
            for f in frames
        ]
    )
    assert np.abs(lanczos - cv_lanczos).mean() < 1.0
    with pytest.raises(UsageError, match="resampling kernel"):
        resample(hr, (24, 32), "sinc")
    with pytest.raises(UsageError, match="resampling kernel"):
        DegradeRound(kernel="cubic")


@pytest.mark.parametrize("kernel", ["bicubic", "bilinear", "lanczos"])
def test_antialiasing_removes_what_would_alias(kernel: str) -> None:
    # Thin lines every 3 pixels: above the half-size grid's Nyquist limit. An antialiased
    # scaler turns them (mostly) into flat grey, a plain one into wider false stripes.
    lines = torch.zeros(1, 3, 32, 96)
    lines[..., torch.arange(96) % 3 == 0] = 1.0
    smooth = resample(lines, (16, 48), kernel, antialias=True)
    harsh = resample(lines, (16, 48), kernel, antialias=False)
    assert float(smooth[..., 2:-2].std()) < 0.09
    assert float(harsh[..., 2:-2].std()) > 0.2


def test_benchmark_kinds_are_the_literatures() -> None:
    frames = _texture(3, 48, 64)
    hr = _tensor(frames)
    assert set(BENCHMARK_KINDS) == {"bi", "bd", "aliased", "bi-h264"}
    bd = _levels(degrade_frames(hr, scale=2, degradation=benchmark_degradation("bd")))
    blurred = [
        cv2.GaussianBlur(f.astype(np.float32), (0, 0), 1.6, borderType=cv2.BORDER_REFLECT_101)
        for f in frames
    ]
    assert np.abs(bd - np.stack([b[::2, ::2] for b in blurred])).max() < 0.5
    bi = degrade_frames(hr, scale=2, degradation=benchmark_degradation("bi"))
    assert torch.equal(bi, degrade_frames(hr, scale=2))  # BI is the default degradation
    h264 = degrade_frames(hr, scale=2, degradation=benchmark_degradation("bi-h264"))
    err = float((rgb_to_y(h264) - rgb_to_y(bi)).abs().mean())
    assert 0.3 < err < 10.0  # CRF 28 damages, but it is the same picture
    with pytest.raises(UsageError, match="LR kind"):
        benchmark_degradation("bix")


def test_blind_draws_cover_every_family_and_degrade_any_clip() -> None:
    hr = _tensor(_texture(4, 40, 56))
    rng = np.random.default_rng(5)
    draws = [draw_blind(rng, scale=2) for _ in range(300)]
    kernels = Counter(d.first.kernel for d in draws)
    assert set(kernels) == {"bicubic", "bilinear", "area", "lanczos", "nearest"}
    # Phase-0 subsampling only ever follows a real blur (how BD and optics make it).
    assert all(d.first.blur_sigma >= 0.9 for d in draws if d.first.kernel == "nearest")
    assert any(not d.first.antialias for d in draws) and any(d.first.antialias for d in draws)
    assert any(d.mpeg2_qscale for d in draws) and any(d.h264_crf for d in draws)
    assert any(d.first.blur_ratio < 1.0 for d in draws) and any(d.first.bob for d in draws)
    assert any(d.second is not None for d in draws)
    assert len(BLIND_FAMILIES) == 4
    again = [draw_blind(np.random.default_rng(5), scale=2) for _ in range(1)]
    assert again[0] == draws[0]  # a seed gives the same draw
    for d in draws[:12]:
        lr = degrade_frames(hr, scale=2, rng=1, degradation=d)
        assert lr.shape == (4, 3, 20, 28) and bool(torch.isfinite(lr).all())
        assert float(lr.min()) >= 0.0 and float(lr.max()) <= 1.0


def test_anisotropic_blur_follows_its_angle() -> None:
    dot = torch.zeros(1, 3, 31, 31)
    dot[..., 15, 15] = 1.0

    def spread(angle: float) -> tuple[float, float]:
        spec = DegradeRound(blur_sigma=2.0, blur_ratio=0.3, blur_angle=angle)
        out = degrade_frames(dot, scale=1, degradation=Degradation(first=spec))[0, 0]
        ys, xs = torch.meshgrid(torch.arange(31.0), torch.arange(31.0), indexing="ij")
        w = out / out.sum()
        return float((w * (xs - 15) ** 2).sum()), float((w * (ys - 15) ** 2).sum())

    vx, vy = spread(0.0)
    assert vx == pytest.approx(4.0, rel=0.1) and vy == pytest.approx(0.36, rel=0.25)
    vx, vy = spread(math.pi / 2)
    assert vy == pytest.approx(4.0, rel=0.1) and vx < 0.6


def test_chroma_noise_ringing_and_fields() -> None:
    hr = _tensor(_texture(2, 32, 32)) * 0.8 + 0.1  # no clipping at black or white
    noisy = degrade_frames(
        hr, scale=1, rng=0, degradation=Degradation(first=DegradeRound(chroma_noise=6.0))
    )
    assert float((rgb_to_y(noisy) - rgb_to_y(hr)).abs().max()) < 0.6  # luma untouched
    assert float((noisy - hr).abs().mean()) * 255 > 0.5  # colour is not
    rung = degrade_frames(hr, scale=1, degradation=Degradation(first=DegradeRound(ringing=1.0)))
    assert float(rung.std()) > float(hr.std())  # overshoot: more contrast around edges
    bob = degrade_frames(hr, scale=1, degradation=Degradation(first=DegradeRound(bob=True)))
    assert torch.equal(bob[0, :, 0::2], hr[0, :, 0::2])  # frame 0 keeps its even field
    assert torch.equal(bob[1, :, 1::2], hr[1, :, 1::2])  # frame 1 its odd one
    assert not torch.equal(bob[0, :, 1::2], hr[0, :, 1::2])


def test_codec_round_trips() -> None:
    frames = _texture(6, 48, 64)
    psnr = {}
    for codec, quality in (("mpeg2", 2), ("mpeg2", 20), ("h264", 18), ("h264", 40)):
        back = codec_roundtrip(frames, codec, quality)
        assert back.shape == frames.shape and back.dtype == np.uint8
        mse = float(((back.astype(np.float64) - frames) ** 2).mean())
        psnr[codec, quality] = 10 * math.log10(255**2 / max(mse, 1e-9))
    assert psnr["mpeg2", 2] > psnr["mpeg2", 20] + 2 and psnr["h264", 18] > psnr["h264", 40] + 2
    odd = codec_roundtrip(np.ascontiguousarray(frames[:, :47, :63]), "mpeg2", 4)
    assert odd.shape == (6, 47, 63, 3)
    with pytest.raises(EncoderError, match="round-trip codec"):
        codec_roundtrip(frames, "vp9", 10)
    with pytest.raises(EncoderError, match="quality"):
        codec_roundtrip(frames, "mpeg2", 1)
    with pytest.raises(UsageError, match="MPEG-2"):
        Degradation(mpeg2_qscale=40)
