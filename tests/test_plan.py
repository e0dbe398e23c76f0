"""Plans: what a job decides before its first frame, tested without decoding one.

Each test builds a small clip, plans a job on it (`vsr.plan.plan_file`, what `--dry-run`
prints) with the frame reader and the filter analysis made to fail if anything touched them,
and checks the plan; a few then run the job and check that it did what its plan said.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import clips
import numpy as np
import pytest
from conftest import FAST, CliResult, files_in
from test_hdr import hdr10_clip

from vsr import plan as planning
from vsr import resume
from vsr.config import ModelOptions, UpscaleOptions
from vsr.errors import ContainerError
from vsr.media.filters import FilterSpec
from vsr.plan import ImagePlan, VideoPlan, plan_file


def _options(**extra: object) -> UpscaleOptions:
    return UpscaleOptions(model=ModelOptions(name="bicubic", scale=2.0), **extra)  # type: ignore[arg-type]


def _refuse_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planning must not decode a frame: the frame reader and the filter analysis refuse."""
    import vsr.media.decode as decode
    import vsr.media.filters as filters

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a plan decoded frames")

    monkeypatch.setattr(decode.VideoReader, "__init__", refuse)
    monkeypatch.setattr(filters, "resolve_spec", refuse)
    monkeypatch.setattr(filters, "detect_crop", refuse)
    monkeypatch.setattr(filters, "detect_field_order", refuse)


def _video_plan(src: Path, out: Path, options: UpscaleOptions | None = None) -> VideoPlan:
    before = files_in(src.parent)
    with pytest.MonkeyPatch.context() as m:
        _refuse_decoding(m)
        plan = plan_file(src, out, options or _options())
    assert isinstance(plan, VideoPlan)
    assert files_in(src.parent) == before, "planning created a file"
    # The JSON form is stable and plain: it survives a round trip unchanged.
    assert json.loads(json.dumps(plan.to_dict())) == plan.to_dict()
    return plan


def _actions(plan: VideoPlan) -> list[tuple[str, str, str]]:
    return [(p.type, p.action, p.codec_out) for p in plan.streams]


def test_cfr_clip_plan(tmp_path: Path) -> None:
    clip = clips.cfr_h264_aac(tmp_path)
    plan = _video_plan(clip.path, tmp_path / "out.mp4")
    assert plan.geometry.model_in == (96, 64)
    assert plan.geometry.model_out == plan.size == (192, 128)
    assert not plan.geometry.trimmed
    assert plan.encoding.codec == "libx264"
    assert _actions(plan) == [("video", "encode", "libx264"), ("audio", "copy", "aac")]
    assert plan.frames is not None and plan.frames.total == 12
    assert plan.resume is not None and plan.resume.action == "start"
    data = plan.to_dict()
    assert data["video"]["frame_rate"] == "25/1"
    assert data["encoder"]["width"] == 192
    assert data["input"] == str(clip.path)
    assert not plan.notices and not plan.stream_notices


def test_ntsc_rate_is_exact(tmp_path: Path) -> None:
    clip = clips.ntsc_h264(tmp_path, "mkv")
    plan = _video_plan(clip.path, tmp_path / "out.mkv")
    assert plan.video.frame_rate == Fraction(30000, 1001)
    assert plan.to_dict()["video"]["frame_rate"] == "30000/1001"
    assert plan.frames is not None and plan.frames.total == 12


def test_vfr_clip_plan(tmp_path: Path) -> None:
    clip = clips.vfr_h264(tmp_path)
    plan = _video_plan(clip.path, tmp_path / "out.mkv")
    assert plan.video.vfr
    assert plan.to_dict()["video"]["time_base"] == "1/1000"
    assert plan.frames is not None and plan.frames.total == len(clips.VFR_PTS_MS)


def test_odd_size_is_trimmed_for_420(tmp_path: Path) -> None:
    clip = clips.odd_size(tmp_path)
    options = UpscaleOptions(model=ModelOptions(name="bicubic", scale=1.0))
    plan = _video_plan(clip.path, tmp_path / "out.mp4", options)
    assert plan.geometry.output == (63, 47)
    assert plan.size == (62, 46) and plan.geometry.trimmed
    assert any("needs even dimensions" in n for n in plan.notices)


def test_height_resize_is_planned(tmp_path: Path) -> None:
    clip = clips.cfr_h264_aac(tmp_path)
    plan = _video_plan(clip.path, tmp_path / "out.mkv", _options(height=96))
    assert plan.geometry.model_out == (192, 128)
    assert plan.size == (144, 96)
    assert plan.to_dict()["geometry"]["resized_to"] == [144, 96]


def test_cut_counts_frames(tmp_path: Path) -> None:
    clip = clips.cfr_h264_aac(tmp_path)
    plan = _video_plan(clip.path, tmp_path / "out.mkv", _options(max_frames=5))
    assert plan.cut.active
    assert plan.frames is not None and (plan.frames.total, plan.frames.limit) == (5, 5)
    seconds = _video_plan(clip.path, tmp_path / "out.mkv", _options(max_seconds=0.2))
    assert seconds.frames is not None and seconds.frames.total == 5


def test_audio_copied_or_transcoded_by_container(tmp_path: Path) -> None:
    clip = clips.cfr_h264_aac(tmp_path)
    mkv = _video_plan(clip.path, tmp_path / "out.mkv")
    assert _actions(mkv)[1] == ("audio", "copy", "aac")
    webm = _video_plan(clip.path, tmp_path / "out.webm")
    assert webm.streams[1].action == "transcode"
    assert webm.streams[1].codec_out == "libopus"
    assert webm.stream_notices == [webm.streams[1].note]
    assert webm.to_dict()["notices"] == [*webm.notices, webm.streams[1].note]


