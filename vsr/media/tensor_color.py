"""YUV <-> RGB as tensor operations, on any torch device: the device-side colour path.

The decoder hands frames over in their own pixel format, as the integer planes FFmpeg decoded
(uint8, or uint16 for 9-16 bits), packed one frame per row of a flat buffer: Y then U then V
(or G, B, R for planar RGB). That buffer is what crosses to the device, a quarter of the bytes
of float32 RGB for 8-bit 4:2:0 (1.5 bytes a pixel instead of 12). There, `planes_to_rgb`
upsamples the chroma at its real siting, applies the source's matrix and range and gives the
model float RGB in [0, 1]; `rgb_to_planes` goes back: matrix, range, chroma downsampled at the
same siting, rounded to the encoder's bit depth, packed the same way for the download.

uint16 planes travel as int16 (the same bits): int16 is a full citizen on every torch device
while uint16 is not, and a view costs nothing.

The matrices are swscale's (BT.601, BT.709, FCC, SMPTE 240M, BT.2020 non-constant luminance;
constant-luminance BT.2020 and the rest are converted as swscale converts them), so this path
and the swscale one agree (tests: over 50 dB on real frames of every matrix, range and bit
depth the suite makes).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import av
import numpy as np
import torch

from vsr.media.color import ColorInfo, sws_matrix

Siting = Literal["left", "center", "topleft"]
Upsampling = Literal["bilinear", "bicubic"]
SITINGS: tuple[str, ...] = ("left", "center", "topleft")

# Kr, Kb per swscale matrix (libswscale/yuv2rgb.c ff_yuv2rgb_coeffs, as luma weights).
_K = {
    1: (0.2126, 0.0722),  # BT.709
    4: (0.30, 0.11),  # FCC
    5: (0.299, 0.114),  # BT.601 (bt470bg, smpte170m)
    7: (0.212, 0.087),  # SMPTE 240M
    9: (0.2627, 0.0593),  # BT.2020 (ncl; cl converted as ncl, like swscale)
}

# Codecs whose 4:2:0 chroma sits between the luma samples horizontally (JPEG, MPEG-1); every
# other codec family (MPEG-2, H.264, HEVC, VP9, AV1 in practice) co-sites it with the left one.
_CENTER_SITED = {"mjpeg", "jpegls", "mpeg1video", "theora", "png", "webp", "tiff", "bmp"}


@dataclass(frozen=True)
class PlaneFormat:
    """A planar pixel format this path handles: YUV 4:2:0/4:2:2/4:4:0/4:4:4 or RGB, 8-16 bits."""

    pix_fmt: str  # FFmpeg's name of the planar layout the planes are in
    family: Literal["yuv", "gbr"]
    bits: int
    log2_w: int  # chroma subsampling, as FFmpeg's log2_chroma_w/h
    log2_h: int

    @property
    def deep(self) -> bool:
        return self.bits > 8

    @property
    def numpy_dtype(self) -> type[np.integer]:
        return np.uint16 if self.deep else np.uint8

    @property
    def torch_dtype(self) -> torch.dtype:
        # int16 carries uint16's bits (see the module docstring).
        return torch.int16 if self.deep else torch.uint8

    def plane_shapes(self, width: int, height: int) -> list[tuple[int, int]]:
        cw = -(-width >> self.log2_w)
        ch = -(-height >> self.log2_h)
        return [(height, width), (ch, cw), (ch, cw)]

    def elements(self, width: int, height: int) -> int:
        return sum(h * w for h, w in self.plane_shapes(width, height))

    @classmethod
    def for_pix_fmt(cls, name: str) -> PlaneFormat | None:
        """The planar format that holds `name`'s samples without loss, or None (alpha, gray,
        paletted, Bayer, float, or more than 16 bits: those take the swscale path)."""
        return _plane_format(name)


@functools.cache
def _plane_format(name: str) -> PlaneFormat | None:
    try:
        fmt = av.VideoFormat(name, 16, 16)
    except (ValueError, av.error.FFmpegError):
        return None
    comps = fmt.components
    floating = "f16" in name or "f32" in name
    if len(comps) != 3 or fmt.has_palette or fmt.is_bayer or floating or fmt.is_big_endian:
        return None
    bits = max(c.bits for c in comps)
    if bits > 16 or bits < 8:
        return None
    depth = 8 if bits == 8 else 10 if bits <= 10 else 12 if bits <= 12 else 16
    if fmt.is_rgb:
        planar = "gbrp" if depth == 8 else f"gbrp{depth}le"
        return PlaneFormat(planar, "gbr", depth, 0, 0)
    log2_w = {16: 0, 8: 1, 4: 2}.get(comps[1].width)
    log2_h = {16: 0, 8: 1, 4: 2}.get(comps[1].height)
    if log2_w is None or log2_h is None:
        return None
    sub = {(0, 0): "444", (1, 0): "422", (1, 1): "420", (0, 1): "440", (2, 0): "411"}
    key = sub.get((log2_w, log2_h))
    if key is None:
        return None
    planar = f"yuv{key}p" if depth == 8 else f"yuv{key}p{depth}le"
    try:
        av.VideoFormat(planar, 16, 16)
    except (ValueError, av.error.FFmpegError):
        return None  # e.g. yuv411p10le does not exist: swscale path
    return PlaneFormat(planar, "yuv", depth, log2_w, log2_h)


def siting_for_codec(codec: str) -> Siting:
    """Where a stream's chroma samples sit, as FFmpeg's decoders assume when it is untagged.

    PyAV does not expose the chroma location, so this is the codec family's default.
    """
    return "center" if codec in _CENTER_SITED else "left"


# -- matrices --------------------------------------------------------------------------------


def _coefficients(matrix: int) -> tuple[float, float]:
    return _K.get(sws_matrix(matrix), _K[5])


def _ranges(bits: int, full: bool) -> tuple[float, float, float, float]:
    """(luma offset, luma span, chroma offset, chroma span) in code values."""
    top = float((1 << bits) - 1)
    mid = float(1 << (bits - 1))
    if full:
        return 0.0, top, mid, top
    scale = float(1 << (bits - 8))
    return 16 * scale, 219 * scale, 128 * scale, 224 * scale


def _yuv_to_rgb_matrix(matrix: int) -> torch.Tensor:
    kr, kb = _coefficients(matrix)
    kg = 1.0 - kr - kb
    return torch.tensor(
        [
            [1.0, 0.0, 2 * (1 - kr)],
            [1.0, -2 * (1 - kb) * kb / kg, -2 * (1 - kr) * kr / kg],
            [1.0, 2 * (1 - kb), 0.0],
        ],
        dtype=torch.float64,
    )


def _rgb_to_yuv_matrix(matrix: int) -> torch.Tensor:
    kr, kb = _coefficients(matrix)
    kg = 1.0 - kr - kb
    return torch.tensor(
        [
            [kr, kg, kb],
            [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
            [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))],
        ],
        dtype=torch.float64,
    )


# -- resampling ------------------------------------------------------------------------------


def _offset(siting: Siting, axis: str, factor: int) -> float:
    """Luma coordinate of chroma sample 0, in luma pixels."""
    cosited = siting == "topleft" or (siting == "left" and axis == "x")
    return 0.0 if cosited else (factor - 1) / 2


def _cubic(t: np.ndarray) -> np.ndarray:
    """Catmull-Rom (Keys, a = -0.5): interpolating, so smooth chroma comes back unchanged."""
    a = -0.5
    t = np.abs(t)
    return np.where(
        t <= 1,
        (a + 2) * t**3 - (a + 3) * t**2 + 1,
        np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0),
    )


@functools.cache
def _upsample_taps(
    src: int, dst: int, factor: int, offset: float, kind: Upsampling
) -> tuple[np.ndarray, np.ndarray]:
    """Index and weight tables (dst x taps) for one axis; edges repeat the last sample."""
    pos = (np.arange(dst, dtype=np.float64) - offset) / factor
    base = np.floor(pos)
    frac = pos - base
    if kind == "bilinear":
        offsets = np.array([0, 1])
        weights = np.stack([1 - frac, frac], axis=1)
    else:
        offsets = np.array([-1, 0, 1, 2])
        weights = _cubic(frac[:, None] - offsets[None, :])
    index = np.clip(base[:, None].astype(np.int64) + offsets[None, :], 0, src - 1)
    weights = weights / weights.sum(axis=1, keepdims=True)
    return index, weights


@functools.cache
def _downsample_taps(
    src: int, dst: int, factor: int, offset: float
) -> tuple[np.ndarray, np.ndarray]:
    """Average over the luma pixels each chroma sample stands for, centred on its position
    (a box for centred siting, [1 2 1]/4 for co-sited 2x)."""
    centre = np.arange(dst, dtype=np.float64) * factor + offset
    half = factor / 2
    taps = np.arange(-factor, factor + 1)
    index = np.floor(centre)[:, None].astype(np.int64) + taps[None, :]
    # A box as wide as the subsampling factor, integrated over each luma pixel's extent.
    dist = index - centre[:, None]
    weights = np.clip(np.minimum(dist + 0.5, half) - np.maximum(dist - 0.5, -half), 0, None)
    index = np.clip(index, 0, src - 1)
    weights = weights / weights.sum(axis=1, keepdims=True)
    return index, weights


def _apply(plane: torch.Tensor, taps: tuple[np.ndarray, np.ndarray], dim: int) -> torch.Tensor:
    index_np, weight_np = taps
    index = torch.from_numpy(index_np).to(plane.device)
    weights = torch.from_numpy(weight_np).to(plane.device, plane.dtype)
    out: torch.Tensor | None = None
    shape = [1] * plane.dim()
    shape[dim] = -1
    for k in range(index.shape[1]):
        term = plane.index_select(dim, index[:, k]) * weights[:, k].reshape(shape)
        out = term if out is None else out.add_(term)
    assert out is not None
    return out


def _upsample(
    plane: torch.Tensor, fmt: PlaneFormat, width: int, height: int, siting: Siting, kind: Upsampling
) -> torch.Tensor:
    fx, fy = 1 << fmt.log2_w, 1 << fmt.log2_h
    if fx > 1:
        taps = _upsample_taps(plane.shape[-1], width, fx, _offset(siting, "x", fx), kind)
        plane = _apply(plane, taps, plane.dim() - 1)
    if fy > 1:
        taps = _upsample_taps(plane.shape[-2], height, fy, _offset(siting, "y", fy), kind)
        plane = _apply(plane, taps, plane.dim() - 2)
    return plane


def _downsample(plane: torch.Tensor, fmt: PlaneFormat, siting: Siting) -> torch.Tensor:
    fx, fy = 1 << fmt.log2_w, 1 << fmt.log2_h
    height, width = plane.shape[-2:]
    if fx > 1:
        cw = -(-width // fx)
        taps = _downsample_taps(width, cw, fx, _offset(siting, "x", fx))
        plane = _apply(plane, taps, plane.dim() - 1)
    if fy > 1:
        ch = -(-height // fy)
        taps = _downsample_taps(height, ch, fy, _offset(siting, "y", fy))
        plane = _apply(plane, taps, plane.dim() - 2)
    return plane


# -- conversions -----------------------------------------------------------------------------


def split_planes(
    packed: torch.Tensor, fmt: PlaneFormat, width: int, height: int
) -> list[torch.Tensor]:
    """(N, elements) packed frames -> [(N, H, W), (N, ch, cw), (N, ch, cw)] views."""
    planes = []
    start = 0
    for h, w in fmt.plane_shapes(width, height):
        planes.append(packed[:, start : start + h * w].reshape(-1, h, w))
        start += h * w
    return planes


def _as_float(plane: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if plane.dtype == torch.int16:
        return (plane.to(torch.int32) & 0xFFFF).to(dtype)
    return plane.to(dtype)


def planes_to_rgb(
    packed: torch.Tensor,
    fmt: PlaneFormat,
    width: int,
    height: int,
    color: ColorInfo,
    *,
    siting: Siting = "left",
    upsampling: Upsampling = "bicubic",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Packed integer planes (N, elements) -> full-range RGB (N, 3, H, W) in [0, 1]."""
    if packed.dim() != 2 or packed.shape[1] != fmt.elements(width, height):
        raise ValueError(
            f"expected packed {fmt.pix_fmt} frames shaped (N, {fmt.elements(width, height)}), "
            f"got {tuple(packed.shape)}"
        )
    # Arithmetic in float32 at least: fp16 has too few bits for 16-bit codes.
    work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    y, u, v = (_as_float(p, work) for p in split_planes(packed, fmt, width, height))
    if fmt.family == "gbr":
        top = float((1 << fmt.bits) - 1)
        g, b, r = y, u, v
        rgb = torch.stack([r, g, b], dim=1).div_(top)
        return rgb.clamp_(0, 1).to(dtype)
    y_off, y_span, c_off, c_span = _ranges(fmt.bits, color.full_range)
    u = _upsample(u, fmt, width, height, siting, upsampling)
    v = _upsample(v, fmt, width, height, siting, upsampling)
    yuv = torch.stack([(y - y_off) / y_span, (u - c_off) / c_span, (v - c_off) / c_span], dim=1)
    m = _yuv_to_rgb_matrix(color.matrix).to(packed.device, work)
    rgb = torch.einsum("ij,njhw->nihw", m, yuv)
    return rgb.clamp_(0, 1).to(dtype)


