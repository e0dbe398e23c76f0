"""Encode upscaled frames and mux them with every copied stream into one output file.

The video stream keeps the source's time base and timestamps (VFR stays VFR, 30000/1001 stays
30000/1001), its colour tags, sample aspect ratio and rotation, and its bit depth unless the
user picks a pixel format. Everything else follows the stream plan from `vsr.media.remux`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.bitstream
import av.error
import av.logging
import numpy as np

from vsr.config import EncodeOptions
from vsr.errors import (
    ContainerError,
    CorruptInputError,
    EncoderError,
    UnsupportedCodecError,
    UsageError,
)
from vsr.media import hdr as hdr_meta
from vsr.media import remux
from vsr.media.avlog import errors_logged, native_reason, native_stderr, pass_on
from vsr.media.color import from_rgb
from vsr.media.probe import MediaInfo, VideoInfo, bit_depth_of, has_alpha
from vsr.media.remux import StreamPlan
from vsr.spelling import did_you_mean

_CRF_CODECS = {"libx264", "libx265", "libvpx-vp9", "libsvtav1", "libaom-av1"}
_RATE_KEYS = {"crf", "qp", "b", "cq", "global_quality", "lossless", "qscale", "q"}
_PRESET_CODECS = {"libx264", "libx265", "libsvtav1"}
_ALPHA_CODEC_FOR = {"mov": "prores_ks", "matroska": "ffv1", "webm": "libvpx-vp9", "nut": "ffv1"}
_DEFAULT_CODEC_FOR = {"webm": "libvpx-vp9", "ogg": "libvpx"}


_REPORTED = {
    "encode": "encoded",
    "copy": "copied",
    "attach": "copied",
    "transcode": "transcoded",
    "drop": "dropped",
}


@dataclass(frozen=True)
class VideoEncoding:
    codec: str
    pix_fmt: str
    options: dict[str, str]
    keep_alpha: bool
    notices: tuple[str, ...] = ()


def _codec(name: str) -> av.codec.Codec:
    try:
        codec = av.codec.Codec(name, "w")
    except (av.error.FFmpegError, ValueError) as exc:
        raise UsageError(f"unknown video encoder {name!r} in this FFmpeg build") from exc
    if codec.type != "video":
        raise UsageError(f"expected a video encoder for --codec, got {name!r} ({codec.type})")
    return codec


def _formats(codec: av.codec.Codec) -> list[str]:
    return [f.name for f in (codec.video_formats or [])]


def _closest_format(source: str, candidates: list[str], want_alpha: bool) -> str | None:
    """Same chroma layout and at least the source's bit depth, else the nearest."""
    depth = bit_depth_of(source)
    try:
        src = av.VideoFormat(source, 16, 16)
        src_layout = tuple((c.width, c.height) for c in src.components[:3])
        src_yuv = source.startswith("yuv")
    except (ValueError, av.error.FFmpegError):
        src_layout, src_yuv = (), True
    scored: list[tuple[tuple[int, int, int, int], str]] = []
    for name in candidates:
        if name.startswith("yuvj") or has_alpha(name) != want_alpha:
            continue
        try:
            fmt = av.VideoFormat(name, 16, 16)
        except (ValueError, av.error.FFmpegError):
            continue
        if len(fmt.components) < 3:
            continue
        layout = tuple((c.width, c.height) for c in fmt.components[:3])
        d = bit_depth_of(name)
        score = (
            0 if layout == src_layout else 1,
            0 if name.startswith("yuv") == src_yuv else 1,
            0 if d >= depth else 1,
            abs(d - depth),
        )
        scored.append((score, name))
    return min(scored)[1] if scored else None


