"""Restoration filters: deinterlacing timestamps, crop, square pixels, denoising, and the
post-model resize. All inputs are generated here (the detectors' tests, in test_detect.py,
use the same generators)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import av.filter
import numpy as np
import pytest
import torch

from vsr.errors import InputError, UsageError
from vsr.media.filters import (
    FilterChain,
    FilterSpec,
    StreamGeometry,
    output_size_for_height,
    parse_crop,
    resize_to_height,
    resolve_spec,
    square_pixel_size,
)

W, H = 160, 128
NTSC_TB = Fraction(1, 30000)
NTSC_RATE = Fraction(30000, 1001)


# --------------------------------------------------------------------------- generated content


def _texture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A detailed, smooth-ish texture wider than the frame, to pan across."""
    rng = np.random.default_rng(seed)
    small = rng.random((height // 4 + 1, width))
    tex = np.kron(small, np.ones((4, 4)))[:height, : width * 4]
    tex = (tex - tex.min()) / (np.ptp(tex) + 1e-9)
    return (40 + 180 * tex).astype(np.uint8)


def _field_picture(tex: np.ndarray, field_index: int, width: int) -> np.ndarray:
    # Pan 3 pixels per field: enough motion for idet to see combing.
    return np.roll(tex, -3 * field_index, axis=1)[:, :width]


def interlaced_luma(order: str, count: int, width: int = W, height: int = H) -> list[np.ndarray]:
    """Luma planes whose two fields were captured at different moments.

    TFF: the top field (even lines) is the earlier moment; BFF: the bottom field (odd lines).
    Progressive: both fields from the same moment.
    """
    tex = _texture(width, height)
    frames = []
    for i in range(count):
        first = _field_picture(tex, 2 * i, width)
        second = _field_picture(tex, 2 * i + 1, width)
        img = np.empty((height, width), np.uint8)
        if order == "tff":
            img[0::2], img[1::2] = first[0::2], second[1::2]
        elif order == "bff":
            img[1::2], img[0::2] = first[1::2], second[0::2]
        else:
            img[:] = first
        frames.append(img)
    return frames


def yuv_frame(
    luma: np.ndarray, pts: int, time_base: Fraction = NTSC_TB, fmt: str = "yuv420p"
) -> av.VideoFrame:
    """A YUV frame with the given luma and neutral chroma."""
    h, w = luma.shape
    if fmt == "yuv420p":
        data = np.concatenate(
            [luma.reshape(-1), np.full(2 * (h // 2) * (w // 2), 128, np.uint8)]
        ).reshape(h * 3 // 2, w)
        frame = av.VideoFrame.from_ndarray(data, format="yuv420p")
    elif fmt == "yuv420p10le":
        y = luma.astype(np.uint16) << 2
        uv = np.full(2 * (h // 2) * (w // 2), 512, np.uint16)
        data = np.concatenate([y.reshape(-1), uv]).reshape(h * 3 // 2, w)
        frame = av.VideoFrame.from_ndarray(data, format="yuv420p10le")
    else:
        raise ValueError(fmt)
    frame.pts = pts
    frame.time_base = time_base
    return frame


def luma_of(frame: av.VideoFrame) -> np.ndarray:
    plane = frame.planes[0]
    dtype = np.uint16 if frame.format.name.endswith(("10le", "16le")) else np.uint8
    row = plane.line_size // np.dtype(dtype).itemsize
    return np.frombuffer(plane, dtype).reshape(-1, row)[: frame.height, : frame.width].copy()


def write_clip(
    path: Path,
    lumas: list[np.ndarray],
    *,
    codec: str = "ffv1",
    rate: Fraction = Fraction(25),
    options: dict[str, str] | None = None,
) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width = lumas[0].shape[1]
        stream.height = lumas[0].shape[0]
        stream.pix_fmt = "yuv420p"
        if options:
            stream.options = options
        for i, luma in enumerate(lumas):
            frame = yuv_frame(luma, i, Fraction(1, 1) / rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def geometry(**kw: object) -> StreamGeometry:
    args: dict[str, object] = {
        "width": W,
        "height": H,
        "pix_fmt": "yuv420p",
        "time_base": NTSC_TB,
        "frame_rate": NTSC_RATE,
    }
    args.update(kw)
    return StreamGeometry(**args)  # type: ignore[arg-type]


def run_chain(chain: FilterChain, frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
    out: list[av.VideoFrame] = []
    for frame in frames:
        out.extend(chain.push(frame))
    out.extend(chain.flush())
    return out


# --------------------------------------------------------------------------- deinterlacing


@pytest.mark.parametrize("deinterlacer", ["bwdif", "yadif"])
def test_frame_rate_deinterlace_keeps_every_pts(deinterlacer: str) -> None:
    lumas = interlaced_luma("tff", 10)
    # Irregular (VFR) timestamps: PTS must come back exactly as they went in.
    pts = [0, 1001, 2002, 4004, 5005, 6006, 8008, 9009, 10010, 11011]
    chain = FilterChain(
        FilterSpec(deinterlace="tff", deinterlace_mode="frame", deinterlacer=deinterlacer),
        geometry(),
    )
    out = run_chain(chain, [yuv_frame(luma, p) for luma, p in zip(lumas, pts, strict=True)])
    assert [f.pts for f in out] == pts
    assert all(f.time_base == NTSC_TB for f in out)
    assert chain.output.time_base == NTSC_TB
    assert chain.output.frame_rate == NTSC_RATE
    assert chain.output.rate_factor == 1
    assert (chain.frames_in, chain.frames_out) == (10, 10)


@pytest.mark.parametrize("deinterlacer", ["bwdif", "yadif"])
def test_field_rate_deinterlace_doubles_frames_with_pts_in_between(deinterlacer: str) -> None:
    lumas = interlaced_luma("tff", 8)
    pts = [0, 1001, 2002, 4004, 5005, 6006, 7007, 9009]
    chain = FilterChain(
        FilterSpec(deinterlace="tff", deinterlace_mode="field", deinterlacer=deinterlacer),
        geometry(),
    )
    frames = [yuv_frame(luma, p) for luma, p in zip(lumas, pts, strict=True)]
    out = run_chain(chain, frames)

    assert chain.output.time_base == Fraction(1, 60000)
    assert chain.output.frame_rate == Fraction(60000, 1001)
    assert chain.output.rate_factor == 2
    assert len(out) == 16
    # In the halved time base: each frame's own PTS (doubled), then the moment halfway to the
    # next frame; the last frame's second field is spaced like the frame before it.
    expected = []
    for i, p in enumerate(pts):
        nxt = pts[i + 1] if i + 1 < len(pts) else p + (p - pts[i - 1])
        expected += [2 * p, p + nxt]
    assert [f.pts for f in out] == expected
    assert all(f.time_base == Fraction(1, 60000) for f in out)

    # Parity: the first output of each frame keeps the top field's lines untouched, the
    # second keeps the bottom field's (a wrong parity would swap them).
    for i in (2, 5):
        src = lumas[i]
        assert np.array_equal(luma_of(out[2 * i])[0::2], src[0::2])
        assert np.array_equal(luma_of(out[2 * i + 1])[1::2], src[1::2])


@pytest.mark.parametrize(("count", "expected"), [(1, [1000, 2001]), (2, [1000, 2001, 3002, 4003])])
def test_field_rate_on_very_short_input(count: int, expected: list[int]) -> None:
    # One frame has no neighbour to time its second field by: half a frame period later.
    chain = FilterChain(FilterSpec(deinterlace="tff", deinterlace_mode="field"), geometry())
    lumas = interlaced_luma("tff", count)
    out = run_chain(chain, [yuv_frame(luma, 500 + 1001 * i) for i, luma in enumerate(lumas)])
    assert [f.pts for f in out] == expected


def test_bff_field_rate_shows_bottom_field_first() -> None:
    lumas = interlaced_luma("bff", 6)
    chain = FilterChain(FilterSpec(deinterlace="bff", deinterlace_mode="field"), geometry())
    out = run_chain(chain, [yuv_frame(luma, i * 1001) for i, luma in enumerate(lumas)])
    assert len(out) == 12
    src = lumas[3]
    assert np.array_equal(luma_of(out[6])[1::2], src[1::2])
    assert np.array_equal(luma_of(out[7])[0::2], src[0::2])


def test_deinterlace_removes_combing() -> None:
    lumas = interlaced_luma("tff", 6)
    chain = FilterChain(FilterSpec(deinterlace="tff"), geometry())
    out = run_chain(chain, [yuv_frame(luma, i * 1001) for i, luma in enumerate(lumas)])

    def combing(img: np.ndarray) -> float:
        # Line-to-line difference against the difference two lines apart.
        x = img.astype(np.float64)
        return float(np.abs(x[1:-1] - (x[:-2] + x[2:]) / 2).mean())

    assert combing(luma_of(out[3])) < 0.5 * combing(lumas[3])


# --------------------------------------------------------------------------- crop


def letterboxed(count: int, width: int = 192, height: int = 144) -> list[np.ndarray]:
    """Picture in the box x 16..176, y 20..124 on limited-range black bars with noise."""
    rng = np.random.default_rng(1)
    tex = _texture(width, height, seed=2)
    out = []
    for i in range(count):
        img = (16 + rng.integers(0, 6, (height, width))).astype(np.uint8)
        img[20:124, 16:176] = _field_picture(tex, 2 * i, width)[20:124, 16:176]
        out.append(img)
    return out


def test_crop_in_chain_cuts_the_bars() -> None:
    lumas = letterboxed(3)
    chain = FilterChain(FilterSpec(crop=(160, 104, 16, 20)), geometry(width=192, height=144))
    out = run_chain(chain, [yuv_frame(luma, i) for i, luma in enumerate(lumas)])
    assert len(out) == 3
    assert (out[0].width, out[0].height) == (160, 104)
    assert np.array_equal(luma_of(out[1]), lumas[1][20:124, 16:176])
    assert [f.pts for f in out] == [0, 1, 2]


def test_explicit_crop_is_checked_against_the_frame() -> None:
    with pytest.raises(UsageError, match="inside the 160x128 frame"):
        FilterChain(FilterSpec(crop=(160, 120, 8, 0)), geometry())
    with pytest.raises(UsageError, match="multiples of 2") as err:
        FilterChain(FilterSpec(crop=(101, 100, 3, 0)), geometry())
    assert "try --crop 100:100:4:0" in str(err.value)


# --------------------------------------------------------------------------- square pixels


@pytest.mark.parametrize(
    ("sar", "width"), [(Fraction(8, 9), 640), (Fraction(10, 11), 654), (Fraction(32, 27), 854)]
)
def test_square_pixels_resamples_anamorphic_width(sar: Fraction, width: int) -> None:
    # 720 * 8/9 = 640; 720 * 10/11 = 654.5 -> 654 (even); 720 * 32/27 = 853.3 -> 854.
    assert square_pixel_size(720, 480, sar) == (width, 480)
    luma = np.full((480, 720), 30, np.uint8)
    luma[:, 360:450] = 220  # a bright band whose position scales with the width
    chain = FilterChain(
        FilterSpec(square_pixels=True),
        geometry(width=720, height=480, sample_aspect_ratio=sar),
    )
    out = run_chain(chain, [yuv_frame(luma, 0), yuv_frame(luma, 1001)])
    assert (out[0].width, out[0].height) == (width, 480)
    assert chain.output.sample_aspect_ratio == 1
    assert (chain.output.width, chain.output.height) == (width, 480)
    cols = np.flatnonzero(luma_of(out[0])[240] > 125)
    scale = width / 720
    assert abs(cols[0] - 360 * scale) <= 1.5
    assert abs(cols[-1] + 1 - 450 * scale) <= 1.5
    assert [f.pts for f in out] == [0, 1001]


def test_square_pixels_is_a_no_op_for_square_sources() -> None:
    chain = FilterChain(FilterSpec(square_pixels=True), geometry())
    frame = yuv_frame(interlaced_luma("progressive", 1)[0], 7)
    assert chain.push(frame) == [frame]
    assert chain.flush() == []


# --------------------------------------------------------------------------- denoise


def _noisy_flat(count: int, sigma: float = 6.0) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [
        np.clip(128 + rng.normal(0, sigma, (64, 96)), 0, 255).astype(np.uint8) for _ in range(count)
    ]


@pytest.mark.parametrize(
    "denoiser",
    [
        d
        for d in ("nlmeans", "atadenoise", "fftdnoiz", "hqdn3d")
        if d in av.filter.filters_available
    ],
)
def test_denoise_reduces_noise_variance(denoiser: str) -> None:
    lumas = _noisy_flat(12)
    chain = FilterChain(
        FilterSpec(denoise=denoiser, denoise_strength=2.0), geometry(width=96, height=64)
    )
    out = run_chain(chain, [yuv_frame(luma, i * 1001) for i, luma in enumerate(lumas)])
    assert [f.pts for f in out] == [i * 1001 for i in range(12)]
    before = np.var(lumas[6].astype(np.float64))
    after = np.var(luma_of(out[6]).astype(np.float64))
    assert after < 0.5 * before
    assert abs(luma_of(out[6]).mean() - 128) < 2


def test_stronger_denoise_removes_more() -> None:
    lumas = _noisy_flat(12)

    def residual(strength: float) -> float:
        chain = FilterChain(
            FilterSpec(denoise="fftdnoiz", denoise_strength=strength),
            geometry(width=96, height=64),
        )
        out = run_chain(chain, [yuv_frame(luma, i) for i, luma in enumerate(lumas)])
        return float(np.var(luma_of(out[6]).astype(np.float64)))

    assert residual(3.0) < residual(0.5)


# --------------------------------------------------------------------------- depth and colour


def test_full_chain_keeps_10_bit_and_colour_tags() -> None:
    lumas = interlaced_luma("tff", 6, width=176, height=144)
    frames = []
    for i, luma in enumerate(lumas):
        frame = yuv_frame(luma, i * 1001, fmt="yuv420p10le")
        frame.colorspace = 1  # bt709
        frame.color_range = 2  # full ("pc")
        frame.color_primaries = 1
        frame.color_trc = 1
        frames.append(frame)
    spec = FilterSpec(
        deinterlace="tff",
        deinterlace_mode="field",
        crop=(160, 144, 8, 0),
        square_pixels=True,
        denoise="atadenoise",
    )
    source = geometry(
        width=176,
        height=144,
        pix_fmt="yuv420p10le",
        sample_aspect_ratio=Fraction(10, 11),
        colorspace="bt709",
        color_range="pc",
    )
    chain = FilterChain(spec, source)
    out = run_chain(chain, frames)
    assert len(out) == 12
    assert (chain.output.width, chain.output.height) == (146, 144)  # 160 * 10/11 = 145.5
    for frame in out:
        assert frame.format.name == "yuv420p10le"
        assert (frame.width, frame.height) == (146, 144)
        assert (frame.colorspace, frame.color_range) == (1, 2)
        assert (frame.color_primaries, frame.color_trc) == (1, 1)
    # Values use the 10-bit range: not 8-bit data shifted up (all multiples of 4).
    assert np.any(luma_of(out[4]) % 4 != 0)


def test_eight_bit_only_denoiser_refuses_10_bit() -> None:
    with pytest.raises(UsageError, match="atadenoise or fftdnoiz"):
        FilterChain(FilterSpec(denoise="nlmeans"), geometry(pix_fmt="yuv420p10le"))


# --------------------------------------------------------------------------- spec checks


def test_identity_chain_passes_frames_through() -> None:
    chain = FilterChain(FilterSpec(), geometry())
    frame = yuv_frame(interlaced_luma("tff", 1)[0], 42)
    assert chain.push(frame) == [frame]
    assert chain.flush() == []
    assert chain.output.time_base == NTSC_TB


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"deinterlace": "yes"}, "expected --deinterlace one of auto, off, tff, bff, got 'yes'"),
        ({"deinterlace_mode": "double"}, "expected deinterlace mode one of frame, field"),
        ({"deinterlacer": "w3fdif"}, "expected deinterlacer one of bwdif, yadif"),
        ({"crop": "letterbox"}, "expected --crop off, auto or W:H:X:Y"),
        ({"crop": (0, 10, 0, 0)}, "W, H >= 2"),
        ({"crop": 704}, "W, H >= 2"),
        ({"crop": (704.0, 480, 0, 0)}, "whole pixels"),
        ({"denoise": "median"}, "expected --denoise one of"),
        ({"denoise": "nlmeans", "denoise_strength": 0}, "expected a denoise strength above 0"),
        ({"denoise_strength": 11.0}, "at most 10"),
        ({"square_pixels": "yes"}, "expected square pixels true or false"),
    ],
)
def test_filter_spec_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        FilterSpec(**kwargs)  # type: ignore[arg-type]


def test_missing_denoiser_is_reported_with_alternatives() -> None:
    if "hqdn3d" in av.filter.filters_available:
        pytest.skip("this FFmpeg has hqdn3d")
    with pytest.raises(UsageError, match="no hqdn3d filter") as err:
        FilterSpec(denoise="hqdn3d")
    assert "atadenoise" in str(err.value)


def test_chain_rejects_a_resolution_change_mid_stream() -> None:
    chain = FilterChain(FilterSpec(deinterlace="tff"), geometry())
    chain.push(yuv_frame(interlaced_luma("tff", 1)[0], 0))
    with pytest.raises(InputError, match="expected 160x128 frames, got 96x64 mid-stream"):
        chain.push(yuv_frame(np.zeros((64, 96), np.uint8), 1001))
    assert len(chain.flush()) == 1
    assert chain.flush() == []


def test_chain_needs_a_resolved_spec() -> None:
    with pytest.raises(UsageError, match="resolve_spec"):
        FilterChain(FilterSpec(deinterlace="auto"), geometry())


def test_parse_crop() -> None:
    assert parse_crop("704:480:8:0") == (704, 480, 8, 0)
    assert parse_crop("704x480+8+0") == (704, 480, 8, 0)
    assert parse_crop("AUTO") == "auto"
    with pytest.raises(UsageError, match="W:H:X:Y"):
        parse_crop("704:480")


def test_resolve_spec_settles_auto_on_a_progressive_file(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "p.mkv", interlaced_luma("progressive", 24))
    spec = resolve_spec(FilterSpec(deinterlace="auto", crop="auto"), path, field_sample=24)
    assert spec.deinterlace == "off"
    assert spec.crop == "off"
    assert not spec.needs_analysis


def test_geometry_from_stream(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "g.mkv", interlaced_luma("progressive", 2), rate=NTSC_RATE)
    with av.open(str(path)) as container:
        geo = StreamGeometry.from_stream(container.streams.video[0])
    assert (geo.width, geo.height, geo.pix_fmt) == (W, H, "yuv420p")
    assert geo.frame_rate == NTSC_RATE
    assert geo.sample_aspect_ratio == 1


# --------------------------------------------------------------------------- resize after model


def test_output_size_for_height() -> None:
    assert output_size_for_height(2560, 1920, 1080) == (1440, 1080)  # NTSC 4:3 DVD x4
    assert output_size_for_height(3416, 1920, 1080) == (1922, 1080)  # 854x480 x4
    assert output_size_for_height(2880, 1920, 1080) == (1620, 1080)
    with pytest.raises(UsageError, match="even"):
        output_size_for_height(640, 480, 1081)


def test_resize_to_height_shape_range_and_content() -> None:
    # A horizontal ramp plus a fine checkerboard that a non-antialiased resize would alias.
    h, w = 96, 128
    ramp = torch.linspace(0, 1, w).expand(h, w)
    checker = ((torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2).float()
    frames = torch.stack([torch.stack([ramp, checker, torch.full((h, w), 0.25)])] * 2)
    out = resize_to_height(frames, 48)
    assert out.shape == (2, 3, 48, 64)
    assert out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    # The ramp stays a ramp, the flat plane stays flat, the checkerboard averages to grey.
    assert torch.allclose(out[0, 0, 24], torch.linspace(0, 1, 64), atol=0.03)
    assert torch.allclose(out[:, 2], torch.full_like(out[:, 2], 0.25), atol=1e-4)
    assert abs(float(out[0, 1, 8:-8, 8:-8].mean()) - 0.5) < 0.02
    assert float(out[0, 1, 8:-8, 8:-8].std()) < 0.05


def test_resize_to_height_keeps_half_dtype_and_checks_shape() -> None:
    frames = torch.rand(1, 3, 40, 60, dtype=torch.bfloat16)
    out = resize_to_height(frames, 80)
    assert out.shape == (1, 3, 80, 120) and out.dtype == torch.bfloat16
    assert resize_to_height(frames, 40) is frames
    with pytest.raises(ValueError, match=r"expected frames shaped \(N, 3, H, W\)"):
        resize_to_height(torch.rand(3, 40, 60), 80)
