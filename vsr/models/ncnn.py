"""Read ncnn models (``.param`` text graph + ``.bin`` weights) into PyTorch state dicts.

ncnn stores no parameter names, only a graph and the weights in graph order, so conversion
is done against an architecture: its `Arch` (vsr.models.archs) writes the graph it expects node
by node (with the state-dict key each weighted node fills) and the file's graph must match it
exactly, up to blob names and the order of independent layers. Anything the architecture does
not model (another layer type, a kernel size, an activation, a residual coefficient, an extra
resize) raises `WeightsError` instead of converting into a network that computes something
else.

Weight blobs follow ncnn's ModelBin rules: a weight tensor starts with a 4-byte tag
(0 = fp32; ``47 6b 30 01`` = fp16; ``0x000D4B38`` = int8; ``0x0002C056`` = fp32 that comes
with int8 scales; any other non-zero tag = a 256-entry fp32 lookup table followed by one
uint8 index per value); biases, PReLU slopes and int8 scales are untagged raw fp32.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from vsr.errors import WeightsError
from vsr.models.archs import find_arch
from vsr.models.archs.ncnn_pattern import GraphBuilder, Node

PARAM_MAGIC = 7767517

TAG_FP32 = 0x00000000
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_INT8_SCALED = 0x0002C056

ParamValue = int | float | tuple[int | float, ...]

# ncnn's Interp resize_type values.
INTERP_MODES: dict[int, str] = {1: "nearest", 2: "bilinear", 3: "bicubic"}
InterpMode = Literal["nearest", "bilinear", "bicubic"]

# Parameter ids each supported layer type understands; any other id in a file is an error
# because it would change what the layer computes.
_KNOWN_PARAMS: dict[str, frozenset[int]] = {
    "Input": frozenset({0, 1, 2, 11}),
    "Split": frozenset(),
    "Convolution": frozenset({0, 1, 11, 2, 12, 3, 13, 4, 14, 15, 16, 18, 5, 6, 8, 9, 10, 17, 19}),
    "PReLU": frozenset({0}),
    "ReLU": frozenset({0}),
    "Concat": frozenset({0}),
    "Eltwise": frozenset({0, 1}),
    "BinaryOp": frozenset({0, 1, 2}),
    "Interp": frozenset({0, 1, 2, 3, 4, 5, 6}),
    "PixelShuffle": frozenset({0, 1}),
}


# --------------------------------------------------------------------------- .param parsing


@dataclass(frozen=True)
class NcnnLayer:
    """One line of a ``.param`` file."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: Mapping[int, ParamValue]
    line: int

    def get(self, key: int, default: ParamValue) -> ParamValue:
        return self.params.get(key, default)

    def int_param(self, key: int, default: int) -> int:
        value = self.params.get(key, default)
        if isinstance(value, tuple) or float(value) != int(value):
            raise WeightsError(
                f"layer {self.name} ({self.type}, line {self.line}): expected an integer for "
                f"param {key}, got {value!r}"
            )
        return int(value)

    def float_param(self, key: int, default: float) -> float:
        value = self.params.get(key, default)
        if isinstance(value, tuple):
            raise WeightsError(
                f"layer {self.name} ({self.type}, line {self.line}): expected a number for "
                f"param {key}, got an array {value!r}"
            )
        return float(value)

    def array_param(self, key: int) -> tuple[float, ...]:
        value = self.params.get(key, ())
        if not isinstance(value, tuple):
            raise WeightsError(
                f"layer {self.name} ({self.type}, line {self.line}): expected an array for "
                f"param {key}, got {value!r}"
            )
        return tuple(float(v) for v in value)


@dataclass(frozen=True)
class NcnnGraph:
    """A parsed ``.param`` graph, layers in file order."""

    layers: tuple[NcnnLayer, ...]
    blob_count: int
    source: str = "<memory>"

    @property
    def input_blobs(self) -> tuple[str, ...]:
        return tuple(b for layer in self.layers if layer.type == "Input" for b in layer.outputs)

    @property
    def output_blobs(self) -> tuple[str, ...]:
        consumed = {b for layer in self.layers for b in layer.inputs}
        return tuple(b for layer in self.layers for b in layer.outputs if b not in consumed)


