"""Checkpoint loading: detect -> load -> run round-trips, unsafe pickles, files that are not models.

Models are tiny and randomly initialised; outputs of the loaded network must equal the
in-memory one exactly. Tests that need spandrel skip when it cannot be imported (it needs
torchvision, which the CPU torch here cannot import beside it).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from vsr.config import ModelOptions
from vsr.errors import InputNotFoundError, UnsafeCheckpointError, WeightsError
from vsr.models.archs.rrdbnet import RRDBNet
from vsr.models.archs.srvgg import SRVGGNetCompact
from vsr.models.checkpoint import (
    detect_architecture,
    load_checkpoint,
    read_state_dict,
)
from vsr.models.processors import TorchProcessor
from vsr.models.registry import create_processor


def _spandrel_error() -> str | None:
    try:
        import spandrel  # noqa: F401
    except Exception as error:
        return f"spandrel cannot be imported here ({type(error).__name__}: {error})"[:200]
    return None


SPANDREL_MISSING = _spandrel_error()
needs_spandrel = pytest.mark.skipif(SPANDREL_MISSING is not None, reason=str(SPANDREL_MISSING))
without_spandrel = pytest.mark.skipif(
    SPANDREL_MISSING is None, reason="checks the message given when spandrel is missing"
)


def tiny_rrdbnet(scale: int, seed: int = 0) -> RRDBNet:
    torch.manual_seed(seed)
    return RRDBNet(num_feat=8, num_block=2, num_grow_ch=4, scale=scale).eval()


def tiny_srvgg(upscale: int, seed: int = 0) -> SRVGGNetCompact:
    torch.manual_seed(seed)
    net = SRVGGNetCompact(num_feat=8, num_conv=3, upscale=upscale).eval()
    # Distinct PReLU slopes per layer so a mix-up of layers would show in the output.
    with torch.no_grad():
        for i, layer in enumerate(net.body):
            if isinstance(layer, nn.PReLU):
                layer.weight.uniform_(0.05 + 0.1 * i, 0.3 + 0.1 * i)
    return net


def run(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return net.eval()(x)


X = torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("wrapper", ["params_ema", "params", "state_dict+module"])
def test_rrdbnet_pth_round_trip(tmp_path: Path, scale: int, wrapper: str) -> None:
    net = tiny_rrdbnet(scale, seed=scale)
    state: dict[str, Any] = dict(net.state_dict())
    if wrapper == "state_dict+module":
        payload: dict[str, Any] = {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    else:
        payload = {wrapper: state, "iter": 1000}
    path = tmp_path / "tiny_rrdb.pth"
    torch.save(payload, path)
    loaded = load_checkpoint(path)
    d = loaded.descriptor
    assert (d.architecture, d.scale, d.name) == ("RRDBNet", scale, "tiny_rrdb")
    assert d.size_multiple == {4: 1, 2: 2, 1: 4}[scale]
    assert d.params == sum(p.numel() for p in net.parameters())
    assert d.macs_per_pixel > 0
    assert isinstance(loaded.network, RRDBNet)
    assert loaded.network.body.__len__() == 2
    assert torch.equal(run(loaded.network, X), run(net, X))


@pytest.mark.parametrize("upscale", [1, 2, 3, 4])
def test_srvgg_safetensors_round_trip(tmp_path: Path, upscale: int) -> None:
    net = tiny_srvgg(upscale, seed=upscale)
    path = tmp_path / "compact.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    loaded = load_checkpoint(path)
    d = loaded.descriptor
    assert (d.architecture, d.scale, d.size_multiple) == ("SRVGGNetCompact", upscale, 1)
    found = detect_architecture(read_state_dict(path))
    assert found is not None
    assert found.kwargs == {
        "num_in_ch": 3,
        "num_out_ch": 3,
        "num_feat": 8,
        "num_conv": 3,
        "upscale": upscale,
        "act_type": "prelu",
    }
    assert torch.equal(run(loaded.network, X), run(net, X))


def test_fp16_checkpoint_loads_into_fp32_network(tmp_path: Path) -> None:
    net = tiny_srvgg(2)
    half = {k: v.half() for k, v in net.state_dict().items()}
    path = tmp_path / "half.pth"
    torch.save({"params_ema": half}, path)
    loaded = load_checkpoint(path)
    ref = tiny_srvgg(2)
    ref.load_state_dict({k: v.float() for k, v in half.items()})
    assert torch.equal(run(loaded.network, X), run(ref, X))


def test_numpy_scalars_beside_the_weights_are_data(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    net = tiny_srvgg(2)
    path = tmp_path / "with_numpy.pth"
    torch.save({"params": net.state_dict(), "best_psnr": np.float64(31.5)}, path)
    assert load_checkpoint(path).descriptor.architecture == "SRVGGNetCompact"


class _Touch:
    """A pickle payload that creates a file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class _TouchPath:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("payload", [_Touch, _TouchPath])
