"""PSNR/SSIM-Y, flicker, `evaluate` on generated clips, and degrade."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vsr.degrade import Degradation, DegradeRound, degrade_file, degrade_frames
from vsr.errors import InputNotFoundError, OutputExistsError, UsageError
from vsr.media.frames import iter_video_rgb
from vsr.metrics import (
    FLICKER_MASK_LEVELS,
    FlickerMeter,
    evaluate,
    flicker_flow,
    psnr_y,
    reference_motion,
    rgb_to_y,
    ssim_y,
    temporal_flicker,
)


def _image(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 4, w // 4, 3)).astype(np.float64)
    big = np.kron(base, np.ones((4, 4, 1)))  # blocky structure, so SSIM is not ~0
    return np.clip(big + rng.normal(0, 10, big.shape), 0, 255).astype(np.uint8)


def test_y_matches_basicsr_formula() -> None:
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0], [255, 255, 255]]], np.uint8)
    y = rgb_to_y(px)[0, 0, 0].tolist()
    assert y == pytest.approx([16 + 65.481, 16 + 128.553, 16 + 24.966, 16.0, 235.0], abs=1e-9)


def test_psnr_known_values_and_identical_is_inf() -> None:
    a = np.full((20, 20, 3), 100, np.uint8)
    assert psnr_y(a, a) == [math.inf]
    # Grey + 10 on R, G and B moves Y by 10 * (65.481 + 128.553 + 24.966) / 255 = 8.588...
    b = a + np.uint8(10)
    dy = 10 * (65.481 + 128.553 + 24.966) / 255
    assert psnr_y(a, b)[0] == pytest.approx(10 * math.log10(255**2 / dy**2), abs=1e-9)
    # Only the border differs: cropping a border of 2 makes the frames identical.
    c = a.copy()
    c[:2] = 0
    assert psnr_y(a, c, crop_border=2) == [math.inf]
    assert psnr_y(a, c, crop_border=1)[0] < 100


def test_psnr_per_frame_for_batches() -> None:
    ref = torch.rand(3, 3, 16, 16)
    test = ref.clone()
    test[1] = (test[1] + 0.1).clamp(0, 1)
    values = psnr_y(ref, test)
    assert math.isinf(values[0]) and math.isinf(values[2]) and 15 < values[1] < 40


def test_ssim_matches_skimage() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    for seed in range(3):
        a, b = _image(seed), _image(seed + 100)
        noisy = np.clip(
            a.astype(int) + np.random.default_rng(seed).integers(-20, 21, a.shape), 0, 255
        )
        for other in (b, noisy.astype(np.uint8)):
            ours = ssim_y(a, other, crop_border=2)[0]
            ya = rgb_to_y(a)[0, 0, 2:-2, 2:-2].numpy()
            yb = rgb_to_y(other)[0, 0, 2:-2, 2:-2].numpy()
            ref = metrics.structural_similarity(
                ya,
                yb,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=255,
            )
            assert ours == pytest.approx(ref, abs=1e-3)


def test_ssim_hand_checked_cases() -> None:
    a = _image(1)
    assert ssim_y(a, a)[0] == pytest.approx(1.0, abs=1e-12)
    # Constant images: SSIM is the luminance term alone,
    # (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1).
    g1, g2 = np.full((16, 16, 3), 50, np.uint8), np.full((16, 16, 3), 150, np.uint8)
    m1, m2 = rgb_to_y(g1)[0, 0, 0, 0].item(), rgb_to_y(g2)[0, 0, 0, 0].item()
    c1 = (0.01 * 255) ** 2
    assert ssim_y(g1, g2)[0] == pytest.approx((2 * m1 * m2 + c1) / (m1**2 + m2**2 + c1), abs=1e-9)
    with pytest.raises(UsageError, match="11x11"):
        ssim_y(np.zeros((12, 12, 3), np.uint8), np.zeros((12, 12, 3), np.uint8), crop_border=1)
    with pytest.raises(UsageError, match="same count and size"):
        psnr_y(np.zeros((12, 12, 3), np.uint8), np.zeros((12, 14, 3), np.uint8))


def _pan_clip(frames: int, h: int = 48, w: int = 64) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    out = []
    for t in range(frames):
        x = xx - 0.7 * t
        r = 0.5 + 0.25 * torch.sin(0.45 * x) * torch.cos(0.3 * yy)
        g = 0.5 + 0.25 * torch.sin(0.2 * x + 0.35 * yy + 1.0)
        b = 0.5 + 0.2 * torch.cos(0.5 * yy - 0.15 * x)
        out.append(torch.stack([r, g, b]))
    return torch.stack(out)


def test_flicker_is_low_for_consistent_motion_and_grows_with_noise() -> None:
    ref = _pan_clip(6)
    same, ref_own = temporal_flicker(ref, ref)
    assert same == pytest.approx(ref_own) and ref_own < 1.0  # Y levels (0-255)
    gen = torch.Generator().manual_seed(0)
    noisy = (ref + 0.03 * torch.randn(ref.shape, generator=gen)).clamp(0, 1)
    flicker, _ = temporal_flicker(ref, noisy)
    # Independent noise of sigma 0.03 on R, G and B: Y noise sigma ~0.03 * 219 * 0.59 per frame,
    # the difference of two frames sqrt(2) larger, mean abs = sigma * sqrt(2 / pi) * sqrt(2).
    assert flicker > 5 * ref_own and flicker > 4.0


def _texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(3, h, w) smooth random texture in [0, 1]: DIS finds its motion everywhere."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 3, h // 4 + 1, w // 4 + 1, generator=gen)
    big = torch.nn.functional.interpolate(noise, scale_factor=4, mode="bicubic")
    return big[0, :, :h, :w].clamp(0, 1)


def _translating_clip(frames: int, h: int = 64, w: int = 96, step: int = 2) -> torch.Tensor:
    """Content moving ``step`` px to the right per frame: frame_t(x) = frame_{t-1}(x - step)."""
    canvas = _texture(h, w + step * frames)
    first = step * frames
    return torch.stack(
        [canvas[:, :, first - step * t : first - step * t + w] for t in range(frames)]
    )


class _ZeroFlow:
    """A flow estimator that says nothing moves: the mask test then knows every pixel."""

    name = "zero"

    def estimate(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.zeros(source.shape[0], 2, *source.shape[2:])


def test_flicker_flow_points_from_t_back_to_t_minus_1() -> None:
    clip = _translating_clip(2)
    motion = reference_motion(clip[0:1], clip[1:2], flicker_flow())
    # Frame 1 at x shows what frame 0 had at x - 2: the flow t -> t-1 is (-2, 0). The other
    # sign would warp frame 0 four pixels the wrong way and the mask would keep almost nothing.
    assert float(motion.flow[0, 0, 8:-8, 8:-8].median()) == pytest.approx(-2.0, abs=0.1)
    assert float(motion.flow[0, 1, 8:-8, 8:-8].abs().median()) < 0.1
    assert motion.coverage > 0.9 and motion.reference_error < 1.0


def test_flicker_of_a_translation_is_zero_for_the_truth_and_not_for_jitter() -> None:
    ref = _translating_clip(6)
    same, ref_own = temporal_flicker(ref, ref)
    assert same == ref_own and ref_own < 0.5  # Y levels
    # A result that jitters by one pixel every other frame: the same pictures, misplaced.
    jitter = torch.stack([torch.roll(f, shifts=t % 2, dims=2) for t, f in enumerate(ref)])
    flicker, _ = temporal_flicker(ref, jitter)
    assert flicker > 3.0 and flicker > 10 * ref_own
    static = ref[:1].repeat(4, 1, 1, 1)
    assert temporal_flicker(static, static) == pytest.approx((0.0, 0.0), abs=1e-9)


def test_flicker_mask_leaves_out_what_the_reference_itself_changes() -> None:
    ref = _texture(48, 64).unsqueeze(0).repeat(3, 1, 1, 1)
    ref[1, :, 8:24, 8:24] = (ref[1, :, 8:24, 8:24] + 40 / 255).clamp(max=1)  # a flash: > 10 levels
    ref[1, :, 30:40, 40:60] = (ref[1, :, 30:40, 40:60] + 4 / 255).clamp(max=1)  # < 10 levels
    meter = FlickerMeter(flow=_ZeroFlow(), tof=False)
    out = ref.clone()
    out[1, :, 8:24, 8:24] = torch.rand(3, 16, 16)  # garbage only where the mask is off
    for r, o in zip(ref, out, strict=True):
        meter.update(r.unsqueeze(0), o.unsqueeze(0))
    # Both pairs (0, 1) and (1, 2) drop the flashed 16x16 block and keep the rest.
    kept = 48 * 64 - 16 * 16
    assert meter.coverages == pytest.approx([kept / (48 * 64)] * 2)
    changed = rgb_to_y(ref[1:2, :, 30:40, 40:60]) - rgb_to_y(ref[0:1, :, 30:40, 40:60])
    expected = float(changed.abs().sum()) / kept  # the small change counts, in both pairs
    assert meter.reference_errors == pytest.approx([expected, expected], rel=1e-9)
    assert meter.test_errors == pytest.approx(meter.reference_errors, rel=1e-9)
    assert FLICKER_MASK_LEVELS == 10.0


def _write_clip(path: Path, frames: np.ndarray, *, fps: int = 25, crf: int = 0) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264rgb", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "rgb24"
        stream.options = {"crf": str(crf), "preset": "ultrafast"}
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _clip_u8(frames: int, h: int = 48, w: int = 64) -> np.ndarray:
    return (_pan_clip(frames, h, w) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def test_evaluate_reads_videos_and_reports(tmp_path: Path) -> None:
    hr = _clip_u8(5)
    ref, same, worse = tmp_path / "ref.mkv", tmp_path / "same.mkv", tmp_path / "worse.mkv"
    _write_clip(ref, hr)
    _write_clip(same, hr)
    damaged = hr.copy()
    damaged[2] = np.clip(damaged[2].astype(int) + 12, 0, 255).astype(np.uint8)
    _write_clip(worse, damaged)
    # Lossless RGB round trip: the decoder gives back exactly what was written.
    assert np.array_equal(np.stack(list(iter_video_rgb(ref))), hr)

    report = evaluate(ref, same, scale=2)
    assert report.frames == 5 and (report.width, report.height) == (64, 48)
    assert math.isinf(report.psnr) and report.ssim == pytest.approx(1.0)
    assert report.flicker == pytest.approx(report.reference_flicker)
    assert report.tof == pytest.approx(0.0, abs=1e-6)
    data = report.to_dict()
    assert data["psnr_y"] is None and data["identical_frames"] == 5

    bad = evaluate(ref, worse, scale=2)
    assert [math.isinf(p) for p in bad.psnr_per_frame] == [True, True, False, True, True]
    assert bad.psnr_per_frame[2] == pytest.approx(
        10 * math.log10(255**2 / (12 * 219 / 255) ** 2), abs=0.05
    )
    assert bad.flicker is not None and bad.reference_flicker is not None
    assert bad.flicker > bad.reference_flicker
    assert "PSNR-Y" in bad.table() and "flicker" in bad.table()


def test_evaluate_errors_are_actionable(tmp_path: Path) -> None:
    ref, short, small = tmp_path / "ref.mkv", tmp_path / "short.mkv", tmp_path / "small.mkv"
    _write_clip(ref, _clip_u8(5))
    _write_clip(short, _clip_u8(4))
    _write_clip(small, _clip_u8(5, 24, 32))
    with pytest.raises(UsageError, match=r"same number of frames.*got 5 in .* and 4 in"):
        evaluate(ref, short, scale=2)
    with pytest.raises(UsageError, match="reference's size 64x48, got 32x24"):
        evaluate(ref, small, scale=2)
    with pytest.raises(InputNotFoundError):
        evaluate(tmp_path / "missing.mp4", ref, scale=2)


def test_evaluate_mod_crops_a_reference_not_divisible_by_the_scale(tmp_path: Path) -> None:
    hr = _clip_u8(3, 50, 66)
    ref, test = tmp_path / "ref.mkv", tmp_path / "test.mkv"
    _write_clip(ref, hr)
    _write_clip(test, np.ascontiguousarray(hr[:, :48, :64]))
    report = evaluate(ref, test, scale=4, temporal=False)
    assert report.cropped_reference and math.isinf(report.psnr) and report.flicker is None


def test_degrade_frames_sizes_determinism_and_damage() -> None:
    hr = _pan_clip(3, 50, 66)
    clean = degrade_frames(hr, scale=2)
    assert clean.shape == (3, 3, 25, 33)
    # A clean antialiased bicubic downscale of a smooth pattern keeps its mean.
    assert float(clean.mean()) == pytest.approx(float(hr[:, :, :50, :66].mean()), abs=0.01)
    spec = Degradation(first=DegradeRound(blur_sigma=1.0, noise_sigma=5.0, jpeg_quality=50))
    a = degrade_frames(hr, scale=2, rng=7, degradation=spec)
    b = degrade_frames(hr, scale=2, rng=7, degradation=spec)
    c = degrade_frames(hr, scale=2, rng=8, degradation=spec)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0.01 < float((a - clean).abs().mean()) < 0.1
    second = Degradation(
        first=DegradeRound(blur_sigma=0.8), second=DegradeRound(noise_sigma=2.0), intermediate=1.5
    )
    assert degrade_frames(hr, scale=2, rng=0, degradation=second).shape == (3, 3, 25, 33)
    with pytest.raises(UsageError, match="integer scale"):
        degrade_frames(hr, scale=0)


def test_degrade_h264_round_trip_and_random_draws() -> None:
    hr = _pan_clip(4, 64, 64)
    lr = degrade_frames(hr, scale=2, degradation=Degradation(h264_crf=35))
    clean = degrade_frames(hr, scale=2)
    assert lr.shape == clean.shape == (4, 3, 32, 32)
    # Luma error in code values: compression damage, but the picture is still the same one.
    err = float((rgb_to_y(lr) - rgb_to_y(clean)).abs().mean())
    assert 1.0 < err < 15.0
    flat = torch.ones(2, 3, 32, 32) * torch.tensor([0.8, 0.3, 0.5]).view(1, 3, 1, 1)
    lossless = degrade_frames(flat, scale=1, degradation=Degradation(h264_crf=0))
    assert float((lossless - flat).abs().max()) <= 1.5 / 255  # colour matrix round trip


def test_degrade_file_keeps_timestamps_and_size(tmp_path: Path) -> None:
    src, dst = tmp_path / "hr.mkv", tmp_path / "lr.mp4"
    hr = _clip_u8(6, 48, 64)
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264rgb", rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
        stream.time_base = Fraction(1, 30000)
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for i, rgb in enumerate(hr):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i * 1001, Fraction(1, 30000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    result = degrade_file(src, dst, scale=2, crf=10)
    assert (result.frames, result.width, result.height) == (6, 32, 24)
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        src_times = [float(f.time) for f in a.decode(video=0)]
        dst_frames = list(b.decode(video=0))
        tags = b.streams.video[0].codec_context
        # An RGB source becomes tagged BT.601 limited-range YUV at this size.
        assert (tags.colorspace, tags.color_range) == (6, 1)
    assert [float(f.time) for f in dst_frames] == pytest.approx(src_times, abs=1e-4)
    lr = np.stack(list(iter_video_rgb(dst)))
    expected = degrade_frames(torch.from_numpy(hr).permute(0, 3, 1, 2).float() / 255, scale=2)
    # Luma survives 4:2:0 and CRF 10 within a code value or two (chroma of this tiny, busy
    # pattern does not, so compare Y).
    assert float((rgb_to_y(lr) - rgb_to_y(expected)).abs().mean()) < 2.0
    with pytest.raises(OutputExistsError, match="--overwrite"):
        degrade_file(src, dst, scale=2)
