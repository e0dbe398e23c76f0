"""The vocabulary an architecture uses to say what its ncnn export looks like.

ncnn files carry no parameter names, only a graph; the converter (vsr.models.ncnn) matches a
file's graph against the graph an architecture *should* export, and that expected graph is
spelled here as canonical nodes. Each `Arch` writes its own pattern with a `GraphBuilder`, so
the converter knows no architecture by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Node:
    """An operation in canonical form, comparable between a file and an architecture."""

    op: Literal["conv", "prelu", "concat", "add", "interp", "pixelshuffle"]
    inputs: tuple[str, ...]
    output: str
    attrs: tuple[tuple[str, Any], ...] = ()
    # Inputs of "add" pair with these coefficients; order of (input, coeff) pairs is free.
    coeffs: tuple[float, ...] = ()
    key: str | None = None  # state-dict prefix for weighted nodes
    layer: str = ""  # ncnn layer name (file side)

    def attr(self, name: str) -> Any:
        return dict(self.attrs)[name]


class GraphBuilder:
    """Emits the expected canonical graph of an architecture, one node per call."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._n = 0

    def _blob(self) -> str:
        self._n += 1
        return f"%{self._n}"

    def conv(self, x: str, key: str, cin: int, cout: int, act: float | None = None) -> str:
        out = self._blob()
        attrs = {
            "in": cin,
            "out": cout,
            "kernel": 3,
            "stride": 1,
            "dilation": 1,
            "pad": 1,
            "bias": True,
            "act": act,
        }
        self.nodes.append(Node("conv", (x,), out, tuple(sorted(attrs.items())), key=key))
        return out

    def prelu(self, x: str, key: str, n: int) -> str:
        out = self._blob()
        self.nodes.append(Node("prelu", (x,), out, (("n", n),), key=key))
        return out

    def concat(self, xs: Sequence[str]) -> str:
        out = self._blob()
        self.nodes.append(Node("concat", tuple(xs), out))
        return out

    def add(self, pairs: Sequence[tuple[str, float]]) -> str:
        out = self._blob()
        self.nodes.append(
            Node("add", tuple(p[0] for p in pairs), out, coeffs=tuple(p[1] for p in pairs))
        )
        return out

    def interp(self, x: str, mode: str, scale: float, align: bool = False) -> str:
        out = self._blob()
        attrs = {"mode": mode, "scale": scale, "align": align}
        self.nodes.append(Node("interp", (x,), out, tuple(sorted(attrs.items()))))
        return out

    def pixelshuffle(self, x: str, factor: int) -> str:
        out = self._blob()
        self.nodes.append(Node("pixelshuffle", (x,), out, (("factor", factor), ("mode", 0))))
        return out