def _parse_number(text: str, *, where: str) -> int | float:
    try:
        if any(c in text for c in ".eE") and not text.lstrip("-").isdigit():
            return float(text)
        return int(text)
    except ValueError:
        raise WeightsError(f"{where}: expected a number, got {text!r}") from None


def _parse_params(tokens: Iterable[str], *, where: str) -> dict[int, ParamValue]:
    params: dict[int, ParamValue] = {}
    for token in tokens:
        key_text, sep, value_text = token.partition("=")
        if not sep:
            raise WeightsError(f"{where}: expected a key=value parameter, got {token!r}")
        try:
            key = int(key_text)
        except ValueError:
            raise WeightsError(
                f"{where}: expected an integer parameter id, got {key_text!r}"
            ) from None
        if key <= -23300:
            # Array parameter: id is -23300-key, value is "count,v1,v2,...".
            parts = value_text.split(",")
            count = _parse_number(parts[0], where=where)
            values = tuple(_parse_number(p, where=where) for p in parts[1:])
            if count != len(values):
                raise WeightsError(
                    f"{where}: array parameter {key} says {count} values but has {len(values)}"
                )
            params[-23300 - key] = values
        else:
            params[key] = _parse_number(value_text, where=where)
    return params


def parse_param(text: str, *, source: str = "<memory>") -> NcnnGraph:
    """Parse the text of an ncnn ``.param`` file."""
    lines = [(i + 1, ln.split()) for i, ln in enumerate(text.splitlines())]
    lines = [(i, toks) for i, toks in lines if toks]
    if not lines or lines[0][1] != [str(PARAM_MAGIC)]:
        first = " ".join(lines[0][1]) if lines else "an empty file"
        raise WeightsError(
            f"{source}: not an ncnn text .param file: expected magic {PARAM_MAGIC} on line 1, "
            f"got {first!r}"
        )
    if len(lines) < 2 or len(lines[1][1]) != 2:
        raise WeightsError(f"{source}: expected 'layer_count blob_count' on line 2")
    layer_count = int(_parse_number(lines[1][1][0], where=f"{source}:2"))
    blob_count = int(_parse_number(lines[1][1][1], where=f"{source}:2"))
    layers: list[NcnnLayer] = []
    seen_names: set[str] = set()
    produced: set[str] = set()
    for lineno, toks in lines[2:]:
        where = f"{source}:{lineno}"
        if len(toks) < 4:
            raise WeightsError(f"{where}: expected 'type name n_in n_out ...', got {toks!r}")
        ltype, name = toks[0], toks[1]
        try:
            n_in, n_out = int(toks[2]), int(toks[3])
        except ValueError:
            raise WeightsError(f"{where}: expected input/output counts, got {toks[2:4]}") from None
        if len(toks) < 4 + n_in + n_out:
            raise WeightsError(f"{where}: layer {name} lists fewer blobs than it declares")
        inputs = tuple(toks[4 : 4 + n_in])
        outputs = tuple(toks[4 + n_in : 4 + n_in + n_out])
        params = _parse_params(toks[4 + n_in + n_out :], where=where)
        if name in seen_names:
            raise WeightsError(f"{where}: duplicate layer name {name!r}")
        for blob in inputs:
            if blob not in produced:
                raise WeightsError(
                    f"{where}: layer {name} reads blob {blob!r} before any layer produces it"
                )
        for blob in outputs:
            if blob in produced:
                raise WeightsError(f"{where}: blob {blob!r} is produced twice")
            produced.add(blob)
        seen_names.add(name)
        layers.append(NcnnLayer(ltype, name, inputs, outputs, params, lineno))
    if len(layers) != layer_count:
        raise WeightsError(
            f"{source}: header says {layer_count} layers, file has {len(layers)}; "
            "the file is truncated or edited"
        )
    if len(produced) != blob_count:
        raise WeightsError(f"{source}: header says {blob_count} blobs, file has {len(produced)}")
    return NcnnGraph(tuple(layers), blob_count, source)


