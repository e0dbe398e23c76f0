"""A small recurrent video SR network of the BasicVSR family, trained by vsr itself.

Features are propagated through time at the LR resolution: the features of the neighbouring
frame are warped onto the current frame's grid by optical flow computed on the LR frames
(vsr.temporal.flow convention, ``flow = estimate(current, neighbour)``), concatenated with the
current LR frame and refined by residual blocks. Reconstruction is a pixel-shuffle upsampler
whose output is added to a bicubic upscale of the LR frame, so the network learns a residual.

Two shapes share the building blocks:

* **unidirectional** (``bidirectional=False``): one forward branch; the state carried from frame
  to frame is the previous frame's features, so it streams with no look-ahead (`step`).
* **bidirectional**: a backward branch runs from the last frame to the first, then a forward
  branch that also sees the backward features; it needs the whole window at once (`forward`),
  and the processor runs it over overlapping chunks.

Flow is an input, not part of the network: on the CPU OpenCV's DIS is cheap on LR frames and
needs no training, which leaves the whole training budget to the SR part.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vsr.errors import UsageError, WeightsError
from vsr.temporal.warp import warp

ARCHITECTURE = "VSRTemporalNet"
SCALES = (2, 4)


@dataclass(frozen=True)
class TemporalNetConfig:
    """Shape of a `TemporalNet`; stored beside its weights so a checkpoint rebuilds itself."""

    scale: int = 2
    channels: int = 32
    blocks: int = 6
    bidirectional: bool = False
    # Channels of the last convolution, which runs at the HR resolution after pixel shuffle.
    upsample_channels: int = 16

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise UsageError(
                f"expected a scale of {' or '.join(map(str, SCALES))}, got {self.scale}"
            )
        if not 4 <= self.channels <= 256:
            raise UsageError(f"expected 4 to 256 channels, got {self.channels}")
        if not 1 <= self.blocks <= 64:
            raise UsageError(f"expected 1 to 64 residual blocks, got {self.blocks}")
        if not 1 <= self.upsample_channels <= 256:
            raise UsageError(f"expected 1 to 256 upsample channels, got {self.upsample_channels}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemporalNetConfig:
        known = {"scale", "channels", "blocks", "bidirectional", "upsample_channels"}
        unknown = set(data) - known
        if unknown:
            raise WeightsError(
                f"expected temporal network config keys among {sorted(known)}, got unknown "
                f"{sorted(unknown)}"
            )
        try:
            return cls(
                scale=int(data.get("scale", 2)),
                channels=int(data.get("channels", 32)),
                blocks=int(data.get("blocks", 6)),
                bidirectional=bool(data.get("bidirectional", False)),
                upsample_channels=int(data.get("upsample_channels", 16)),
            )
        except (TypeError, ValueError) as exc:
            raise WeightsError(f"expected integer temporal network config values ({exc})") from exc


class ResidualBlock(nn.Module):
    """conv-lrelu-conv plus identity, no normalisation (as EDSR/BasicVSR)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        # A small residual branch at start keeps the deep stack near identity early in
        # training, which is what lets a few thousand steps get anywhere.
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, a=0.1)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.1, inplace=True))


class Propagation(nn.Module):
    """One direction of feature propagation: (LR frame, warped neighbour features[, extra])."""

    def __init__(self, in_channels: int, channels: int, blocks: int) -> None:
        super().__init__()
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.body = nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(F.leaky_relu(self.head(x), 0.1, inplace=True))


class Upsampler(nn.Module):
    """Features at LR -> RGB residual at scale x LR by pixel shuffle, one x2 stage at a time."""

    def __init__(self, channels: int, scale: int, out_channels: int) -> None:
        super().__init__()
        stages = int(math.log2(scale))
        layers: list[nn.Module] = []
        width = channels
        for i in range(stages):
            # The last stage shuffles down to `out_channels` so the HR-resolution conv is cheap.
            nxt = out_channels if i == stages - 1 else channels
            layers += [nn.Conv2d(width, nxt * 4, 3, padding=1), nn.PixelShuffle(2)]
            layers.append(nn.LeakyReLU(0.1, inplace=True))
            width = nxt
        self.body = nn.Sequential(*layers)
        self.tail = nn.Conv2d(width, 3, 3, padding=1)
        # Start from the bicubic skip alone: the residual begins at zero.
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.body(x))


