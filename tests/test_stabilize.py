"""`StabilizeProcessor` on synthetic clips whose clean answer is known."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from motion import moving_square, texture

from vsr.degrade import degrade_frames
from vsr.errors import UsageError
from vsr.metrics import psnr_y, temporal_flicker
from vsr.models.base import FrameGeometry, ModelDescriptor, Processor
from vsr.temporal.stabilize import DEFAULT_STRENGTH, StabilizeProcessor, default_strength


class NoisyBicubic:
    """A frame-wise processor that flickers: bicubic upscaling plus fresh noise every frame."""

    def __init__(self, scale: int = 2, noise: float = 0.03, *, seed: int = 0) -> None:
        self._scale = scale
        self.noise = noise
        self.generator = torch.Generator().manual_seed(seed)
        self._descriptor = ModelDescriptor(name="noisy-bicubic", architecture="test", scale=scale)
        self.resets = 0

    @property
    def descriptor(self) -> ModelDescriptor:
        return self._descriptor

    @property
    def scale(self) -> float:
        return float(self._scale)

    @property
    def settings(self) -> dict[str, object]:
        return {"device": "cpu"}

    def init(self, geometry: FrameGeometry) -> None:
        pass

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(frames, scale_factor=self._scale, mode="bicubic", align_corners=False)
        if self.noise:
            up = up + self.noise * torch.randn(up.shape, generator=self.generator)
        return up.clamp(0, 1)

    def flush(self) -> torch.Tensor:
        return torch.zeros(0, 3, 1, 1)

    def reset(self) -> None:
        self.resets += 1


def _run(processor: Processor, lr: torch.Tensor, batch: int = 1) -> torch.Tensor:
    processor.init(FrameGeometry(width=lr.shape[3], height=lr.shape[2]))
    outs = [processor.process(lr[i : i + batch]) for i in range(0, lr.shape[0], batch)]
    outs.append(processor.flush())
    return torch.cat([o for o in outs if o.shape[0]])


@pytest.fixture(scope="module")
def clip() -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    hr, lefts = moving_square(10, 96, 128, speed=6.0, pan=1.0, start=20)
    return hr, degrade_frames(hr, scale=2), lefts


def test_stabilize_cuts_flicker_and_keeps_psnr(
    clip: tuple[torch.Tensor, torch.Tensor, list[int]],
) -> None:
    hr, lr, _ = clip
    framewise = _run(NoisyBicubic(2, 0.03, seed=0), lr)
    stable_proc = StabilizeProcessor(NoisyBicubic(2, 0.03, seed=0), strength=0.6)
    stable = _run(stable_proc, lr)
    assert stable.shape == framewise.shape == hr.shape
    flicker_fw, reference = temporal_flicker(hr, framewise)
    flicker_st, _ = temporal_flicker(hr, stable)
    # Flicker above the reference's own (what flow error alone scores) drops by at least 30%.
    assert flicker_st - reference < 0.7 * (flicker_fw - reference)
    assert np.mean(psnr_y(hr, stable, crop_border=2)) >= np.mean(
        psnr_y(hr, framewise, crop_border=2)
    )
    assert stable_proc.scene_cuts == 0 and 0.1 < stable_proc.mean_weight < 0.6


def test_moving_object_comes_through(clip: tuple[torch.Tensor, torch.Tensor, list[int]]) -> None:
    hr, lr, lefts = clip
    clean = _run(NoisyBicubic(2, 0.0), lr)
    stable = _run(StabilizeProcessor(NoisyBicubic(2, 0.0), strength=0.6), lr)
    y0, size = 96 // 4, 96 // 2
    for t in range(1, len(lefts)):
        x0 = lefts[t]
        # The square (and the background it just uncovered) where it is now, not a ghost of
        # where it was: the stabilised frame is as close to the truth there as the frame-wise.
        region = (slice(t, t + 1), slice(None), slice(y0, y0 + size), slice(x0 - 8, x0 + size))
        p_clean = psnr_y(hr[region], clean[region])[0]
        p_stable = psnr_y(hr[region], stable[region])[0]
        assert p_stable > p_clean - 1.0, f"frame {t}: {p_stable:.2f} dB vs {p_clean:.2f} dB"


def test_batches_give_the_same_frames_as_one_at_a_time(
    clip: tuple[torch.Tensor, torch.Tensor, list[int]],
) -> None:
    _, lr, _ = clip
    one = _run(StabilizeProcessor(NoisyBicubic(2, 0.02, seed=3)), lr[:5], batch=1)
    three = _run(StabilizeProcessor(NoisyBicubic(2, 0.02, seed=3)), lr[:5], batch=3)
    assert torch.allclose(one, three, atol=1e-6)


def test_scene_cut_and_reset_drop_the_history() -> None:
    a = [texture(48, 64, t, 0, seed=1) for t in range(4)]
    b = [texture(48, 64, t, 0, seed=2) for t in range(3)]
    lr = torch.cat(a + b)
    inner = NoisyBicubic(2, 0.03, seed=0)
    reference = NoisyBicubic(2, 0.03, seed=0)
    proc = StabilizeProcessor(inner, strength=0.6)
    proc.init(FrameGeometry(width=64, height=48))
    for i in range(lr.shape[0]):
        out = proc.process(lr[i : i + 1])
        expected = reference.process(lr[i : i + 1])
        if i in (0, 4):  # first frame and the first frame of the new shot: untouched
            assert torch.equal(out, expected)
        else:
            assert not torch.equal(out, expected)
    assert proc.scene_cuts == 1
    proc.reset()
    assert inner.resets == 1
    again = proc.process(lr[6:7])
    assert torch.equal(again, reference.process(lr[6:7]))


def test_descriptor_settings_and_strength_defaults() -> None:
    inner = NoisyBicubic()
    proc = StabilizeProcessor(inner)
    assert proc.descriptor.temporal and proc.descriptor.delay == 0
    assert proc.descriptor.scale == 2 and proc.scale == 2.0
    assert proc.settings["temporal"] == "stabilize" and proc.settings["device"] == "cpu"

    def desc(name: str, arch: str) -> ModelDescriptor:
        return ModelDescriptor(name=name, architecture=arch, scale=4)

    x4plus = default_strength(desc("realesrgan-x4plus", "RRDBNet"))
    anime = default_strength(desc("realesr-animevideov3", "SRVGGNetCompact"))
    bicubic = default_strength(desc("bicubic", "interpolate"))
    assert x4plus > anime > bicubic > 0
    assert default_strength(desc("something-new", "Unknown")) == DEFAULT_STRENGTH
    with pytest.raises(UsageError, match=r"\[0, 1\)"):
        StabilizeProcessor(inner, strength=1.0)


def test_temporal_inner_models_are_refused() -> None:
    inner = NoisyBicubic()
    inner._descriptor = dataclasses.replace(inner.descriptor, temporal=True)
    with pytest.raises(UsageError, match="frame-wise"):
        StabilizeProcessor(inner)


def test_local_range_matches_min_max_pooling() -> None:
    from vsr.temporal.stabilize import _local_range

    x = torch.rand(2, 3, 17, 23)
    lo, hi = _local_range(x)
    assert torch.equal(hi, F.max_pool2d(x, 3, stride=1, padding=1))
    assert torch.equal(lo, -F.max_pool2d(-x, 3, stride=1, padding=1))


def test_default_strengths_fit_the_cluster_warm_up() -> None:
    """A chunk's worker runs WARMUP_FRAMES frames before its chunk: every default strength's
    warm-up (frames until a cold filter matches a warm one) must fit, or chunk seams show."""
    from vsr.cluster.chunks import WARMUP_FRAMES
    from vsr.temporal.stabilize import STRENGTH_BY_MODEL, stabilize_warmup

    strengths = [s for _, s in STRENGTH_BY_MODEL] + [DEFAULT_STRENGTH]
    assert max(stabilize_warmup(s) for s in strengths) <= WARMUP_FRAMES
    assert stabilize_warmup(0.85) == 40 and stabilize_warmup(0.0) == 0
