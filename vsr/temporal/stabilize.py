"""`--temporal stabilize`: temporal consistency for any frame-wise model.

A frame-wise GAN model invents its textures anew on every frame, so walls shimmer and grass
crawls. This wrapper blends each upscaled frame with the previous *output*, warped onto it by
optical flow computed on the low-resolution inputs, wherever that flow can be trusted:

    out_t = up_t + w * (clamp(warp(out_{t-1}, flow_t->t-1)) - up_t)

``w`` is the strength knob times a per-pixel reliability: zero where forward-backward
consistency says a pixel was hidden or off-frame in the previous frame (new content comes
through untouched) and falling off with the warp error of the LR frames (where the flow is
wrong, or lighting changed). The warped history is clamped to the local range of the current
output (the "neighbourhood clamp" of temporal anti-aliasing), so a wrong flow vector cannot
paint a colour that is not in the current frame there: this is what stops ghost trails.

Because ``out_{t-1}`` is itself stabilised, this is a recursive (exponential) filter: static
texture converges instead of jittering, with one frame of state and no look-ahead. State is
dropped at scene cuts and on `reset`.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque

import torch
import torch.nn.functional as F

from vsr.errors import UsageError
from vsr.models.base import FrameGeometry, ModelDescriptor, Processor
from vsr.temporal.flow import FlowEstimator, make_flow
from vsr.temporal.scenecut import SceneCutDetector
from vsr.temporal.warp import (
    OCCLUSION_ALPHA,
    OCCLUSION_BETA,
    occlusion_mask,
    resize_flow,
    warp,
)

DEFAULT_STRENGTH = 0.6
# Default strength by what the model is (matched against the descriptor's name and
# architecture, lower-cased, first match wins). GAN models hallucinate the most per frame and
# flicker the most, so they get the most history; interpolators only flicker where the LR does.
# Measured (issue 10) on held-out clips bikes, carphone and b.avi (HR 360 px wide, LR
# antialiased bicubic, 30 frames; also every 3rd frame for fast motion), flicker = mean |Y|
# difference to the previous output warped by the HR reference's DIS flow, over pixels where
# the reference warps within 10 levels. x4plus x4 at 0.85: flicker -39 to -70% and +0.35 to
# +0.96 dB, except fast bikes (every 3rd frame) -19% at +0.30 dB. animevideov3 at 0.6, x2 and
# x4: -27 to -44% on carphone and b.avi at -0.08 to +0.76 dB, but only -12 to -24% on bikes;
# at 0.7 it cut 3-7 points more but cost up to 0.17 dB on b.avi, where its output already
# flickers less than the reference. Higher strengths also lengthen the resume warm-up.
STRENGTH_BY_MODEL: tuple[tuple[str, float], ...] = (
    ("x4plus", 0.85),
    ("rrdb", 0.85),
    ("esrgan", 0.85),
    ("realsr", 0.85),
    ("realcugan", 0.7),
    ("animevideo", 0.6),
    ("srvgg", 0.6),
    ("compact", 0.6),
    ("span", 0.6),
    ("bicubic", 0.3),
    ("bilinear", 0.3),
    ("lanczos", 0.3),
)

# Warp error of the LR frames (mean abs over RGB, in [0, 1]) at which the reliability falls to
# 1/e. Compression noise on LR frames is ~0.005-0.01; a wrong flow vector on textured content
# gives 0.1 and more. 0.06 measured best of 0.04/0.06 on real clips (PSNR and flicker both).
DEFAULT_ERROR_SCALE = 0.06


def _local_range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel min and max over each 3x3 neighbourhood (edges replicated).

    Separable, from shifted views: on the CPU this is ~50x faster than max_pool2d with
    stride 1, which dominated the cost of a 1080p frame.
    """
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    left, mid, right = p[..., :, :-2], p[..., :, 1:-1], p[..., :, 2:]
    row_max = torch.maximum(torch.maximum(left, mid), right)
    row_min = torch.minimum(torch.minimum(left, mid), right)
    hi = torch.maximum(
        torch.maximum(row_max[..., :-2, :], row_max[..., 1:-1, :]), row_max[..., 2:, :]
    )
    lo = torch.minimum(
        torch.minimum(row_min[..., :-2, :], row_min[..., 1:-1, :]), row_min[..., 2:, :]
    )
    return lo, hi


