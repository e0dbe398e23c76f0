"""Synthetic motion with known ground truth, shared by the flow and stabilize tests."""

from __future__ import annotations

import numpy as np
import torch

# Textures are sums of random sinusoids evaluated analytically, so a sub-pixel translation is
# exact (no resampling in the ground truth).


def texture(
    height: int,
    width: int,
    dx: float = 0.0,
    dy: float = 0.0,
    *,
    seed: int = 0,
    components: int = 48,
    max_freq: float = 0.6,
) -> torch.Tensor:
    """(1, 3, H, W) colour texture in [0, 1], translated by (dx, dy): out(x) = tex(x - d)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    x, y = x - dx, y - dy
    out = np.zeros((3, height, width))
    for _ in range(components):
        freq = rng.uniform(0.05, max_freq)
        theta = rng.uniform(0, np.pi)
        phase = rng.uniform(0, 2 * np.pi)
        amp = rng.uniform(0.2, 1.0) * 0.5 / components**0.5
        colour = rng.uniform(0.3, 1.0, 3)
        wave = np.sin(freq * (np.cos(theta) * x + np.sin(theta) * y) + phase)
        out += amp * colour[:, None, None] * wave
    return torch.from_numpy(np.clip(0.5 + out, 0, 1)).float().unsqueeze(0)


def moving_square(
    frames: int,
    height: int,
    width: int,
    *,
    speed: float = 3.0,
    pan: float = 0.5,
    start: int = 4,
    seed: int = 1,
) -> tuple[torch.Tensor, list[int]]:
    """A panning background with a textured square moving right; also its left edges."""
    out, lefts = [], []
    for t in range(frames):
        bg = texture(height, width, pan * t, 0.4 * pan * t, seed=seed)
        x0, y0, size = round(start + speed * t), height // 4, height // 2
        fg = texture(height, width, x0, 0, seed=seed + 10)
        bg[..., y0 : y0 + size, x0 : x0 + size] = fg[..., y0 : y0 + size, x0 : x0 + size]
        out.append(bg)
        lefts.append(x0)
    return torch.cat(out), lefts