def test_subtitles_and_attachments(tmp_path: Path) -> None:
    clip = clips.multi_track_mkv(tmp_path)
    mkv = _video_plan(clip.path, tmp_path / "out.mkv")
    assert [p.action for p in mkv.streams] == ["encode", "copy", "copy", "copy", "attach"]
    with pytest.raises(ContainerError, match="attachment"):
        plan_file(clip.path, tmp_path / "out.mp4", _options())
    plain = clips.multi_track_mkv(tmp_path, attachment=False)
    mp4 = _video_plan(plain.path, tmp_path / "out.mp4")
    subtitle = next(p for p in mp4.streams if p.type == "subtitle")
    assert (subtitle.action, subtitle.codec_out) == ("transcode", "mov_text")


def test_hdr_keeps_pq_and_depth(tmp_path: Path) -> None:
    src = hdr10_clip(tmp_path)
    plan = _video_plan(src, tmp_path / "out.mkv")
    assert plan.to_dict()["color"]["color_trc"] == "smpte2084"
    assert plan.to_dict()["color"]["hdr"] is not None
    assert plan.encoding.codec == "libx265"
    assert "10" in plan.encoding.pix_fmt


def test_auto_filters_are_left_to_the_run(tmp_path: Path) -> None:
    clip = clips.interlaced(tmp_path)
    options = _options(filters=FilterSpec(deinterlace="auto", crop="auto"))
    plan = _video_plan(clip.path, tmp_path / "out.mkv", options)
    assert plan.filters.undecided == ("deinterlace", "crop")
    assert plan.to_dict()["filters"]["decided_when_run"] == ["deinterlace", "crop"]
    # What the run is told to add is not suggested again while auto is still pending.
    assert not any("--deinterlace auto" in n for n in plan.notices)


def test_field_rate_deinterlace_doubles_frames(tmp_path: Path) -> None:
    clip = clips.interlaced(tmp_path)
    spec = FilterSpec(deinterlace="tff", deinterlace_mode="field")
    plan = _video_plan(clip.path, tmp_path / "out.mkv", _options(filters=spec))
    assert plan.filters.frames_per_packet == 2
    assert plan.frames is not None and plan.frames.total == 2 * clip.frames
    assert plan.video.field_order == "progressive"


def test_resume_state_is_read_not_changed(tmp_path: Path) -> None:
    clip = clips.cfr_h264_aac(tmp_path)
    out = tmp_path / "out.mkv"
    options = _options()
    plan = _video_plan(clip.path, out, options)
    # An interrupted run's state (a manifest, no segment finished yet).
    resume.prepare(
        clip.path,
        out,
        resume.job_settings(options),
        plan.video.time_base,
        lambda: resume.JobPlan(12, None, True),
    )
    manifest = resume.manifest_path(out).read_bytes()
    again = _video_plan(clip.path, out, options)
    assert again.resume == planning.ResumeStatus("resume", 0, 0)
    changed = _video_plan(clip.path, out, dataclasses.replace(options, max_frames=4))
    assert changed.resume is not None and changed.resume.action == "restart"
    assert "max_frames" in changed.resume.reason
    assert resume.manifest_path(out).read_bytes() == manifest


def test_image_plan(tmp_path: Path) -> None:
    import cv2

    src = tmp_path / "in.png"
    cv2.imwrite(str(src), np.zeros((20, 30, 3), np.uint8))
    with pytest.MonkeyPatch.context() as m:
        _refuse_decoding(m)
        plan = plan_file(src, tmp_path / "out.png", _options())
    assert isinstance(plan, ImagePlan)
    assert (plan.size, plan.output_size) == ((30, 20), (60, 40))
    assert plan.to_dict()["kind"] == "image"
    assert files_in(tmp_path) == {"in.png"}


# -- `vsr upscale --dry-run` ------------------------------------------------------------------

Cli = Callable[..., CliResult]
_REPORTED = {"encode": "encoded", "copy": "copied", "attach": "copied", "transcode": "transcoded"}


def test_dry_run_says_what_the_run_then_does(cli: Cli, tmp_path: Path) -> None:
    clip = clips.multi_track_mkv(tmp_path, attachment=False)
    out = tmp_path / "out.mp4"
    job = [clip.path, "-o", out, *FAST, "--frames", "7"]
    before = files_in(tmp_path)
    with pytest.MonkeyPatch.context() as m:
        _refuse_decoding(m)
        dry = cli("upscale", *job, "--dry-run", "--json")
        text = cli("upscale", *job, "--dry-run")
    assert (dry.code, text.code) == (0, 0), dry.err + text.err
    assert files_in(tmp_path) == before, "a dry run created a file"
    planned = dry.json
    assert "libx264" in text.out and "mov_text" in text.out
    real = cli("upscale", *job, "--json")
    assert real.code == 0, real.err
    done = real.json
    assert planned["encoder"] == done["encoder"]
    assert planned["frames"]["total"] == done["frames"] == 7
    assert [(s["index"], _REPORTED[s["action"]]) for s in planned["streams"]] == [
        (s["index"], s["action"]) for s in done["streams"]
    ]
    assert set(planned["notices"]) <= set(done["notices"])


def test_dry_run_refuses_what_the_run_refuses(cli: Cli, tmp_path: Path) -> None:
    clip = clips.multi_track_mkv(tmp_path)
    before = files_in(tmp_path)
    dry = cli("upscale", clip.path, "-o", tmp_path / "out.mp4", *FAST, "--dry-run")
    real = cli("upscale", clip.path, "-o", tmp_path / "out.mp4", *FAST)
    assert dry.code == real.code != 0
    assert dry.error_lines == real.error_lines
    assert files_in(tmp_path) == before