def default_strength(descriptor: ModelDescriptor) -> float:
    """The stabilize strength vsr picks for a model when the user gives none."""
    keys = f"{descriptor.name} {descriptor.architecture}".lower()
    for needle, value in STRENGTH_BY_MODEL:
        if needle in keys:
            return value
    return DEFAULT_STRENGTH


# What is left of a difference in history after the warm-up: the filter is exponential with
# factor `strength` (at most; reliability only lowers it), so after n frames a cold start and an
# uninterrupted run differ by at most strength**n of what their histories differed by.
WARMUP_RESIDUE = 1 / 512


def stabilize_warmup(strength: float) -> int:
    """Frames a cold stabilizer needs before its output matches a warm one (see above)."""
    if strength <= 0.0:
        return 0
    return 1 + math.ceil(math.log(WARMUP_RESIDUE) / math.log(strength))


class StabilizeProcessor:
    """Wrap a frame-wise `Processor`; outputs the same frames, temporally stabilised."""

    def __init__(
        self,
        inner: Processor,
        *,
        strength: float | None = None,
        flow: str | FlowEstimator | None = None,
        scene_cuts: bool | SceneCutDetector = True,
        error_scale: float = DEFAULT_ERROR_SCALE,
        occlusion_alpha: float = OCCLUSION_ALPHA,
        occlusion_beta: float = OCCLUSION_BETA,
        clamp: bool = True,
        sampling: str = "bilinear",
    ) -> None:
        if inner.descriptor.temporal:
            raise UsageError(
                f"expected a frame-wise model for --temporal stabilize, got "
                f"{inner.descriptor.name!r}, which is temporal already",
                hint="drop --temporal stabilize for temporal models",
            )
        chosen = default_strength(inner.descriptor) if strength is None else float(strength)
        if not (0.0 <= chosen < 1.0) or math.isnan(chosen):
            raise UsageError(f"expected a stabilize strength in [0, 1), got {strength}")
        if error_scale <= 0:
            raise UsageError(f"expected an error scale above 0, got {error_scale}")
        if sampling not in ("bilinear", "bicubic"):
            raise UsageError(f"expected sampling 'bilinear' or 'bicubic', got {sampling!r}")
        self.inner = inner
        self.strength = chosen
        self.flow = make_flow(flow)
        if isinstance(scene_cuts, SceneCutDetector):
            self.cut_detector: SceneCutDetector | None = scene_cuts
        else:
            self.cut_detector = SceneCutDetector() if scene_cuts else None
        self.error_scale = error_scale
        self.occlusion_alpha = occlusion_alpha
        self.occlusion_beta = occlusion_beta
        self.clamp = clamp
        self.sampling = sampling
        self._descriptor = dataclasses.replace(
            inner.descriptor,
            name=f"{inner.descriptor.name}+stabilize",
            temporal=True,
            delay=0,
            warmup=inner.descriptor.warmup + stabilize_warmup(chosen),
        )
        # LR frames whose outputs the inner processor has not returned yet (order kept).
        self._pending: deque[torch.Tensor] = deque()
        self._prev_lr: torch.Tensor | None = None
        self._prev_out: torch.Tensor | None = None
        self.scene_cuts = 0  # counted since construction, for the run summary
        self.frames = 0
        self._weight_sum = 0.0

    # -- Processor protocol -------------------------------------------------------------
    @property
    def descriptor(self) -> ModelDescriptor:
        return self._descriptor

    @property
    def scale(self) -> float:
        return self.inner.scale

    @property
    def settings(self) -> dict[str, object]:
        settings = dict(self.inner.settings)
        settings.update(
            temporal="stabilize",
            stabilize_strength=self.strength,
            flow=self.flow.name,
            scene_cut_detection=self.cut_detector is not None,
        )
        return settings

    def init(self, geometry: FrameGeometry) -> None:
        self.inner.init(geometry)
        self._clear_state()

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise UsageError(f"expected frames shaped (N, 3, H, W), got {tuple(frames.shape)}")
        # Keep our own copy: the caller may reuse its input buffer for the next batch.
        for i in range(frames.shape[0]):
            self._pending.append(frames[i : i + 1].detach().float().clone())
        return self._stabilise(self.inner.process(frames))

    def flush(self) -> torch.Tensor:
        out = self._stabilise(self.inner.flush())
        self._pending.clear()
        return out

    def reset(self) -> None:
        self.inner.reset()
        self._clear_state()

    # -- internals ----------------------------------------------------------------------
    @property
    def mean_weight(self) -> float:
        """Average share of history in the output so far (0: nothing was stabilised)."""
        return self._weight_sum / self.frames if self.frames else 0.0

    def _clear_state(self) -> None:
        self._pending.clear()
        self._prev_lr = None
        self._prev_out = None
        if self.cut_detector is not None:
            self.cut_detector.reset()

    def _stabilise(self, upscaled: torch.Tensor) -> torch.Tensor:
        if upscaled.shape[0] == 0:
            return upscaled
        if upscaled.shape[0] > len(self._pending):
            raise UsageError(
                f"expected the inner model {self.inner.descriptor.name!r} to return at most one "
                f"frame per input, got {upscaled.shape[0]} for {len(self._pending)} pending"
            )
        outs = [
            self._step(self._pending.popleft(), upscaled[i : i + 1]) for i in range(len(upscaled))
        ]
        return torch.cat(outs).to(upscaled.dtype)

    def _step(self, lr: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        self.frames += 1
        up = up.float()
        prev_lr, prev_out = self._prev_lr, self._prev_out
        if (
            prev_lr is None
            or prev_out is None
            or prev_lr.shape != lr.shape
            or prev_out.shape != up.shape
            or self.strength == 0.0
        ):
            if self.cut_detector is not None:
                self.cut_detector.reset()
                self.cut_detector.update(lr)
            self._prev_lr, self._prev_out = lr, up
            return up
        to_prev = self.flow.estimate(lr, prev_lr)  # current -> previous, on the LR grid
        to_cur = self.flow.estimate(prev_lr, lr)
        if self.cut_detector is not None and self.cut_detector.update(
            lr, flow=to_prev, backward=to_cur
        ):
            self.scene_cuts += 1
            self._prev_lr, self._prev_out = lr, up
            return up
        unreliable = occlusion_mask(
            to_prev, to_cur, alpha=self.occlusion_alpha, beta=self.occlusion_beta
        ).float()
        err = (lr - warp(prev_lr, to_prev)).abs().mean(dim=1, keepdim=True)
        # Flow is least precise on motion boundaries: widen every unreliable spot by one LR
        # pixel so the edge of a moving object does not drag history with it.
        unreliable = F.max_pool2d(unreliable, 3, stride=1, padding=1)
        err = F.max_pool2d(err, 3, stride=1, padding=1)
        reliability = torch.exp(-((err / self.error_scale) ** 2)) * (1.0 - unreliable)
        height, width = up.shape[2:]
        weight = self.strength * F.interpolate(
            reliability, size=(height, width), mode="bilinear", align_corners=False
        )
        history = warp(
            prev_out,
            resize_flow(to_prev.to(up.device), (height, width)),
            mode="bicubic" if self.sampling == "bicubic" else "bilinear",
        )
        if self.clamp:
            lo, hi = _local_range(up)
            history = torch.maximum(torch.minimum(history, hi), lo)
        weight = weight.to(up.device)
        out = up + weight * (history - up)
        self._weight_sum += float(weight.mean())
        self._prev_lr, self._prev_out = lr, out
        return out