def choose_video_encoding(info: VideoInfo, options: EncodeOptions, fmt: str) -> VideoEncoding:
    notices: list[str] = []
    want_alpha = info.has_alpha and (options.pix_fmt is None or has_alpha(options.pix_fmt))
    if options.codec:
        codec_name = options.codec
    elif want_alpha and options.pix_fmt is None:
        if fmt not in _ALPHA_CODEC_FOR:
            raise EncoderError(
                f"the input has an alpha channel, and no codec that {fmt} holds keeps it",
                hint="write .mov (ProRes 4444), .mkv (FFV1) or .webm (VP9), "
                "or pass --pix-fmt yuv420p to drop the alpha channel",
            )
        codec_name = _ALPHA_CODEC_FOR[fmt]
        notices.append(f"the input has an alpha channel: encoding with {codec_name} to keep it")
    elif fmt in _DEFAULT_CODEC_FOR:
        codec_name = _DEFAULT_CODEC_FOR[fmt]
        if info.hdr.is_hdr and not _deep_formats(_codec(codec_name)):
            deep = _hdr_encoders(fmt)
            if deep:
                notices.append(
                    f"{codec_name} is 8-bit only in this FFmpeg build: encoding the HDR input "
                    f"with {deep[0]} (10-bit)"
                )
                codec_name = deep[0]
    else:
        codec_name = "libx265" if info.bit_depth > 8 or info.hdr.is_hdr else "libx264"
    codec = _codec(codec_name)
    if not remux.accepts(fmt, codec.name):
        raise ContainerError(
            f"the {fmt} container can't hold {codec.name} video",
            hint="write to .mkv instead, or pick another --codec",
        )
    formats = _formats(codec)
    if options.pix_fmt:
        if formats and options.pix_fmt not in formats:
            raise UsageError(
                f"{codec.name} can't encode --pix-fmt {options.pix_fmt}: expected one of "
                f"{', '.join(formats)}"
            )
        pix_fmt = options.pix_fmt
    elif not formats or (info.pix_fmt in formats and has_alpha(info.pix_fmt) == want_alpha):
        pix_fmt = info.pix_fmt
    else:
        choice = _closest_format(info.pix_fmt, formats, want_alpha)
        if choice is None:
            if want_alpha:
                raise EncoderError(
                    f"the input has an alpha channel that {codec.name} can't store",
                    hint="pick --codec ffv1, prores_ks, png or libvpx-vp9, "
                    "or --pix-fmt yuv420p to drop it",
                )
            choice = formats[0]
        pix_fmt = choice
        if info.hdr.is_hdr and bit_depth_of(pix_fmt) < 10:
            # An 8-bit PQ/HLG source (rare) gets 10 bits rather than an 8-bit refusal.
            pix_fmt = _closest_format(info.pix_fmt, _deep_formats(codec), want_alpha) or pix_fmt
        if bit_depth_of(pix_fmt) < info.bit_depth:
            notices.append(
                f"{codec.name} can't keep {info.bit_depth}-bit video: encoding as {pix_fmt}"
            )
    _check_hdr_depth(info, codec.name, pix_fmt, formats, bool(options.pix_fmt), fmt)
    notices.extend(hdr_notices(info, codec.name))
    if info.has_alpha and not has_alpha(pix_fmt):
        notices.append(f"the alpha channel is dropped (--pix-fmt {pix_fmt} has none)")

    opts: dict[str, str] = {}
    user_keys = {key for key, _ in options.options}
    user_params = " ".join(v for k, v in options.options if k.endswith(("-params", "opts")))
    # A rate control the user chose (qp, bitrate, lossless ...) must not be overridden by the
    # default crf, which x264 and x265 would prefer.
    user_rate = bool(user_keys & _RATE_KEYS) or any(
        f"{k}=" in user_params for k in ("crf", "qp", "bitrate", "lossless")
    )
    if codec.name in _CRF_CODECS:
        default_crf = 18 if codec.name in ("libx264", "libx265") and not user_rate else None
        crf = options.crf if options.crf is not None else default_crf
        if crf is not None:
            opts["crf"] = _num(crf)
        if codec.name == "libvpx-vp9":
            opts["b"] = "0"
    elif codec.name == "libvpx":
        # VP8 (the Ogg default) has no pure constant-quality mode: its crf needs a bitrate
        # ceiling, and without one it encodes at 256 kb/s whatever the size.
        if options.crf is not None or not user_rate:
            opts["crf"] = _num(options.crf if options.crf is not None else 10)
            opts.setdefault("b", "100M")
    elif options.crf is not None:
        raise UsageError(f"{codec.name} has no --crf; use --encoder-option for its settings")
    if codec.name in _PRESET_CODECS:
        preset = options.preset or ("medium" if codec.name != "libsvtav1" else None)
        if preset:
            opts["preset"] = preset
    elif options.preset is not None:
        raise UsageError(f"{codec.name} has no --preset; use --encoder-option for its settings")
    if codec.name == "libx265":
        opts["x265-params"] = ":".join(["log-level=error", *hdr_x265_params(info.hdr)])
    svt_params = hdr_svtav1_params(info.hdr) if codec.name == "libsvtav1" else []
    if svt_params:
        opts["svtav1-params"] = ":".join(svt_params)
    if codec.name == "prores_ks" and has_alpha(pix_fmt):
        opts.setdefault("profile", "4444")
    known = _option_names(codec.name)
    for key, value in options.options:
        if known and key not in known:
            hint = did_you_mean(key, sorted(known))
            raise UsageError(f"{codec.name} has no option {key!r}", hint=hint)
        if key in ("x265-params", "svtav1-params") and key in opts:
            # The user's parameters come last: the encoders let a later value win.
            value = f"{opts[key]}:{value}"
        opts[key] = value
    return VideoEncoding(codec.name, pix_fmt, opts, has_alpha(pix_fmt), tuple(notices))


