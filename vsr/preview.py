"""`vsr preview`: judge settings on one frame and a few seconds before committing hours.

Two outputs, both written under a temporary name and renamed when complete:

* a before/after PNG of the frame shown at ``--at``: a split view, the left half the input
  scaled by bicubic to the output size, the right half the model's output, with a divider and
  labels. The frame is found by seeking to the keyframe before ``--at`` and decoding forward,
  so it is the exact frame a player shows at that time;
* a short clip made by the real pipeline (audio, timestamps, colour and encoder exactly as
  ``vsr upscale`` would make them) from a stream-copied cut of the input. The cut starts at the
  keyframe at or before ``--at``, because a stream copy can only start on one.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from vsr.config import UpscaleOptions
from vsr.errors import EncoderError, UsageError
from vsr.events import Notify, ProgressFn
from vsr.media.cut import cut_copy
from vsr.media.frames import filtered_frame, format_time, frame_rgb, grab_frame
from vsr.media.probe import IMAGE_SUFFIXES, MediaInfo, probe
from vsr.presets import Preset

DEFAULT_SECONDS = 3.0
_TIME_RE = re.compile(r"^(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?)$")


def parse_time(text: str | float) -> float:
    """``--at``: seconds (``90``, ``90.5``) or ``[HH:]MM:SS(.ms)`` -> seconds."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        match = _TIME_RE.match(text.strip())
        if match is None:
            raise UsageError(f"expected a time like 00:01:30, 1:30.5 or 90, got {text!r}")
        a, b, c = match.groups()
        parts = [float(p) for p in (a, b) if p is not None]
        value = float(c)
        if len(parts) == 2:
            value += parts[0] * 3600 + parts[1] * 60
        elif len(parts) == 1:
            value += parts[0] * 60
        if parts and float(c) >= 60:
            raise UsageError(f"expected seconds below 60 in {text!r}")
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"expected a time of 0 or more, got {text!r}")
    return value


# --------------------------------------------------------------------------- the still


def bicubic_resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """The comparison baseline: the same bicubic vsr's bicubic model uses (OpenCV's kernel
    when enlarging, antialiased when shrinking)."""
    from vsr.models.processors import resize
    from vsr.pipeline import from_tensor, to_tensor

    out = resize(to_tensor(rgb).unsqueeze(0), width, height).clamp_(0, 1)[0]
    return from_tensor(out, rgb.dtype == np.uint16)


def split_view(
    before: np.ndarray, after: np.ndarray, *, left_label: str, right_label: str
) -> np.ndarray:
    """Left half of `before`, right half of `after` (same size, uint8 RGB), a divider, labels."""
    if before.shape != after.shape:
        raise ValueError(f"expected images of one size, got {before.shape} and {after.shape}")
    height, width = after.shape[:2]
    half = width // 2
    canvas = after.copy()
    canvas[:, :half] = before[:, :half]
    # A two-pixel divider: white with a dark edge so it shows on light and dark pictures.
    if width >= 8:
        canvas[:, half - 1 : half + 1] = 255
        canvas[:, half - 2] = 0
        canvas[:, half + 1] = 0
    scale = max(0.35, min(1.2, height / 900))
    thickness = 1 if scale < 0.8 else 2
    for text, right in ((left_label, False), (right_label, True)):
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        pad = max(3, int(6 * scale))
        if tw + 2 * pad > half - 4 or th + base + 2 * pad > height // 3:
            continue  # too small a picture for a readable label: leave it clean
        x0 = width - tw - 2 * pad - 4 if right else 4
        y0 = 4
        box = canvas[y0 : y0 + th + base + 2 * pad, x0 : x0 + tw + 2 * pad]
        box[:] = (box.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darkened, still see-through
        cv2.putText(
            canvas,
            text,
            (x0 + pad, y0 + pad + th),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            thickness,
            cv2.LINE_AA,
        )
    return canvas


def write_png(image: np.ndarray, output: Path) -> None:
    """Write an RGB image atomically (temp name beside the target, then rename)."""
    from vsr.outputs import atomic_output

    with atomic_output(output) as tmp:
        # The temporary name keeps the .png suffix, which tells OpenCV the format.
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(image[..., ::-1])):
            raise EncoderError("OpenCV could not write the PNG", path=output)


