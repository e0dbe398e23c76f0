"""Quality metrics for `vsr eval`: PSNR-Y, SSIM-Y, temporal flicker and tOF.

PSNR and SSIM follow BasicSR (and so most SR papers): RGB -> BT.601 Y on the 0-255 scale
(16-235, not rounded), a border of ``scale`` pixels cropped on every side, SSIM with an 11x11
Gaussian window (sigma 1.5) over the valid region; per frame, then the mean over frames.

Temporal flicker is a warping error in the manner of Lai et al. ("Learning Blind Video Temporal
Consistency", ECCV 2018), defined exactly as the evaluation table (issue 10) states it: the mean
absolute difference in Y (0-255 levels) between output frame t and output frame t-1 warped to
t by the flow computed on the HR *reference* (OpenCV DIS, MEDIUM preset), over the pixels where
the reference's own warped frame t-1 is within 10 levels of reference frame t; the mean over
frame pairs. Flow and mask come from the reference, so every clip is judged against the same
motion, and the reference's own figure (what a perfectly faithful result scores, given noise,
lighting changes and flow error inside the mask) is reported beside it. tOF (TecoGAN) is the
mean end-point difference between the flow of the test clip and the flow of the reference.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vsr.errors import EmptyInputError, UsageError
from vsr.media.frames import iter_video_rgb
from vsr.temporal.flow import DISFlow, FlowEstimator
from vsr.temporal.warp import warp

# BasicSR's rgb2ycbcr(y_only=True): Y = 16 + 65.481 R + 128.553 G + 24.966 B for RGB in [0, 1].
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_SSIM_C1 = (0.01 * 255.0) ** 2
_SSIM_C2 = (0.03 * 255.0) ** 2


# --- frame metrics -----------------------------------------------------------------------
def to_float_frames(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(N, 3, H, W) float64 RGB in [0, 1] from float [0, 1] tensors or uint8 arrays.

    uint8 arrays may be (H, W, 3), (N, H, W, 3) or (N, 3, H, W); float tensors (3, H, W) or
    (N, 3, H, W).
    """
    if isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8:
            raise UsageError(f"expected uint8 image arrays, got {frames.dtype}")
        t = torch.from_numpy(frames)
        if t.dim() == 3:
            t = t.unsqueeze(0)
        if t.dim() == 4 and t.shape[-1] == 3 and t.shape[1] != 3:
            t = t.permute(0, 3, 1, 2)
        t = t.double() / 255.0
    else:
        t = frames.double()
        if t.dim() == 3:
            t = t.unsqueeze(0)
    if t.dim() != 4 or t.shape[1] != 3:
        raise UsageError(f"expected RGB frames (N, 3, H, W), got {tuple(frames.shape)}")
    return t


def rgb_to_y(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(N, 1, H, W) float64 BT.601 luma on the 0-255 scale (16-235), as BasicSR computes it."""
    t = to_float_frames(frames)
    r, g, b = t[:, 0:1], t[:, 1:2], t[:, 2:3]
    return 16.0 + _Y_WEIGHTS[0] * r + _Y_WEIGHTS[1] * g + _Y_WEIGHTS[2] * b


def _crop(y: torch.Tensor, border: int) -> torch.Tensor:
    if border < 0:
        raise UsageError(f"expected a crop border >= 0, got {border}")
    if border == 0:
        return y
    if y.shape[2] <= 2 * border or y.shape[3] <= 2 * border:
        raise UsageError(
            f"expected frames larger than twice the crop border {border}, got "
            f"{y.shape[3]}x{y.shape[2]}"
        )
    return y[:, :, border:-border, border:-border]


def _pair(
    reference: torch.Tensor | np.ndarray, test: torch.Tensor | np.ndarray, crop_border: int
) -> tuple[torch.Tensor, torch.Tensor]:
    ref_y, test_y = rgb_to_y(reference), rgb_to_y(test)
    if ref_y.shape != test_y.shape:
        raise UsageError(
            "expected reference and test frames of the same count and size, got "
            f"{tuple(ref_y.shape)} and {tuple(test_y.shape)}"
        )
    return _crop(ref_y, crop_border), _crop(test_y, crop_border)


def psnr_y(
    reference: torch.Tensor | np.ndarray, test: torch.Tensor | np.ndarray, *, crop_border: int = 0
) -> list[float]:
    """PSNR (dB) on Y per frame; ``inf`` for identical frames."""
    ref_y, test_y = _pair(reference, test, crop_border)
    mse = ((ref_y - test_y) ** 2).mean(dim=(1, 2, 3))
    return [math.inf if m == 0 else 10.0 * math.log10(255.0**2 / m) for m in mse.tolist()]


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g


def _ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM of (N, 1, H, W) float64 images on the 0-255 scale over the 'valid' region."""
    g = _gaussian_window()
    kx, ky = g.view(1, 1, 1, -1), g.view(1, 1, -1, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, kx), ky)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + _SSIM_C1) * (2 * cov + _SSIM_C2)
    den = (mu_a**2 + mu_b**2 + _SSIM_C1) * (var_a + var_b + _SSIM_C2)
    return num / den


