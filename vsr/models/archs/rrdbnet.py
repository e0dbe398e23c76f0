"""RRDBNet, the ESRGAN / Real-ESRGAN generator, in the BasicSR state-dict key layout.

Keys: ``conv_first``, ``body.N.rdb{1,2,3}.conv{1..5}``, ``conv_body``, ``conv_up1``,
``conv_up2``, ``conv_hr``, ``conv_last``. The trunk always upsamples x4 with two nearest
x2 steps; for scale 2 and 1 the input is first pixel-unshuffled (x2 or x4 smaller, with
4x or 16x the channels) so the same trunk serves every scale, as BasicSR does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

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
