"""Training data for the temporal network: real HR clips, degraded on the fly.

Each sample is a run of T consecutive HR frames from one clip, cropped at a random spot,
flipped, transposed and maybe played backwards (all before degradation, so no flow needs
fixing), then degraded as a clip by `vsr.degrade.degrade_frames`. The damage is drawn per
sample: a share of the samples get a clean antialiased bicubic downscale (with a light H.264
round trip half of the time), the rest blind damage (`vsr.degrade.draw_blind`). Still photos
in the list become clips of a camera drifting over them (`pan_clip`). Flow is computed on the
degraded LR frames with DIS, exactly as at inference.

Every draw comes from a generator seeded by (seed, step), so a resumed run sees the same
batches as an uninterrupted one.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vsr.degrade import Degradation, degrade_frames, draw_blind
from vsr.errors import InputError, UsageError
from vsr.media.frames import iter_video_rgb
from vsr.temporal.flow import DISFlow, FlowEstimator


@dataclass(frozen=True)
class ClipFrames:
    """The decoded HR frames of one clip: (T, H, W, 3) uint8, kept in memory."""

    path: Path
    frames: np.ndarray

    @property
    def count(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])


# Stills a training list may name: each becomes a clip of a camera moving over the photo.
STILL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
PAN_FRAMES = 96


def pan_clip(path: str | Path, *, frames: int = PAN_FRAMES, seed: int = 0) -> ClipFrames:
    """A clip made from a still photo: a camera path drifting over it at sub-pixel speeds with a
    slow zoom and a slight roll, so the network sees real photographic texture (skin, fur,
    foliage, gravel) move the way live action moves. The window shows the photo at 2/3 scale:
    each frame is rendered at 4/3 scale and halved with a box filter, so the target stays sharp
    and its sharpness does not pulse with the sub-pixel phase of the camera."""
    path = Path(path)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError("could not read this image", path=path)
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    h, w = rgb.shape[:2]
    out_w, out_h = (w // 2) // 2 * 2, (h // 2) // 2 * 2  # 3/4 of the photo, shown at 2/3 scale
    rng = np.random.default_rng([seed, zlib.crc32(path.name.encode())])
    # Velocity in source pixels per frame (0.3-3 px), a zoom rate and a roll rate, each eased
    # in and out over the clip so the motion has acceleration, like a hand-held camera.
    speed = rng.uniform(0.3, 3.0) * np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
    zoom_rate, roll_rate = rng.uniform(-0.002, 0.002), rng.uniform(-0.001, 0.001)
    out: list[np.ndarray] = []
    for t in range(frames):
        ease = t - (frames - 1) / 2 + 2.0 * np.sin(2 * np.pi * t / frames)
        cx, cy = w / 2 + speed[0] * ease, h / 2 + speed[1] * ease
        zoom, roll = 1.0 + zoom_rate * ease, roll_rate * ease
        # Rendered frame -> photo: 3/4 photo pixel per rendered pixel, rolled, centred on the path.
        c, s_ = np.cos(roll) * zoom * 0.75, np.sin(roll) * zoom * 0.75
        matrix = np.array([[c, -s_, 0.0], [s_, c, 0.0]])
        matrix[:, 2] = np.array([cx, cy]) - matrix[:, :2] @ np.array([out_w, out_h])
        big = cv2.warpAffine(
            rgb,
            matrix,
            (2 * out_w, 2 * out_h),
            flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT_101,
        )
        out.append(cv2.resize(big, (out_w, out_h), interpolation=cv2.INTER_AREA))
    return ClipFrames(path=path, frames=np.stack(out))


def load_clip(path: str | Path, *, max_frames: int | None = None) -> ClipFrames:
    """Decode up to ``max_frames`` frames of a video as uint8 RGB (the pipeline's colour path);
    a still photo becomes a `pan_clip`."""
    path = Path(path)
    if path.suffix.lower() in STILL_SUFFIXES:
        return pan_clip(path, frames=min(PAN_FRAMES, max_frames or PAN_FRAMES))
    frames: list[np.ndarray] = []
    for rgb in iter_video_rgb(path):
        frames.append(rgb)
        if max_frames is not None and len(frames) >= max_frames:
            break
    return ClipFrames(path=path, frames=np.stack(frames))


@dataclass
class Batch:
    """One training batch; LR tensors are on the CPU in float32."""

    hr: torch.Tensor  # (B, T, 3, P*s, P*s)
    lr: torch.Tensor  # (B, T, 3, P, P)
    flows_to_previous: torch.Tensor  # (B, T-1, 2, P, P): frame i+1 -> i
    flows_to_next: torch.Tensor  # (B, T-1, 2, P, P): frame i -> i+1


def sequence_flows(lr: torch.Tensor, estimator: FlowEstimator) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, 3, H, W) LR frames -> flows (T-1, 2, H, W) to the previous and to the next frame."""
    if lr.shape[0] < 2:
        empty = lr.new_zeros((0, 2, *lr.shape[2:]))
        return empty, empty
    to_previous = estimator.estimate(lr[1:], lr[:-1])
    to_next = estimator.estimate(lr[:-1], lr[1:])
    return to_previous, to_next


# The clean share's light compression: H.264 at a CRF drawn from this range (inclusive), on
# this share of the clean samples.
CLEAN_H264_CRF = (16, 28)
CLEAN_H264_SHARE = 0.5


def draw_degradation(rng: np.random.Generator, *, scale: int, clean_fraction: float) -> Degradation:
    """Clean antialiased bicubic (the literature's BI, what `vsr eval --degrade` makes) for a
    share, light H.264 half of those times; blind damage (`vsr.degrade.draw_blind`: other
    kernels, aliasing, blur + subsampling, noise, ringing, fields, H.264/MPEG-2) otherwise."""
    if rng.random() < clean_fraction:
        low, high = CLEAN_H264_CRF
        crf = int(rng.integers(low, high + 1)) if rng.random() < CLEAN_H264_SHARE else None
        return Degradation(h264_crf=crf)
    return draw_blind(rng, scale=scale)


class SequenceSampler:
    """Draws batches of degraded sequences from HR clips (see the module docstring)."""

    def __init__(
        self,
        clips: Sequence[ClipFrames],
        *,
        scale: int,
        seq_len: int,
        patch: int,
        batch: int,
        seed: int,
        clean_fraction: float = 0.5,
        flow: FlowEstimator | None = None,
        max_stride: int = 2,
        downscale_prob: float = 0.0,
    ) -> None:
        if not clips:
            raise UsageError("expected at least one training clip, got none")
        if seq_len < 2:
            raise UsageError(f"expected a sequence length of at least 2 frames, got {seq_len}")
        if patch < 8:
            raise UsageError(f"expected an LR patch of at least 8 pixels, got {patch}")
        if batch < 1:
            raise UsageError(f"expected a batch of at least 1, got {batch}")
        if not 0.0 <= downscale_prob <= 1.0:
            raise UsageError(f"expected a downscale probability in [0, 1], got {downscale_prob}")
        if not 0.0 <= clean_fraction <= 1.0:
            raise UsageError(f"expected a clean fraction in [0, 1], got {clean_fraction}")
        hr_patch = patch * scale
        for clip in clips:
            if clip.count < seq_len or min(clip.height, clip.width) < hr_patch:
                raise InputError(
                    f"expected a training clip of at least {seq_len} frames of "
                    f"{hr_patch}x{hr_patch}, got {clip.count} frames of {clip.width}x{clip.height}",
                    path=clip.path,
                    hint="use a longer or larger clip, or lower --seq-len / --patch",
                )
        self.clips = list(clips)
        self.scale = scale
        self.seq_len = seq_len
        self.patch = patch
        self.batch = batch
        self.seed = seed
        self.clean_fraction = clean_fraction
        self.flow = flow or DISFlow("medium")
        self.max_stride = max(1, max_stride)
        self.downscale_prob = downscale_prob
        # Clips are drawn in proportion to their pixel count x frames, capped so one long
        # clip cannot crowd out the others entirely.
        sizes = np.array([min(c.count, 300) * c.width * c.height for c in clips], np.float64)
        self._weights = sizes / sizes.sum()

    def sample(self, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, step])
        hrs, lrs, prevs, nexts = [], [], [], []
        for _ in range(self.batch):
            hr = self._draw_hr(rng)
            degradation = draw_degradation(
                rng, scale=self.scale, clean_fraction=self.clean_fraction
            )
            lr = degrade_frames(hr, scale=self.scale, rng=rng, degradation=degradation)
            to_previous, to_next = sequence_flows(lr, self.flow)
            hrs.append(hr)
            lrs.append(lr)
            prevs.append(to_previous)
            nexts.append(to_next)
        return Batch(
            hr=torch.stack(hrs),
            lr=torch.stack(lrs),
            flows_to_previous=torch.stack(prevs),
            flows_to_next=torch.stack(nexts),
        )

    def _draw_hr(self, rng: np.random.Generator) -> torch.Tensor:
        clip = self.clips[int(rng.choice(len(self.clips), p=self._weights))]
        # A frame stride of 2 now and then doubles the motion the network learns to align.
        stride = int(rng.integers(1, self.max_stride + 1))
        while stride > 1 and (self.seq_len - 1) * stride + 1 > clip.count:
            stride -= 1
        span = (self.seq_len - 1) * stride + 1
        start = int(rng.integers(0, clip.count - span + 1))
        size = self.patch * self.scale
        # Video is often softer than its pixel grid (camera optics, upscaled masters, codec
        # smoothing): a half-size antialiased copy has the detail an SR network must learn to
        # draw, so some samples take their HR from a region twice as large, halved.
        factor = 2 if rng.random() < self.downscale_prob else 1
        if min(clip.height, clip.width) < size * factor:
            factor = 1
        region = size * factor
        y = int(rng.integers(0, clip.height - region + 1))
        x = int(rng.integers(0, clip.width - region + 1))
        frames = clip.frames[start : start + span : stride, y : y + region, x : x + region]
        hr = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
        if factor > 1:
            hr = F.interpolate(
                hr, size=(size, size), mode="bicubic", align_corners=False, antialias=True
            )
            # 8-bit like every decoded frame, so the targets have the same quantisation.
            hr = (hr.clamp(0, 1) * 255).round() / 255
        if rng.random() < 0.5:
            hr = hr.flip(-1)
        if rng.random() < 0.5:
            hr = hr.flip(-2)
        if rng.random() < 0.5:
            hr = hr.transpose(-1, -2)
        if rng.random() < 0.5:
            hr = hr.flip(0)
        return hr.contiguous()


@dataclass(frozen=True)
class ValidationClip:
    """A held-out clip prepared once: HR frames and their clean LR (what `vsr eval` uses)."""

    path: Path
    hr: torch.Tensor  # (T, 3, H, W) float in [0, 1], mod-cropped to the scale
    lr: torch.Tensor  # (T, 3, H / s, W / s)


def validation_clip(clip: ClipFrames, *, scale: int, frames: int, seed: int = 0) -> ValidationClip:
    """The first ``frames`` frames, clean bicubic + H.264 CRF 18 (as `vsr eval --degrade`)."""
    hr = torch.from_numpy(clip.frames[:frames]).permute(0, 3, 1, 2).float() / 255.0
    h, w = (hr.shape[2] // scale) * scale, (hr.shape[3] // scale) * scale
    hr = hr[:, :, :h, :w].contiguous()
    lr = degrade_frames(hr, scale=scale, rng=seed, degradation=Degradation(h264_crf=18))
    return ValidationClip(path=clip.path, hr=hr, lr=lr)
