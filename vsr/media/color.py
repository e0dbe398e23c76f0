"""Colour facts of a video stream and the YUV <-> RGB conversions that honour them.

The model works on RGB, so every frame crosses YUV -> RGB -> YUV once. Doing that with the
source's own matrix and range, and tagging the output the same way, is what keeps colours
from shifting. An untagged source is converted with the matrix players assume for its size,
and the output is tagged with that choice explicitly: the output is larger, and a player
guessing again from the new size would pick a different matrix.

PQ and HLG pictures are handed to the model in an SDR-like domain, not as code values: display
light relative to HDR reference white (203 cd/m2), gamma-encoded like SDR, highlights above
white compressed by an invertible knee (`vsr.media.transfer.to_model_domain`). The models were
trained on SDR pictures; measured on real clips (README, "HDR"), animevideov3 loses 1-3 dB
PSNR-Y when it sees PQ/HLG code values instead. `to_rgb` applies it and `from_rgb` undoes it,
through 16-bit lookup tables.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import av
import numpy as np
import torch
from av.video.reformatter import Interpolation

from vsr.media.transfer import from_model_domain, to_model_domain

# FFmpeg's enum values (libavutil/pixfmt.h) -> the names ffprobe prints.
MATRIX_NAMES = {
    0: "gbr",
    1: "bt709",
    2: "unknown",
    4: "fcc",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "ycgco",
    9: "bt2020nc",
    10: "bt2020c",
    11: "smpte2085",
    12: "chroma-derived-nc",
    13: "chroma-derived-c",
    14: "ictcp",
}
PRIMARIES_NAMES = {
    1: "bt709",
    2: "unknown",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
    22: "jedec-p22",
}
TRC_NAMES = {
    1: "bt709",
    2: "unknown",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    18: "arib-std-b67",
}
RANGE_NAMES = {0: "unknown", 1: "tv", 2: "pc"}

UNSPECIFIED = 2
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2

# swscale knows these matrices (SWS_CS_*); anything else is converted as the nearest one.
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}

# Pixel formats whose "j" prefix means full range (deprecated in FFmpeg, still produced).
_J_FORMATS = {
    "yuvj420p": "yuv420p",
    "yuvj422p": "yuv422p",
    "yuvj444p": "yuv444p",
    "yuvj440p": "yuv440p",
    "yuvj411p": "yuv411p",
}

# Exact, not fast: chroma is interpolated at full resolution and rounding is accurate, so a
# YUV -> RGB -> YUV round trip without a model changes values by at most one code.
CONVERT_FLAGS = (
    Interpolation.BICUBIC
    | Interpolation.ACCURATE_RND
    | Interpolation.FULL_CHR_H_INT
    | Interpolation.FULL_CHR_H_INP
)


@dataclass(frozen=True)
class ColorInfo:
    """Colour tags as FFmpeg enum values, with unspecified ones already resolved."""

    matrix: int
    primaries: int
    trc: int
    range: int
    # What the file said, before guessing: tells whether the output tags are a choice.
    tagged_matrix: bool
    tagged_range: bool

    @property
    def full_range(self) -> bool:
        return self.range == RANGE_FULL

    def names(self) -> dict[str, str]:
        return {
            "color_space": MATRIX_NAMES.get(self.matrix, str(self.matrix)),
            "color_primaries": PRIMARIES_NAMES.get(self.primaries, str(self.primaries)),
            "color_trc": TRC_NAMES.get(self.trc, str(self.trc)),
            "color_range": RANGE_NAMES.get(self.range, str(self.range)),
        }


def resolve_color(
    *, matrix: int, primaries: int, trc: int, color_range: int, pix_fmt: str, height: int
) -> ColorInfo:
    """Fill unspecified tags the way players do (BT.601 for SD, BT.709 for HD, limited range)."""
    tagged_matrix = matrix not in (UNSPECIFIED, 3)
    tagged_range = color_range in (RANGE_LIMITED, RANGE_FULL)
    is_rgb = pix_fmt.startswith(("gbr", "rgb", "bgr", "argb", "abgr", "rgba", "bgra", "gray"))
    if pix_fmt in _J_FORMATS:
        color_range, tagged_range = RANGE_FULL, True
    if not tagged_range:
        color_range = RANGE_FULL if is_rgb else RANGE_LIMITED
    if not tagged_matrix:
        matrix = 1 if height >= 600 else 6
    if primaries in (UNSPECIFIED, 0, 3):
        primaries = {1: 1, 9: 9, 10: 9, 5: 5}.get(matrix, 6 if height < 600 else 1)
        if matrix == 6:
            primaries = 6
    if trc in (UNSPECIFIED, 0, 3):
        trc = {9: 14, 10: 14}.get(matrix, 1 if matrix == 1 else 6)
    return ColorInfo(
        matrix=matrix,
        primaries=primaries,
        trc=trc,
        range=color_range,
        tagged_matrix=tagged_matrix,
        tagged_range=tagged_range,
    )


def normalise_pix_fmt(pix_fmt: str) -> str:
    """yuvj420p -> yuv420p: the range lives in the colour tags, not in the format name."""
    return _J_FORMATS.get(pix_fmt, pix_fmt)


def sws_matrix(matrix: int) -> int:
    return _SWS_MATRIX.get(matrix, 5)


def is_yuv(pix_fmt: str) -> bool:
    return pix_fmt.startswith(("yuv", "nv", "p0", "p2", "p4", "y2", "uyv", "yuyv", "yvyu", "v210"))


HDR_TRANSFERS = {16: "pq", 18: "hlg"}


@functools.lru_cache(maxsize=8)
def model_domain_table(trc: int, bits: int, inverse: bool) -> np.ndarray:
    """Code value -> model domain (or back) for every value of a `bits`-deep channel."""
    top = (1 << bits) - 1
    values = torch.arange(top + 1, dtype=torch.float64) / top
    transfer = HDR_TRANSFERS[trc]
    mapped = from_model_domain(values, transfer) if inverse else to_model_domain(values, transfer)
    table = (mapped.clamp(0, 1) * top).round().numpy()
    return table.astype(np.uint16 if bits > 8 else np.uint8)


def _map_rgb(frame: av.VideoFrame, color: ColorInfo, inverse: bool) -> av.VideoFrame:
    name = frame.format.name
    bits = 16 if name.endswith(("48le", "64le")) else 8
    table = model_domain_table(color.trc, bits, inverse)
    array = frame.to_ndarray()
    # Alpha (the 4th channel) is coverage, not light: it stays as it is.
    array[..., :3] = table[array[..., :3]]
    out = av.VideoFrame.from_ndarray(array, format=name)
    out.pts = frame.pts
    if frame.time_base is not None:
        out.time_base = frame.time_base
    return out


def to_rgb(
    frame: av.VideoFrame,
    color: ColorInfo,
    rgb_format: str,
    width: int,
    height: int,
    *,
    model_domain: bool = True,
) -> av.VideoFrame:
    """Decode-side conversion with the stream's own matrix and range, into full-range RGB;
    PQ/HLG pictures into the SDR-like model domain unless `model_domain` is False."""
    if not (model_domain and color.trc in HDR_TRANSFERS and rgb_format in _MAPPABLE):
        return _to_rgb(frame, color, rgb_format, width, height)
    # Mapped at 16 bits even for an 8-bit result (eval, previews): an 8-bit table on 8-bit PQ
    # would band.
    deep = _DEEP.get(rgb_format, rgb_format)
    out = _map_rgb(_to_rgb(frame, color, deep, width, height), color, inverse=False)
    return out if deep == rgb_format else out.reformat(format=rgb_format)


# Packed RGB formats a lookup table can map channel by channel.
_MAPPABLE = {"rgb24", "rgb48le", "rgba", "rgba64le"}
_DEEP = {"rgb24": "rgb48le", "rgba": "rgba64le"}


def _to_rgb(
    frame: av.VideoFrame, color: ColorInfo, rgb_format: str, width: int, height: int
) -> av.VideoFrame:
    src = frame.format.name
    if not is_yuv(src):
        return frame.reformat(width, height, rgb_format, interpolation=CONVERT_FLAGS)
    return frame.reformat(
        width,
        height,
        format=rgb_format,
        src_colorspace=sws_matrix(color.matrix),
        src_color_range=color.range,
        dst_color_range=RANGE_FULL,
        interpolation=CONVERT_FLAGS,
    )


def from_rgb(
    frame: av.VideoFrame, color: ColorInfo, pix_fmt: str, *, model_domain: bool = True
) -> av.VideoFrame:
    """Encode-side conversion back to the output format, tagged like the source; PQ/HLG
    pictures come back from the model domain unless `model_domain` is False."""
    if model_domain and color.trc in HDR_TRANSFERS and frame.format.name in _MAPPABLE:
        frame = _map_rgb(frame, color, inverse=True)
    if is_yuv(pix_fmt):
        out = frame.reformat(
            format=pix_fmt,
            dst_colorspace=sws_matrix(color.matrix),
            src_color_range=RANGE_FULL,
            dst_color_range=color.range,
            interpolation=CONVERT_FLAGS,
        )
    else:
        out = frame.reformat(format=pix_fmt, interpolation=CONVERT_FLAGS)
    tag_frame(out, color)
    return out


def tag_frame(frame: av.VideoFrame, color: ColorInfo) -> None:
    """Tag a frame with the source's colour, for the encoder to write into the stream."""
    frame.colorspace = color.matrix
    frame.color_range = color.range
    frame.color_primaries = color.primaries
    frame.color_trc = color.trc


def rgb_frame(array: np.ndarray) -> av.VideoFrame:
    """An (H, W, 3) RGB array, uint8 or uint16, as a frame (for `from_rgb`)."""
    fmt = "rgb48le" if array.dtype == np.uint16 else "rgb24"
    return av.VideoFrame.from_ndarray(array, format=fmt)