@dataclass
class StillResult:
    path: Path
    at: float  # the asked time
    frame_time: float  # the time of the frame shown (stream timeline, from its start)
    width: int
    height: int
    model: str
    notices: list[str] = field(default_factory=list)


def render_still(
    input_path: str | Path,
    output: str | Path,
    options: UpscaleOptions,
    preset: Preset,
    *,
    at: float,
    info: MediaInfo | None = None,
    notify: Notify | None = None,
) -> StillResult:
    """The before/after PNG of the frame at ``at`` seconds (see the module docstring)."""
    from vsr.models.base import FrameGeometry, output_size
    from vsr.models.registry import create_processor
    from vsr.pipeline import from_tensor, to_tensor

    input_path, output = Path(input_path), Path(output)
    notices: list[str] = []

    def keep_notice(message: str) -> None:
        notices.append(message)
        if notify is not None:
            notify(message)

    is_image = input_path.suffix.lower() in IMAGE_SUFFIXES
    if is_image:
        from vsr.image import read_image

        raw = read_image(input_path)
        if raw.ndim == 2:
            raw = cv2.cvtColor(raw, cv2.COLOR_GRAY2BGR)
        source = np.ascontiguousarray(raw[..., 2::-1])
        model_in, frame_time, fps = source, 0.0, None
    else:
        info = info or probe(input_path)
        spec = preset.filters
        grabbed = grab_frame(input_path, at, info=info, keep_history=not spec.is_identity)
        frame_time = grabbed.time - (info.video.start_time or 0.0)
        deep = info.video.bit_depth > 8
        source = frame_rgb(grabbed.frame, info.video.color, deep=deep)
        model_in = source
        fps = float(info.video.frame_rate) if info.video.frame_rate else None
        if not spec.is_identity:
            filtered = filtered_frame(input_path, info, grabbed, spec)
            model_in = frame_rgb(filtered, info.video.color, deep=deep)
            if isinstance(spec.crop, tuple) or spec.crop == "auto":
                box = _crop_box(input_path, spec)
                if box is not None:
                    w, h, x, y = box
                    source = source[y : y + h, x : x + w]
    processor = create_processor(options.model, notify=keep_notice)
    h, w = model_in.shape[:2]
    processor.init(FrameGeometry(w, h, fps))
    with torch.inference_mode():
        out = processor.process(to_tensor(model_in).unsqueeze(0))
        if out.shape[0] == 0:
            out = processor.flush()
    out_w, out_h = output_size(w, h, processor.scale)
    if preset.height is not None:
        from vsr.media.filters import resize_to_height

        out = resize_to_height(out, preset.height)
        out_w, out_h = out.shape[-1], out.shape[-2]
    if preset.temporal != "off":
        keep_notice(f"the still is frame-wise; temporal = {preset.temporal} shows in the clip")
    after = from_tensor(out[0], False)[:out_h, :out_w]
    before = bicubic_resize(_to8(source), out_w, out_h)
    image = split_view(before, after, left_label="bicubic", right_label=processor.descriptor.name)
    write_png(image, output)
    return StillResult(output, at, frame_time, out_w, out_h, processor.descriptor.name, notices)


