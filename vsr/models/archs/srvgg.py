"""SRVGGNetCompact (Real-ESRGAN "Compact", used by realesr-animevideov3) in BasicSR key layout.

``body`` is one flat list: conv, act, then ``num_conv`` times (conv, act), then the last conv
that makes ``num_out_ch * upscale**2`` channels. The output is pixel-shuffled and the
nearest-upsampled input is added, so the network only learns the residual.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from vsr.errors import WeightsError
from vsr.models.archs.arch import Arch, Config, StateDict, first_dim
from vsr.models.archs.ncnn_pattern import GraphBuilder

ActType = Literal["prelu", "relu", "leakyrelu"]


def _activation(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)
    raise ValueError(f"expected act_type 'prelu', 'relu' or 'leakyrelu', got {act_type!r}")


class SRVGGNetCompact(nn.Module):
    """A plain stack of 3x3 convs at low resolution, then pixel-shuffle plus a nearest skip."""

    def __init__(
        self,
        *,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
    ) -> None:
        super().__init__()
        if upscale < 1 or num_conv < 0 or num_feat < 1:
            raise ValueError(
                "expected upscale >= 1, num_conv >= 0 and num_feat >= 1, got "
                f"{upscale}, {num_conv}, {num_feat}"
            )
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.num_feat = num_feat
        self.num_conv = num_conv
        self.upscale = upscale
        self.act_type = act_type
        layers: list[nn.Module] = [
            nn.Conv2d(num_in_ch, num_feat, 3, 1, 1),
            _activation(act_type, num_feat),
        ]
        for _ in range(num_conv):
            layers.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            layers.append(_activation(act_type, num_feat))
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    @property
    def size_multiple(self) -> int:
        return 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_in_ch:
            raise ValueError(
                f"expected input shaped (N, {self.num_in_ch}, H, W), got {tuple(x.shape)}"
            )
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        # The skip needs matching channels; BasicSR only has it for in == out.
        if self.num_in_ch == self.num_out_ch:
            out = out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        return out


def srvgg_macs_per_pixel(
    *,
    num_in_ch: int = 3,
    num_out_ch: int = 3,
    num_feat: int = 64,
    num_conv: int = 16,
    upscale: int = 4,
) -> float:
    """Multiply-adds per input pixel (convs; PReLU and the skip are negligible)."""
    k = 9
    total = num_in_ch * num_feat + num_conv * num_feat * num_feat
    total += num_feat * num_out_ch * upscale * upscale
    return float(total * k)


def count_macs(cfg: Config) -> float:
    # The activation changes no multiply-add count.
    return srvgg_macs_per_pixel(**{k: int(v) for k, v in cfg.items() if k != "act_type"})


def count_params(cfg: Config) -> int:
    """Parameters of a configuration, without building it."""
    nin, nout = int(cfg.get("num_in_ch", 3)), int(cfg.get("num_out_ch", 3))
    nf, nc, up = int(cfg.get("num_feat", 64)), int(cfg.get("num_conv", 16)), int(cfg["upscale"])
    prelu = nf * (nc + 1) if cfg.get("act_type", "prelu") == "prelu" else 0
    return (
        (nin * nf * 9 + nf)
        + nc * (nf * nf * 9 + nf)
        + (nf * nout * up * up * 9 + nout * up * up)
        + prelu
    )


def detect(state: StateDict) -> dict[str, Any] | None:
    """The configuration of a BasicSR-layout SRVGGNetCompact state dict (PReLU only)."""
    indices = sorted(
        {int(m.group(1)) for k in state if (m := re.fullmatch(r"body\.(\d+)\.\w+", k))}
    )
    if not indices or indices[0] != 0:
        return None
    conv_ids = [i for i in indices if len(state.get(f"body.{i}.weight", torch.empty(0)).shape) == 4]
    if len(conv_ids) < 2 or conv_ids != list(range(0, 2 * len(conv_ids), 2)):
        return None
    first = state["body.0.weight"].shape
    last = state[f"body.{conv_ids[-1]}.weight"].shape
    num_feat, in_ch = int(first[0]), int(first[1])
    prelu = [i for i in indices if i % 2 == 1]
    if not prelu:
        # relu and leakyrelu leave no weights; nothing in the file tells them apart.
        return None
    out_total = int(last[0])
    # out = out_ch * upscale^2 with out_ch == in_ch, as Real-ESRGAN trains them.
    if out_total % in_ch:
        return None
    upscale = math.isqrt(out_total // in_ch)
    if upscale * upscale * in_ch != out_total:
        return None
    return {
        "num_in_ch": in_ch,
        "num_out_ch": in_ch,
        "num_feat": num_feat,
        "num_conv": len(conv_ids) - 2,
        "upscale": upscale,
        "act_type": "prelu",
    }


def candidates(state: StateDict) -> list[dict[str, Any]]:
    """SRVGGNetCompact shapes a partial state dict could come from."""
    indices = {int(m.group(1)) for k in state if (m := re.fullmatch(r"body\.(\d+)\.\w+", k))}
    if (
        not indices
        or len(indices) < 3
        or any(not re.fullmatch(r"body\.\d+\.\w+", k) for k in state)
    ):
        return []
    top = max(indices)
    last = top if top % 2 == 0 else top + 1  # the last conv has no activation after it
    feat = first_dim(state, [f"body.{i}.weight" for i in range(0, last, 2)])
    feat = feat or first_dim(state, [f"body.{i}.weight" for i in range(1, last, 2)])
    in_ch = first_dim(state, ["body.0.weight"], 1) or 3
    out_total = first_dim(state, [f"body.{last}.weight", f"body.{last}.bias"])
    if feat is None:
        return []
    if out_total is not None:
        root = math.isqrt(out_total // in_ch)
        ups = [root] if root * root * in_ch == out_total else []
    else:
        ups = [4, 2, 3, 1]
    return [
        {
            "num_in_ch": in_ch,
            "num_out_ch": in_ch,
            "num_feat": feat,
            "num_conv": last // 2 - 1,
            "upscale": u,
            "act_type": "prelu",
        }
        for u in ups
        if last // 2 - 1 >= 0
    ]


def ncnn_graph(b: GraphBuilder, x: str, cfg: Config) -> str:
    """The graph SRVGGNetCompact exports to ncnn (PReLU layers or fused ReLU/LeakyReLU)."""
    nin, nout = int(cfg.get("num_in_ch", 3)), int(cfg.get("num_out_ch", 3))
    nf, nc = int(cfg.get("num_feat", 64)), int(cfg.get("num_conv", 16))
    up, act_type = int(cfg.get("upscale", 4)), str(cfg.get("act_type", "prelu"))
    fused = {"relu": 0.0, "leakyrelu": 0.1}

    def act(h: str, idx: int) -> str:
        return b.prelu(h, f"body.{idx}", nf) if act_type == "prelu" else h

    if act_type != "prelu" and act_type not in fused:
        raise WeightsError(f"unknown SRVGGNetCompact act_type {act_type!r}")
    a = fused.get(act_type)
    h = act(b.conv(x, "body.0", nin, nf, a), 1)
    for i in range(nc):
        h = act(b.conv(h, f"body.{2 + 2 * i}", nf, nf, a), 3 + 2 * i)
    h = b.conv(h, f"body.{2 + 2 * nc}", nf, nout * up * up)
    h = b.pixelshuffle(h, up)
    if nin != nout:
        return h
    base = b.interp(x, "nearest", float(up))
    return b.add([(h, 1.0), (base, 1.0)])


ARCH = Arch(
    name="SRVGGNetCompact",
    network=SRVGGNetCompact,
    scale_key="upscale",
    detect=detect,
    candidates=candidates,
    count_params=count_params,
    count_macs=count_macs,
    ncnn_graph=ncnn_graph,
)
