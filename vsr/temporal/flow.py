"""Optical flow between frames.

Convention used everywhere in vsr: ``flow = estimator.estimate(source, target)`` is shaped
(N, 2, H, W) in pixels of the frames it was computed on, channel 0 the horizontal and channel 1
the vertical displacement, such that ``source(x) ≈ target(x + flow(x))``. Backward warping
``warp(target, flow)`` (vsr.temporal.warp) then brings ``target`` onto ``source``'s grid.
This is OpenCV's convention for ``calc(prev, next)``.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import cv2
import numpy as np
import torch

from vsr.errors import UsageError

DisPreset = Literal["ultrafast", "fast", "medium"]
DIS_PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}

# ITU-R BT.601 luma weights, the ones BasicSR and most SR papers use for "Y".
_BT601 = (0.299, 0.587, 0.114)


@runtime_checkable
class FlowEstimator(Protocol):
    """Anything that turns two batches of frames into flow; DIS today, a network later."""

    @property
    def name(self) -> str: ...

    def estimate(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1] twice -> (N, 2, H, W) float32 flow on ``source``'s device."""
        ...


def luma(frames: torch.Tensor) -> torch.Tensor:
    """BT.601 luma (N, 1, H, W) of RGB frames (N, 3, H, W), same range as the input."""
    _check_frames(frames, "frames")
    r, g, b = frames[:, 0:1], frames[:, 1:2], frames[:, 2:3]
    return _BT601[0] * r + _BT601[1] * g + _BT601[2] * b


def _check_frames(frames: torch.Tensor, what: str) -> None:
    if frames.dim() != 4 or frames.shape[1] not in (1, 3):
        raise UsageError(
            f"expected {what} shaped (N, 3, H, W) or (N, 1, H, W), got {tuple(frames.shape)}"
        )


def _to_gray_u8(frames: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> (N, H, W) uint8 luma, the input DIS accepts."""
    y = luma(frames) if frames.shape[1] == 3 else frames
    y = (y[:, 0].detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return np.ascontiguousarray(y.cpu().numpy())


class DISFlow:
    """OpenCV's Dense Inverse Search flow on the CPU: no weights, a few ms on small frames.

    ``medium`` is the default: on 640x272 it takes ~10-30 ms a pair on one core and its
    end-point error on sub-pixel translations is ~0.02 px, against ~0.15 px for ``ultrafast``,
    which matters because the warped textures must land on the same sub-pixel spot.

    ``finest_scale``: the pyramid level DIS stops at (0 = full resolution). The presets stop one
    level above full resolution, which smears motion boundaries over several pixels; on the
    small LR frames vsr feeds it, full resolution is cheap, so by default (None) frames up to
    ``full_res_width`` wide are solved at level 0 and larger ones at the preset's level.
    """

    def __init__(
        self,
        preset: DisPreset = "medium",
        *,
        spatial_propagation: bool = True,
        finest_scale: int | None = None,
        full_res_width: int = 1024,
    ) -> None:
        if preset not in DIS_PRESETS:
            raise UsageError(
                f"expected a DIS preset among {', '.join(DIS_PRESETS)}, got {preset!r}"
            )
        self.preset = preset
        self._dis = cv2.DISOpticalFlow.create(DIS_PRESETS[preset])
        self._dis.setUseSpatialPropagation(spatial_propagation)
        if finest_scale is not None and finest_scale < 0:
            raise UsageError(f"expected a DIS finest scale >= 0, got {finest_scale}")
        self._preset_scale = self._dis.getFinestScale()
        self.finest_scale = finest_scale
        self.full_res_width = full_res_width

    @property
    def name(self) -> str:
        return f"dis-{self.preset}"

    def estimate(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_frames(source, "source")
        _check_frames(target, "target")
        if source.shape[0] != target.shape[0] or source.shape[2:] != target.shape[2:]:
            raise UsageError(
                "expected source and target frames of the same count and size, got "
                f"{tuple(source.shape)} and {tuple(target.shape)}"
            )
        a, b = _to_gray_u8(source), _to_gray_u8(target)
        flows = [self.estimate_gray(a[i], b[i]) for i in range(a.shape[0])]
        out = torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).contiguous()
        return out.to(source.device)

    def estimate_gray(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """One pair of (H, W) uint8 images -> (H, W, 2) float32 flow (OpenCV layout)."""
        h, w = source.shape
        if h < 2 or w < 2:
            # DIS needs at least a patch; a 1-pixel frame has no motion to speak of.
            return np.zeros((h, w, 2), np.float32)
        if self.finest_scale is not None:
            level = self.finest_scale
        else:
            level = 0 if w <= self.full_res_width else self._preset_scale
        self._dis.setFinestScale(level)
        flow = np.zeros((h, w, 2), np.float32)
        return np.asarray(self._dis.calc(source, target, flow), dtype=np.float32)


def bidirectional_flow(
    estimator: FlowEstimator, a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(flow a->b, flow b->a): both directions, for forward-backward consistency checks."""
    return estimator.estimate(a, b), estimator.estimate(b, a)


def make_flow(spec: str | FlowEstimator | None = None) -> FlowEstimator:
    """A flow estimator from a name ("dis", "dis-fast" ...) or pass an instance through."""
    if spec is None:
        return DISFlow()
    if not isinstance(spec, str):
        return spec
    name = spec.lower()
    if name in ("dis", "dis-medium"):
        return DISFlow("medium")
    if name == "dis-fast":
        return DISFlow("fast")
    if name == "dis-ultrafast":
        return DISFlow("ultrafast")
    raise UsageError(
        f"expected a flow estimator among dis, dis-medium, dis-fast, dis-ultrafast, got {spec!r}"
    )
