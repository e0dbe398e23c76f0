"""Backward warping, flow resizing and occlusion masks.

Coordinates are pixel indices with integer values at pixel centres (pixel 0 covers [-0.5, 0.5]).
``warp(image, flow)`` samples ``image`` at ``x + flow(x)``: with ``flow = estimate(a, b)`` it
brings ``b`` onto ``a``'s grid (see vsr.temporal.flow for the convention).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from vsr.errors import UsageError

Padding = Literal["border", "zeros", "reflection"]
Sampling = Literal["bilinear", "bicubic", "nearest"]

# Forward-backward consistency thresholds from Sundaram et al. (ECCV 2010), as used by
# Ruder et al. for video style transfer: |f + b'|^2 > alpha (|f|^2 + |b'|^2) + beta.
# alpha lets the tolerance grow with the motion (flow is less precise on fast motion);
# beta is the slack in px^2 for sub-pixel noise on static areas.
OCCLUSION_ALPHA = 0.01
OCCLUSION_BETA = 0.5

_grid_cache: dict[tuple[int, int, str, torch.dtype], torch.Tensor] = {}


def _check_flow(flow: torch.Tensor, what: str = "flow") -> None:
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise UsageError(f"expected {what} shaped (N, 2, H, W), got {tuple(flow.shape)}")


def _base_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(1, 2, H, W) pixel-centre coordinates (x, y); cached because every frame needs one."""
    key = (h, w, str(device), dtype)
    grid = _grid_cache.get(key)
    if grid is None:
        ys = torch.arange(h, device=device, dtype=dtype)
        xs = torch.arange(w, device=device, dtype=dtype)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack((gx, gy)).unsqueeze(0)
        if len(_grid_cache) > 16:
            _grid_cache.clear()
        _grid_cache[key] = grid
    return grid


def sample_positions(flow: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) absolute positions x + flow(x) in pixels."""
    _check_flow(flow)
    h, w = flow.shape[2:]
    return _base_grid(h, w, flow.device, flow.dtype) + flow


def warp(
    image: torch.Tensor,
    flow: torch.Tensor,
    *,
    mode: Sampling = "bilinear",
    padding: Padding = "border",
) -> torch.Tensor:
    """Sample ``image`` (N, C, H, W) at ``x + flow(x)``; flow (N, 2, H, W) on the same grid.

    ``border`` padding repeats edge pixels for samples that fall outside; use
    `outside_mask` to know where that happened.
    """
    _check_flow(flow)
    if image.dim() != 4 or image.shape[0] != flow.shape[0] or image.shape[2:] != flow.shape[2:]:
        raise UsageError(
            "expected an image (N, C, H, W) on the flow's grid, got image "
            f"{tuple(image.shape)} and flow {tuple(flow.shape)}"
        )
    h, w = image.shape[2:]
    pos = sample_positions(flow.to(image.dtype))
    # align_corners=False maps -1/+1 to the outer edges of the border pixels, so pixel centre x
    # is (2x + 1) / W - 1; this also stays defined for 1-pixel-wide frames.
    gx = (2.0 * pos[:, 0] + 1.0) / w - 1.0
    gy = (2.0 * pos[:, 1] + 1.0) / h - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    out = F.grid_sample(image, grid, mode=mode, padding_mode=padding, align_corners=False)
    if mode == "bicubic":
        # Bicubic overshoots at edges; frames live in [0, 1].
        out = out.clamp(0.0, 1.0) if image.is_floating_point() else out
    return out


def outside_mask(flow: torch.Tensor, *, margin: float = 0.0) -> torch.Tensor:
    """(N, 1, H, W) bool: where ``x + flow(x)`` lands outside the frame (content entering)."""
    pos = sample_positions(flow)
    h, w = flow.shape[2:]
    x, y = pos[:, 0:1], pos[:, 1:2]
    return (
        (x < -0.5 + margin) | (x > w - 0.5 - margin) | (y < -0.5 + margin) | (y > h - 0.5 - margin)
    )


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Flow (N, 2, h, w) resampled to ``size`` = (H, W), displacements scaled with the grid.

    Bilinear resizing with align_corners=False keeps pixel centres aligned
    ((x + 0.5) * s - 0.5), and a displacement of d input pixels is d * s output pixels.
    """
    _check_flow(flow)
    out_h, out_w = size
    if out_h < 1 or out_w < 1:
        raise UsageError(f"expected a positive flow size, got {size}")
    in_h, in_w = flow.shape[2:]
    if (in_h, in_w) == (out_h, out_w):
        return flow
    resized = F.interpolate(flow, size=(out_h, out_w), mode="bilinear", align_corners=False)
    scale = torch.tensor([out_w / in_w, out_h / in_h], dtype=flow.dtype, device=flow.device)
    return resized * scale.view(1, 2, 1, 1)


def upscale_flow(flow: torch.Tensor, scale: float) -> torch.Tensor:
    """Flow at ``scale`` times its resolution (the SR output grid)."""
    if scale <= 0:
        raise UsageError(f"expected a positive scale, got {scale}")
    h, w = flow.shape[2:]
    return resize_flow(flow, (max(1, round(h * scale)), max(1, round(w * scale))))


def occlusion_mask(
    forward: torch.Tensor,
    backward: torch.Tensor,
    *,
    alpha: float = OCCLUSION_ALPHA,
    beta: float = OCCLUSION_BETA,
    include_outside: bool = True,
) -> torch.Tensor:
    """(N, 1, H, W) bool on ``forward``'s grid: True where the flow cannot be trusted.

    ``forward`` = flow a->b, ``backward`` = flow b->a. A pixel of ``a`` is consistent when
    following the forward flow and then the backward flow brings it back:
    |f + b(x + f)|^2 <= alpha (|f|^2 + |b(x + f)|^2) + beta. Pixels of ``a`` hidden in ``b``
    (occluded) or mapped outside ``b`` fail the test.
    """
    _check_flow(forward, "forward flow")
    _check_flow(backward, "backward flow")
    if forward.shape != backward.shape:
        raise UsageError(
            "expected forward and backward flow of the same shape, got "
            f"{tuple(forward.shape)} and {tuple(backward.shape)}"
        )
    if alpha < 0 or beta < 0:
        raise UsageError(f"expected occlusion thresholds >= 0, got alpha={alpha}, beta={beta}")
    back = warp(backward, forward, padding="border")
    total = forward + back
    lhs = (total * total).sum(dim=1, keepdim=True)
    rhs = alpha * ((forward * forward).sum(1, keepdim=True) + (back * back).sum(1, keepdim=True))
    mask = lhs > rhs + beta
    if include_outside:
        mask = mask | outside_mask(forward)
    return mask