def _deep_formats(codec: av.codec.Codec) -> list[str]:
    return [f for f in _formats(codec) if bit_depth_of(f) >= 10]


def _hdr_encoders(fmt: str) -> list[str]:
    """Encoders of this FFmpeg build that store 10 bits in this container, best first."""
    found: list[str] = []
    for name in ("libx265", "libsvtav1", "libaom-av1", "libvpx-vp9"):
        try:
            codec = av.codec.Codec(name, "w")
        except (av.error.FFmpegError, ValueError):
            continue
        if _deep_formats(codec) and remux.accepts(fmt, codec.name):
            found.append(name)
    return found


def _check_hdr_depth(
    info: VideoInfo, codec: str, pix_fmt: str, formats: list[str], chosen: bool, fmt: str
) -> None:
    """PQ and HLG need 10 bits: in 8 they band, and vsr doesn't tone-map to SDR."""
    hdr = info.hdr
    if not hdr.is_hdr or bit_depth_of(pix_fmt) >= 10:
        return
    transfer = "PQ" if hdr.transfer == "pq" else "HLG"
    kind = hdr.format if hdr.format == transfer else f"{hdr.format} ({transfer})"
    what = f"the input is {kind} HDR"
    sdr = "for SDR, tone-map the input first with FFmpeg's zscale+tonemap or libplacebo"
    if chosen:
        raise UsageError(
            f"--pix-fmt {pix_fmt} is 8-bit and {what}: 8 bits band it, and vsr doesn't "
            "tone-map to SDR",
            hint=f"drop --pix-fmt to keep {info.bit_depth} bits, or pick yuv420p10le; {sdr}",
        )
    if not any(bit_depth_of(f) >= 10 for f in formats):
        deep = " or ".join(_hdr_encoders(fmt)) or "another container and libx265"
        raise UsageError(
            f"{codec} encodes only 8-bit video and {what}, which needs 10 bits",
            hint=f"use --codec {deep}; {sdr}",
        )
    raise UsageError(
        f"{codec} would store {what} as 8-bit {pix_fmt}",
        hint=f"pick --pix-fmt {_closest_format(info.pix_fmt, formats, False) or 'yuv420p10le'}",
    )


def hdr_x265_params(hdr: hdr_meta.HdrInfo) -> list[str]:
    """x265 writes the static metadata as SEI in every keyframe; hdr10-opt tunes its
    luma/chroma QP for PQ (what x265's HDR10 guide asks for)."""
    params: list[str] = []
    if hdr.transfer == "pq":
        params.append("hdr10-opt=1")
    if hdr.mastering is not None:
        params.append(f"master-display={hdr.mastering.x265()}")
    if hdr.light_level is not None:
        params.append(f"max-cll={hdr.light_level.max_cll},{hdr.light_level.max_fall}")
    if hdr.has_static_metadata:
        params.append("hdr10=1")
    return params


def hdr_svtav1_params(hdr: hdr_meta.HdrInfo) -> list[str]:
    """SVT-AV1 writes the static metadata as AV1 metadata OBUs."""
    if not hdr.is_hdr:
        return []
    params = ["enable-hdr=1"]
    if hdr.mastering is not None:
        params.append(f"mastering-display={hdr.mastering.svtav1()}")
    if hdr.light_level is not None:
        params.append(f"content-light={hdr.light_level.max_cll},{hdr.light_level.max_fall}")
    return params