def rgb_to_planes(
    rgb: torch.Tensor,
    fmt: PlaneFormat,
    color: ColorInfo,
    *,
    siting: Siting = "left",
) -> torch.Tensor:
    """Full-range RGB (N, 3, H, W) in [0, 1] -> packed integer planes (N, elements)."""
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"expected RGB frames shaped (N, 3, H, W), got {tuple(rgb.shape)}")
    count = rgb.shape[0]
    # Plain NCHW: the model hands back channels_last, where every plane below is strided.
    x = rgb.float().clamp(0, 1).contiguous()
    top = float((1 << fmt.bits) - 1)
    if fmt.family == "gbr":
        planes = [x[:, 1] * top, x[:, 2] * top, x[:, 0] * top]
    else:
        m = _rgb_to_yuv_matrix(color.matrix).to(rgb.device, torch.float32)
        yuv = torch.einsum("ij,njhw->nihw", m, x)
        y_off, y_span, c_off, c_span = _ranges(fmt.bits, color.full_range)
        planes = [
            yuv[:, 0] * y_span + y_off,
            _downsample(yuv[:, 1], fmt, siting) * c_span + c_off,
            _downsample(yuv[:, 2], fmt, siting) * c_span + c_off,
        ]
    flat = torch.cat([p.round_().clamp_(0, top).reshape(count, -1) for p in planes], dim=1)
    if fmt.deep:
        return flat.to(torch.int32).to(torch.int16)
    return flat.to(torch.uint8)


