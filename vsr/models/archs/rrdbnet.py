"""RRDBNet, the ESRGAN / Real-ESRGAN generator, in the BasicSR state-dict key layout.

Keys: ``conv_first``, ``body.N.rdb{1,2,3}.conv{1..5}``, ``conv_body``, ``conv_up1``,
``conv_up2``, ``conv_hr``, ``conv_last``. The trunk always upsamples x4 with two nearest
x2 steps; for scale 2 and 1 the input is first pixel-unshuffled (x2 or x4 smaller, with
4x or 16x the channels) so the same trunk serves every scale, as BasicSR does.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from vsr.errors import WeightsError
from vsr.models.archs.arch import Arch, Config, StateDict, first_dim, shape_of
from vsr.models.archs.ncnn_pattern import GraphBuilder

# Real-ESRGAN scales each dense block's output and each RRDB's output by this before the
# residual add; the ncnn graphs carry it as an Eltwise coefficient.
RESIDUAL_SCALE = 0.2
LEAKY_SLOPE = 0.2


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the block input and every earlier conv's output."""

    def __init__(self, *, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1 = F.leaky_relu(self.conv1(x), LEAKY_SLOPE)
        c2 = F.leaky_relu(self.conv2(torch.cat((x, c1), 1)), LEAKY_SLOPE)
        c3 = F.leaky_relu(self.conv3(torch.cat((x, c1, c2), 1)), LEAKY_SLOPE)
        c4 = F.leaky_relu(self.conv4(torch.cat((x, c1, c2, c3), 1)), LEAKY_SLOPE)
        c5 = self.conv5(torch.cat((x, c1, c2, c3, c4), 1))
        return c5 * RESIDUAL_SCALE + x


class RRDB(nn.Module):
    """Three dense blocks in a row, with a scaled residual around them."""

    def __init__(self, *, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * RESIDUAL_SCALE + x


class RRDBNet(nn.Module):
    """ESRGAN generator: conv, a trunk of RRDBs with a long skip, two nearest x2 upsamples."""

    def __init__(
        self,
        *,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        scale: int = 4,
    ) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"expected RRDBNet scale 1, 2 or 4, got {scale}")
        if num_block < 1 or num_feat < 1 or num_grow_ch < 1:
            raise ValueError(
                "expected positive num_block, num_feat and num_grow_ch, got "
                f"{num_block}, {num_feat}, {num_grow_ch}"
            )
        self.scale = scale
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        # Pixel-unshuffle turns a lower scale into the fixed x4 trunk's job.
        self.unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        first_in = num_in_ch * self.unshuffle * self.unshuffle
        self.conv_first = nn.Conv2d(first_in, num_feat, 3, 1, 1)
        self.body = nn.Sequential(
            *(RRDB(num_feat=num_feat, num_grow_ch=num_grow_ch) for _ in range(num_block))
        )
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (pixel-unshuffle factor)."""
        return self.unshuffle

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_in_ch:
            raise ValueError(
                f"expected input shaped (N, {self.num_in_ch}, H, W), got {tuple(x.shape)}"
            )
        if self.unshuffle > 1:
            h, w = x.shape[-2:]
            if h % self.unshuffle or w % self.unshuffle:
                raise ValueError(
                    f"expected height and width divisible by {self.unshuffle} for an x{self.scale}"
                    f" RRDBNet, got {w}x{h}; pad the input first"
                )
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(
            self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), LEAKY_SLOPE
        )
        feat = F.leaky_relu(
            self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), LEAKY_SLOPE
        )
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), LEAKY_SLOPE))


def rrdbnet_macs_per_pixel(
    *,
    num_in_ch: int = 3,
    num_out_ch: int = 3,
    num_feat: int = 64,
    num_block: int = 23,
    num_grow_ch: int = 32,
    scale: int = 4,
) -> float:
    """Multiply-adds per *input* pixel of one forward pass (convs only; they dominate)."""
    k = 9  # 3x3 kernels
    u = {4: 1, 2: 2, 1: 4}[scale]
    g = num_grow_ch
    rdb = sum((num_feat + i * g) * g for i in range(4)) + (num_feat + 4 * g) * num_feat
    # Everything before the upsample runs on (H/u, W/u) pixels.
    low = (num_in_ch * u * u * num_feat + num_block * 3 * rdb + num_feat * num_feat) * k / (u * u)
    # conv_up1 at 2x in each dimension (per input pixel: 4/u^2), conv_up2, conv_hr, conv_last at 4x.
    up1 = num_feat * num_feat * k * 4 / (u * u)
    hi = (2 * num_feat * num_feat + num_feat * num_out_ch) * k * 16 / (u * u)
    return float(low + up1 + hi)


def count_macs(cfg: Config) -> float:
    return rrdbnet_macs_per_pixel(**{k: int(v) for k, v in cfg.items()})


def count_params(cfg: Config) -> int:
    """Parameters of a configuration, without building it (the zoo lists 23-block models)."""
    nin, nout = int(cfg.get("num_in_ch", 3)), int(cfg.get("num_out_ch", 3))
    nf, g, nb = int(cfg.get("num_feat", 64)), int(cfg.get("num_grow_ch", 32)), int(cfg["num_block"])
    u = {4: 1, 2: 2, 1: 4}[int(cfg.get("scale", 4))]

    def conv(i: int, o: int) -> int:
        return i * o * 9 + o

    rdb = sum(conv(nf + i * g, g) for i in range(4)) + conv(nf + 4 * g, nf)
    return conv(nin * u * u, nf) + nb * 3 * rdb + 4 * conv(nf, nf) + conv(nf, nout)


def detect(state: StateDict) -> dict[str, int] | None:
    """The configuration of a BasicSR-layout RRDBNet state dict, read from tensor shapes."""
    first = shape_of(state, "conv_first.weight")
    last = shape_of(state, "conv_last.weight")
    grow = shape_of(state, "body.0.rdb1.conv1.weight")
    if first is None or last is None or grow is None or len(first) != 4 or len(last) != 4:
        return None
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.rdb1\.", k))}
    num_block = max(blocks) + 1
    num_feat, first_in = first[0], first[1]
    out_ch = last[0]
    # The trunk always upsamples x4; lower scales pixel-unshuffle the input first, so the
    # first conv sees in_ch * u^2 channels (u = 1, 2, 4 for x4, x2, x1). BasicSR assumes
    # in_ch == out_ch, and so do we.
    if first_in % out_ch:
        return None
    ratio = first_in // out_ch
    unshuffle = math.isqrt(ratio)
    if unshuffle * unshuffle != ratio or unshuffle not in (1, 2, 4):
        return None
    scale = {1: 4, 2: 2, 4: 1}[unshuffle]
    return {
        "num_in_ch": out_ch,
        "num_out_ch": out_ch,
        "num_feat": num_feat,
        "num_block": num_block,
        "num_grow_ch": grow[0],
        "scale": scale,
    }


def candidates(state: StateDict) -> list[dict[str, int]]:
    """RRDBNet shapes a partial state dict could come from (read from what is there)."""
    tops = ("conv_first.", "conv_body.", "conv_up1.", "conv_up2.", "conv_hr.", "conv_last.")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.rdb[123]\.", k))}
    if not blocks or not any(k.startswith(tops) for k in state):
        return []
    feat = first_dim(state, ["conv_body.weight", "conv_up1.weight", "conv_hr.weight"])
    feat = feat or first_dim(state, ["conv_first.weight", "conv_last.weight"], 0)
    grow = first_dim(
        state, [f"body.{b}.rdb{r}.conv1.weight" for b in sorted(blocks) for r in (1, 2, 3)]
    )
    out_ch = first_dim(state, ["conv_last.weight"]) or 3
    first_in = first_dim(state, ["conv_first.weight"], 1)
    if feat is None or grow is None:
        return []
    scales = [4, 2, 1]
    if first_in is not None:
        ratio = first_in // out_ch
        scales = [s for s, u in ((4, 1), (2, 2), (1, 4)) if u * u == ratio] or scales
    kwargs = {"num_in_ch": out_ch, "num_out_ch": out_ch, "num_feat": feat}
    kwargs |= {"num_block": max(blocks) + 1, "num_grow_ch": grow}
    return [{**kwargs, "scale": s} for s in scales]


def ncnn_graph(b: GraphBuilder, x: str, cfg: Config) -> str:
    """The graph an x4 RRDBNet exports to ncnn (dense blocks as Concat + fused LeakyReLU)."""
    nin, nout = int(cfg.get("num_in_ch", 3)), int(cfg.get("num_out_ch", 3))
    nf, g = int(cfg.get("num_feat", 64)), int(cfg.get("num_grow_ch", 32))
    nb, scale = int(cfg.get("num_block", 23)), int(cfg.get("scale", 4))
    if scale != 4:
        # Lower scales pixel-unshuffle the input; no ncnn layer for that is modelled here.
        raise WeightsError(f"converting an x{scale} RRDBNet from ncnn is not supported (only x4)")
    s, one = RESIDUAL_SCALE, 1.0
    feat = b.conv(x, "conv_first", nin, nf)
    h = feat
    for i in range(nb):
        rrdb_in = h
        for r in (1, 2, 3):
            x0 = h
            outs: list[str] = [x0]
            for c in (1, 2, 3, 4):
                src = outs[0] if c == 1 else b.concat(outs)
                outs.append(
                    b.conv(src, f"body.{i}.rdb{r}.conv{c}", nf + (c - 1) * g, g, LEAKY_SLOPE)
                )
            c5 = b.conv(b.concat(outs), f"body.{i}.rdb{r}.conv5", nf + 4 * g, nf)
            h = b.add([(c5, s), (x0, one)])
        h = b.add([(h, s), (rrdb_in, one)])
    trunk = b.conv(h, "conv_body", nf, nf)
    h = b.add([(feat, one), (trunk, one)])
    h = b.conv(b.interp(h, "nearest", 2.0), "conv_up1", nf, nf, LEAKY_SLOPE)
    h = b.conv(b.interp(h, "nearest", 2.0), "conv_up2", nf, nf, LEAKY_SLOPE)
    h = b.conv(h, "conv_hr", nf, nf, LEAKY_SLOPE)
    return b.conv(h, "conv_last", nf, nout)


ARCH = Arch(
    name="RRDBNet",
    network=RRDBNet,
    scale_key="scale",
    detect=detect,
    candidates=candidates,
    count_params=count_params,
    count_macs=count_macs,
    ncnn_graph=ncnn_graph,
)
