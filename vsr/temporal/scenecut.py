"""Scene-cut detection between consecutive frames, one frame of state.

Two cues, because each alone fails somewhere:

* **Motion-compensated correlation**: the previous frame's luma, warped onto the current one by
  optical flow, is correlated with the current luma. Correlation ignores gain and offset, so
  fades and flashes of light do not look like cuts, and the flow absorbs camera motion. Across a
  cut no flow explains the new frame and the correlation collapses.
* **Forward-backward consistency**: across a cut DIS still finds patches that match somewhere,
  so the correlation alone stays middling (~0.5 between two unrelated textures), but the
  forward and backward flows then disagree on most pixels, while real motion keeps them
  consistent.
* **Luma histogram distance** (after removing each frame's mean and contrast, for the same fade
  reason): a cut on its own when two shots are so unlike each other that no flow is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vsr.errors import UsageError
from vsr.temporal.flow import FlowEstimator, luma
from vsr.temporal.warp import occlusion_mask, outside_mask, warp

_BINS = 32
# Frames are standardised to zero mean, unit contrast, then binned over +-3 standard deviations.
_RANGE = 3.0


@dataclass(frozen=True)
class CutScores:
    """What the detector saw between the previous frame and this one."""

    correlation: float  # motion-compensated, in [-1, 1]; 1 = same content
    inconsistent: float  # share of pixels failing the forward-backward flow check
    histogram_distance: float  # in [0, 1]; 0 = same luma make-up
    cut: bool


def _standardised_histogram(y: torch.Tensor) -> torch.Tensor:
    y = y.flatten().double()
    std = y.std(unbiased=False)
    z = (y - y.mean()) / std if std > 1e-3 else torch.zeros_like(y)
    hist = torch.histc(z.clamp(-_RANGE, _RANGE), bins=_BINS, min=-_RANGE, max=_RANGE)
    return hist / hist.sum()


def _correlation(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor | None) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    if valid is not None:
        keep = ~valid.flatten()
        # Too few pixels left inside the frame to judge: trust the histogram alone.
        if int(keep.sum()) >= max(16, a.numel() // 8):
            a, b = a[keep], b[keep]
    a, b = a - a.mean(), b - b.mean()
    na, nb = a.norm(), b.norm()
    scale = (a.numel() ** 0.5) * 2e-3  # std below ~0.002 (half a code value): a flat frame
    if na < scale and nb < scale:
        return 1.0  # two flat frames (black, a title card fade): nothing says "cut"
    if na < scale or nb < scale:
        return 0.0
    return float((a @ b) / (na * nb))


class SceneCutDetector:
    """Feed frames in order; `update` says whether a frame starts a new shot.

    A cut is declared when the standardised luma histograms are at least ``histogram_cut``
    apart, or when the flow between the frames explains nothing: at least
    ``inconsistent_min`` of the pixels fail the forward-backward check *and* the
    motion-compensated correlation is below ``correlation_threshold``. Motion too fast for the
    flow to follow can look the same; calling it a cut is then the safe answer for temporal
    state, since nothing could have been carried over anyway.
    """

    def __init__(
        self,
        *,
        flow: FlowEstimator | None = None,
        correlation_threshold: float = 0.8,
        inconsistent_min: float = 0.4,
        histogram_cut: float = 0.5,
    ) -> None:
        if not -1.0 <= correlation_threshold <= 1.0:
            raise UsageError(
                f"expected a correlation threshold in [-1, 1], got {correlation_threshold}"
            )
        for name, value in (
            ("inconsistent_min", inconsistent_min),
            ("histogram_cut", histogram_cut),
        ):
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"expected {name} in [0, 1], got {value}")
        self.flow = flow
        self.correlation_threshold = correlation_threshold
        self.inconsistent_min = inconsistent_min
        self.histogram_cut = histogram_cut
        self._prev: torch.Tensor | None = None
        self._prev_hist: torch.Tensor | None = None
        self.last: CutScores | None = None

    def reset(self) -> None:
        self._prev = None
        self._prev_hist = None
        self.last = None

    def update(
        self,
        frame: torch.Tensor,
        flow: torch.Tensor | None = None,
        backward: torch.Tensor | None = None,
    ) -> bool:
        """True when ``frame`` starts a new shot; the first frame after `reset` never does.

        ``frame``: (3, H, W) or (1, 3, H, W) RGB in [0, 1]. ``flow`` (this frame -> previous)
        and ``backward`` (previous -> this frame), (1, 2, H, W), when the caller has them;
        otherwise they are estimated with the detector's estimator, and without one only the
        histogram and the correlation at zero motion are used.
        """
        if frame.dim() == 3:
            frame = frame.unsqueeze(0)
        if frame.dim() != 4 or frame.shape[0] != 1 or frame.shape[1] != 3:
            raise UsageError(f"expected one RGB frame (3, H, W), got {tuple(frame.shape)}")
        frame = frame.float()
        y = luma(frame)
        hist = _standardised_histogram(y)
        prev, prev_hist = self._prev, self._prev_hist
        self._prev, self._prev_hist = frame, hist
        if prev is None or prev_hist is None or prev.shape != frame.shape:
            self.last = None
            return False
        if (flow is None or backward is None) and self.flow is not None:
            flow = self.flow.estimate(frame, prev)
            backward = self.flow.estimate(prev, frame)
        prev_y = luma(prev)
        inconsistent = 0.0
        if flow is not None:
            expected = (1, 2, *y.shape[2:])
            for name, f in (("flow", flow), ("backward flow", backward)):
                if f is not None and tuple(f.shape) != expected:
                    raise UsageError(f"expected {name} {expected}, got {tuple(f.shape)}")
            flow = flow.to(y.device, y.dtype)
            outside = outside_mask(flow)
            corr = _correlation(y, warp(prev_y, flow), outside)
            if backward is not None:
                bad = occlusion_mask(flow, backward.to(y.device, y.dtype), include_outside=False)
                inside = ~outside
                inconsistent = float((bad & inside).sum()) / max(1, int(inside.sum()))
        else:
            corr = _correlation(y, prev_y, None)
            inconsistent = 1.0
        hdist = 0.5 * float((hist - prev_hist).abs().sum())
        cut = hdist >= self.histogram_cut or (
            corr < self.correlation_threshold and inconsistent >= self.inconsistent_min
        )
        self.last = CutScores(
            correlation=corr, inconsistent=inconsistent, histogram_distance=hdist, cut=cut
        )
        return cut


def detect_cuts(frames: torch.Tensor, *, flow: FlowEstimator | None = None) -> list[int]:
    """Indices of frames (N, 3, H, W) that start a new shot (never 0)."""
    detector = SceneCutDetector(flow=flow)
    return [i for i in range(frames.shape[0]) if detector.update(frames[i])]
