"""Stills: a PNG/JPEG/WebP/TIFF in gives an image out, at the source's bit depth.

OpenCV reads and writes the files (8- and 16-bit, grey, alpha). Alpha is upscaled with
bicubic beside the model's RGB, and written where the output format can hold it.
"""

from __future__ import annotations

import struct
import time
import zlib
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
from vsr.events import Notify
from vsr.media.probe import IMAGE_SUFFIXES
from vsr.models.base import FrameGeometry, Processor, output_size
from vsr.outputs import atomic_output

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


# Above this many output pixels a still is processed in bands of rows: whole-image float
# tensors cost 12 bytes a pixel several times over (a 16384^2 PNG at x2 reached 14 GB).
_BAND_ABOVE_PIXELS = 1 << 26
# Output pixels per band at most: a few hundred MB of floats, whatever the budget.
_BAND_PIXELS = 1 << 24
# Input rows of context above and below each band, cropped away after the model (as tiling).
_BAND_OVERLAP = 16
# Largest side each format can store (WebP's limit is in its header; JPEG's is 16 bits).
_MAX_SIDE = {".webp": 16383, ".jpg": 65535, ".jpeg": 65535}


@dataclass(frozen=True)
class StillPlan:
    """How a still is processed: whole, or in bands of `band_rows` input rows."""

    band_rows: int | None
    need: int  # bytes, estimated