def hdr_notices(info: VideoInfo, codec: str) -> list[str]:
    """What of the input's HDR metadata can't reach the output, said once before the run."""
    hdr = info.hdr
    notices: list[str] = []
    dv = hdr.dolby_vision
    if dv is not None:
        if dv.base_compatibility == 0:
            raise UnsupportedCodecError(
                f"the input is {dv.describe()}, whose base layer (IPTPQc2) only its RPU turns "
                "into a picture, and the RPU can't survive a re-encode",
                hint="vsr upscales Dolby Vision with an HDR10, HLG or SDR base layer "
                "(profiles 7, 8.1, 8.2, 8.4)",
            )
        base = dv.base_layer if dv.base_layer not in (None, "unknown") else hdr.format
        if base == "Dolby Vision":
            base = "HDR10" if hdr.transfer == "pq" else "HLG" if hdr.transfer else "SDR"
        layer = " and its enhancement layer" if dv.enhancement_layer else ""
        notices.append(
            f"the input is {dv.describe()}: its RPU (dynamic metadata){layer} can't survive a "
            f"re-encode; the output is the {base} base layer with its static metadata, and "
            "doesn't claim Dolby Vision"
        )
    if hdr.hdr10_plus:
        notices.append(
            "the input has HDR10+ dynamic metadata, which this encoder build can't write "
            "(x265 without HDR10_PLUS); the output keeps the HDR10 static metadata"
        )
    if hdr.has_static_metadata and codec not in ("libx265", "libsvtav1"):
        notices.append(
            f"{codec} can't put HDR metadata into the bitstream: the mastering display and "
            "light levels are kept in the container only"
        )
    return notices


def check_encoding(
    encoding: VideoEncoding,
    media: MediaInfo,
    source: av.container.InputContainer,
    video_plan: list[StreamPlan],
    fmt: str,
    width: int,
    height: int,
) -> None:
    """One frame through the job's own writers, in a scratch folder, then read back.

    The same `OutputWriter` calls as a real job: a segment file, then the final container
    built from it. Options FFmpeg only checks when the encoder opens (a 2-pass stats file
    that is not there), containers that refuse a codec only when the header is written
    (rawvideo in Matroska, Annex B H.264 in AVI), and streams that would be written but read
    back as garbage all fail here, before any state is written beside the output.
    """
    import tempfile

    with (
        errors_logged(),
        av.logging.Capture() as logs,
        tempfile.TemporaryDirectory(prefix="vsr-check-") as scratch,
    ):
        segment_path = Path(scratch) / "segment.mkv"
        final_path = Path(scratch) / f"final.{fmt}"
        segment = OutputWriter(
            segment_path,
            "matroska",
            media,
            source,
            video_plan,
            encoding,
            width,
            height,
            segment=True,
        )
        # The codec opens with its first frame: x264's own error lines come from there.
        with native_stderr() as printed:
            try:
                segment.open()
                deep = bit_depth_of(encoding.pix_fmt) > 8
                rgb = np.zeros((height, width, 3), np.uint16 if deep else np.uint8)
                segment.write_frame(rgb, None, 0, 1)
                segment.close()
                failed: BaseException | None = None
            except (av.error.FFmpegError, ValueError, EncoderError) as exc:
                segment.abort()
                failed = exc
        if failed is not None:
            error = _cannot_encode(encoding, (width, height), failed, logs, printed)
            pass_on([line for line in printed if "[error]:" not in line])
            raise error from failed
        pass_on(printed)
        try:
            first = av.open(str(segment_path))
        except (av.error.FFmpegError, ValueError) as exc:
            raise EncoderError(
                f"this FFmpeg cannot read {encoding.codec} video back ({_reason(exc, logs)}), "
                "which joining vsr's segments needs",
                hint="pick another --codec",
            ) from exc
        with first:
            final = OutputWriter(
                final_path,
                fmt,
                media,
                source,
                video_plan,
                encoding,
                width,
                height,
                video_template=first.streams.video[0],
            )
            try:
                final.open()
                packets = (p for p in first.demux(video=0) if p.size)
                for packet, stamp in zip(packets, segment.packet_log, strict=False):
                    # One frame: decode order is presentation order. (libx265 flushing a
                    # single frame sometimes reports an uninitialised dts.)
                    final.write_video_packet(packet, stamp[0], stamp[0], stamp[2])
                final.close()
            except av.codec.codec.UnknownCodecError as exc:
                final.abort()
                raise EncoderError(
                    f"this FFmpeg has no decoder for {encoding.codec} video ({exc}), which "
                    "joining vsr's segments needs",
                    hint="pick another --codec",
                ) from exc
            except (av.error.FFmpegError, ValueError, EncoderError) as exc:
                final.abort()
                raise ContainerError(
                    f"the {fmt} container can't hold {encoding.codec} video: {_reason(exc, logs)}",
                    hint="pick another --codec, or write "
                    + (".nut (it holds any codec)" if fmt == "matroska" else ".mkv or .nut"),
                ) from exc
        # Read it back: a stream the container describes wrongly (raw video whose pixel
        # format is lost on the way) would be written fine and play as garbage.
        # (Only the size is compared: decoders may name an equal format differently, such
        # as yuvj420p for full-range yuv420p.)
        got = _first_frame_of(final_path)
        if got is None or got[:2] != (width, height):
            seen = "no frame" if got is None else f"{got[0]}x{got[1]} {got[2]}"
            raise ContainerError(
                f"{encoding.codec} video written to {fmt} does not read back as it was "
                f"encoded ({width}x{height} {encoding.pix_fmt}; it reads as {seen})",
                hint="pick another --codec (for lossless video: --codec ffv1 in .mkv)",
            )