def _to8(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype == np.uint16:
        return np.round(rgb.astype(np.float32) / 257.0).astype(np.uint8)
    return rgb


def _crop_box(path: Path, spec: Any) -> tuple[int, int, int, int] | None:
    from vsr.media.filters import resolve_spec

    crop = resolve_spec(dataclasses.replace(spec, deinterlace="off"), path).crop
    return crop if isinstance(crop, tuple) else None


# --------------------------------------------------------------------------- the clip


@dataclass
class PreviewResult:
    still: StillResult
    clip: Path | None
    clip_start: float | None  # where the clip starts, seconds into the input
    clip_frames: int
    seconds: float
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "png": str(self.still.path),
            "at": self.still.at,
            "frame_time": round(self.still.frame_time, 6),
            "size": [self.still.width, self.still.height],
            "model": self.still.model,
            "clip": str(self.clip) if self.clip else None,
            "clip_start": self.clip_start,
            "clip_frames": self.clip_frames,
            "seconds": round(self.seconds, 3),
            "notices": self.notices,
        }


def _check_clip(input_path: Path, clip: Path, info: MediaInfo, options: UpscaleOptions) -> None:
    """Plan the clip before the still is rendered, so that a clip the run would refuse (alpha
    into .mp4, a codec its container can't hold ...) fails before any file is written. The clip
    is made from a stream copy of the input, so the input's plan is the clip's."""
    from vsr.models.registry import describe_model
    from vsr.plan import ModelFacts, plan_video

    described = describe_model(options.model.name, options.model.scale)
    model = ModelFacts.described(described, options.model)
    plan_video(input_path, clip, info, options, model, options.filters)


def preview(
    input_path: str | Path,
    png: str | Path,
    options: UpscaleOptions,
    preset: Preset,
    *,
    at: float = 0.0,
    seconds: float = DEFAULT_SECONDS,
    clip: str | Path | None = None,
    progress: ProgressFn | None = None,
    notify: Notify | None = None,
) -> PreviewResult:
    """Write the before/after PNG and (unless ``clip`` is None) the clip; see the module."""
    from vsr.api import run
    from vsr.outputs import check_paths

    start = time.perf_counter()
    input_path, png = Path(input_path), Path(png)
    clip_path = Path(clip) if clip is not None else None
    notices: list[str] = []

    def keep_notice(message: str) -> None:
        notices.append(message)
        if notify is not None:
            notify(message)

    if png.suffix.lower() != ".png":
        raise UsageError(f"expected a .png file for the still, got {png.name}")
    if not (0 < seconds <= 600):
        raise UsageError(f"expected --seconds above 0 and at most 600, got {seconds:g}")
    # Every target is checked before anything is computed.
    check_paths(input_path, png, options.overwrite)
    is_image = input_path.suffix.lower() in IMAGE_SUFFIXES
    if clip_path is not None:
        if is_image:
            keep_notice("the input is a still image: no clip")
            clip_path = None
        else:
            check_paths(input_path, clip_path, options.overwrite)
            from vsr.media.remux import container_format

            container_format(clip_path)
            if clip_path.resolve() == png.resolve():
                raise UsageError("the clip and the PNG must be different files")
    info = None if is_image else probe(input_path)
    if clip_path is not None and info is not None:
        _check_clip(input_path, clip_path, info, options)
    still = render_still(input_path, png, options, preset, at=at, info=info, notify=keep_notice)
    clip_start: float | None = None
    clip_frames = 0
    if clip_path is not None and info is not None:
        with tempfile.TemporaryDirectory(prefix="vsr-preview-") as tmp:
            cut = cut_copy(input_path, info, at, seconds, Path(tmp) / "cut.mkv")
            if cut.start < at - 1e-6:
                keep_notice(
                    f"the clip starts at {format_time(cut.start)}, the keyframe before "
                    f"--at {format_time(at)} ({at - cut.start:.2f} s earlier)"
                )
            clip_options = dataclasses.replace(options, max_frames=cut.frames)
            result = run(cut.path, clip_path, clip_options, progress=progress, notify=keep_notice)
            clip_start, clip_frames = cut.start, result.frames
    return PreviewResult(
        still, clip_path, clip_start, clip_frames, time.perf_counter() - start, notices
    )