def test_malicious_pth_is_refused_and_never_runs(tmp_path: Path, payload: type) -> None:
    marker = tmp_path / "pwned"
    net = tiny_srvgg(2)
    path = tmp_path / "evil.pth"
    torch.save({"params_ema": net.state_dict(), "x": payload(marker)}, path)
    # The file really is armed: plain pickle would create the marker (checked on a copy of
    # the payload only, never through vsr).
    with pytest.raises(UnsafeCheckpointError, match="contains code, not just weights") as info:
        load_checkpoint(path)
    assert not marker.exists()
    assert "evil.pth" in str(info.value)
    assert info.value.exit_code == 4
    pickle.loads(pickle.dumps(payload(marker)))
    assert marker.exists()  # proves the payload is live, so the refusal above meant something


def test_malicious_plain_pickle_file_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned2"
    path = tmp_path / "evil_legacy.pth"
    path.write_bytes(pickle.dumps({"w": _Touch(marker)}, protocol=2))
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


def test_random_bytes_are_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "noise.pth"
    path.write_bytes(bytes(range(256)) * 8 + os.urandom(512))
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint") as info:
        load_checkpoint(path)
    assert not isinstance(info.value, UnsafeCheckpointError)


def test_text_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n")
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
        load_checkpoint(path)


def test_corrupt_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(WeightsError, match=r"not a readable \.safetensors"):
        load_checkpoint(path)


def test_checkpoint_without_tensors(tmp_path: Path) -> None:
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(WeightsError, match="found no tensors"):
        load_checkpoint(path)
    path2 = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path2)
    with pytest.raises(WeightsError, match="holds a list"):
        load_checkpoint(path2)


@without_spandrel
def test_unrelated_tensors_name_what_was_found_and_how_to_get_spandrel(tmp_path: Path) -> None:
    path = tmp_path / "classifier.safetensors"
    save_file({"fc.weight": torch.zeros(10, 4), "fc.bias": torch.zeros(10)}, str(path))
    with pytest.raises(WeightsError) as info:
        load_checkpoint(path)
    text = str(info.value)
    assert "fc.weight" in text and "2 tensors" in text
    assert "pip install 'vsr[community]'" in text


@needs_spandrel
def test_unrelated_tensors_are_not_a_supported_model(tmp_path: Path) -> None:
    path = tmp_path / "classifier.safetensors"
    save_file({"fc.weight": torch.zeros(10, 4), "fc.bias": torch.zeros(10)}, str(path))
    with pytest.raises(WeightsError, match="not a supported model checkpoint") as info:
        load_checkpoint(path)
    assert "fc.weight" in str(info.value)


def test_rrdbnet_with_wrong_shapes_is_not_loaded_as_rrdbnet(tmp_path: Path) -> None:
    state = dict(tiny_rrdbnet(4).state_dict())
    state["conv_hr.weight"] = torch.zeros(8, 8, 5, 5)
    assert detect_architecture(state) is None