def _first_frame_of(path: Path) -> tuple[int, int, str] | None:
    try:
        with av.open(str(path), "r") as container:
            for frame in container.decode(video=0):
                return frame.width, frame.height, frame.format.name
    except (av.error.FFmpegError, ValueError):
        return None
    return None


def _cannot_encode(
    encoding: VideoEncoding,
    size: tuple[int, int],
    exc: BaseException,
    logs: list[tuple[int, str, str]],
    printed: list[str],
) -> UsageError:
    """The one error line for settings the encoder refused, in the encoder's own words where it
    printed them itself (x264's "invalid tune 'flim'") and FFmpeg's otherwise."""
    reason = _reason(exc, logs)
    native = native_reason(printed)
    if native is not None:
        reason = f"{native} ({reason})"
    return UsageError(
        f"{encoding.codec} cannot encode {size[0]}x{size[1]} {encoding.pix_fmt} with "
        f"these settings: {reason}",
        hint="check --encoder-option, --crf, --encoder-preset and --pix-fmt",
    )


def _reason(exc: BaseException, logs: list[tuple[int, str, str]]) -> str:
    """FFmpeg's own words (its last error log line) rather than "Invalid argument"."""
    lines = [m.strip() for level, _name, m in logs if level <= av.logging.ERROR and m.strip()]
    if lines:
        return " ".join(lines[-1].split())
    return getattr(exc, "strerror", None) or str(exc)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _option_names(codec: str) -> set[str]:
    try:
        ctx = av.codec.CodecContext.create(codec, "w")
    except (av.error.FFmpegError, ValueError):
        return set()
    supported = ctx.supported_options
    return {o.name for o in supported.generic} | {o.name for o in supported.private}


@dataclass
class StreamReport:
    index: int
    type: str
    codec: str
    action: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "type": self.type,
            "codec": self.codec,
            "action": self.action,
            "note": self.note,
        }


@dataclass
class _Transcoder:
    plan: StreamPlan
    out: Any
    decoder: Any = None
    packets: int = 0
    next_pts: int | None = None  # in 1/sample_rate