def ssim_y(
    reference: torch.Tensor | np.ndarray, test: torch.Tensor | np.ndarray, *, crop_border: int = 0
) -> list[float]:
    """SSIM on Y per frame (Wang et al. 2004, Gaussian 11x11 window, as BasicSR)."""
    ref_y, test_y = _pair(reference, test, crop_border)
    if ref_y.shape[2] < 11 or ref_y.shape[3] < 11:
        raise UsageError(
            "expected frames of at least 11x11 pixels after cropping for SSIM, got "
            f"{ref_y.shape[3]}x{ref_y.shape[2]}"
        )
    return _ssim_map(ref_y, test_y).mean(dim=(1, 2, 3)).tolist()


# Flicker, as the evaluation table defines it (issue 10): levels of Y (0-255) and the
# threshold that decides which pixels the reference's own motion explains.
FLICKER_MASK_LEVELS = 10.0


def flicker_flow() -> FlowEstimator:
    """The flow flicker is measured with: OpenCV's DIS at its MEDIUM preset exactly as OpenCV
    ships it (finest pyramid level included), so anyone can reproduce the figure with
    ``cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)`` alone. (`DISFlow`'s own
    default refines small frames down to full resolution; ``full_res_width=0`` turns that off.)
    """
    return DISFlow("medium", full_res_width=0)


@dataclass(frozen=True)
class ReferenceMotion:
    """What one pair of reference frames (t-1, t) says about motion, shared by every clip
    measured against it.

    ``flow``: (1, 2, H, W) flow from frame t to frame t-1 (``ref_t(x) ~ ref_{t-1}(x + flow)``),
    so ``warp(frame_{t-1}, flow)`` lands on frame t's grid; ``mask``: (1, 1, H, W) bool, the
    pixels where the warped reference frame t-1 is within `FLICKER_MASK_LEVELS` of frame t in
    Y, i.e. where the flow explains the reference's change (occlusions, lighting changes and
    flow failures fall out, for every clip alike).
    """

    flow: torch.Tensor
    mask: torch.Tensor
    reference_error: float  # the reference's own flicker on this pair (NaN: empty mask)

    @property
    def coverage(self) -> float:
        """The fraction of pixels the mask keeps."""
        return float(self.mask.float().mean())


def _y(frame: torch.Tensor) -> torch.Tensor:
    # Float RGB in [0, 1] (or uint8 arrays) -> Y on 16-235; float64 so that warping an
    # identical frame by a zero flow gives exactly zero error.
    return rgb_to_y(frame)


def _masked_mean(diff: torch.Tensor, mask: torch.Tensor) -> float:
    count = int(mask.sum())
    return math.nan if count == 0 else float(diff[mask].sum() / count)


def reference_motion(
    previous: torch.Tensor, current: torch.Tensor, flow: FlowEstimator
) -> ReferenceMotion:
    """The flow and mask of one reference pair; frames (1, 3, H, W) float RGB in [0, 1]."""
    to_prev = flow.estimate(current.float(), previous.float())
    cur_y = _y(current)
    diff = (cur_y - warp(_y(previous), to_prev.double())).abs()
    mask = diff <= FLICKER_MASK_LEVELS
    return ReferenceMotion(flow=to_prev, mask=mask, reference_error=_masked_mean(diff, mask))


def warping_error(previous: torch.Tensor, current: torch.Tensor, motion: ReferenceMotion) -> float:
    """Mean |Y(current) - Y(previous warped to current)| (0-255 levels) over the reference's
    mask, with the reference's flow; ``previous``/``current``: (1, 3, H, W) RGB in [0, 1]."""
    warped = warp(_y(previous), motion.flow.double())
    return _masked_mean((_y(current) - warped).abs(), motion.mask)


