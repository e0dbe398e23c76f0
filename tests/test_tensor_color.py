"""The tensor colour path (vsr.media.tensor_color) against the swscale one, on real frames.

Every matrix, range and bit depth the suite's clips have, odd sizes, 4:2:0/4:2:2/4:4:4 and
planar RGB: YUV -> RGB must agree with swscale (the current decode path) to 50 dB and the
round trip YUV -> RGB -> YUV must come back within one code value.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import clips
import numpy as np
import pytest
import torch

from vsr.media.color import to_rgb
from vsr.media.probe import probe
from vsr.media.tensor_color import (
    PlaneFormat,
    frame_to_packed,
    packed_to_frame,
    planes_to_rgb,
    rgb_to_planes,
    siting_for_codec,
)


def _bt2020_10bit(directory: Path) -> clips.Clip:
    color = {"colorspace": clips.CS_BT2020NCL, "color_primaries": 9, "color_trc": 14}
    return clips.write_video(
        directory / "bt2020.mkv", frames=3, codec="ffv1", pix_fmt="yuv420p10le", color=color
    )


def _yuv422_10bit(directory: Path) -> clips.Clip:
    return clips.write_video(
        directory / "y422.mkv", width=70, height=46, frames=3, codec="ffv1", pix_fmt="yuv422p10le"
    )


def _full_range_601_444(directory: Path) -> clips.Clip:
    color = {"colorspace": clips.CS_BT470BG, "color_range": clips.RANGE_JPEG}
    return clips.write_video(
        directory / "f444.mkv",
        frames=3,
        codec="ffv1",
        pix_fmt="yuv444p",
        color=color,
        full_range=True,
    )


MAKERS: dict[str, Callable[[Path], clips.Clip]] = {
    "bt709_full_range": clips.bt709_full_range,
    "bt601_limited": clips.bt601_limited,
    "bt709_limited": clips.bt709_limited,
    "hevc_10bit": clips.hevc_10bit,
    "odd_size": clips.odd_size,
    "lossless_444": clips.lossless_ffv1,
    "bt2020_10bit": _bt2020_10bit,
    "yuv422_10bit_odd_width": _yuv422_10bit,
    "full_range_601_444": _full_range_601_444,
}


def _frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


@pytest.mark.parametrize("maker", sorted(MAKERS))
def test_yuv_to_rgb_agrees_with_swscale(tmp_path: Path, maker: str) -> None:
    clip = MAKERS[maker](tmp_path)
    info = probe(clip.path).video
    fmt = PlaneFormat.for_pix_fmt(info.pix_fmt)
    assert fmt is not None, info.pix_fmt
    deep = info.bit_depth > 8
    peak = 65535.0 if deep else 255.0
    for frame in _frames(clip.path):
        reference = to_rgb(
            frame, info.color, "rgb48le" if deep else "rgb24", clip.width, clip.height
        )
        expected = reference.to_ndarray().astype(np.float64) / peak
        packed = torch.from_numpy(
            frame_to_packed(frame, fmt, clip.width, clip.height).view(
                np.int16 if fmt.deep else np.uint8
            )
        )[None]
        # swscale puts chroma between luma samples (FFmpeg's default when none is given).
        rgb = planes_to_rgb(packed, fmt, clip.width, clip.height, info.color, siting="center")
        got = rgb[0].permute(1, 2, 0).double().numpy()
        assert got.shape == expected.shape
        assert _psnr(got, expected) >= 50, (maker, _psnr(got, expected))


@pytest.mark.parametrize("maker", sorted(MAKERS))
@pytest.mark.parametrize("siting", ["left", "center", "topleft"])
def test_round_trip_within_one_code(tmp_path: Path, maker: str, siting: str) -> None:
    clip = MAKERS[maker](tmp_path)
    info = probe(clip.path).video
    fmt = PlaneFormat.for_pix_fmt(info.pix_fmt)
    assert fmt is not None
    for frame in _frames(clip.path)[:2]:
        packed_np = frame_to_packed(frame, fmt, clip.width, clip.height)
        packed = torch.from_numpy(packed_np.view(np.int16 if fmt.deep else np.uint8))[None]
        rgb = planes_to_rgb(packed, fmt, clip.width, clip.height, info.color, siting=siting)  # type: ignore[arg-type]
        back = rgb_to_planes(rgb, fmt, info.color, siting=siting)  # type: ignore[arg-type]
        again = back[0].numpy().view(fmt.numpy_dtype).astype(np.int64)
        diff = np.abs(again - packed_np.astype(np.int64))
        assert diff.max() <= 1, (maker, siting, diff.max())


def test_siting_puts_chroma_where_it_belongs() -> None:
    """A chroma ramp sampled at the siting's positions is recovered exactly (bilinear)."""
    from vsr.media.color import resolve_color

    width, height = 16, 8
    fmt = PlaneFormat.for_pix_fmt("yuv420p")
    assert fmt is not None
    color = resolve_color(matrix=1, primaries=1, trc=1, color_range=2, pix_fmt="yuv420p", height=8)
    for siting, x0 in (("left", 0.0), ("center", 0.5)):
        # Cb = 128 + 4 * (luma x) at each chroma sample's luma position.
        cx = np.arange(width // 2) * 2 + x0
        cb = np.tile(128 + 4 * cx, (height // 2, 1))
        y = np.full((height, width), 128.0)
        packed = np.concatenate([y.ravel(), cb.ravel(), np.full(cb.size, 128.0)])
        tensor = torch.from_numpy(np.round(packed).astype(np.uint8))[None]
        rgb = planes_to_rgb(tensor, fmt, width, height, color, siting=siting, upsampling="bilinear")
        # Blue minus luma is proportional to Cb - 128: linear in x away from the edges.
        b = rgb[0, 2, 0].double().numpy() * 255
        slope = np.diff(b[2:-2])
        assert np.allclose(slope, slope[0], atol=0.02), (siting, slope)
        # At the luma column of chroma sample 2, Cb is exactly the sample.
        expected_b = 128 / 255 + 2 * (1 - 0.0722) * ((128 + 4 * cx[2]) - 128) / 255
        column = int(cx[2]) if siting == "left" else int(cx[2] - 0.5)
        value = b[column] / 255 if siting == "left" else (b[column] + b[column + 1]) / 2 / 255
        assert value == pytest.approx(expected_b, abs=1e-3), siting


def test_plane_formats() -> None:
    assert PlaneFormat.for_pix_fmt("nv12") == PlaneFormat.for_pix_fmt("yuv420p")
    p010 = PlaneFormat.for_pix_fmt("p010le")
    assert p010 is not None and (p010.pix_fmt, p010.bits) == ("yuv420p10le", 10)
    assert PlaneFormat.for_pix_fmt("rgb24") == PlaneFormat("gbrp", "gbr", 8, 0, 0)
    assert PlaneFormat.for_pix_fmt("yuva420p") is None  # alpha: swscale path
    assert PlaneFormat.for_pix_fmt("gray") is None
    assert PlaneFormat.for_pix_fmt("pal8") is None
    assert siting_for_codec("h264") == "left"
    assert siting_for_codec("mjpeg") == "center"


def test_packed_frames_round_trip_through_pyav() -> None:
    """frame -> packed -> frame is exact, also for semi-planar input (nv12, p010)."""
    for name in ("yuv420p", "nv12", "yuv422p10le", "p010le", "gbrp", "rgb24"):
        fmt = PlaneFormat.for_pix_fmt(name)
        assert fmt is not None
        # Semi-planar layouts are hardware formats: even sizes only (swscale's odd-width
        # repack of nv12/p010 leaves the last chroma column unset).
        width, height = (37, 21) if fmt.pix_fmt == name or name == "rgb24" else (38, 22)
        source = clips.make_frame(width, height, 3, "yuv420p10le" if fmt.deep else "yuv420p")
        frame = source.reformat(format=name)
        packed = frame_to_packed(frame, fmt, width, height)
        again = packed_to_frame(packed, fmt, width, height, name)
        assert again.format.name == name
        np.testing.assert_array_equal(
            frame_to_packed(again, fmt, width, height), packed, err_msg=name
        )


def test_rgb_input_gbr_planes(tmp_path: Path) -> None:
    image = clips.rgb_pattern(33, 17, 2)
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    fmt = PlaneFormat.for_pix_fmt("rgb24")
    assert fmt is not None
    from vsr.media.color import resolve_color

    color = resolve_color(matrix=2, primaries=2, trc=2, color_range=0, pix_fmt="rgb24", height=17)
    packed = torch.from_numpy(frame_to_packed(frame, fmt, 33, 17))[None]
    rgb = planes_to_rgb(packed, fmt, 33, 17, color)
    np.testing.assert_array_equal(
        np.round(rgb[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8), image
    )
    assert torch.equal(rgb_to_planes(rgb, fmt, color), packed)


def test_half_precision_output(tmp_path: Path) -> None:
    clip = clips.bt709_limited(tmp_path)
    info = probe(clip.path).video
    fmt = PlaneFormat.for_pix_fmt(info.pix_fmt)
    assert fmt is not None
    frame = _frames(clip.path)[0]
    packed = torch.from_numpy(frame_to_packed(frame, fmt, clip.width, clip.height))[None]
    full = planes_to_rgb(packed, fmt, clip.width, clip.height, info.color)
    half = planes_to_rgb(packed, fmt, clip.width, clip.height, info.color, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    assert float((half.float() - full).abs().max()) < 1 / 128


def test_bad_shapes_are_value_errors() -> None:
    fmt = PlaneFormat.for_pix_fmt("yuv420p")
    assert fmt is not None
    from vsr.media.color import resolve_color

    color = resolve_color(matrix=1, primaries=1, trc=1, color_range=1, pix_fmt="yuv420p", height=8)
    with pytest.raises(ValueError, match="expected packed"):
        planes_to_rgb(torch.zeros((1, 10), dtype=torch.uint8), fmt, 4, 4, color)
    with pytest.raises(ValueError, match="expected RGB"):
        rgb_to_planes(torch.zeros((3, 4, 4)), fmt, color)


_ = Fraction  # clips' rates are Fractions; kept for parity with other colour tests
