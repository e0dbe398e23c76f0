"""Plan, then run: what a `vsr upscale` job decides before its first frame is decoded.

`plan_video` turns the probed input (MediaInfo), the options, the model's facts and the output
path into a frozen `VideoPlan`: the filters and the size they leave, the model's output size and
the even-size trim, the encoder and its settings, each stream's fate (encode, copy, transcode,
drop), the cut, the colour tags. It reads headers only: no frame is decoded, no weight loaded,
nothing written, so the same plan is what `vsr upscale --dry-run` prints and what the runner
(vsr.pipeline) executes. What needs a loaded model (the device frame path, hardware decoding)
or the frames themselves (auto crop and deinterlace analysis, the frame count scan, the resume
state) is decided by the runner, or added to a dry run's plan by `plan_file`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from vsr import resume
from vsr.config import ModelOptions, UpscaleOptions
from vsr.media import facts, remux
from vsr.media.encode import VideoEncoding, choose_video_encoding
from vsr.media.filters import (
    FilterChain,
    FilterSpec,
    StreamGeometry,
    output_size_for_height,
)
from vsr.media.probe import IMAGE_SUFFIXES, MediaInfo, VideoInfo
from vsr.models.base import ModelDescriptor, Processor, output_size
from vsr.segments import EncoderPool, host_encoders

Size = tuple[int, int]


def _frac(value: Fraction | None) -> str | None:
    return None if value is None else f"{value.numerator}/{value.denominator}"


@dataclass(frozen=True)
class ModelFacts:
    """What the plan needs of the model: its name, the overall scale, the warm-up frames."""

    name: str
    scale: float
    warmup: int = 0

    @classmethod
    def of(cls, processor: Processor) -> ModelFacts:
        """The facts of a ready processor (what a real run plans with)."""
        d = processor.descriptor
        return cls(d.name, processor.scale, d.warmup)

    @classmethod
    def described(cls, descriptor: ModelDescriptor, options: ModelOptions) -> ModelFacts:
        """The facts from a descriptor alone (a dry run loads no weights): --scale, when given,
        is the overall scale every processor delivers (a variant or a resize after the model)."""
        scale = float(options.scale) if options.scale else float(descriptor.scale)
        return cls(descriptor.name, scale, descriptor.warmup)


@dataclass(frozen=True)
class FilterPlan:
    """The restoration filters and what their graph is built for (None: no graph at all)."""

    spec: FilterSpec
    source: StreamGeometry | None = None
    # Options still "auto" that only the run's analysis of frames settles (a dry run's plan
    # assumes the analysis finds nothing to do).
    undecided: tuple[str, ...] = ()

    @property
    def frames_per_packet(self) -> int:
        """Field-rate deinterlacing makes two output frames of each input frame."""
        field_rate = self.spec.deinterlace != "off" and self.spec.deinterlace_mode == "field"
        return 2 if field_rate else 1

    def chain(self) -> FilterChain | None:
        """A fresh filter graph (one per decoding pass), or None when frames pass untouched."""
        return FilterChain(self.spec, self.source) if self.source is not None else None

    def describe(self) -> str:
        spec, parts = self.spec, []
        if spec.deinterlace != "off":
            parts.append(
                f"deinterlace {spec.deinterlace} ({spec.deinterlacer}, "
                f"{spec.deinterlace_mode} rate)"
            )
        if spec.crop != "off":
            parts.append(f"crop {spec.crop}")
        if spec.square_pixels:
            parts.append("square pixels")
        if spec.denoise != "off":
            parts.append(f"denoise {spec.denoise} {spec.denoise_strength:g}")
        return ", ".join(parts) or "none needed"

    def to_dict(self) -> dict[str, Any]:
        spec = self.spec
        crop = spec.crop if isinstance(spec.crop, str) else ":".join(map(str, spec.crop))
        return {
            "deinterlace": spec.deinterlace,
            "deinterlace_mode": spec.deinterlace_mode,
            "deinterlacer": spec.deinterlacer,
            "crop": crop,
            "square_pixels": spec.square_pixels,
            "denoise": spec.denoise,
            "denoise_strength": spec.denoise_strength,
            "frames_per_packet": self.frames_per_packet,
            "decided_when_run": list(self.undecided),
            "summary": self.describe(),
        }


@dataclass(frozen=True)
class Geometry:
    """Frame sizes along the way: into the model, out of it, after --height, into the encoder."""

    model_in: Size  # decoded, after the filters
    model_out: Size
    output: Size  # after the --height resize (model_out without one)
    frame: Size  # what the encoder gets: `output` less an odd edge its pixel format can't hold
    height: int | None = None  # --height

    @property
    def trimmed(self) -> bool:
        return self.frame != self.output

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_input": list(self.model_in),
            "model_output": list(self.model_out),
            "resized_to": list(self.output) if self.height is not None else None,
            "encoded": list(self.frame),
        }


@dataclass(frozen=True)
class Cut:
    """Only the start of the video (--frames, a preset's duration, a preview)."""

    max_frames: int | None = None
    max_seconds: float | None = None

    @property
    def active(self) -> bool:
        return self.max_frames is not None or self.max_seconds is not None


@dataclass(frozen=True)
class FrameCount:
    """What a demux scan of the video's packets says (no frame decoded)."""

    total: int | None  # frames the output will have; None when the file does not say
    limit: int | None  # the job's frame limit from the cut
    seekable: bool  # every packet has a timestamp: a resumed run seeks instead of re-decoding


@dataclass(frozen=True)
class ResumeStatus:
    """What a run would find of an earlier, interrupted run on the same output."""

    action: str  # "start" (nothing found), "resume" or "restart" (found, but not usable)
    frames_done: int = 0
    segments: int = 0
    reason: str = ""


@dataclass(frozen=True)
class VideoPlan:
    """Everything a video job decided before decoding; the runner (vsr.pipeline) executes it."""

    input: Path
    output: Path
    container: str  # the output's format name (FFmpeg's)
    source: VideoInfo  # the video stream as decoded
    info: MediaInfo  # the file as the encoder is told it: its video after the filters
    options: UpscaleOptions
    model: ModelFacts
    filters: FilterPlan
    geometry: Geometry
    encoding: VideoEncoding
    streams: tuple[remux.StreamPlan, ...]
    # How many encoders write segments side by side (vsr.segments), with how many threads.
    encoders: EncoderPool = dataclasses.field(default_factory=EncoderPool)
    # Notices of the planning itself, in the order a run gives them (filters, encoder, trim).
    notices: tuple[str, ...] = ()
    # Added by `plan_file` for a dry run; a real run scans and reads the resume state itself.
    frames: FrameCount | None = None
    resume: ResumeStatus | None = None

    @property
    def video(self) -> VideoInfo:
        return self.info.video

    @property
    def size(self) -> Size:
        return self.geometry.frame

    @property
    def cut(self) -> Cut:
        return Cut(self.options.max_frames, self.options.max_seconds)

    @property
    def encoded_streams(self) -> list[remux.StreamPlan]:
        return [p for p in self.streams if p.action == "encode"]

    @property
    def stream_notices(self) -> list[str]:
        """What the run announces about the streams (a transcode, a stream left out)."""
        return [
            p.note
            for p in self.streams
            if p.note and p.announce and p.action in ("transcode", "drop")
        ]

    def encoder_report(self) -> dict[str, Any]:
        """The video encoder as a run's result reports it (`encoder` in --json)."""
        return {**_encoder_dict(self.encoding, self.size), "workers": self.encoders.to_dict()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able and stable: paths and names as strings, fractions as "n/d"."""
        return {
            "kind": "video",
            "input": str(self.input),
            "output": str(self.output),
            "container": self.container,
            "model": dataclasses.asdict(self.model),
            "temporal": self.options.temporal,
            "source": _video_dict(self.source),
            "filters": self.filters.to_dict(),
            "video": _video_dict(self.video),
            "geometry": self.geometry.to_dict(),
            "encoder": self.encoder_report(),
            "backend": self.options.encoder_backend,
            "color": {**self.video.color.names(), "hdr": self.video.hdr.to_dict()},
            "streams": [_stream_dict(p) for p in self.streams],
            "cut": dataclasses.asdict(self.cut),
            "frames": dataclasses.asdict(self.frames) if self.frames else None,
            "resume": dataclasses.asdict(self.resume) if self.resume else None,
            "notices": [*self.notices, *self.stream_notices],
        }

    def describe(self) -> list[str]:
        """The plan for a person, a line each (what `vsr upscale --dry-run` prints)."""
        v, g, e = self.video, self.geometry, self.encoding
        rate = f"{float(v.frame_rate):.3f} fps" if v.frame_rate else "rate unknown"
        lines = [
            f"input: {self.input} ({self.source.width}x{self.source.height} {self.source.codec}, "
            f"{rate}{', variable frame rate' if v.vfr else ''})",
            f"model: {self.model.name} x{self.model.scale:g}"
            + (f", temporal {self.options.temporal}" if self.options.temporal != "off" else ""),
            f"filters: {self.filters.describe()}"
            + (
                f" ({', '.join(self.filters.undecided)} decided when run)"
                if self.filters.undecided
                else ""
            ),
            f"size: {g.model_in[0]}x{g.model_in[1]} -> {g.model_out[0]}x{g.model_out[1]}"
            + (f" -> {g.output[0]}x{g.output[1]}" if g.height is not None else "")
            + (f" -> {g.frame[0]}x{g.frame[1]} (trimmed)" if g.trimmed else ""),
            f"output: {self.output} ({self.container}, {e.codec} {e.pix_fmt}"
            + "".join(f", {k}={val}" for k, val in e.options.items())
            + ")",
        ]
        lines += [_describe_stream(p) for p in self.streams]
        lines += _describe_progress(self.cut, self.frames, self.resume)
        lines += [f"notice: {n}" for n in (*self.notices, *self.stream_notices)]
        return lines


@dataclass(frozen=True)
class ImagePlan:
    """A still image job: the model runs once on the whole picture (vsr.image)."""

    input: Path
    output: Path
    model: ModelFacts
    size: Size | None  # the input's, None when its header can't be read without decoding
    output_size: Size | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "image",
            "input": str(self.input),
            "output": str(self.output),
            "model": dataclasses.asdict(self.model),
            "size": list(self.size) if self.size else None,
            "output_size": list(self.output_size) if self.output_size else None,
        }

    def describe(self) -> list[str]:
        def shown(size: Size | None) -> str:
            return f"{size[0]}x{size[1]}" if size else "size read when run"

        return [
            f"input: {self.input} (image, {shown(self.size)})",
            f"model: {self.model.name} x{self.model.scale:g}",
            f"output: {self.output} ({shown(self.output_size)})",
        ]


def _video_dict(v: VideoInfo) -> dict[str, Any]:
    return {
        "index": v.index,
        "codec": v.codec,
        "width": v.width,
        "height": v.height,
        "pix_fmt": v.pix_fmt,
        "frame_rate": _frac(v.frame_rate),
        "time_base": _frac(v.time_base),
        "vfr": v.vfr,
        "field_order": v.field_order,
        "sample_aspect_ratio": _frac(v.sample_aspect_ratio),
        "frames": v.frames,
        "duration": v.duration,
    }


def _encoder_dict(encoding: VideoEncoding, size: Size) -> dict[str, Any]:
    """The same keys as a run's result `encoder`."""
    return {
        "codec": encoding.codec,
        "pix_fmt": encoding.pix_fmt,
        "width": size[0],
        "height": size[1],
        "options": dict(encoding.options),
    }


def _stream_dict(p: remux.StreamPlan) -> dict[str, Any]:
    return {
        "index": p.input_index,
        "type": p.type,
        "codec_in": p.codec_in,
        "action": p.action,
        "codec_out": p.codec_out,
        "note": p.note,
    }


def _describe_stream(p: remux.StreamPlan) -> str:
    how = p.action if p.codec_out in ("", p.codec_in) else f"{p.action} to {p.codec_out}"
    announced = p.announce and p.action in ("transcode", "drop")  # a notice says it
    note = f" ({p.note})" if p.note and not announced else ""
    return f"stream #{p.input_index} {p.type} {p.codec_in}: {how}{note}"


def _describe_progress(
    cut: Cut, frames: FrameCount | None, status: ResumeStatus | None
) -> list[str]:
    lines = []
    if cut.active:
        lines.append(f"cut: frames {cut.max_frames}, seconds {cut.max_seconds}")
    if frames is not None:
        lines.append(f"frames: {frames.total if frames.total is not None else 'unknown'}")
    if status is not None and status.action != "start":
        why = f" ({status.reason})" if status.reason else ""
        lines.append(f"resume: {status.action}, {status.frames_done:,} frames done{why}")
    return lines


# -- planning -------------------------------------------------------------------------------


def plan_video(
    input_path: Path,
    output: Path,
    info: MediaInfo,
    options: UpscaleOptions,
    model: ModelFacts,
    filters: FilterSpec,
) -> VideoPlan:
    """The plan of one video job; `filters` is `options.filters` with its "auto" values settled
    (or not yet: a dry run's plan then assumes the analysis finds nothing to do)."""
    fmt = remux.container_format(output)
    undecided = tuple(k for k in ("deinterlace", "crop") if getattr(filters, k) == "auto")
    if filters.deinterlace == "auto":
        filters = dataclasses.replace(filters, deinterlace="off")
    if filters.crop == "auto":
        filters = dataclasses.replace(filters, crop="off")
    notices: list[str] = []
    source = info.video
    filter_plan, video = _plan_filters(input_path, source, filters, undecided, notices)
    model_out, output_size_ = _scaled_sizes(video, model.scale, options.height)
    encoding = choose_encoding(video, options, fmt)
    notices.extend(encoding.notices)
    frame = _trimmed(output_size_, encoding.pix_fmt, notices)
    geometry = Geometry((video.width, video.height), model_out, output_size_, frame, options.height)
    streams = facts.output_streams(input_path, video.index, fmt, encoding.codec)
    encoders = host_encoders(options.encode_workers, encoding.codec)
    return VideoPlan(
        input=input_path,
        output=output,
        container=fmt,
        source=source,
        info=dataclasses.replace(info, video=video),
        options=options,
        model=model,
        filters=filter_plan,
        geometry=geometry,
        encoding=encoding,
        streams=tuple(streams),
        notices=tuple(notices),
        encoders=encoders,
    )


def _plan_filters(
    path: Path,
    source: VideoInfo,
    spec: FilterSpec,
    undecided: tuple[str, ...],
    notices: list[str],
) -> tuple[FilterPlan, VideoInfo]:
    """The filter graph's plan and the video it hands the model (size, timing, field order)."""
    if spec.is_identity:
        if source.is_interlaced and "deinterlace" not in undecided:
            notices.append(
                f"the input is interlaced ({source.field_order}); upscaling it as it is "
                "blends the fields: add --deinterlace auto"
            )
        return FilterPlan(spec, None, undecided), source
    geometry = facts.stream_geometry(path, source.index)
    out = FilterChain(spec, geometry).output
    video = dataclasses.replace(
        source,
        width=out.width,
        height=out.height,
        time_base=out.time_base,
        frame_rate=out.frame_rate,
        sample_aspect_ratio=out.sample_aspect_ratio,
        field_order="progressive" if spec.deinterlace != "off" else source.field_order,
    )
    return FilterPlan(spec, geometry, undecided), video


def _scaled_sizes(video: VideoInfo, scale: float, height: int | None) -> tuple[Size, Size]:
    """(the model's output size, the size after the --height resize)."""
    model_out = output_size(video.width, video.height, scale)
    if height is None:
        return model_out, model_out
    return model_out, output_size_for_height(*model_out, height)


def _trimmed(size: Size, pix_fmt: str, notices: list[str]) -> Size:
    """The frame the encoder gets: an odd side its chroma subsampling can't hold loses a pixel."""
    (out_w, out_h), (even_w, even_h) = size, facts.needs_even_size(pix_fmt)
    trim_w = out_w % 2 if even_w else 0
    trim_h = out_h % 2 if even_h else 0
    if trim_w or trim_h:
        notices.append(
            f"{pix_fmt} needs even dimensions: output is {out_w - trim_w}x"
            f"{out_h - trim_h} instead of {out_w}x{out_h} (one edge pixel trimmed)"
        )
    return out_w - trim_w, out_h - trim_h


def choose_encoding(video: VideoInfo, options: UpscaleOptions, fmt: str) -> VideoEncoding:
    """The video encoder's settings; with the ffmpeg back end, also encoders only it has."""
    codec = options.encode.codec
    if options.encoder_backend == "ffmpeg" and codec and not facts.pyav_has_codec(codec):
        from vsr.media.ffmpeg_encode import system_encoding

        return system_encoding(codec, video.pix_fmt, options.encode)
    return _usable_encoding(choose_video_encoding(video, options.encode, fmt), video, options, fmt)


def _usable_encoding(
    encoding: VideoEncoding, video: VideoInfo, options: UpscaleOptions, fmt: str
) -> VideoEncoding:
    """An NVENC encoder this machine can't open is replaced by its software twin, announced."""
    from vsr.media.hardware import check_encoder_usable

    why = check_encoder_usable(encoding.codec)
    if why is None:
        return encoding
    twin = {"h264_nvenc": "libx264", "hevc_nvenc": "libx265", "av1_nvenc": "libsvtav1"}
    fallback = twin.get(encoding.codec, "libx264")
    dropped = " (its -e options were dropped)" if options.encode.options else ""
    replaced = dataclasses.replace(options.encode, codec=fallback, options=())
    chosen = choose_video_encoding(video, replaced, fmt)
    notice = f"{encoding.codec} can't be used here: {why}; encoding with {fallback}{dropped}"
    return dataclasses.replace(chosen, notices=(*chosen.notices, notice))


# -- what a run finds when it starts (a demux scan, the resume state) ------------------------


def frame_count(plan: VideoPlan) -> FrameCount:
    """Frames the job will make, from a demux scan of the video's packets (nothing decoded)."""
    pts, count, stamped = resume.scan_video(plan.input, plan.video.index)
    total, limit = resume.plan_job(
        pts,
        count,
        plan.source.time_base,
        max_frames=plan.options.max_frames,
        max_seconds=plan.options.max_seconds,
        frames_per_packet=plan.filters.frames_per_packet,
    )
    return FrameCount(total or plan.video.frames, limit, stamped)


def resume_status(plan: VideoPlan) -> ResumeStatus:
    """What `resume.prepare` will find, read without changing anything (a dry run's view:
    the segments' checksums are verified only when the run starts)."""
    path = resume.manifest_path(plan.output)
    old = resume.read_manifest(path) if path.exists() else None
    if old is None or old.complete or old.version != resume.MANIFEST_VERSION:
        return ResumeStatus("start")
    identity = resume.file_identity(plan.input)
    settings = resume.job_settings(plan.options)
    if {k: old.input.get(k) for k in identity} != identity:
        return ResumeStatus("restart", reason="the input changed since the interrupted run")
    if old.settings_hash == resume.settings_digest(settings) and old.time_base == str(
        plan.video.time_base
    ):
        return ResumeStatus("resume", old.done_frames, len(old.segments))
    changed = sorted(
        k for k in set(old.settings) | set(settings) if old.settings.get(k) != settings.get(k)
    )
    return ResumeStatus(
        "restart",
        reason=f"settings changed since the interrupted run ({', '.join(changed) or 'version'})",
    )


# -- a dry run ------------------------------------------------------------------------------


def is_image_job(input_path: Path, output: Path) -> bool:
    return input_path.suffix.lower() in IMAGE_SUFFIXES or output.suffix.lower() in IMAGE_SUFFIXES


def plan_file(
    input: str | Path, output: str | Path, options: UpscaleOptions
) -> VideoPlan | ImagePlan:
    """The plan a run of this job would execute, with the frame count and the resume state.

    The same checks as a run first (input, model, output), then headers only: no frame is
    decoded, no weight loaded, no file or folder created.
    """
    from vsr import preflight
    from vsr.media.probe import probe
    from vsr.models.registry import describe_model
    from vsr.outputs import check_paths

    input_path, output_path = Path(input), Path(output)
    preflight.check_input(input_path)
    preflight.check_model(options.model)
    check_paths(input_path, output_path, options.overwrite)
    preflight.check_output_folder(output_path)
    described = describe_model(options.model.name, options.model.scale)
    model = ModelFacts.described(described, options.model)
    if is_image_job(input_path, output_path):
        return plan_image(input_path, output_path, model)
    remux.container_format(output_path)
    plan = plan_video(input_path, output_path, probe(input_path), options, model, options.filters)
    return dataclasses.replace(plan, frames=frame_count(plan), resume=resume_status(plan))


def plan_image(input_path: Path, output: Path, model: ModelFacts) -> ImagePlan:
    """A still image's plan: its size from the header alone."""
    from vsr.image import check_suffixes, read_header

    check_suffixes(input_path, output)
    header = read_header(input_path)
    if header is None:
        return ImagePlan(input_path, output, model, None, None)
    size = (header.width, header.height)
    return ImagePlan(input_path, output, model, size, output_size(*size, model.scale))