class FlickerMeter:
    """Streams (reference, test) frame pairs; flicker of both and tOF, one frame of state.

    Flicker is the mean over frame pairs of `warping_error` (pairs whose mask is empty, e.g. a
    cut to a different picture, are left out and counted in ``skipped``).
    """

    def __init__(self, *, flow: FlowEstimator | None = None, tof: bool = True) -> None:
        self.flow = flow if flow is not None else flicker_flow()
        self.tof = tof
        self.skipped = 0  # frame pairs left out (empty mask)
        self._prev_ref: torch.Tensor | None = None
        self._prev_test: torch.Tensor | None = None
        self.test_errors: list[float] = []
        self.reference_errors: list[float] = []
        self.coverages: list[float] = []
        self.tof_values: list[float] = []

    def update(self, reference: torch.Tensor, test: torch.Tensor) -> None:
        """``reference``, ``test``: (1, 3, H, W) float RGB in [0, 1] of the same size."""
        reference, test = reference.float(), test.float()
        prev_ref, prev_test = self._prev_ref, self._prev_test
        self._prev_ref, self._prev_test = reference, test
        if prev_ref is None or prev_test is None:
            return
        motion = reference_motion(prev_ref, reference, self.flow)
        self.coverages.append(motion.coverage)
        if math.isnan(motion.reference_error):
            self.skipped += 1
            return
        self.reference_errors.append(motion.reference_error)
        self.test_errors.append(warping_error(prev_test, test, motion))
        if self.tof:
            test_flow = self.flow.estimate(test, prev_test)
            self.tof_values.append(float((test_flow - motion.flow).norm(dim=1).mean()))

    @property
    def flicker(self) -> float:
        return float(np.mean(self.test_errors)) if self.test_errors else math.nan

    @property
    def reference_flicker(self) -> float:
        return float(np.mean(self.reference_errors)) if self.reference_errors else math.nan

    @property
    def coverage(self) -> float:
        """Mean fraction of pixels inside the mask, over frame pairs."""
        return float(np.mean(self.coverages)) if self.coverages else math.nan

    @property
    def tof_mean(self) -> float | None:
        if not self.tof:
            return None
        return float(np.mean(self.tof_values)) if self.tof_values else math.nan


def temporal_flicker(
    reference: torch.Tensor, test: torch.Tensor, *, flow: FlowEstimator | None = None
) -> tuple[float, float]:
    """(flicker of test, flicker of reference) for in-memory clips (N, 3, H, W) in [0, 1]."""
    if reference.shape != test.shape:
        raise UsageError(
            f"expected clips of the same shape, got {tuple(reference.shape)} and "
            f"{tuple(test.shape)}"
        )
    meter = FlickerMeter(flow=flow, tof=False)
    for i in range(reference.shape[0]):
        meter.update(reference[i : i + 1], test[i : i + 1])
    return meter.flicker, meter.reference_flicker