def plan_still(
    path: Path, header: ImageHeader, scale: float, budget: int | None, out_suffix: str
) -> StillPlan:
    """Refuse, before decoding, a still that can't be read, written or fit in memory.

    Counted: the decoded image, its float copy, the float output with the temporaries of its
    conversion, the output image; in bands, only one band's floats. The model's own working
    memory is bounded by the processor (it tiles). `budget` is --max-memory, or else the
    memory available now.
    """
    w, h = header.width, header.height
    if w <= 0 or h <= 0:
        raise NotMediaError(f"has an invalid size in its header ({w}x{h})", path=path)
    out_w, out_h = output_size(w, h, scale)
    pixels_in, pixels_out = w * h, out_w * out_h
    sample = header.bytes_per_sample
    channels = header.channels
    decoded = pixels_in * channels * sample
    written = pixels_out * channels * sample
    whole = decoded + pixels_in * (3 * sample + 12) + 3 * pixels_out * 12 + written
    if pixels_in > _OPENCV_MAX_PIXELS or (pixels_out > _OPENCV_MAX_PIXELS and out_suffix != ".png"):
        raise InputError(
            f"is {w}x{h} ({pixels_in / 1e6:.0f} Mpixel), {out_w}x{out_h} upscaled: over the "
            f"{_OPENCV_MAX_PIXELS / 1e6:.0f} Mpixel limit of OpenCV's image reader and writer "
            f"(it would need about {_gb(whole)} of memory)",
            path=path,
            hint="cut it into smaller images first",
        )
    side = _MAX_SIDE.get(out_suffix)
    if side is not None and max(out_w, out_h) > side:
        raise UsageError(
            f"a {out_suffix} image can't be {out_w}x{out_h} (at most {side} pixels a side); "
            "write .png or .tiff instead"
        )
    integer = float(scale).is_integer()
    if not integer or (
        pixels_out <= _BAND_ABOVE_PIXELS and (budget is None or whole <= budget // 2)
    ):
        if budget is not None and whole > budget:
            raise _too_big(path, header, out_w, out_h, whole, budget)
        return StillPlan(None, whole)
    # In bands: the decoded image stays, the floats are per band, the output is streamed (PNG)
    # or assembled as 8/16-bit samples (other formats).
    s = int(scale)
    fixed = decoded + (0 if out_suffix == ".png" else written)
    if header.channels in (2, 4):
        fixed += pixels_out * sample  # the alpha plane, resized whole
    per_row = w * (3 * sample + 12) + 3 * w * s * s * 12 + 2 * w * s * s * channels * sample
    spare = (budget if budget is not None else whole) - fixed
    rows = min(h, max(0, spare // 2) // max(1, per_row) - 2 * _BAND_OVERLAP)
    if rows < 16:
        need = fixed + (16 + 2 * _BAND_OVERLAP) * per_row * 2
        raise _too_big(path, header, out_w, out_h, need, budget or 0)
    rows = min(rows, max(64, _BAND_PIXELS // max(1, w * s * s)))
    return StillPlan(rows, fixed + (rows + 2 * _BAND_OVERLAP) * per_row)


def _too_big(
    path: Path, header: ImageHeader, out_w: int, out_h: int, need: int, budget: int
) -> OutOfMemoryError:
    return OutOfMemoryError(
        f"is {header.width}x{header.height}: upscaling it to {out_w}x{out_h} needs about "
        f"{_gb(need)} of memory, and {_gb(budget)} is available",
        path=path,
        hint="pass a larger --max-memory, free some memory, or use a smaller --scale",
    )


class PngRows:
    """Writes a PNG a band of rows at a time (filter "None", zlib streamed): no whole image."""

    def __init__(self, path: Path, width: int, height: int, channels: int, deep: bool) -> None:
        self._fh = open(path, "wb")  # noqa: SIM115 - closed in close()
        colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
        self._deep = deep
        self._fh.write(b"\x89PNG\r\n\x1a\n")
        self._chunk(
            b"IHDR", struct.pack(">IIBBBBB", width, height, 16 if deep else 8, colour, 0, 0, 0)
        )
        self._zip = zlib.compressobj(6)

    def _chunk(self, kind: bytes, data: bytes) -> None:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        self._fh.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc))

    def write(self, rows: np.ndarray) -> None:
        """rows: H x W x C in RGB(A) order, uint8 or uint16."""
        data = rows.astype(">u2") if self._deep else rows
        flat = np.ascontiguousarray(data).view(np.uint8).reshape(rows.shape[0], -1)
        raw = np.zeros((flat.shape[0], flat.shape[1] + 1), dtype=np.uint8)  # filter byte 0
        raw[:, 1:] = flat
        packed = self._zip.compress(raw.tobytes())
        if packed:
            self._chunk(b"IDAT", packed)

    def close(self) -> None:
        try:
            self._chunk(b"IDAT", self._zip.flush())
            self._chunk(b"IEND", b"")
        finally:
            self._fh.close()

    def abort(self) -> None:
        self._fh.close()


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


def check_suffixes(input_path: Path, output: Path) -> None:
    """An image goes to an image file; a video never does."""
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


def upscale_image(
    input_path: Path,
    output: Path,
    processor: Processor,
    notify: Notify,
    *,
    max_memory: int | None = None,
) -> tuple[int, float]:
    """Returns (frames, seconds). `max_memory` (bytes, --max-memory) bounds what it may use."""
    check_suffixes(input_path, output)
    start = time.perf_counter()
    suffix = output.suffix.lower()
    header = read_header(input_path) if input_path.exists() else None
    plan = StillPlan(None, 0)
    if header is not None:
        budget = max_memory or runtime.available_memory(torch.device("cpu"))
        plan = plan_still(input_path, header, processor.scale, budget, suffix)
    image = read_image(input_path)
    if image.dtype not in (np.uint8, np.uint16):
        raise NotMediaError(f"has {image.dtype} samples; expected 8- or 16-bit", path=input_path)
    grey = image.ndim == 2
    alpha = image[..., 3] if not grey and image.shape[2] == 4 else None
    deep = image.dtype == np.uint16
    h, w = image.shape[:2]
    out_w, out_h = output_size(w, h, processor.scale)
    keep_deep = deep and suffix in _DEEP_SUFFIXES
    if deep and not keep_deep:
        notify(f"{suffix} holds 8 bits per sample: the 16-bit input is written as 8-bit")
    out_alpha = None
    if alpha is not None:
        if suffix in _ALPHA_SUFFIXES:
            out_alpha = cv2.resize(alpha, (out_w, out_h), interpolation=cv2.INTER_CUBIC)
            if keep_deep != deep:
                out_alpha = (out_alpha.astype(np.float32) / 257.0).round().astype(np.uint8)
        else:
            notify(f"{suffix} has no alpha channel: the input's transparency is dropped")
    processor.init(FrameGeometry(w, h))
    still = _Still(image, keep_deep, grey, out_alpha)
    with atomic_output(output) as tmp:
        if plan.band_rows is None:
            result = _upscale_rows(still, 0, h, processor)
            _write_whole(tmp, output, result, out_alpha)
        else:
            notify(
                f"{w}x{h} is processed in bands of {plan.band_rows} rows to bound memory "
                f"(about {_gb(plan.need)})"
            )
            _upscale_in_bands(tmp, output, still, processor, plan.band_rows)
    return 1, time.perf_counter() - start


@dataclass(frozen=True)
class _Still:
    """The decoded picture and how it is written: 16-bit kept, grey, the resized alpha."""

    image: np.ndarray  # as OpenCV read it (BGR, BGRA or grey)
    keep_deep: bool
    grey: bool
    alpha: np.ndarray | None  # already at the output size; None: none kept


def _upscale_rows(still: _Still, top: int, bottom: int, processor: Processor) -> np.ndarray:
    """Rows [top, bottom) of the image through the processor: H x W x 3 RGB, output dtype."""
    rows, grey, keep_deep = still.image[top:bottom], still.grey, still.keep_deep
    # OpenCV's BGR(A) to RGB; grey to three equal channels.
    rgb = np.repeat(rows[..., None], 3, axis=2) if grey else np.ascontiguousarray(rows[..., 2::-1])
    peak = 65535.0 if rows.dtype == np.uint16 else 255.0
    tensor = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(peak).unsqueeze(0)
    del rgb
    out = processor.process(tensor)
    if out.shape[0] == 0:
        out = processor.flush()
    del tensor
    out_peak = 65535.0 if keep_deep else 255.0
    frame = out[0].clamp_(0, 1).mul_(out_peak).round_()
    array = frame.to(torch.int32 if keep_deep else torch.uint8).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(array.astype(np.uint16) if keep_deep else array)


def _write_whole(tmp: Path, output: Path, rgb: np.ndarray, alpha: np.ndarray | None) -> None:
    bgr = rgb[..., ::-1]
    if alpha is not None:
        bgr = np.dstack([bgr, alpha.astype(rgb.dtype)])
    if not cv2.imwrite(str(tmp), np.ascontiguousarray(bgr)):
        raise EncoderError("OpenCV could not write the image", path=output)


def _upscale_in_bands(
    tmp: Path, output: Path, still: _Still, processor: Processor, band: int
) -> None:
    """Overlapping bands of rows, each cropped to its core: seams match the whole image's.

    PNG output is written band by band; other formats are assembled first (8/16-bit only).
    """
    image, keep_deep, alpha = still.image, still.keep_deep, still.alpha
    h, w = image.shape[:2]
    s = int(processor.scale)
    out_h, out_w = h * s, w * s
    channels = 3 if alpha is None else 4
    png = (
        PngRows(tmp, out_w, out_h, channels, keep_deep) if output.suffix.lower() == ".png" else None
    )
    whole = (
        None
        if png is not None
        else np.empty((out_h, out_w, 3), np.uint16 if keep_deep else np.uint8)
    )
    try:
        for top in range(0, h, band):
            bottom = min(h, top + band)
            lo, hi = max(0, top - _BAND_OVERLAP), min(h, bottom + _BAND_OVERLAP)
            rows = _upscale_rows(still, lo, hi, processor)
            core = rows[(top - lo) * s : (bottom - lo) * s]
            if png is not None:
                if alpha is not None:
                    core = np.dstack([core, alpha[top * s : bottom * s].astype(core.dtype)])
                png.write(core)
            else:
                assert whole is not None
                whole[top * s : bottom * s] = core
        if png is not None:
            png.close()
            png = None
        else:
            assert whole is not None
            _write_whole(tmp, output, whole, alpha)
    except BaseException:
        if png is not None:
            png.abort()
        raise