# -- PyAV frames <-> packed planes ------------------------------------------------------------


def frame_to_packed(
    frame: av.VideoFrame, fmt: PlaneFormat, width: int, height: int, out: np.ndarray | None = None
) -> np.ndarray:
    """A decoded frame's planes, packed into one row (see the module docstring).

    Semi-planar and packed layouts (nv12, p010, yuyv422, rgb24 ...) are repacked by swscale,
    which for the same subsampling and depth moves samples without changing them; a
    mid-stream size change is scaled back to the stream's size.
    """
    if frame.format.name != fmt.pix_fmt or frame.width != width or frame.height != height:
        # One thread: swscale's sliced conversion from p010le (what NVDEC gives for 10-bit)
        # sometimes leaves rows wrong (about 1 in 1000 frames here); a repack is cheap.
        frame = frame.reformat(width, height, fmt.pix_fmt, threads=1)
    if out is None:
        out = np.empty(fmt.elements(width, height), dtype=fmt.numpy_dtype)
    start = 0
    itemsize = np.dtype(fmt.numpy_dtype).itemsize
    for plane, (h, w) in zip(frame.planes, fmt.plane_shapes(width, height), strict=True):
        stride = plane.line_size // itemsize
        data = np.frombuffer(memoryview(plane), dtype=fmt.numpy_dtype).reshape(-1, stride)[:h, :w]
        out[start : start + h * w].reshape(h, w)[...] = data
        start += h * w
    return out


def packed_to_frame(
    packed: np.ndarray, fmt: PlaneFormat, width: int, height: int, pix_fmt: str
) -> av.VideoFrame:
    """Packed planes -> a VideoFrame in the encoder's `pix_fmt` (repacked if it differs)."""
    frame = av.VideoFrame(width, height, fmt.pix_fmt)
    itemsize = np.dtype(fmt.numpy_dtype).itemsize
    data = packed.view(fmt.numpy_dtype)
    start = 0
    for plane, (h, w) in zip(frame.planes, fmt.plane_shapes(width, height), strict=True):
        stride = plane.line_size // itemsize
        target = np.frombuffer(memoryview(plane), dtype=fmt.numpy_dtype).reshape(-1, stride)
        target[:h, :w] = data[start : start + h * w].reshape(h, w)
        # The line padding is uninitialised memory; swscale's vector code reads into it at
        # odd sizes, so it gets the edge column instead of whatever was there.
        target[:h, w:] = target[:h, w - 1 : w]
        start += h * w
    if pix_fmt != fmt.pix_fmt:
        frame = frame.reformat(format=pix_fmt, threads=1)  # see frame_to_packed
    return frame
