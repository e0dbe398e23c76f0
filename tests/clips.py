"""Small generated media files for the tests, and readers that check outputs with PyAV.

Every generator writes one file under the directory it is given and returns a `Clip` with the
path and what a test needs to compare against (frame times, audio packet bytes, tags). Content
is textured and different in every frame (gradients, a moving square and a per-frame phase),
so pixel, frame-order and off-by-one assertions mean something. Luma carries the detail; chroma
is kept smooth so that the choice of chroma upsampling filter does not dominate comparisons.

Readers (`read_video`, `packet_bytes`, ...) look at files with PyAV only, never through vsr.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

# AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic / AVColorRange values.
CS_BT709, CS_BT470BG, CS_SMPTE170M, CS_BT2020NCL = 1, 5, 6, 9
PRI_BT709, PRI_SMPTE170M = 1, 6
TRC_BT709, TRC_SMPTE170M = 1, 6
RANGE_MPEG, RANGE_JPEG = 1, 2

DATA_DIR = Path(__file__).parent / "data"


@dataclass
class Clip:
    """A generated file and the facts a test compares an output against."""

    path: Path
    width: int
    height: int
    frames: int
    # Presentation time of every video frame in seconds, in display order.
    times: list[Fraction] = field(default_factory=list)
    rate: Fraction | None = None
    pix_fmt: str = "yuv420p"
    # Bytes of every audio packet, per input stream index (demux order).
    audio_packets: dict[int, list[bytes]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Content


def luma_pattern(width: int, height: int, index: int, bits: int = 8) -> np.ndarray:
    """A textured, moving luma plane in limited range, as uint8 or uint16 (bits > 8)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    phase = index * 0.9
    base = 0.5 + 0.15 * (x / max(width - 1, 1) - 0.5) - 0.05 * (y / max(height - 1, 1))
    texture = 0.1 * np.sin(x * 0.7 + phase) * np.cos(y * 0.45 - phase * 0.7)
    value = base + texture
    # A checkered square that moves 3 px right and 2 px down per frame (wrapping).
    size = max(4, min(width, height) // 4)
    x0 = (3 * index) % max(width - size, 1)
    y0 = (2 * index) % max(height - size, 1)
    value[y0 : y0 + size, x0 : x0 + size] = 0.82 - 0.2 * (x[y0 : y0 + size, x0 : x0 + size] % 2)
    # Frame-dependent fine detail so neighbouring frames differ everywhere, not just in the square.
    rng = np.random.default_rng(1000 + index)
    value += 0.02 * rng.standard_normal((height, width))
    # Headroom above and below so that YUV->RGB never clips with the chroma below: a pipeline
    # that clamps RGB to [0, 1] then still returns the luma it was given.
    value = np.clip(value, 0.15, 0.85)
    scale = 1 << (bits - 8)
    limited = (16 + 219 * value) * scale
    if bits > 8:
        return np.round(limited).astype(np.uint16)
    return np.round(limited).astype(np.uint8)


def chroma_pattern(width: int, height: int, index: int, bits: int = 8) -> tuple[np.ndarray, ...]:
    """Smooth, slowly moving chroma planes (Cb, Cr) of the given (subsampled) size."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    shift = index * 0.05
    cb = 0.5 + 0.06 * np.sin(x / max(width, 1) * 3.0 + shift) * np.cos(y / max(height, 1) * 2.0)
    cr = 0.5 + 0.06 * np.cos(x / max(width, 1) * 2.0 - shift) * np.sin(y / max(height, 1) * 3.0)
    scale = 1 << (bits - 8)
    dtype = np.uint16 if bits > 8 else np.uint8
    return tuple(np.round((16 + 224 * c) * scale).astype(dtype) for c in (cb, cr))


def rgb_pattern(width: int, height: int, index: int) -> np.ndarray:
    """An RGB uint8 image with the same kind of texture, for stills and RGB codecs."""
    yy = luma_pattern(width, height, index).astype(np.float64)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = yy + 30 * np.sin(x / max(width, 1) * 3.0 + index * 0.1)
    g = yy - 20 * np.cos(y / max(height, 1) * 2.0)
    b = yy + 25 * np.cos((x + y) / max(width + height, 1) * 4.0)
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def make_frame(
    width: int,
    height: int,
    index: int,
    pix_fmt: str = "yuv420p",
    *,
    full_range: bool = False,
) -> av.VideoFrame:
    """A planar YUV frame (yuv420p, yuv444p, yuv420p10le ...) filled with the pattern."""
    frame = av.VideoFrame(width, height, pix_fmt)
    bits = 10 if "10" in pix_fmt else 12 if "12" in pix_fmt else 8
    yplane = luma_pattern(width, height, index, bits)
    if full_range:
        # Stretch the limited-range pattern to the full range so full-range frames use it.
        top = (1 << bits) - 1
        lo, span = 16 << (bits - 8), 219 << (bits - 8)
        yplane = np.clip(np.round((yplane.astype(np.float64) - lo) / span * top), 0, top).astype(
            yplane.dtype
        )
    cw = frame.planes[1].width
    ch = frame.planes[1].height
    cb, cr = chroma_pattern(cw, ch, index, bits)
    for plane, data in zip(frame.planes, (yplane, cb, cr), strict=False):
        _fill_plane(plane, data)
    return frame


def _fill_plane(plane: Any, data: np.ndarray) -> None:
    itemsize = data.dtype.itemsize
    stride = plane.line_size // itemsize
    buf = np.zeros((plane.height, stride), dtype=data.dtype)
    buf[: data.shape[0], : data.shape[1]] = data
    plane.update(buf.tobytes())


# --------------------------------------------------------------------------------------------
# Writers


def _add_video(
    container: Any,
    codec: str,
    width: int,
    height: int,
    *,
    rate: Fraction | int = 25,
    pix_fmt: str = "yuv420p",
    time_base: Fraction | None = None,
    options: dict[str, str] | None = None,
) -> Any:
    stream = container.add_stream(codec, rate=rate)
    stream.width = width
    stream.height = height
    stream.pix_fmt = pix_fmt
    if time_base is not None:
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
    opts = {"preset": "ultrafast"} if codec in ("libx264", "libx265") else {}
    if codec == "libx265":
        opts["x265-params"] = "log-level=error"
    opts.update(options or {})
    stream.codec_context.options = opts
    return stream


def _add_audio(container: Any, codec: str, rate: int, layout: str) -> Any:
    return container.add_stream(codec, rate=rate, layout=layout)


def _encode_audio(container: Any, stream: Any, seconds: float, seed: int) -> None:
    """Encode `seconds` of a tone plus noise into an audio stream (any codec)."""
    rate = stream.codec_context.sample_rate
    layout = stream.codec_context.layout.name
    channels = stream.codec_context.layout.nb_channels
    fmt = stream.codec_context.format.name
    chunk = stream.codec_context.frame_size or 1024
    total = round(seconds * rate)
    rng = np.random.default_rng(seed)
    t = np.arange(total) / rate
    signal = 0.3 * np.sin(2 * np.pi * (440 + 110 * seed) * t)
    data = np.stack([signal * (1 - 0.2 * c) for c in range(channels)]) + 0.02 * rng.standard_normal(
        (channels, total)
    )
    for start in range(0, total, chunk):
        part = data[:, start : start + chunk]
        if fmt in ("s16", "s16p"):
            arr = np.round(part * 32767).astype(np.int16)
        elif fmt in ("s32", "s32p"):
            arr = np.round(part * 2147483647).astype(np.int32)
        else:
            arr = part.astype(np.float32)
        if not fmt.endswith("p"):
            arr = arr.T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt, layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _finish(path: Path, width: int, height: int, **kwargs: Any) -> Clip:
    info = read_video(path, pixels=False)
    audio = {index: packet_bytes(path, index) for index in stream_indices(path, "audio")}
    return Clip(
        path=path,
        width=width,
        height=height,
        frames=len(info.times),
        times=info.times,
        rate=kwargs.pop("rate", None),
        pix_fmt=kwargs.pop("pix_fmt", info.pix_fmt),
        audio_packets=audio,
        extra=kwargs,
    )


def write_video(
    path: Path,
    *,
    width: int = 96,
    height: int = 64,
    frames: int = 12,
    codec: str = "libx264",
    rate: Fraction | int = 25,
    pix_fmt: str = "yuv420p",
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    audio: list[tuple[str, int, str]] | None = None,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    color: dict[str, int] | None = None,
    sar: Fraction | None = None,
    rotation: int | None = None,
    full_range: bool = False,
) -> Clip:
    """The general writer behind most clips: one video stream, optional audio streams."""
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = _add_video(
            out,
            codec,
            width,
            height,
            rate=rate,
            pix_fmt=pix_fmt,
            time_base=time_base,
            options=options,
        )
        ctx = stream.codec_context
        for key, value in (color or {}).items():
            setattr(ctx, key, value)
        if sar is not None:
            ctx.sample_aspect_ratio = sar
        if rotation is not None:
            stream.set_display_rotation(rotation)
        audio_streams = [_add_audio(out, c, r, lay) for c, r, lay in audio or []]
        tb = time_base or Fraction(1, 1) / Fraction(rate)
        for i in range(frames):
            frame = make_frame(width, height, i, pix_fmt, full_range=full_range)
            frame.pts = pts[i] if pts is not None else i
            frame.time_base = tb
            for key, value in (color or {}).items():
                setattr(frame, key, value)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        seconds = float(((pts[-1] + 40) * tb) if pts else frames * tb)
        for n, astream in enumerate(audio_streams):
            _encode_audio(out, astream, seconds, seed=n)
    return _finish(path, width, height, rate=Fraction(rate), pix_fmt=pix_fmt)


def cfr_h264_aac(directory: Path, *, frames: int = 12, ext: str = "mp4") -> Clip:
    """25 fps H.264 with AAC stereo."""
    return write_video(directory / f"cfr25.{ext}", frames=frames, audio=[("aac", 48000, "stereo")])


def ntsc_h264(directory: Path, ext: str = "mp4", *, frames: int = 12) -> Clip:
    """29.97 fps (30000/1001) H.264, with B-frames, in mp4 or mkv."""
    return write_video(
        directory / f"ntsc.{ext}",
        frames=frames,
        rate=Fraction(30000, 1001),
        options={"bf": "2"},
        audio=[("aac", 48000, "stereo")],
    )


VFR_PTS_MS = [0, 33, 70, 140, 150, 230, 260, 300, 390, 400, 433, 520]


def vfr_h264(directory: Path, ext: str = "mkv") -> Clip:
    """H.264 with irregular timestamps (time base 1/1000)."""
    return write_video(
        directory / f"vfr.{ext}",
        frames=len(VFR_PTS_MS),
        rate=25,
        pts=VFR_PTS_MS,
        time_base=Fraction(1, 1000),
        options={"bf": "0"},
        audio=[("aac", 48000, "stereo")],
    )


def hevc_10bit(directory: Path, ext: str = "mkv", *, frames: int = 8) -> Clip:
    """HEVC Main10 (yuv420p10le) whose values use all 10 bits."""
    return write_video(
        directory / f"hevc10.{ext}",
        frames=frames,
        codec="libx265",
        pix_fmt="yuv420p10le",
        options={"x265-params": "log-level=error:lossless=1"},
    )


def multi_track_mkv(directory: Path, *, frames: int = 12, attachment: bool = True) -> Clip:
    """MKV: video, AAC (eng) + FLAC (fra), SRT subtitles, chapters, a font attachment, title."""
    path = directory / ("multi.mkv" if attachment else "multi_noattach.mkv")
    subs = [(0, 150, "Hello, world"), (200, 120, "Deuxième ligne\nsur deux lignes")]
    chapters = [(0, 200, "Intro"), (200, 480, "Main part")]
    font = b"\x00\x01\x00\x00" + bytes(range(256)) * 4
    with av.open(str(path), "w") as out:
        out.metadata["title"] = "vsr test clip"
        out.metadata["comment"] = "generated by tests/clips.py"
        video = _add_video(out, "libx264", 96, 64)
        video.metadata["title"] = "Main video"
        a1 = _add_audio(out, "aac", 48000, "stereo")
        a1.metadata["language"] = "eng"
        a1.metadata["title"] = "English stereo"
        a1.disposition = av.stream.Disposition.default
        a2 = _add_audio(out, "flac", 44100, "mono")
        a2.metadata["language"] = "fra"
        a2.metadata["title"] = "Français"
        sub = out.add_mux_stream("subrip")
        sub.time_base = Fraction(1, 1000)
        sub.metadata["language"] = "eng"
        sub.metadata["title"] = "Subtitles"
        sub.disposition = av.stream.Disposition.forced
        if attachment:
            out.add_attachment("DejaVuTest.ttf", "application/x-truetype-font", font)
        out.set_chapters(
            [
                {
                    "id": n + 1,
                    "start": start,
                    "end": end,
                    "time_base": Fraction(1, 1000),
                    "metadata": {"title": title},
                }
                for n, (start, end, title) in enumerate(chapters)
            ]
        )
        for i in range(frames):
            frame = make_frame(96, 64, i)
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        _encode_audio(out, a1, frames / 25, seed=0)
        _encode_audio(out, a2, frames / 25, seed=1)
        for start, duration, text in subs:
            packet = av.Packet(text.encode())
            packet.stream = sub
            packet.pts = packet.dts = start
            packet.duration = duration
            packet.time_base = Fraction(1, 1000)
            out.mux(packet)
    return _finish(
        path,
        96,
        64,
        rate=Fraction(25),
        subtitles=subs,
        chapters=chapters,
        attachment=("DejaVuTest.ttf", "application/x-truetype-font", font),
        title="vsr test clip",
    )


def rotated(directory: Path, ext: str = "mp4", degrees: int = 90) -> Clip:
    """Display rotation metadata (a phone video held upright)."""
    return write_video(directory / f"rot{degrees}.{ext}", frames=8, rotation=degrees)


def bt709_full_range(directory: Path, ext: str = "mp4") -> Clip:
    """Full-range (JPEG) BT.709 tagged H.264."""
    color = {
        "colorspace": CS_BT709,
        "color_primaries": PRI_BT709,
        "color_trc": TRC_BT709,
        "color_range": RANGE_JPEG,
    }
    return write_video(
        directory / f"bt709full.{ext}",
        frames=8,
        pix_fmt="yuv420p",
        color=color,
        full_range=True,
    )


def bt601_limited(directory: Path, ext: str = "mkv") -> Clip:
    """Limited-range BT.601 (SMPTE 170M) tagged H.264."""
    color = {
        "colorspace": CS_SMPTE170M,
        "color_primaries": PRI_SMPTE170M,
        "color_trc": TRC_SMPTE170M,
        "color_range": RANGE_MPEG,
    }
    return write_video(directory / f"bt601.{ext}", frames=8, color=color)


def bt709_limited(directory: Path, ext: str = "mkv", *, codec: str = "libx264") -> Clip:
    color = {
        "colorspace": CS_BT709,
        "color_primaries": PRI_BT709,
        "color_trc": TRC_BT709,
        "color_range": RANGE_MPEG,
    }
    return write_video(directory / f"bt709.{ext}", frames=8, color=color, codec=codec)


def anamorphic(directory: Path, ext: str = "mkv") -> Clip:
    """Non-square pixels: SAR 4:3 (e.g. a DV-like source)."""
    return write_video(directory / f"sar.{ext}", frames=6, sar=Fraction(4, 3))


def interlaced(directory: Path) -> Clip:
    """Interlaced H.264 (top field first): what a TV capture looks like."""
    return write_video(
        directory / "interlaced.mkv", frames=6, options={"x264-params": "tff=1", "bf": "0"}
    )


def odd_size(directory: Path, *, width: int = 63, height: int = 47) -> Clip:
    """Odd width and height (FFV1 yuv420p in MKV: H.264 4:2:0 cannot hold odd sizes)."""
    return write_video(
        directory / f"odd{width}x{height}.mkv",
        width=width,
        height=height,
        frames=6,
        codec="ffv1",
    )


def lossless_ffv1(
    directory: Path,
    *,
    width: int = 80,
    height: int = 48,
    frames: int = 8,
    pix_fmt: str = "yuv444p",
    name: str = "lossless.mkv",
) -> Clip:
    """FFV1: decoded input equals what was generated; the tightest pixel reference."""
    return write_video(
        directory / name, width=width, height=height, frames=frames, codec="ffv1", pix_fmt=pix_fmt
    )


def long_clip(directory: Path, *, frames: int = 400, width: int = 320, height: int = 240) -> Clip:
    """Long enough that a run takes seconds (for Ctrl-C tests)."""
    return write_video(directory / "long.mp4", width=width, height=height, frames=frames)


def alpha_clip(directory: Path) -> Clip:
    """A video with an alpha channel: QuickTime Animation (qtrle, argb) in .mov."""
    path = directory / "alpha.mov"
    width, height, frames = 64, 48, 6
    with av.open(str(path), "w") as out:
        stream = out.add_stream("qtrle", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "argb"
        for i in range(frames):
            rgb = rgb_pattern(width, height, i)
            alpha = np.full((height, width, 1), 255, np.uint8)
            alpha[:, : width // 3] = 0
            alpha[:, width // 3 : 2 * width // 3] = 128
            rgba = np.concatenate([rgb, alpha], axis=-1)
            frame = av.VideoFrame.from_ndarray(rgba, format="rgba").reformat(format="argb")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return _finish(path, width, height, rate=Fraction(25), pix_fmt="argb")


# --------------------------------------------------------------------------------------------
# Stills


def still_png(directory: Path, *, bits: int = 8, alpha: bool = False) -> Clip:
    width, height = 40, 30
    rgb = rgb_pattern(width, height, 3)
    if bits == 16:
        # Spread values over 16 bits with low bits that are not zero.
        img = rgb.astype(np.uint16) * 257 + np.arange(width, dtype=np.uint16)[None, :, None] * 3
    else:
        img = rgb
    if alpha:
        a = np.full((height, width, 1), np.iinfo(img.dtype).max, img.dtype)
        a[:, : width // 2] = np.iinfo(img.dtype).max // 2
        img = np.concatenate([img, a], axis=-1)
    name = f"still{bits}{'a' if alpha else ''}.png"
    path = directory / name
    # OpenCV writes BGR(A).
    order = [2, 1, 0, 3] if alpha else [2, 1, 0]
    cv2.imwrite(str(path), img[..., order])
    return Clip(path=path, width=width, height=height, frames=1, extra={"pixels": img})


def still_jpeg(directory: Path) -> Clip:
    width, height = 48, 32
    rgb = rgb_pattern(width, height, 5)
    path = directory / "still.jpg"
    cv2.imwrite(str(path), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    return Clip(path=path, width=width, height=height, frames=1, extra={"pixels": rgb})


# --------------------------------------------------------------------------------------------
# Bad inputs


def text_as_mp4(directory: Path) -> Path:
    path = directory / "notes.mp4"
    path.write_text("This is a text file, not a video.\n" * 20)
    return path


def audio_only(directory: Path) -> Path:
    path = directory / "song.m4a"
    with av.open(str(path), "w") as out:
        stream = _add_audio(out, "aac", 48000, "stereo")
        _encode_audio(out, stream, 0.5, seed=3)
    return path


def zero_frames(directory: Path) -> Path:
    """An MKV with a declared H.264 video stream (and audio) but not a single video frame."""
    path = directory / "empty.mkv"
    with av.open(str(path), "w") as out:
        _add_video(out, "libx264", 64, 48)
        audio = _add_audio(out, "aac", 48000, "stereo")
        _encode_audio(out, audio, 0.3, seed=4)
    return path


def truncated(source: Path, directory: Path, fraction: float = 0.6) -> Path:
    """The first `fraction` of a file's bytes, as left by an interrupted download or copy."""
    data = source.read_bytes()
    path = directory / f"truncated_{source.name}"
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def faststart_mp4(directory: Path, *, frames: int = 25) -> Clip:
    """An mp4 with the index (moov) first, so a truncated copy still opens."""
    return write_video(
        directory / "faststart.mp4",
        frames=frames,
        container_options={"movflags": "faststart"},
        audio=[("aac", 48000, "stereo")],
    )


def corrupt_mid_stream(directory: Path, *, frames: int = 20, frame_index: int = 10) -> Clip:
    """An intra-only H.264 MKV whose packet `frame_index` has its slice data overwritten.

    All-intra so that exactly one frame is damaged and every other one decodes.
    """
    clip = write_video(
        directory / "corrupt.mkv",
        frames=frames,
        options={"g": "1", "bf": "0", "tune": "zerolatency"},
    )
    data = bytearray(clip.path.read_bytes())
    with av.open(str(clip.path)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
        target = packets[frame_index]
        assert target.pos is not None and target.pos > 0
        pos, size = int(target.pos), target.size
    # Keep the first bytes (NAL header, slice header start) so the decoder tries the slice and
    # fails inside it; replace the rest of the packet with bytes no slice can parse as.
    start = pos + 16
    end = pos + size - 4
    rng = np.random.default_rng(7)
    data[start:end] = bytes(rng.integers(0, 256, end - start, dtype=np.uint8))
    # Long runs of zeros create emulation-prevention errors the decoder always notices.
    mid = (start + end) // 2
    data[mid : mid + 32] = bytes(32)
    clip.path.write_bytes(bytes(data))
    clip.extra["corrupt_frame"] = frame_index
    clip.extra["corrupt_time"] = clip.times[frame_index]
    return clip


def unsupported_codec(directory: Path) -> Path:
    """An MKV whose video track names a codec FFmpeg does not know (CodecID rewritten).

    The file is otherwise intact: same size, same packets; only the track's CodecID string
    "V_MPEG4/ISO/AVC" is replaced by an unknown one of the same length.
    """
    clip = write_video(directory / "unsupported.mkv", frames=4)
    data = clip.path.read_bytes()
    old = b"V_MPEG4/ISO/AVC"
    assert data.count(old) == 1
    clip.path.write_bytes(data.replace(old, b"V_VSR/NOT/A/COD"))
    return clip.path


def theora_empty_packets() -> Path:
    """A real Ogg/Theora file (libtheora) whose stream has zero-size packets (dropped frames).

    PyAV's wheel has no Theora encoder, so the 6 KB file is kept in tests/data; see the README
    there for how it was made. `container.decode()` raises on it; skipping empty packets decodes
    all 5 coded frames.
    """
    return DATA_DIR / "theora_empty_packets.ogv"


def copy_to(source: Path, directory: Path) -> Path:
    target = directory / source.name
    shutil.copyfile(source, target)
    return target


# --------------------------------------------------------------------------------------------
# Readers (PyAV only)


@dataclass
class VideoRead:
    """What a test needs from a file's first video stream."""

    times: list[Fraction]
    time_base: Fraction
    width: int
    height: int
    pix_fmt: str
    codec: str
    average_rate: Fraction | None
    sar: Fraction | None
    rotation: list[float]
    color: dict[str, int]
    frames: list[av.VideoFrame]
    duration: float | None
    planes: list[list[np.ndarray]]


def stream_indices(path: Path, kind: str) -> list[int]:
    with av.open(str(path)) as container:
        return [s.index for s in container.streams if s.type == kind]


def plane_arrays(frame: av.VideoFrame) -> list[np.ndarray]:
    """Each plane of a frame as a 2-D array without line padding (uint8 or uint16)."""
    result = []
    bytes_per = 2 if frame.format.name.endswith(("10le", "12le", "16le")) else 1
    dtype = np.uint16 if bytes_per == 2 else np.uint8
    for plane in frame.planes:
        arr = np.frombuffer(bytes(plane), dtype=dtype)
        arr = arr.reshape(plane.height, plane.line_size // bytes_per)
        result.append(arr[:, : plane.width].copy())
    return result


def read_video(path: Path, *, pixels: bool = True, stream: int | None = None) -> VideoRead:
    """Decode the first (or given) video stream, skipping empty packets as a player would."""
    container: Any
    with av.open(str(path)) as container:
        vs: Any = container.streams.video[0] if stream is None else container.streams[stream]
        times: list[Fraction] = []
        frames: list[av.VideoFrame] = []
        planes: list[list[np.ndarray]] = []
        rotation: list[float] = []
        color: dict[str, int] = {}
        for packet in container.demux(vs):
            if packet.size == 0 and packet.pts is not None:
                continue
            for frame in packet.decode():
                assert frame.pts is not None
                times.append(Fraction(frame.pts) * frame.time_base)
                rotation.append(float(frame.rotation))
                if not color:
                    color = {
                        "colorspace": int(frame.colorspace),
                        "color_range": int(frame.color_range),
                        "color_primaries": int(frame.color_primaries),
                        "color_trc": int(frame.color_trc),
                    }
                if pixels:
                    frames.append(frame)
                    planes.append(plane_arrays(frame))
        ctx = vs.codec_context
        sar = vs.sample_aspect_ratio or ctx.sample_aspect_ratio
        duration = float(container.duration / av.time_base) if container.duration else None
        return VideoRead(
            times=sorted(times),
            time_base=vs.time_base,
            width=ctx.width,
            height=ctx.height,
            pix_fmt=ctx.pix_fmt or "",
            codec=ctx.name,
            average_rate=vs.average_rate,
            sar=Fraction(sar) if sar else None,
            rotation=rotation,
            color=color,
            frames=frames,
            duration=duration,
            planes=planes,
        )


def packet_bytes(path: Path, index: int) -> list[bytes]:
    """The payload of every non-empty packet of one stream, in file order."""
    with av.open(str(path)) as container:
        stream = container.streams[index]
        return [bytes(p) for p in container.demux(stream) if p.size]


def packet_times(path: Path, index: int) -> list[Fraction]:
    container: Any
    with av.open(str(path)) as container:
        stream = container.streams[index]
        return [
            Fraction(p.pts) * p.time_base
            for p in container.demux(stream)
            if p.size and p.pts is not None
        ]


def stream_summary(path: Path) -> list[dict[str, Any]]:
    """Type, codec, language, title and disposition of every stream."""
    with av.open(str(path)) as container:
        rows = []
        for s in container.streams:
            rows.append(
                {
                    "type": s.type,
                    "codec": s.codec_context.name if s.codec_context is not None else None,
                    "language": s.metadata.get("language"),
                    "title": s.metadata.get("title"),
                    "disposition": int(s.disposition),
                }
            )
        return rows


def subtitle_texts(path: Path) -> list[tuple[Fraction, Fraction, str]]:
    """(start, duration, text) of every subtitle packet of the first subtitle stream."""
    container: Any
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        return [
            (
                Fraction(p.pts) * p.time_base,
                Fraction(p.duration) * p.time_base,
                bytes(p).decode("utf-8"),
            )
            for p in container.demux(stream)
            if p.size
        ]


def chapters_of(path: Path) -> list[tuple[Fraction, Fraction, str]]:
    container: Any
    with av.open(str(path)) as container:
        return [
            (
                Fraction(c["start"]) * c["time_base"],
                Fraction(c["end"]) * c["time_base"],
                c["metadata"].get("title", ""),
            )
            for c in container.chapters()
        ]


def attachments_of(path: Path) -> list[tuple[str, str, bytes]]:
    container: Any
    with av.open(str(path)) as container:
        return [(s.name, s.mimetype, bytes(s.data)) for s in container.streams.attachments]


# --------------------------------------------------------------------------------------------
# Colour maths for references


_KR_KB = {
    CS_BT709: (0.2126, 0.0722),
    CS_BT470BG: (0.299, 0.114),
    CS_SMPTE170M: (0.299, 0.114),
    CS_BT2020NCL: (0.2627, 0.0593),
}


def yuv_to_rgb(
    planes: list[np.ndarray], *, colorspace: int, color_range: int, bits: int = 8
) -> np.ndarray:
    """YUV planes (any chroma subsampling) to float RGB in [0, 1] with the given matrix/range.

    Unspecified tags mean BT.601 limited, as FFmpeg assumes for SD-sized content.
    """
    kr, kb = _KR_KB.get(colorspace, (0.299, 0.114))
    kg = 1 - kr - kb
    height, width = planes[0].shape
    y = planes[0].astype(np.float64)
    cb = cv2.resize(planes[1].astype(np.float64), (width, height), interpolation=cv2.INTER_LINEAR)
    cr = cv2.resize(planes[2].astype(np.float64), (width, height), interpolation=cv2.INTER_LINEAR)
    scale = 1 << (bits - 8)
    if color_range == RANGE_JPEG:
        top = (1 << bits) - 1
        y = y / top
        cb = (cb - 128 * scale) / top
        cr = (cr - 128 * scale) / top
    else:
        y = (y - 16 * scale) / (219 * scale)
        cb = (cb - 128 * scale) / (224 * scale)
        cr = (cr - 128 * scale) / (224 * scale)
    r = y + 2 * (1 - kr) * cr
    b = y + 2 * (1 - kb) * cb
    g = (y - kr * r - kb * b) / kg
    return np.clip(np.stack([r, g, b], axis=-1), 0, 1)


def luma_to_unit(y: np.ndarray, *, color_range: int, bits: int = 8) -> np.ndarray:
    """A luma plane as float in [0, 1] (black to white), for comparisons across ranges."""
    scale = 1 << (bits - 8)
    if color_range == RANGE_JPEG:
        return y.astype(np.float64) / ((1 << bits) - 1)
    return (y.astype(np.float64) - 16 * scale) / (219 * scale)


def bicubic(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The reference upscale: OpenCV bicubic on float data."""
    return cv2.resize(image.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak * peak / mse)


def bits_of(pix_fmt: str) -> int:
    return av.VideoFormat(pix_fmt).components[0].bits


# --------------------------------------------------------------------------------------------
# Comparisons of an output against its input


def _unit_luma(read: VideoRead) -> list[np.ndarray]:
    bits = bits_of(read.pix_fmt)
    rng = read.color.get("color_range", 0)
    if read.pix_fmt.startswith("yuvj"):
        rng = RANGE_JPEG
    return [luma_to_unit(p[0], color_range=rng, bits=bits) for p in read.planes]


def _unit_rgb(read: VideoRead) -> list[np.ndarray]:
    bits = bits_of(read.pix_fmt)
    rng = read.color.get("color_range", 0)
    if read.pix_fmt.startswith("yuvj"):
        rng = RANGE_JPEG
    cs = read.color.get("colorspace", 2)
    return [yuv_to_rgb(p, colorspace=cs, color_range=rng, bits=bits) for p in read.planes]


def frame_scores(src: Path, out: Path, *, rgb: bool = False) -> list[list[float]]:
    """PSNR (dB, unit range) of every output frame k against the bicubic reference of every
    input frame j: scores[k][j]. Luma by default (independent of chroma filters), or RGB.
    """
    a = read_video(src)
    b = read_video(out)
    ins = _unit_rgb(a) if rgb else _unit_luma(a)
    outs = _unit_rgb(b) if rgb else _unit_luma(b)
    height, width = outs[0].shape[:2]
    refs = [bicubic(x, width, height) for x in ins]
    return [[psnr(o, r) for r in refs] for o in outs]


def check_pixels_and_order(
    src: Path, out: Path, *, min_psnr: float, margin: float = 6.0, rgb: bool = False
) -> list[float]:
    """Every output frame k matches bicubic(input frame k) and not its neighbours k-1, k+1."""
    scores = frame_scores(src, out, rgb=rgb)
    count = len(scores[0])
    assert len(scores) == count, f"expected {count} output frames, got {len(scores)}"
    diagonal = [scores[k][k] for k in range(count)]
    worst = min(diagonal)
    assert worst >= min_psnr, (
        f"output frame {diagonal.index(worst)} is {worst:.1f} dB from the bicubic reference, "
        f"expected at least {min_psnr} dB (all: {[round(d, 1) for d in diagonal]})"
    )
    for k in range(count):
        for j in (k - 1, k + 1):
            if 0 <= j < count:
                assert scores[k][k] >= scores[k][j] + margin, (
                    f"output frame {k} looks like input frame {j} "
                    f"({scores[k][j]:.1f} dB) about as much as frame {k} ({scores[k][k]:.1f} dB)"
                )
    return diagonal


def check_times(src: Path, out: Path, *, max_shift: float = 0.0) -> None:
    """Same number of frames, each at the input's time to within half a tick of the output.

    `max_shift` allows the whole timeline to move by a constant (seconds): MKV cannot hold the
    negative timestamps of AAC priming in MP4, so the muxer shifts every stream by the same
    amount. Sync between streams is checked separately (`check_av_sync`).
    """
    a = read_video(src, pixels=False)
    b = read_video(out, pixels=False)
    assert len(b.times) == len(a.times), f"expected {len(a.times)} frames, got {len(b.times)}"
    half_tick = b.time_base / 2
    shift = b.times[0] - a.times[0]
    assert abs(shift) <= half_tick + Fraction(max_shift), (
        f"the first frame moved from {float(a.times[0]):.6f} s to {float(b.times[0]):.6f} s"
    )
    if abs(shift) <= half_tick:
        shift = Fraction(0)
    for k, (t_in, t_out) in enumerate(zip(a.times, b.times, strict=True)):
        assert abs(t_in + shift - t_out) <= half_tick, (
            f"frame {k}: expected time {float(t_in + shift):.6f} s, got {float(t_out):.6f} s "
            f"(output time base {b.time_base})"
        )


def check_av_sync(src: Path, out: Path, src_audio: int, out_audio: int) -> None:
    """The first audio packet starts at the same offset from the first video frame as before."""
    a_video = read_video(src, pixels=False).times[0]
    b_video = read_video(out, pixels=False).times[0]
    a_audio = packet_times(src, src_audio)[0]
    b_audio = packet_times(out, out_audio)[0]
    tolerance = Fraction(1, 1000)
    assert abs((a_audio - a_video) - (b_audio - b_video)) <= tolerance, (
        f"audio starts {float(b_audio - b_video):+.4f} s from the video, "
        f"expected {float(a_audio - a_video):+.4f} s"
    )


def x264_settings(path: Path) -> dict[str, str]:
    """The settings libx264 wrote into the stream (its user-data SEI: "... options: k=v ...")."""
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            data = bytes(packet)
            start = data.find(b"x264 - core")
            if start >= 0:
                text = data[start:].split(b"\x00", 1)[0].decode("ascii", "replace")
                options = text.split("options:", 1)[1] if "options:" in text else ""
                pairs = (item.partition("=") for item in options.split())
                return {k: v for k, _, v in pairs}
            break
    return {}


def ogg_audio_before_zero() -> Path:
    """A real Ogg (Theora + Vorbis) whose audio starts 4.3 s before the video; see tests/data."""
    return DATA_DIR / "ogg_audio_before_zero.ogv"


def audio_before_zero(directory: Path, *, lead: float = 4.3, ext: str = "mkv") -> Clip:
    """2 s of 25 fps H.264 from 0 and FLAC audio from -`lead` s, with a marker burst at 0.

    The audio is silent except for a 50 ms burst that starts exactly at t = 0 (with the first
    video frame), so an output's sync can be measured: see `audio_marker_offset`.
    """
    path = directory / f"audio_before_zero.{ext}"
    rate = 48000
    # Matroska keeps negative timestamps only when the muxer is told not to shift them.
    with av.open(str(path), "w", options={"avoid_negative_ts": "disabled"}) as out:
        video = _add_video(out, "libx264", 96, 64)
        audio = out.add_stream("flac", rate=rate, layout="mono")
        for i in range(50):
            frame = make_frame(96, 64, i, "yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        start, total = -round(lead * rate), round((lead + 2.0) * rate)
        t = (start + np.arange(total)) / rate
        signal = np.where((t >= 0) & (t < 0.05), 0.8, 0.0).astype(np.float32)
        size = audio.codec_context.frame_size or 4608
        fmt = audio.codec_context.format.name
        for offset in range(0, total, size):
            part = signal[None, offset : offset + size]
            samples = np.round(part * 32767).astype(np.int16) if fmt.startswith("s16") else part
            frame = av.AudioFrame.from_ndarray(samples, format=fmt, layout="mono")
            frame.sample_rate, frame.pts = rate, start + offset
            frame.time_base = Fraction(1, rate)
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return _finish(path, 96, 64, rate=Fraction(25), lead=lead)


def audio_marker_offset(path: Path) -> float:
    """Seconds from the first video frame to the audio's marker burst (0 when in sync)."""
    with av.open(str(path)) as container:
        first = min(float(f.pts * f.time_base) for f in container.decode(video=0))
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            loud = np.nonzero(np.abs(frame.to_ndarray()[0]) > 0.4)[0]
            if len(loud):
                return float(frame.pts * frame.time_base) + loud[0] / frame.sample_rate - first
    raise AssertionError(f"{path}: no marker in the audio")


def packed_bframes_avi(directory: Path, *, frames: int = 24) -> Clip:
    """An AVI of MPEG-4 Part 2 with DivX-style packed B-frames, as DivX/Xvid wrote them.

    FFmpeg's encoders never pack, so the packing is done here the way DivX did: each
    reference frame's packet also carries the B-frame that follows it in decode order, the
    B-frame's own slot holds a not-coded VOP, and the stream's user data says
    "DivX503b1393p" (the final "p" is the packed flag FFmpeg's decoder and
    `mpeg4_unpack_bframes` look for).
    """
    width, height = 96, 64
    encoder: Any = av.CodecContext.create("mpeg4", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base, encoder.framerate = Fraction(1, 25), Fraction(25)
    encoder.max_b_frames = 1
    encoder.options = {"bf": "1", "g": "12", "flags": "+bitexact"}
    coded: list[bytes] = []
    for i in range(frames):
        frame = make_frame(width, height, i, "yuv420p")
        frame.pts, frame.time_base = i, Fraction(1, 25)
        coded += [bytes(p) for p in encoder.encode(frame)]
    coded += [bytes(p) for p in encoder.encode(None)]
    vop = b"\x00\x00\x01\xb6"
    kinds = [p[p.find(vop) + 4] >> 6 for p in coded]  # 0 I, 1 P, 2 B
    packets: list[tuple[bytes, bool]] = []
    i = 0
    while i < len(coded):
        if i + 1 < len(coded) and kinds[i] != 2 and kinds[i + 1] == 2:
            packets.append((coded[i] + coded[i + 1], kinds[i] == 0))
            packets.append((_not_coded_vop(coded[i + 1], time_bits=5), False))
            i += 2
        else:
            packets.append((coded[i], kinds[i] == 0))
            i += 1
    tag = b"\x00\x00\x01\xb2DivX503b1393p"
    path = directory / "packed_bframes.avi"
    with av.open(str(path), "w", format="avi") as out:
        stream: Any = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for n, (data, key) in enumerate(packets):
            if key:
                data = data[: data.find(vop)] + tag + data[data.find(vop) :]
            packet = av.Packet(data)
            packet.pts = packet.dts = n
            packet.time_base = Fraction(1, 25)
            packet.is_keyframe = key
            packet.stream = stream
            out.mux(packet)
    return Clip(path, width, height, frames, times=[Fraction(i, 25) for i in range(frames)])


def _not_coded_vop(b_frame: bytes, *, time_bits: int) -> bytes:
    """A VOP header with vop_coded = 0 and the B-frame's time (what DivX put in its slot)."""
    start = b_frame.find(b"\x00\x00\x01\xb6") + 4
    bits = "".join(f"{byte:08b}" for byte in b_frame[start : start + 8])
    pos = 2  # vop_coding_type
    modulo = 0
    while bits[pos] == "1":
        modulo += 1
        pos += 1
    pos += 2  # the 0 ending modulo_time_base, then a marker bit
    increment = bits[pos : pos + time_bits]
    out = "01" + "1" * modulo + "0" + "1" + increment + "1" + "0"
    out += "0" + "1" * ((8 - (len(out) + 1) % 8) % 8)  # MPEG-4 stuffing
    return b"\x00\x00\x01\xb6" + int(out, 2).to_bytes(len(out) // 8, "big")


def bframes_with_damage(directory: Path, *, seed: int = 3, size: int = 2000) -> Clip:
    """H.264 with B-frames (bf 3, two GOPs) and `size` random bytes written over packet 20.

    Frame threads report a bad packet's error packets later, and B-frames reorder; the
    clip's `times` are the demuxed packets' presentation times, the slots an output with
    --skip-corrupt must fill exactly once each.
    """
    clip = write_video(
        directory / "bframes.mp4",
        frames=48,
        width=128,
        height=96,
        options={"bf": "3", "g": "24", "preset": "medium"},
    )
    data = bytearray(clip.path.read_bytes())
    with av.open(str(clip.path)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
        offset = int(packets[20].pos or 0)
    assert offset > 0
    rng = np.random.default_rng(seed)
    data[offset : offset + size] = bytes(rng.integers(0, 256, size, dtype=np.uint8))
    path = directory / "bframes_damaged.mp4"
    path.write_bytes(bytes(data))
    return Clip(path, 128, 96, clip.frames, times=clip.times)