# --- eval -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalReport:
    reference: str
    test: str
    scale: int
    frames: int
    width: int
    height: int
    psnr: float  # mean of per-frame PSNR-Y, dB (inf if every frame is identical)
    ssim: float
    flicker: float | None  # mean warping error of the test clip, Y levels (0-255)
    reference_flicker: float | None
    tof: float | None  # px; None when not measured
    psnr_per_frame: list[float] = field(default_factory=list)
    ssim_per_frame: list[float] = field(default_factory=list)
    cropped_reference: bool = False  # reference cropped to the test size (mod-crop)
    flicker_coverage: float | None = None  # mean fraction of pixels inside the flicker mask

    def to_dict(self) -> dict[str, object]:
        """JSON-safe: infinite PSNR (identical frames) and NaN become None."""

        def clean(x: float | None) -> float | None:
            return None if x is None or math.isinf(x) or math.isnan(x) else round(x, 6)

        return {
            "reference": self.reference,
            "test": self.test,
            "scale": self.scale,
            "frames": self.frames,
            "width": self.width,
            "height": self.height,
            "psnr_y": clean(self.psnr),
            "ssim_y": clean(self.ssim),
            "flicker": clean(self.flicker),
            "reference_flicker": clean(self.reference_flicker),
            "tof": clean(self.tof),
            "flicker_coverage": clean(self.flicker_coverage),
            "identical_frames": sum(1 for p in self.psnr_per_frame if math.isinf(p)),
            "cropped_reference": self.cropped_reference,
            "per_frame": [
                {"frame": i, "psnr_y": clean(p), "ssim_y": clean(s)}
                for i, (p, s) in enumerate(
                    zip(self.psnr_per_frame, self.ssim_per_frame, strict=True)
                )
            ],
        }

    def table(self) -> str:
        """A short human-readable summary (the CLI prints it)."""

        def fmt(x: float | None, spec: str) -> str:
            if x is None or math.isnan(x):
                return "n/a"
            return "inf" if math.isinf(x) else format(x, spec)

        rows = [
            ("reference", self.reference),
            ("test", self.test),
            ("frames", f"{self.frames} ({self.width}x{self.height}, border {self.scale} cropped)"),
            ("PSNR-Y", f"{fmt(self.psnr, '.3f')} dB"),
            ("SSIM-Y", fmt(self.ssim, ".4f")),
            (
                "flicker",
                f"{fmt(self.flicker, '.3f')} (reference {fmt(self.reference_flicker, '.3f')})",
            ),
        ]
        if self.tof is not None:
            rows.append(("tOF", f"{fmt(self.tof, '.4f')} px"))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Torch on one thread while scoring: the work per frame is a few small ops, and on a busy
    CPU the thread pool's hand-offs cost far more than the work (on 2 shared cores, PSNR-Y,
    SSIM-Y and the flow mask of a 360x152 frame took 3.6 s with 2 threads, 0.03 s with one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Scorer:
    """Scores (reference, test) frame pairs as they come: PSNR-Y and SSIM-Y per frame (border
    of ``scale`` cropped), flicker and tOF through a `FlickerMeter`. `evaluate` feeds it from
    two files, the evaluation table from frames in memory."""

    def __init__(
        self,
        *,
        scale: int,
        temporal: bool = True,
        tof: bool = True,
        flow: FlowEstimator | None = None,
    ) -> None:
        if scale < 1:
            raise UsageError(f"expected --scale of at least 1, got {scale}")
        self.scale = scale
        self.meter = FlickerMeter(flow=flow, tof=tof) if temporal else None
        self.psnrs: list[float] = []
        self.ssims: list[float] = []
        self.size: tuple[int, int] | None = None  # (width, height) of the frames scored

    def add(self, reference: np.ndarray, test: np.ndarray) -> None:
        """One frame of each: (H, W, 3) uint8 RGB of the same size."""
        with _one_thread():
            self._add(reference, test)

    def _add(self, reference: np.ndarray, test: np.ndarray) -> None:
        self.psnrs.extend(psnr_y(reference, test, crop_border=self.scale))
        self.ssims.extend(ssim_y(reference, test, crop_border=self.scale))
        if self.meter is not None:
            self.meter.update(to_float_frames(reference).float(), to_float_frames(test).float())
        self.size = (test.shape[1], test.shape[0])

    def report(self, reference: str, test: str, *, cropped: bool = False) -> EvalReport:
        if self.size is None:
            raise EmptyInputError("has no frames to compare", path=reference)
        meter = self.meter
        return EvalReport(
            reference=reference,
            test=test,
            scale=self.scale,
            frames=len(self.psnrs),
            width=self.size[0],
            height=self.size[1],
            psnr=float(np.mean(self.psnrs)),
            ssim=float(np.mean(self.ssims)),
            flicker=meter.flicker if meter is not None else None,
            reference_flicker=meter.reference_flicker if meter is not None else None,
            tof=meter.tof_mean if meter is not None else None,
            psnr_per_frame=self.psnrs,
            ssim_per_frame=self.ssims,
            cropped_reference=cropped,
            flicker_coverage=meter.coverage if meter is not None else None,
        )


def evaluate(
    reference_path: str | Path,
    test_path: str | Path,
    *,
    scale: int,
    temporal: bool = True,
    tof: bool = True,
    flow: FlowEstimator | None = None,
    max_frames: int | None = None,
) -> EvalReport:
    """Compare a test clip with its reference, frame by frame, streaming both files.

    The test clip must have the reference's size, or the reference may be larger by less than
    ``scale`` pixels (an HR clip whose size is not a multiple of the scale: it is cropped at the
    right and bottom, BasicSR's mod-crop). Frame counts must match.
    """
    scorer = Scorer(scale=scale, temporal=temporal, tof=tof, flow=flow)
    ref_iter, test_iter = iter_video_rgb(reference_path), iter_video_rgb(test_path)
    cropped = False
    count = 0
    while max_frames is None or count < max_frames:
        ref = next(ref_iter, None)
        test = next(test_iter, None)
        if ref is None or test is None:
            if ref is None and test is None:
                break
            ref_n = count + (1 + sum(1 for _ in ref_iter) if ref is not None else 0)
            test_n = count + (1 + sum(1 for _ in test_iter) if test is not None else 0)
            raise UsageError(
                f"expected the same number of frames in both clips, got {ref_n} in "
                f"{reference_path} and {test_n} in {test_path}",
                hint="compare the output of exactly this input, without --frames or trimming",
            )
        th, tw = test.shape[:2]
        rh, rw = ref.shape[:2]
        if (rh, rw) != (th, tw):
            if 0 <= rh - th < scale and 0 <= rw - tw < scale:
                ref = ref[:th, :tw]
                cropped = True
            else:
                raise UsageError(
                    f"expected the test clip at the reference's size {rw}x{rh}, got {tw}x{th} "
                    f"in {test_path}",
                    hint=f"upscale the LR clip by {scale} (the LR clip must be the reference "
                    f"downscaled by {scale})",
                )
        scorer.add(ref, test)
        count += 1
    if count == 0:
        raise EmptyInputError("has no frames to compare", path=reference_path)
    return scorer.report(str(reference_path), str(test_path), cropped=cropped)