@dataclass
class OutputWriter:
    """Owns the output container: one video encoder plus the copied/transcoded streams."""

    path: Path
    fmt: str
    media: MediaInfo
    source: av.container.InputContainer
    plans: list[StreamPlan]
    encoding: VideoEncoding
    width: int
    height: int
    # Final mux of a segmented job: the video stream copies this (encoded) stream's codec
    # parameters, and its packets come through `write_video_packet`.
    video_template: Any = None
    # A segment file: video only, and every packet's exact timestamps are recorded.
    segment: bool = False
    # Seconds added to every timestamp (final mux only): Ogg's muxer writes an unreadable
    # file for a stream that starts before zero, so all streams move forward together.
    time_offset: Fraction = Fraction(0)
    # --skip-corrupt: an audio packet that can't be decoded for transcoding is left out as a
    # gap of its own length (counted in `audio_packets_dropped`) instead of stopping the job.
    skip_corrupt: bool = False
    reports: list[StreamReport] = field(default_factory=list)
    packet_log: list[list[int | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._out: Any = None
        self._video: Any = None
        self._map: dict[int, Any] = {}
        self._transcoders: dict[int, _Transcoder] = {}
        self._text_subs: dict[int, StreamPlan] = {}
        self._last_dts: int | None = None
        self._carrier: Any = None
        self._annexb: Any = None
        self.frames_written = 0
        self.audio_packets_dropped = 0
        # Where the last video frame ends (pts + duration), in the video's time base.
        self.video_end: int | None = None

    # -- setup -----------------------------------------------------------------------------
    def open(self) -> None:
        try:
            self._out = av.open(str(self.path), mode="w", format=self.fmt)
        except (av.error.FFmpegError, OSError) as exc:
            raise EncoderError(f"cannot create the output file: {exc}", path=self.path) from exc
        out = self._out
        if not self.segment:
            out.metadata.update(remux.clean_metadata(dict(self.source.metadata)))
        for plan in self.plans:
            stream: Any = self.source.streams[plan.input_index]
            if plan.action == "encode":
                self._add_video(stream)
                if self.segment:
                    return
            elif plan.action == "copy":
                o = out.add_stream_from_template(stream)
                self._finish_stream(o, stream)
                self._map[stream.index] = o
            elif plan.action == "attach":
                out.add_attachment(
                    stream.metadata.get("filename", f"attachment{stream.index}"),
                    stream.metadata.get("mimetype", "application/octet-stream"),
                    bytes(stream.data),
                )
            elif plan.action == "transcode" and plan.type == "audio":
                cc: Any = stream.codec_context
                o = out.add_stream(plan.codec_out, rate=cc.sample_rate or 48000)
                if cc.layout is not None:
                    o.codec_context.layout = cc.layout
                self._finish_stream(o, stream)
                self._transcoders[stream.index] = _Transcoder(plan, o, stream.codec_context)
                self._map[stream.index] = o
            elif plan.action == "transcode" and plan.type == "subtitle":
                o = out.add_mux_stream(plan.codec_out)
                o.time_base = stream.time_base
                self._finish_stream(o, stream)
                self._text_subs[stream.index] = plan
                self._map[stream.index] = o
            self.reports.append(
                StreamReport(
                    plan.input_index,
                    plan.type,
                    plan.codec_out or plan.codec_in,
                    _REPORTED[plan.action],
                    plan.note,
                )
            )
        chapters = list(self.source.chapters())
        if chapters:
            out.set_chapters(chapters)

    def _finish_stream(self, out_stream: Any, stream: av.stream.Stream) -> None:
        out_stream.metadata.update(remux.clean_metadata(dict(stream.metadata)))
        out_stream.disposition = stream.disposition

    def _add_video(self, stream: av.video.VideoStream) -> None:
        info = self.media.video
        if self.video_template is not None:
            template = self.video_template
            if info.hdr.has_static_metadata:
                # The segments hold the metadata in their bitstream only; the muxer writes
                # the container's (MKV Colour, MP4 mdcv/clli) from the stream's parameters.
                self._carrier = _metadata_carrier(template, info.hdr, self.path)
                template = self._carrier.streams.video[0]
            # opaque: the codec is the decoder that read the segment (libdav1d for AV1 has no
            # encoder of that name to look up); only its parameters matter for a remux.
            video = self._out.add_stream_from_template(template, opaque=True)
            video.time_base = info.time_base
            name = self.video_template.codec_context.name
            if self.fmt == "avi" and name in ("h264", "hevc"):
                # The segments hold length-prefixed H.264/H.265 (as MP4 and MKV do); AVI
                # takes start codes only, so they are rewritten as FFmpeg's copy does.
                self._annexb = av.bitstream.BitStreamFilterContext(
                    f"{name}_mp4toannexb", self.video_template
                )
            if self.fmt == "ogg" and info.frame_rate:
                # Ogg's VP8/Theora granule positions count frames: any other time base
                # misplaces them (the muxer rescales each packet's timestamps to this one).
                video.time_base = 1 / info.frame_rate
            if info.frame_rate:
                # The segments' container doesn't know the rate; MKV writes it as the
                # default frame duration and players show it.
                video.codec_context.framerate = info.frame_rate
            self._finish_video(video, stream)
            return
        enc = self.encoding
        rate = info.frame_rate
        video = self._out.add_stream(enc.codec, rate=rate)
        cc = video.codec_context
        cc.width, cc.height = self.width, self.height
        cc.pix_fmt = enc.pix_fmt
        # The source's time base keeps every timestamp exact (VFR and 1001-rates alike).
        cc.time_base = info.time_base
        video.time_base = info.time_base
        if rate:
            cc.framerate = rate
        cc.color_range = info.color.range
        cc.colorspace = info.color.matrix
        cc.color_primaries = info.color.primaries
        cc.color_trc = info.color.trc
        if info.sample_aspect_ratio and info.sample_aspect_ratio != 1:
            cc.sample_aspect_ratio = info.sample_aspect_ratio
        cc.thread_count = 0
        cc.options = dict(enc.options)
        self._finish_video(video, stream)

    def _finish_video(self, video: Any, stream: av.video.VideoStream) -> None:
        if self.media.video.rotation:
            video.set_display_rotation(self.media.video.rotation)
        video.metadata.update(remux.clean_metadata(dict(stream.metadata)))
        video.disposition = stream.disposition
        self._video = video

    # -- writing ---------------------------------------------------------------------------
    def write_frame(
        self, rgb: np.ndarray, alpha: np.ndarray | None, pts: int, duration: int = 0
    ) -> None:
        """rgb: H x W x 3 uint8/uint16 full-range RGB at the output size."""
        info = self.media.video
        if alpha is not None and self.encoding.keep_alpha:
            deep = rgb.dtype == np.uint16
            arr = np.concatenate([rgb, alpha[..., None].astype(rgb.dtype)], axis=2)
            frame = av.VideoFrame.from_ndarray(arr, format="rgba64le" if deep else "rgba")
        else:
            deep = rgb.dtype == np.uint16
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le" if deep else "rgb24")
        self.write_video_frame(from_rgb(frame, info.color, self.encoding.pix_fmt), pts, duration)

    def write_video_frame(self, frame: av.VideoFrame, pts: int, duration: int = 0) -> None:
        """A frame already in the encoder's pixel format and colour tags, at the output size."""
        info = self.media.video
        frame.pts = pts
        frame.time_base = info.time_base
        if duration > 0:
            # Carried to the packet, so the last frame of a VFR clip keeps its length.
            frame.duration = duration
        try:
            self._mux_encoded(self._video.encode(frame))
        except av.error.FFmpegError as exc:
            raise EncoderError(f"{self.encoding.codec} failed: {exc}", path=self.path) from exc
        self.frames_written += 1

    def _mux_encoded(self, packets: list[av.Packet]) -> None:
        for p in packets:
            if p.pts is not None and p.dts is not None and p.dts > p.pts:
                # No valid packet decodes after it is shown: libx265 flushing a lone frame
                # sometimes reports an uninitialised dts, which the muxer refuses.
                p.dts = p.pts
            # Before muxing: the muxer rescales timestamps in place to its own time base.
            self.packet_log.append([p.pts, p.dts, p.duration, int(p.is_keyframe)])
        self._out.mux(packets)

    def write_video_packet(
        self, packet: av.Packet, pts: int | None, dts: int | None, duration: int | None
    ) -> None:
        """A packet of a finished segment, with its exact timestamps (source time base)."""
        if dts is not None and self._last_dts is not None and dts <= self._last_dts:
            # Each segment's encoder starts its own decode clock; where two meet, nudge the
            # new one forward so decode order stays strictly increasing.
            dts = self._last_dts + 1
            if pts is not None and pts < dts:
                dts = pts
        packet.time_base = self.media.video.time_base
        packet.pts, packet.dts = pts, dts
        if pts is not None:
            end = pts + max(0, duration or 0)
            self.video_end = end if self.video_end is None else max(self.video_end, end)
        self._offset(packet)
        if duration is not None:
            packet.duration = duration
        self._last_dts = dts if dts is not None else self._last_dts
        try:
            for ready in self._annexb.filter(packet) if self._annexb is not None else [packet]:
                ready.stream = self._video
                self._out.mux(ready)
        except av.error.FFmpegError as exc:
            raise EncoderError(f"writing the video failed: {exc}", path=self.path) from exc
        self.frames_written += 1

    def write_packet(self, packet: av.Packet) -> None:
        index = packet.stream.index
        target = self._map.get(index)
        if target is None:
            return
        if index in self._transcoders:
            self._transcode_audio(self._transcoders[index], packet)
            return
        if index in self._text_subs:
            self._rewrite_subtitle(self._text_subs[index], packet, target)
            return
        if packet.dts is None and packet.pts is None:
            return
        self._offset(packet)
        packet.stream = target
        self._out.mux(packet)

    def _offset(self, packet: av.Packet) -> None:
        if not self.time_offset or packet.time_base is None:
            return
        delta = round(self.time_offset / packet.time_base)
        if packet.pts is not None:
            packet.pts += delta
        if packet.dts is not None:
            packet.dts += delta

    def _transcode_audio(self, tr: _Transcoder, packet: av.Packet) -> None:
        try:
            frames = tr.decoder.decode(packet)
        except av.error.FFmpegError as exc:
            # The source's fault, not the output's: a damaged audio packet.
            self._damaged_audio(tr, packet, exc)
            return
        try:
            for frame in frames:
                self._restamp_audio(tr, frame)
                self._out.mux(tr.out.encode(frame))
        except av.error.FFmpegError as exc:
            raise EncoderError(
                f"transcoding audio stream #{tr.plan.input_index} failed: {exc}", path=self.path
            ) from exc

    def _damaged_audio(self, tr: _Transcoder, packet: av.Packet, exc: Exception) -> None:
        at = (
            float(packet.pts * packet.time_base)
            if packet.pts is not None and packet.time_base is not None
            else None
        )
        where = f" at {at:.3f} s" if at is not None else ""
        if not self.skip_corrupt:
            raise CorruptInputError(
                f"audio stream #{tr.plan.input_index} is damaged{where}"
                " (its decoder refused a packet)",
                path=self.source.name,
                time=at,
                hint="--skip-corrupt leaves the damaged audio out as a gap and keeps sync",
            ) from exc
        self.audio_packets_dropped += 1
        rate = tr.out.codec_context.sample_rate
        if tr.next_pts is not None and packet.duration and packet.time_base is not None:
            # Later audio keeps its place against the video: the gap is as long as the packet.
            tr.next_pts += round(packet.duration * packet.time_base * rate)

    def _restamp_audio(self, tr: _Transcoder, frame: av.AudioFrame) -> None:
        """Contiguous sample times from where the source's first frame starts.

        The start keeps the audio's place against the video (a stream that begins before or
        after zero stays there); counting samples from it keeps the encoder's input free of
        the gaps and overlaps that rounded source timestamps have.
        """
        rate = frame.sample_rate or tr.out.codec_context.sample_rate
        if tr.next_pts is None:
            start = 0
            if frame.pts is not None and frame.time_base is not None:
                start = round((frame.pts * frame.time_base + self.time_offset) * rate)
            tr.next_pts = start
        frame.pts = tr.next_pts
        frame.time_base = Fraction(1, rate)
        tr.next_pts += frame.samples

    def _rewrite_subtitle(self, plan: StreamPlan, packet: av.Packet, target: Any) -> None:
        text = remux.subtitle_text(bytes(packet), plan.codec_in)
        new = av.Packet(remux.subtitle_payload(text, plan.codec_out))
        new.pts = packet.pts
        new.dts = packet.dts if packet.dts is not None else packet.pts
        new.duration = packet.duration
        new.time_base = packet.time_base
        new.stream = target
        self._out.mux(new)

    def close(self) -> None:
        """Flush encoders and write the trailer."""
        try:
            if self.video_template is None:
                self._mux_encoded(self._video.encode(None))
            for tr in self._transcoders.values():
                for frame in tr.decoder.decode(None):
                    self._restamp_audio(tr, frame)
                    self._out.mux(tr.out.encode(frame))
                self._out.mux(tr.out.encode(None))
        except av.error.FFmpegError as exc:
            raise EncoderError(f"finishing the output failed: {exc}", path=self.path) from exc
        finally:
            self._out.close()
            self._close_carrier()

    def abort(self) -> None:
        if self._out is not None:
            with contextlib.suppress(Exception):
                self._out.close()
        self._close_carrier()

    def _close_carrier(self) -> None:
        if self._carrier is not None:
            with contextlib.suppress(Exception):
                self._carrier.close()
            self._carrier = None


def _metadata_carrier(template: Any, hdr: hdr_meta.HdrInfo, path: Path) -> Any:
    try:
        return hdr_meta.metadata_carrier(Path(template.container.name), hdr)
    except (OSError, ValueError, av.error.FFmpegError) as exc:
        raise EncoderError(
            f"cannot put the HDR metadata into the output's header: {exc}", path=path
        ) from exc