def _warp_features(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    # grid_sample in fp32 even under bf16 autocast: sub-pixel positions need the mantissa.
    return warp(features.float(), flow.float(), padding="zeros").to(features.dtype)


class TemporalNet(nn.Module):
    """BasicVSR-like recurrent SR; see the module docstring. Keyword-only constructor."""

    def __init__(self, *, config: TemporalNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or TemporalNetConfig()
        c = self.config.channels
        self.forward_branch = Propagation(
            3 + c + (c if self.config.bidirectional else 0), c, self.config.blocks
        )
        self.backward_branch: Propagation | None = None
        if self.config.bidirectional:
            self.backward_branch = Propagation(3 + c, c, self.config.blocks)
        self.upsampler = Upsampler(c, self.config.scale, self.config.upsample_channels)

    @property
    def scale(self) -> int:
        return self.config.scale

    # ------------------------------------------------------------------ checks

    def _check_lr(self, lr: torch.Tensor) -> None:
        if lr.dim() != 5 or lr.shape[2] != 3:
            raise UsageError(f"expected LR frames shaped (N, T, 3, H, W), got {tuple(lr.shape)}")
        if lr.shape[1] < 1:
            raise UsageError("expected at least one frame in the window, got 0")

    def _check_flows(self, lr: torch.Tensor, flows: torch.Tensor, what: str) -> None:
        n, t, _, h, w = lr.shape
        expected = (n, max(0, t - 1), 2, h, w)
        if tuple(flows.shape) != expected:
            raise UsageError(f"expected {what} flows shaped {expected}, got {tuple(flows.shape)}")

    # ------------------------------------------------------------------ pieces

    def reconstruct(self, features: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) features and (N, 3, H, W) LR -> (N, 3, sH, sW) output (not clamped)."""
        # Bicubic (a = -0.75, OpenCV's kernel): the network starts at the bicubic baseline.
        base = F.interpolate(
            lr.float(), scale_factor=self.scale, mode="bicubic", align_corners=False
        )
        return base + self.upsampler(features).float()

    def zero_state(self, lr: torch.Tensor) -> torch.Tensor:
        """Features for "no previous frame": (N, C, H, W) zeros like the LR frame's grid."""
        n, _, h, w = lr.shape
        return lr.new_zeros((n, self.config.channels, h, w))

    def step(
        self, lr: torch.Tensor, flow_to_previous: torch.Tensor | None, state: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One streaming step of the unidirectional network.

        ``lr``: (N, 3, H, W); ``flow_to_previous``: (N, 2, H, W), ``estimate(lr, previous_lr)``;
        ``state``: the previous step's features, or None after a reset. Returns
        (output (N, 3, sH, sW), new state).
        """
        if self.config.bidirectional:
            raise UsageError(
                "expected a unidirectional network for step(), got a bidirectional one"
            )
        if lr.dim() != 4 or lr.shape[1] != 3:
            raise UsageError(f"expected an LR frame shaped (N, 3, H, W), got {tuple(lr.shape)}")
        if state is None or flow_to_previous is None:
            warped = self.zero_state(lr)
        else:
            n, _, h, w = lr.shape
            if tuple(state.shape) != (n, self.config.channels, h, w):
                raise UsageError(
                    f"expected a state shaped {(n, self.config.channels, h, w)}, got "
                    f"{tuple(state.shape)}"
                )
            if tuple(flow_to_previous.shape) != (n, 2, h, w):
                raise UsageError(
                    f"expected flow shaped {(n, 2, h, w)}, got {tuple(flow_to_previous.shape)}"
                )
            warped = _warp_features(state, flow_to_previous)
        features = self.forward_branch(torch.cat((lr, warped.to(lr.dtype)), dim=1))
        return self.reconstruct(features, lr), features

    def forward(
        self,
        lr: torch.Tensor,
        flows_to_previous: torch.Tensor,
        flows_to_next: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """A whole window: (N, T, 3, H, W) LR -> (N, T, 3, sH, sW).

        ``flows_to_previous[:, i]`` = ``estimate(lr[:, i + 1], lr[:, i])`` (frame i+1 -> i);
        ``flows_to_next[:, i]`` = ``estimate(lr[:, i], lr[:, i + 1])``, needed only by the
        bidirectional network. Both (N, T - 1, 2, H, W).
        """
        self._check_lr(lr)
        self._check_flows(lr, flows_to_previous, "to-previous")
        n, t = lr.shape[:2]
        backward: list[torch.Tensor] = []
        if self.backward_branch is not None:
            if flows_to_next is None:
                raise UsageError("expected flows_to_next for the bidirectional network, got None")
            self._check_flows(lr, flows_to_next, "to-next")
            feat = self.zero_state(lr[:, 0])
            for i in range(t - 1, -1, -1):
                if i == t - 1:
                    warped = self.zero_state(lr[:, i])
                else:
                    warped = _warp_features(feat, flows_to_next[:, i])
                feat = self.backward_branch(torch.cat((lr[:, i], warped.to(lr.dtype)), dim=1))
                backward.append(feat)
            backward.reverse()
        outputs: list[torch.Tensor] = []
        feat = self.zero_state(lr[:, 0])
        for i in range(t):
            frame = lr[:, i]
            warped = (
                self.zero_state(frame)
                if i == 0
                else _warp_features(feat, flows_to_previous[:, i - 1])
            )
            parts = [frame, warped.to(frame.dtype)]
            if backward:
                parts.append(backward[i].to(frame.dtype))
            feat = self.forward_branch(torch.cat(parts, dim=1))
            outputs.append(self.reconstruct(feat, frame))
        return torch.stack(outputs, dim=1).view(n, t, 3, *outputs[0].shape[-2:])


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def macs_per_pixel(config: TemporalNetConfig) -> float:
    """Multiply-adds per LR input pixel (convolutions only), for the benchmark's FLOP figure."""
    c, s, u = config.channels, config.scale, config.upsample_channels
    block = 2 * 9 * c * c
    forward_in = 3 + c + (c if config.bidirectional else 0)
    total = 9 * forward_in * c + config.blocks * block
    if config.bidirectional:
        total += 9 * (3 + c) * c + config.blocks * block
    stages = int(math.log2(s))
    area = 1
    width = c
    for i in range(stages):
        nxt = u if i == stages - 1 else c
        total += 9 * width * nxt * 4 * area
        area *= 4
        width = nxt
    total += 9 * width * 3 * area
    return float(total)
