"""H.264 through RGB: a clip rewritten frame by frame through a function of the pixels.

What `vsr eval --degrade` and training need from the encoder, without the upscale pipeline's
stream plans: every frame decoded to RGB with the source's own colour (as the pipeline decodes
it), handed to a function, and encoded back with libx264, keeping timestamps and colour tags;
audio is copied. `codec_roundtrip` does the same for frames in memory (H.264 or MPEG-2).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import numpy as np

from vsr.errors import EmptyInputError, EncoderError, NotMediaError, NoVideoStreamError, OutputError
from vsr.media.color import CONVERT_FLAGS, ColorInfo, from_rgb, resolve_color
from vsr.media.frames import frame_rgb


class FrameMap(Protocol):
    """What happens to each frame: its output size, then uint8 RGB in, uint8 RGB out."""

    def size(self, width: int, height: int) -> tuple[int, int]:
        """The output size for a source of this size (raise to refuse the source)."""
        ...

    def __call__(self, rgb: np.ndarray) -> np.ndarray: ...


# What each round-trip codec takes as its quality knob, and how: libx264 a CRF (0-51, lower is
# better), MPEG-2 a fixed quantiser scale (2-31, lower is better; DVD-era encoders ran ~3-8).
ROUNDTRIP_CODECS: dict[str, tuple[int, int]] = {"h264": (0, 51), "mpeg2": (2, 31)}


def codec_roundtrip(frames: np.ndarray, codec: str, quality: int) -> np.ndarray:
    """Encode (N, H, W, 3) uint8 RGB with ``codec`` in memory and decode it back (same shape).

    ``quality`` is the CRF for "h264" and the quantiser scale for "mpeg2"
    (see ROUNDTRIP_CODECS). Training uses this to show the network real block, ringing and
    motion-compensation damage, in the 4:2:0 chroma that real footage has.
    """
    if codec not in ROUNDTRIP_CODECS:
        raise EncoderError(
            f"expected a round-trip codec in {sorted(ROUNDTRIP_CODECS)}, got {codec!r}"
        )
    low, high = ROUNDTRIP_CODECS[codec]
    if not low <= quality <= high:
        raise EncoderError(f"expected a {codec} quality in {low}-{high}, got {quality}")
    n, h, w = frames.shape[:3]
    # 4:2:0 needs even sizes; 4:4:4 keeps odd ones exact (chroma damage is then milder).
    # MPEG-2 has no 4:4:4 profile in common use: odd sizes are padded by one edge row/column.
    even = h % 2 == 0 and w % 2 == 0
    if codec == "mpeg2" and not even:
        padded = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        return codec_roundtrip(padded, codec, quality)[:, :h, :w]
    pix_fmt = "yuv420p" if even else "yuv444p"
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        if codec == "h264":
            stream = out.add_stream("libx264", rate=25)
            stream.options = {"crf": str(quality), "preset": "veryfast"}
        else:
            stream = out.add_stream("mpeg2video", rate=25)
            # A fixed quantiser (qmin = qmax) rather than a bitrate: the damage then depends on
            # the quality drawn, not on how busy the clip is. GOP 12 with B-frames, like DVDs.
            stream.codec_context.qmin = stream.codec_context.qmax = quality
            stream.codec_context.gop_size = 12
            stream.codec_context.max_b_frames = 2
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.codec_context.colorspace = 5
        stream.codec_context.color_range = 1
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame = frame.reformat(
                format=pix_fmt, dst_colorspace=5, dst_color_range=1, interpolation=CONVERT_FLAGS
            )
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    buf.seek(0)
    decoded = []
    with av.open(buf, "r") as inp:
        for frame in inp.decode(video=0):
            decoded.append(
                frame.to_ndarray(
                    format="rgb24", src_colorspace=5, src_color_range=1, interpolation=CONVERT_FLAGS
                )
            )
    if len(decoded) != n:
        raise EncoderError(f"{codec} round trip returned {len(decoded)} frames for {n}")
    return np.stack(decoded)


def _output_color(
    cc: av.video.codeccontext.VideoCodecContext, pix_fmt: str, height: int
) -> ColorInfo:
    """The source's colour (matrix, range, primaries, transfer), to tag the output with
    explicitly: a player guessing from a smaller size could pick another matrix."""
    color = resolve_color(
        matrix=int(cc.colorspace),
        primaries=int(cc.color_primaries),
        trc=int(cc.color_trc),
        color_range=int(cc.color_range),
        pix_fmt=cc.pix_fmt or "yuv420p",
        height=cc.height,
    )
    if color.matrix == 0:
        # An RGB source written as YUV: the matrix players assume for the output size.
        color = resolve_color(
            matrix=2,
            primaries=color.primaries,
            trc=color.trc,
            color_range=0,
            pix_fmt=pix_fmt,
            height=height,
        )
    return color


@dataclass(frozen=True)
class H264Settings:
    """The libx264 encode of `rewrite_h264`."""

    crf: int
    preset: str
    max_frames: int | None = None  # None: every frame


def rewrite_h264(
    src: Path, dst: Path, frames: FrameMap, settings: H264Settings
) -> tuple[int, tuple[int, int]]:
    """Write ``dst`` (under a temporary name, renamed when complete): the first video stream
    of ``src`` through ``frames``, encoded by libx264; audio copied.

    Every frame keeps its timestamp (same time base and pts). Returns (frames written,
    (width, height)). Raises NotMediaError, NoVideoStreamError, OutputError, EmptyInputError
    (nothing decodable) and EncoderError ("cannot write the LR clip": its one caller's words).
    """
    try:
        inp = av.open(str(src))
    except av.FFmpegError as exc:
        raise NotMediaError(f"not a media file FFmpeg can read ({exc})", path=src) from exc
    tmp = dst.with_name(f".{dst.name}.partial{dst.suffix}")
    try:
        with inp:
            count, size = _rewrite(inp, src, dst, tmp, frames, settings)
        if count == 0:
            raise EmptyInputError("has a video stream but no decodable frames", path=src)
        tmp.replace(dst)
    except av.FFmpegError as exc:
        raise EncoderError(f"cannot write the LR clip ({exc})", path=dst) from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return count, size


@dataclass
class _Target:
    """The output file being written, and how frames are made for it."""

    out: av.container.OutputContainer
    video: Any
    audio: dict[int, Any]  # input stream index -> output stream
    color: ColorInfo
    pix_fmt: str
    time_base: Fraction


def _rewrite(
    inp: av.container.InputContainer,
    src: Path,
    dst: Path,
    tmp: Path,
    frames: FrameMap,
    settings: H264Settings,
) -> tuple[int, tuple[int, int]]:
    if not inp.streams.video:
        raise NoVideoStreamError("has no video stream", path=src)
    vin = inp.streams.video[0]
    vin.thread_type = "AUTO"
    audio_in = list(inp.streams.audio)
    cc = vin.codec_context
    out_w, out_h = frames.size(cc.width, cc.height)
    pix_fmt = "yuv420p" if out_w % 2 == 0 and out_h % 2 == 0 else "yuv444p"
    # Resolved before anything is muxed: the MP4 header (written with the first packet,
    # often an audio one) carries the video's colour tags.
    color = _output_color(cc, pix_fmt, out_h)
    try:
        out = av.open(str(tmp), "w")
    except av.FFmpegError as exc:
        raise OutputError(f"cannot create the output ({exc})", path=dst) from exc
    with out:
        rate = vin.average_rate or vin.guessed_rate
        if rate is None:
            rate = Fraction(25)
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = out_w, out_h, pix_fmt
        time_base = vin.time_base or Fraction(1, 90000)
        vout.time_base = time_base
        vout.codec_context.time_base = time_base
        vout.options = {"crf": str(settings.crf), "preset": settings.preset}
        vout.codec_context.colorspace = color.matrix
        vout.codec_context.color_range = color.range
        vout.codec_context.color_primaries = color.primaries
        vout.codec_context.color_trc = color.trc
        aout = {s.index: out.add_stream_from_template(s) for s in audio_in}
        target = _Target(out, vout, aout, color, pix_fmt, time_base)
        count = _copy_and_encode(inp, [vin, *audio_in], target, frames, settings.max_frames)
        out.mux(vout.encode(None))
    return count, (out_w, out_h)


def _copy_and_encode(
    inp: av.container.InputContainer,
    streams: list[Any],
    target: _Target,
    frames: FrameMap,
    max_frames: int | None,
) -> int:
    """Demux once: audio packets copied, video frames mapped and encoded; frames written."""
    count = 0
    last_pts: int | None = None
    for packet in inp.demux(*streams):
        if max_frames is not None and count >= max_frames:
            break
        if packet.stream.type == "audio":
            if packet.dts is None or packet.size == 0:
                continue
            packet.stream = target.audio[packet.stream.index]
            target.out.mux(packet)
            continue
        if packet.size == 0 and packet.dts is not None:
            continue
        for frame in packet.decode():
            if not isinstance(frame, av.VideoFrame):
                continue
            if max_frames is not None and count >= max_frames:
                break
            arr = frames(frame_rgb(frame, target.color))
            new = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), "rgb24")
            new = from_rgb(new, target.color, target.pix_fmt)
            # Keep the source's timestamps; invent one only for frames without.
            pts = frame.pts if frame.pts is not None else (last_pts or -1) + 1
            new.pts, new.time_base = pts, target.time_base
            last_pts = pts
            target.out.mux(target.video.encode(new))
            count += 1
    return count