def read_param(path: str | Path) -> NcnnGraph:
    p = Path(path)
    try:
        text = p.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise WeightsError(
            "not a text ncnn .param file (binary .param.bin is not supported)", path=p
        ) from None
    except OSError as exc:
        raise WeightsError(f"cannot read ncnn graph: {exc.strerror}", path=p) from exc
    return parse_param(text, source=str(p))


# --------------------------------------------------------------------------- .bin reading


@dataclass(frozen=True)
class WeightBlob:
    """One tensor read from a ``.bin``: values as fp32 and how they were stored."""

    values: np.ndarray
    storage: Literal["fp32", "fp16", "int8", "fp32-int8-scaled", "lookup-table", "raw-fp32"]


class BinReader:
    """Sequential reader over a ``.bin`` that follows ncnn's ModelBin ``load(w, type)``."""

    def __init__(self, data: bytes, *, source: str = "<memory>") -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.source = source

    def _take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.data):
            raise WeightsError(
                f"{self.source}: weights end early: {what} needs {n} bytes at offset "
                f"{self.pos}, only {len(self.data) - self.pos} left; the .bin does not belong "
                "to this .param or is truncated"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def load_tagged(self, count: int, what: str) -> WeightBlob:
        """ModelBin::load(count, 0): a tagged weight tensor."""
        (tag,) = struct.unpack("<I", self._take(4, what + " tag"))
        if tag == TAG_FP16:
            raw = self._take(_align4(2 * count), what)
            values = np.frombuffer(raw, dtype="<f2", count=count).astype(np.float32)
            return WeightBlob(values, "fp16")
        if tag == TAG_INT8:
            raw = self._take(_align4(count), what)
            values = np.frombuffer(raw, dtype=np.int8, count=count).astype(np.float32)
            return WeightBlob(values, "int8")
        if tag == TAG_FP32_INT8_SCALED:
            raw = self._take(4 * count, what)
            return WeightBlob(
                np.frombuffer(raw, dtype="<f4").astype(np.float32), "fp32-int8-scaled"
            )
        if sum(tag.to_bytes(4, "little")) != 0:
            # Any other non-zero tag: a 256-entry table, then one uint8 index per value.
            table = np.frombuffer(self._take(256 * 4, what + " lookup table"), dtype="<f4")
            index = np.frombuffer(self._take(_align4(count), what), dtype=np.uint8, count=count)
            return WeightBlob(table[index].astype(np.float32), "lookup-table")
        raw = self._take(4 * count, what)
        return WeightBlob(np.frombuffer(raw, dtype="<f4").astype(np.float32), "fp32")

    def load_raw(self, count: int, what: str) -> np.ndarray:
        """ModelBin::load(count, 1): untagged fp32 (biases, slopes, scales)."""
        return np.frombuffer(self._take(4 * count, what), dtype="<f4").astype(np.float32)


def _align4(n: int) -> int:
    return (n + 3) & ~3


@dataclass(frozen=True)
class LayerWeights:
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    storage: str = ""


def read_weights(
    graph: NcnnGraph, data: bytes, *, source: str = "<memory>"
) -> dict[str, LayerWeights]:
    """Read every layer's weights in graph order; the whole ``.bin`` must be consumed."""
    reader = BinReader(data, source=source)
    out: dict[str, LayerWeights] = {}
    for layer in graph.layers:
        if layer.type not in _KNOWN_PARAMS:
            raise WeightsError(
                f"{graph.source}:{layer.line}: layer {layer.name} has type {layer.type!r}, "
                f"which vsr's converter does not support (supported: "
                f"{', '.join(sorted(_KNOWN_PARAMS))})"
            )
        unknown = set(layer.params) - _KNOWN_PARAMS[layer.type]
        if unknown:
            raise WeightsError(
                f"{graph.source}:{layer.line}: layer {layer.name} ({layer.type}) has parameter "
                f"ids {sorted(unknown)} that vsr does not model"
            )
        if layer.type == "Convolution":
            out[layer.name] = _read_conv(layer, reader)
        elif layer.type == "PReLU":
            n = layer.int_param(0, 0)
            out[layer.name] = LayerWeights(
                weight=reader.load_raw(n, f"layer {layer.name} slopes"), storage="raw-fp32"
            )
    if reader.remaining:
        raise WeightsError(
            f"{source}: {reader.remaining} bytes left after the last layer's weights; the .bin "
            f"does not belong to {graph.source}"
        )
    return out


def _read_conv(layer: NcnnLayer, reader: BinReader) -> LayerWeights:
    size = layer.int_param(6, 0)
    num_output = layer.int_param(0, 0)
    if size <= 0 or num_output <= 0:
        raise WeightsError(
            f"layer {layer.name}: expected positive num_output and weight_data_size, got "
            f"{num_output} and {size}"
        )
    if layer.int_param(19, 0):
        raise WeightsError(
            f"layer {layer.name}: dynamic (input-supplied) weights are not supported"
        )
    blob = reader.load_tagged(size, f"layer {layer.name} weights")
    bias = (
        reader.load_raw(num_output, f"layer {layer.name} bias") if layer.int_param(5, 0) else None
    )
    weight = blob.values
    int8_term = layer.int_param(8, 0)
    if int8_term:
        scales = reader.load_raw(num_output, f"layer {layer.name} int8 weight scales")
        reader.load_raw(1, f"layer {layer.name} int8 input scale")
        if int8_term > 100:
            reader.load_raw(1, f"layer {layer.name} int8 output scale")
        if blob.storage == "int8":
            if np.any(scales == 0):
                raise WeightsError(f"layer {layer.name}: an int8 weight scale is zero")
            # ncnn quantises w_q = round(w * scale) per output channel; undo it.
            weight = (weight.reshape(num_output, -1) / scales[:, None]).reshape(-1)
    elif blob.storage == "int8":
        raise WeightsError(
            f"layer {layer.name}: int8 weights without int8 scales (param 8) cannot be dequantised"
        )
    return LayerWeights(weight=weight.astype(np.float32), bias=bias, storage=blob.storage)


# --------------------------------------------------------------------------- canonical graphs


@dataclass(frozen=True)
class PostResize:
    """A resize the graph applies after the network (animevideov3 x2/x3 do x4 then shrink)."""

    mode: InterpMode
    scale: float
    align_corners: bool = False


def canonical_nodes(graph: NcnnGraph) -> tuple[list[Node], str, str]:
    """Turn a file's graph into canonical nodes; returns (nodes, input blob, output blob)."""
    if len(graph.input_blobs) != 1 or len(graph.output_blobs) != 1:
        raise WeightsError(
            f"{graph.source}: expected one input and one output blob, got inputs "
            f"{list(graph.input_blobs)} and outputs {list(graph.output_blobs)}"
        )
    alias: dict[str, str] = {}

    def real(blob: str) -> str:
        return alias.get(blob, blob)

    consumers: dict[str, int] = {}
    for layer in graph.layers:
        for b in layer.inputs:
            consumers[real(b)] = consumers.get(real(b), 0) + 1
        if layer.type == "Split":
            for b in layer.outputs:
                alias[b] = real(layer.inputs[0])
    alias.clear()

    nodes: list[Node] = []
    by_output: dict[str, int] = {}
    for layer in graph.layers:
        where = f"{graph.source}:{layer.line} layer {layer.name}"
        if layer.type == "Input":
            continue
        if layer.type == "Split":
            if len(layer.inputs) != 1:
                raise WeightsError(f"{where}: a Split must have one input")
            for b in layer.outputs:
                alias[b] = real(layer.inputs[0])
            continue
        ins = tuple(real(b) for b in layer.inputs)
        if len(layer.outputs) != 1:
            raise WeightsError(f"{where}: expected one output blob, got {len(layer.outputs)}")
        out = layer.outputs[0]
        if layer.type == "ReLU":
            # A standalone activation right after a conv that nothing else reads is the same
            # as ncnn's fused activation; fold it so both spellings match the architecture.
            src = by_output.get(ins[0])
            prev = nodes[src] if src is not None else None
            if (
                src is not None
                and prev is not None
                and prev.op == "conv"
                and prev.attr("act") is None
                and consumers.get(ins[0], 0) == 1
            ):
                attrs = dict(prev.attrs)
                attrs["act"] = layer.float_param(0, 0.0)
                nodes[src] = Node(
                    "conv", prev.inputs, out, tuple(sorted(attrs.items())), layer=prev.layer
                )
                del by_output[ins[0]]
                by_output[out] = src
                continue
            raise WeightsError(
                f"{where}: a ReLU that does not directly follow a convolution is not modelled"
            )
        node = _canonical(layer, ins, out, where)
        by_output[out] = len(nodes)
        nodes.append(node)
    return nodes, graph.input_blobs[0], real(graph.output_blobs[0])


def _canonical(layer: NcnnLayer, ins: tuple[str, ...], out: str, where: str) -> Node:
    t = layer.type
    if t == "Convolution":
        kw = layer.int_param(1, 0)
        kh = layer.int_param(11, kw)
        dw = layer.int_param(2, 1)
        dh = layer.int_param(12, dw)
        sw = layer.int_param(3, 1)
        sh = layer.int_param(13, sw)
        pl = layer.int_param(4, 0)
        pt = layer.int_param(14, pl)
        pr = layer.int_param(15, pl)
        pb = layer.int_param(16, pt)
        if layer.float_param(18, 0.0) != 0.0:
            raise WeightsError(f"{where}: non-zero pad_value is not modelled")
        if kw != kh or dw != dh or sw != sh or len({pl, pt, pr, pb}) != 1:
            raise WeightsError(
                f"{where}: only square kernels, strides, dilations and symmetric padding are "
                f"modelled, got kernel {kw}x{kh}, stride {sw}x{sh}, dilation {dw}x{dh}, "
                f"pad {pl},{pt},{pr},{pb}"
            )
        act_type = layer.int_param(9, 0)
        act_params = layer.array_param(10)
        act: float | None
        if act_type == 0:
            act = None
        elif act_type == 1:
            act = 0.0
        elif act_type == 2:
            act = act_params[0] if act_params else 0.0
        else:
            raise WeightsError(
                f"{where}: fused activation type {act_type} is not modelled (only none, ReLU, "
                "LeakyReLU)"
            )
        num_output = layer.int_param(0, 0)
        size = layer.int_param(6, 0)
        in_ch, rem = divmod(size, max(1, num_output * kw * kh))
        if rem or in_ch < 1:
            raise WeightsError(
                f"{where}: weight_data_size {size} is not num_output {num_output} x a whole number "
                f"of {kw}x{kh} input channels"
            )
        attrs = {
            "in": in_ch,
            "out": num_output,
            "kernel": kw,
            "stride": sw,
            "dilation": dw,
            "pad": pl,
            "bias": bool(layer.int_param(5, 0)),
            "act": act,
        }
        return Node("conv", ins, out, tuple(sorted(attrs.items())), layer=layer.name)
    if t == "PReLU":
        return Node("prelu", ins, out, (("n", layer.int_param(0, 0)),), layer=layer.name)
    if t == "Concat":
        axis = layer.int_param(0, 0)
        if axis != 0:
            raise WeightsError(f"{where}: only channel concat (axis 0) is modelled, got {axis}")
        return Node("concat", ins, out, layer=layer.name)
    if t == "Eltwise":
        op = layer.int_param(0, 1)
        if op != 1:
            raise WeightsError(f"{where}: only Eltwise sum (op 1) is modelled, got op {op}")
        coeffs = layer.array_param(1) or tuple(1.0 for _ in ins)
        if len(coeffs) != len(ins):
            raise WeightsError(f"{where}: {len(coeffs)} Eltwise coefficients for {len(ins)} inputs")
        return Node("add", ins, out, coeffs=coeffs, layer=layer.name)
    if t == "BinaryOp":
        op = layer.int_param(0, 0)
        if op != 0 or layer.int_param(1, 0) or len(ins) != 2:
            raise WeightsError(
                f"{where}: only BinaryOp add of two blobs is modelled, got op {op}"
                f" with_scalar={layer.int_param(1, 0)}"
            )
        return Node("add", ins, out, coeffs=(1.0, 1.0), layer=layer.name)
    if t == "Interp":
        mode = layer.int_param(0, 0)
        if mode not in INTERP_MODES:
            raise WeightsError(f"{where}: Interp resize_type {mode} is not modelled")
        if layer.int_param(3, 0) or layer.int_param(4, 0) or layer.int_param(5, 0):
            raise WeightsError(f"{where}: fixed or dynamic Interp output sizes are not modelled")
        hs, ws = layer.float_param(1, 1.0), layer.float_param(2, 1.0)
        if hs != ws:
            raise WeightsError(f"{where}: Interp scales differ ({hs} x {ws}); not modelled")
        interp: dict[str, Any] = {
            "mode": INTERP_MODES[mode],
            "scale": hs,
            "align": bool(layer.int_param(6, 0)),
        }
        return Node("interp", ins, out, tuple(sorted(interp.items())), layer=layer.name)
    if t == "PixelShuffle":
        shuffle = {"factor": layer.int_param(0, 1), "mode": layer.int_param(1, 0)}
        return Node("pixelshuffle", ins, out, tuple(sorted(shuffle.items())), layer=layer.name)
    raise WeightsError(f"{where}: layer type {t!r} is not supported")


def expected_graph(
    architecture: str, config: Mapping[str, Any], post_resize: PostResize | None = None
) -> tuple[list[Node], str, str]:
    """The canonical graph an architecture with this config exports to ncnn."""
    arch = find_arch(architecture)
    if arch is None:
        raise WeightsError(f"no ncnn graph template for architecture {architecture!r}")
    b = GraphBuilder()
    x = "%input"
    out = arch.ncnn_graph(b, x, config)
    if post_resize is not None:
        out = b.interp(out, post_resize.mode, post_resize.scale, post_resize.align_corners)
    return b.nodes, x, out


# --------------------------------------------------------------------------- matching


def _attrs_equal(a: Node, e: Node) -> bool:
    if a.op != e.op:
        return False
    da, de = dict(a.attrs), dict(e.attrs)
    if da.keys() != de.keys():
        return False
    for k, va in da.items():
        ve = de[k]
        if isinstance(ve, float) and isinstance(va, int | float) and not isinstance(va, bool):
            # .param stores floats in %e with 6 digits.
            if not math.isclose(float(va), ve, rel_tol=1e-5, abs_tol=1e-7):
                return False
        elif va != ve:
            return False
    return True


def _describe(n: Node) -> str:
    attrs = ", ".join(f"{k}={v}" for k, v in n.attrs)
    coeffs = f" coeffs={list(n.coeffs)}" if n.op == "add" else ""
    return f"{n.op}({attrs}){coeffs}"


def match_graph(
    actual: list[Node],
    a_in: str,
    a_out: str,
    expected: list[Node],
    e_in: str,
    e_out: str,
    *,
    source: str,
    architecture: str,
) -> dict[str, Node]:
    """Match file nodes to expected nodes; returns file layer name -> expected node.

    Matching is by data flow, not by line order: a node matches when its op, attributes and
    (mapped) inputs agree, so independent layers may appear in any order in the file.
    """
    if len(actual) != len(expected):
        raise WeightsError(
            f"{source}: graph has {len(actual)} operations (after folding Split), "
            f"a {architecture} with this configuration has {len(expected)}"
        )
    blob_map: dict[str, str] = {a_in: e_in}
    unmatched = list(range(len(expected)))
    result: dict[str, Node] = {}
    for node in actual:
        try:
            ins = tuple(blob_map[b] for b in node.inputs)
        except KeyError:
            raise WeightsError(
                f"{source}: layer {node.layer} reads a blob that no matched layer produced"
            ) from None
        found = None
        closest = None
        for idx in unmatched:
            e = expected[idx]
            if e.op != node.op:
                continue
            if node.op == "add":
                if not _coeffs_close(ins, node.coeffs, e.inputs, e.coeffs):
                    if sorted(ins) == sorted(e.inputs):
                        closest = e
                    continue
            elif ins != e.inputs:
                continue
            if not _attrs_equal(node, e):
                closest = e
                continue
            found = idx
            break
        if found is None:
            if closest is not None:
                raise WeightsError(
                    f"{source}: layer {node.layer} is {_describe(node)}, but {architecture} "
                    f"expects {_describe(closest)} there"
                )
            raise WeightsError(
                f"{source}: layer {node.layer} ({_describe(node)}) has no counterpart in "
                f"{architecture}; the file is a different network"
            )
        unmatched.remove(found)
        blob_map[node.output] = expected[found].output
        result[node.layer] = expected[found]
    if blob_map.get(a_out) != e_out:
        raise WeightsError(
            f"{source}: the graph's output is not the {architecture} output (extra or missing "
            "final layers)"
        )
    return result


def _coeffs_close(
    ins: Sequence[str], coeffs: Sequence[float], e_ins: Sequence[str], e_coeffs: Sequence[float]
) -> bool:
    a = sorted(zip(ins, coeffs, strict=True))
    e = sorted(zip(e_ins, e_coeffs, strict=True))
    return len(a) == len(e) and all(
        x[0] == y[0] and math.isclose(x[1], y[1], rel_tol=1e-5, abs_tol=1e-7)
        for x, y in zip(a, e, strict=True)
    )


# --------------------------------------------------------------------------- conversion


@dataclass(frozen=True)
class Conversion:
    """A converted model: the state dict and what the file told us about storage."""

    state_dict: dict[str, torch.Tensor]
    storage: Mapping[str, str] = field(default_factory=dict)


def convert_graph(
    graph: NcnnGraph,
    bin_data: bytes,
    *,
    architecture: str,
    config: Mapping[str, Any],
    post_resize: PostResize | None = None,
    bin_source: str = "<memory>",
) -> Conversion:
    """Check `graph` against the architecture and return its weights as a state dict."""
    weights = read_weights(graph, bin_data, source=bin_source)
    actual, a_in, a_out = canonical_nodes(graph)
    found = _post_resize_of(actual, a_out)
    if found != post_resize:
        # Say this plainly: a missing or different final resize changes the output size.
        raise WeightsError(
            f"{graph.source}: the graph ends with {_resize_text(found)}, but the model declares "
            f"{_resize_text(post_resize)}"
        )
    expected, e_in, e_out = expected_graph(architecture, config, post_resize)
    matched = match_graph(
        actual, a_in, a_out, expected, e_in, e_out, source=graph.source, architecture=architecture
    )
    state: dict[str, torch.Tensor] = {}
    storage: dict[str, str] = {}
    for layer_name, node in matched.items():
        if node.key is None:
            continue
        lw = weights[layer_name]
        if lw.weight is None:
            raise WeightsError(f"{graph.source}: layer {layer_name} carries no weights")
        if node.op == "conv":
            cout, cin, k = node.attr("out"), node.attr("in"), node.attr("kernel")
            state[f"{node.key}.weight"] = torch.from_numpy(
                lw.weight.reshape(cout, cin, k, k).copy()
            )
            if lw.bias is None:
                raise WeightsError(f"{graph.source}: layer {layer_name} has no bias")
            state[f"{node.key}.bias"] = torch.from_numpy(lw.bias.copy())
        else:
            state[f"{node.key}.weight"] = torch.from_numpy(lw.weight.copy())
        storage[node.key] = lw.storage
    return Conversion(state, storage)


def convert_files(
    param_path: str | Path,
    bin_path: str | Path,
    *,
    architecture: str,
    config: Mapping[str, Any],
    post_resize: PostResize | None = None,
) -> Conversion:
    graph = read_param(param_path)
    try:
        data = Path(bin_path).read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read ncnn weights: {exc.strerror}", path=bin_path) from exc
    return convert_graph(
        graph,
        data,
        architecture=architecture,
        config=config,
        post_resize=post_resize,
        bin_source=str(bin_path),
    )


def find_post_resize(graph: NcnnGraph) -> PostResize | None:
    """The resize a graph applies to its final result, if its last operation is an Interp."""
    nodes, _, out = canonical_nodes(graph)
    return _post_resize_of(nodes, out)


def _post_resize_of(nodes: Sequence[Node], out: str) -> PostResize | None:
    last = next((n for n in nodes if n.output == out), None)
    if last is None or last.op != "interp":
        return None
    return PostResize(last.attr("mode"), float(last.attr("scale")), bool(last.attr("align")))


def _resize_text(resize: PostResize | None) -> str:
    if resize is None:
        return "no resize"
    align = ", align_corners" if resize.align_corners else ""
    return f"a {resize.mode} resize x{resize.scale:g}{align}"
