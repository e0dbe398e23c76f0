"""SRVGGNetCompact (Real-ESRGAN "Compact", used by realesr-animevideov3) in BasicSR key layout.

``body`` is one flat list: conv, act, then ``num_conv`` times (conv, act), then the last conv
that makes ``num_out_ch * upscale**2`` channels. The output is pixel-shuffled and the
nearest-upsampled input is added, so the network only learns the residual.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

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
