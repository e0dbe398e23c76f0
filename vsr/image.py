"""Stills: a PNG/JPEG/WebP/TIFF in gives an image out, at the source's bit depth.

OpenCV reads and writes the files (8- and 16-bit, grey, alpha). Alpha is upscaled with
bicubic beside the model's RGB, and written where the output format can hold it.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import torch

from vsr import runtime
from vsr.errors import (
    EncoderError,
    InputError,
    NotMediaError,
    OutOfMemoryError,
    UsageError,
)
from vsr.media.probe import IMAGE_SUFFIXES
from vsr.models.base import FrameGeometry, Processor, output_size

_ALPHA_SUFFIXES = {".png", ".webp", ".tif", ".tiff"}
_DEEP_SUFFIXES = {".png", ".tif", ".tiff"}


# OpenCV refuses to decode images above 2^30 pixels (CV_IO_MAX_IMAGE_PIXELS).
_OPENCV_MAX_PIXELS = 1 << 30


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    channels: int
    bytes_per_sample: int


def read_header(path: Path) -> ImageHeader | None:
    """Size and layout from the file's header alone (PNG, JPEG, BMP, WebP); None if unknown.

    Read before decoding, so that a huge or lying header is refused without allocating it.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
                width, height = struct.unpack(">II", head[16:24])
                depth, colour = head[24], head[25]
                channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour, 4)
                return ImageHeader(width, height, channels, 2 if depth == 16 else 1)
            if head.startswith(b"BM") and len(head) >= 26:
                width, height = struct.unpack("<ii", head[18:26])
                return ImageHeader(abs(width), abs(height), 4, 1)
            if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
                return _webp_header(head)
            if head.startswith(b"\xff\xd8"):
                fh.seek(2)
                return _jpeg_header(fh)
    except (OSError, struct.error):
        return None
    return None


def _webp_header(head: bytes) -> ImageHeader | None:
    kind = head[12:16]
    if kind == b"VP8 " and len(head) >= 30:
        width, height = struct.unpack("<HH", head[26:30])
        return ImageHeader(width & 0x3FFF, height & 0x3FFF, 3, 1)
    if kind == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return ImageHeader((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, 4, 1)
    if kind == b"VP8X" and len(head) >= 30:
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return ImageHeader(width, height, 4, 1)
    return None


def _jpeg_header(fh: BinaryIO) -> ImageHeader | None:
    # Walk the segments to the first start-of-frame marker, which holds the size.
    for _ in range(1000):
        marker = fh.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        kind = marker[1]
        length = int.from_bytes(fh.read(2), "big")
        if kind in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            data = fh.read(6)
            precision, height, width, channels = struct.unpack(">BHHB", data)
            return ImageHeader(width, height, max(3, channels), 2 if precision > 8 else 1)
        if length < 2:
            return None
        fh.seek(length - 2, 1)
    return None


def _gb(count: float) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.0f} MB"


def check_fits(path: Path, header: ImageHeader, scale: float, budget: int | None) -> None:
    """Refuse, before decoding, a still whose pixels can't be read or can't fit in memory.

    Counted: the decoded image, its float copy, the float output, the output image and the
    model's own activations (one output-sized float buffer is a floor; the processor tiles
    the rest). `budget` is --max-memory, or else the memory available now.
    """
    w, h = header.width, header.height
    if w <= 0 or h <= 0:
        raise NotMediaError(f"has an invalid size in its header ({w}x{h})", path=path)
    out_w, out_h = output_size(w, h, scale)
    pixels_in, pixels_out = w * h, out_w * out_h
    need = (
        pixels_in * header.channels * header.bytes_per_sample
        + pixels_in * 3 * 4
        + 2 * pixels_out * 3 * 4
        + pixels_out * header.channels * header.bytes_per_sample
    )
    if pixels_in > _OPENCV_MAX_PIXELS or pixels_out > _OPENCV_MAX_PIXELS:
        raise InputError(
            f"is {w}x{h} ({pixels_in / 1e6:.0f} Mpixel), {out_w}x{out_h} upscaled: over the "
            f"{_OPENCV_MAX_PIXELS / 1e6:.0f} Mpixel limit of OpenCV's image reader and writer "
            f"(it would need about {_gb(need)} of memory)",
            path=path,
            hint="cut it into smaller images first",
        )
    if budget is not None and need > budget:
        raise OutOfMemoryError(
            f"is {w}x{h}: upscaling it to {out_w}x{out_h} needs about {_gb(need)} of memory, "
            f"and {_gb(budget)} is available",
            path=path,
            hint="pass a larger --max-memory, free some memory, or use a smaller --scale",
        )


def read_image(path: Path) -> np.ndarray:
    from vsr.preflight import check_reachable

    check_reachable(path)  # missing, or behind a folder that can't be searched
    flags = cv2.IMREAD_UNCHANGED
    if path.suffix.lower() in (".jpg", ".jpeg"):
        # Camera JPEGs are stored sideways with an EXIF orientation; the output has no EXIF,
        # so apply it now.
        flags = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH
    try:
        image = cv2.imread(str(path), flags)
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise NotMediaError(f"can't be decoded: {reason}", path=path) from exc
    if image is None:
        raise NotMediaError("is not an image OpenCV can read", path=path)
    return np.asarray(image)


def upscale_image(
    input_path: Path,
    output: Path,
    processor: Processor,
    note: Callable[[str], None],
    *,
    max_memory: int | None = None,
) -> tuple[int, float]:
    """Returns (frames, seconds). `max_memory` (bytes, --max-memory) bounds what it may use."""
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
    header = read_header(input_path) if input_path.exists() else None
    if header is not None:
        budget = max_memory or runtime.available_memory(torch.device("cpu"))
        check_fits(input_path, header, processor.scale, budget)
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