def test_missing_file_and_bad_suffix(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        load_checkpoint(tmp_path / "nope.pth")
    other = tmp_path / "weights.onnx"
    other.write_bytes(b"x")
    with pytest.raises(WeightsError, match=r"expected a checkpoint ending in \.pth"):
        load_checkpoint(other)
    folder = tmp_path / "dir.pth"
    folder.mkdir()
    with pytest.raises(WeightsError, match="got a directory"):
        load_checkpoint(folder)


@needs_spandrel
def test_community_architecture_through_spandrel(tmp_path: Path) -> None:
    from spandrel.architectures.SPAN import SPAN

    torch.manual_seed(0)
    net = SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2).eval()
    path = tmp_path / "span_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    loaded = load_checkpoint(path)
    d = loaded.descriptor
    assert d.architecture == "SPAN"
    assert d.scale == 2
    assert d.params == sum(p.numel() for p in net.parameters())
    assert torch.allclose(run(loaded.network, X), run(net, X), atol=1e-6)
    # And through --model PATH, as the CLI does it.
    proc = create_processor(ModelOptions(name=str(path), device="cpu", precision="fp32"))
    assert proc.descriptor.architecture == "SPAN"
    assert torch.allclose(proc.process(X), run(net, X).clamp(0, 1), atol=1e-5)


@needs_spandrel
def test_old_esrgan_layout_through_spandrel(tmp_path: Path) -> None:
    from spandrel import ModelLoader

    # spandrel's ESRGAN module keeps the original "model.N..." key layout; its state dict is
    # an old-style checkpoint, which vsr's own detector must leave to spandrel. (Old-layout
    # detection in spandrel assumes 32 growth channels.)
    torch.manual_seed(3)
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=32, scale=4).eval()
    old_state = ModelLoader().load_from_state_dict(dict(net.state_dict())).model.state_dict()
    assert any(k.startswith("model.1.sub.") for k in old_state)
    assert detect_architecture(old_state) is None
    path = tmp_path / "old_esrgan.pth"
    torch.save(old_state, path)
    loaded = load_checkpoint(path)
    assert loaded.descriptor.architecture == "ESRGAN"
    assert loaded.descriptor.scale == 4
    assert torch.allclose(run(loaded.network, X), run(net, X), atol=1e-5)


@needs_spandrel
def test_spandrel_descriptor_facts_and_minimum_size(tmp_path: Path) -> None:
    from spandrel import ModelLoader
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(0)
    net = SwinIR(
        upscale=2,
        img_size=8,
        window_size=4,
        embed_dim=12,
        depths=[1],
        num_heads=[2],
        mlp_ratio=2,
        upsampler="pixelshuffledirect",
    ).eval()
    path = tmp_path / "swinir_tiny.pth"
    torch.save({"params": net.state_dict()}, path)
    loaded = load_checkpoint(path)
    theirs = ModelLoader().load_from_file(path)
    d = loaded.descriptor
    assert (d.architecture, d.scale) == ("SwinIR", 2)
    req = theirs.size_requirements
    assert (d.size_multiple, loaded.min_size, loaded.square) == (
        req.multiple_of,
        req.minimum,
        req.square,
    )
    assert (d.supports_half, d.supports_bfloat16) == (
        theirs.supports_half,
        theirs.supports_bfloat16,
    )
    assert d.tiling == theirs.tiling.name.lower()
    # A frame smaller than the model's minimum is padded and cropped back, as spandrel does.
    small = torch.rand(1, 3, 10, 13, generator=torch.Generator().manual_seed(1))
    processor = TorchProcessor(
        loaded.network,
        d,
        ModelOptions(device="cpu", precision="fp32"),
        min_size=loaded.min_size,
        square=loaded.square,
    )
    out = processor.process(small)
    assert out.shape == (1, 3, 20, 26)
    with torch.inference_mode():
        expected = theirs.eval()(small).clamp(0, 1)
    assert torch.allclose(out, expected, atol=1e-5)
