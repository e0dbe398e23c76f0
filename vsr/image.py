"""Stills: a PNG/JPEG/WebP/TIFF in gives an image out, at the source's bit depth.

OpenCV reads and writes the files (8- and 16-bit, grey, alpha). Alpha is upscaled with
bicubic beside the model's RGB, and written where the output format can hold it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from vsr.errors import EncoderError, NotMediaError, UsageError
from vsr.media.probe import IMAGE_SUFFIXES
from vsr.models.base import FrameGeometry, Processor, output_size

_ALPHA_SUFFIXES = {".png", ".webp", ".tif", ".tiff"}
_DEEP_SUFFIXES = {".png", ".tif", ".tiff"}


def read_image(path: Path) -> np.ndarray:
    from vsr.preflight import check_reachable

    check_reachable(path)  # missing, or behind a folder that can't be searched
    flags = cv2.IMREAD_UNCHANGED
    if path.suffix.lower() in (".jpg", ".jpeg"):
        # Camera JPEGs are stored sideways with an EXIF orientation; the output has no EXIF,
        # so apply it now.
        flags = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH
    image = cv2.imread(str(path), flags)
    if image is None:
        raise NotMediaError("is not an image OpenCV can read", path=path)
    return np.asarray(image)


def upscale_image(
    input_path: Path, output: Path, processor: Processor, note: Callable[[str], None]
) -> tuple[int, float]:
    """Returns (frames, seconds)."""
    from vsr.pipeline import atomic_output

    if input_path.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(
            f"the input {input_path.name} is a video but the output {output.name} is an image; "
            "use a video extension (.mp4, .mkv, .mov, .webm) for the output"
        )
    if output.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(
            f"the input {input_path.name} is an image; expected an image output "
            f"({', '.join(sorted(IMAGE_SUFFIXES))}), got {output.name}"
        )
    start = time.perf_counter()
    image = read_image(input_path)
    if image.dtype not in (np.uint8, np.uint16):
        raise NotMediaError(f"has {image.dtype} samples; expected 8- or 16-bit", path=input_path)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    alpha = image[..., 3] if image.shape[2] == 4 else None
    bgr = image[..., :3]
    deep = image.dtype == np.uint16
    peak = 65535.0 if deep else 255.0
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    h, w = rgb.shape[:2]
    processor.init(FrameGeometry(w, h))
    tensor = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(peak).unsqueeze(0)
    out = processor.process(tensor)
    if out.shape[0] == 0:
        out = processor.flush()
    out_w, out_h = output_size(w, h, processor.scale)
    suffix = output.suffix.lower()
    keep_deep = deep and suffix in _DEEP_SUFFIXES
    if deep and not keep_deep:
        note(f"{suffix} holds 8 bits per sample: the 16-bit input is written as 8-bit")
    out_peak = 65535.0 if keep_deep else 255.0
    result = out[0].clamp(0, 1).mul(out_peak).round().permute(1, 2, 0).numpy()
    result = result.astype(np.uint16 if keep_deep else np.uint8)[..., ::-1]
    if alpha is not None:
        if suffix in _ALPHA_SUFFIXES:
            a = cv2.resize(alpha, (out_w, out_h), interpolation=cv2.INTER_CUBIC)
            if keep_deep != deep:
                a = (a.astype(np.float32) / 257.0).round().astype(np.uint8)
            result = np.dstack([result, a.astype(result.dtype)])
        else:
            note(f"{suffix} has no alpha channel: the input's transparency is dropped")
    with atomic_output(output) as tmp:
        ok = cv2.imwrite(str(tmp), np.ascontiguousarray(result))
        if not ok:
            raise EncoderError("OpenCV could not write the image", path=output)
    return 1, time.perf_counter() - start
