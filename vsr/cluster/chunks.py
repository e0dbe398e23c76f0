"""Work units of a cluster batch: short files whole, long ones cut at keyframes into chunks.

A chunk is a run of frames that a worker encodes on its own into segment files, exactly as a
resumed pass of `vsr upscale` encodes the frames it still needs (vsr.pipeline.encode_part):
decoding starts at the chunk's keyframe, a temporal model first runs the frames just before
the chunk (its warm-up, dropped), and the model's output is encoded from the chunk's first
frame. The driver records each finished chunk's segments in the job's manifest (vsr.resume),
so a killed or interrupted batch resumes chunk by chunk, and joins them with the final mux
that every job uses: the same timestamps, the audio and subtitles muxed once.

Chunks are cut only where a frame's output timestamp is its packet's (no restoration filter
retimes or drops frames, no field-rate deinterlacing) and every packet has a timestamp; any
other file runs whole on one worker, through the ordinary pipeline.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from vsr import resume
from vsr.batch import BatchJob
from vsr.media.keyframes import FrameMap, scan_keyframes
from vsr.pipeline import Part
from vsr.plan import VideoPlan

# Frames just before a chunk handed to its worker for a temporal model's warm-up: more than
# any model's (24 for the recurrent model, at most 40 for stabilize).
WARMUP_FRAMES = 64


@dataclass(frozen=True)
class Chunk:
    """One chunk of a job; `name` is its folder in the job's segment folder, the same for every
    attempt, so a retried or twice-finished chunk lands in one place."""

    part: Part

    @property
    def name(self) -> str:
        return f"chunk-{self.part.gap.first_frame:09d}"

    @property
    def frames(self) -> int | None:
        return self.part.gap.frames


def plan_for_chunks(job: BatchJob, chunk_seconds: float) -> tuple[VideoPlan, FrameMap] | None:
    """The frozen plan and the frame map of a video worth cutting into chunks, or None: the
    file runs whole (a still, a file shorter than 1.5 chunks, one keyframe, restoration
    filters that retime frames). The same checks as a run come first, in the same order, so a
    bad input fails here, before any worker is busy with it."""
    from vsr import preflight
    from vsr.media import remux
    from vsr.media.probe import probe
    from vsr.models.registry import describe_model
    from vsr.outputs import check_paths
    from vsr.plan import ModelFacts, is_image_job, plan_video

    options = job.options
    preflight.check_input(job.input)
    preflight.check_model(options.model)
    check_paths(job.input, job.output, options.overwrite)
    preflight.check_output_folder(job.output)
    if job.is_image or is_image_job(job.input, job.output) or options.filters.needs_analysis:
        return None
    remux.container_format(job.output)
    model = ModelFacts.described(describe_model(options.model.name), options.model)
    plan = plan_video(job.input, job.output, probe(job.input), options, model, options.filters)
    frames = scan_keyframes(job.input, plan.source.index)
    if not frames.pts or not _long_enough(plan, frames, chunk_seconds):
        return None
    return (plan, frames) if can_split(plan, frames) else None


def _long_enough(plan: VideoPlan, frames: FrameMap, chunk_seconds: float) -> bool:
    span = (frames.pts[-1] - frames.pts[0]) * plan.video.time_base
    return float(span) >= 1.5 * chunk_seconds


def can_split(plan: VideoPlan, frames: FrameMap) -> bool:
    """True when output timestamps are the packets' own, so chunks can be cut by packet pts."""
    return (
        plan.filters.source is None
        and plan.filters.frames_per_packet == 1
        and not plan.options.filters.needs_analysis
        and plan.video.time_base == plan.source.time_base
        and frames.stamped
        and len(frames.keyframes) >= 2
    )


def cut_chunks(
    gaps: list[resume.Gap], frames: FrameMap, time_base: Fraction, seconds: float
) -> list[Chunk]:
    """Every gap of a job's manifest cut at the first keyframe past each `seconds` of content;
    a remainder shorter than half a chunk stays with the chunk before it."""
    chunks: list[Chunk] = []
    step = Fraction(seconds) / Fraction(time_base)
    for gap in gaps:
        end = _gap_end(gap, frames)
        first = gap.first_frame
        while first < end:
            cut = _next_cut(frames, first, end, step)
            chunks.append(_chunk(gap, frames, first, cut, end))
            first = cut
    return chunks


def _gap_end(gap: resume.Gap, frames: FrameMap) -> int:
    """The frame index where a gap ends (the scan's frame count when the gap runs to the end)."""
    if gap.end_pts is not None:
        return bisect.bisect_left(frames.pts, gap.end_pts)
    if gap.frames is not None:
        return min(len(frames.pts), gap.first_frame + gap.frames)
    return len(frames.pts)


def _next_cut(frames: FrameMap, first: int, end: int, step: Fraction) -> int:
    pts = frames.pts
    if first >= len(pts):
        return end
    k = bisect.bisect_left(frames.keyframes, pts[first] + step)
    if k >= len(frames.keyframes):
        return end
    cut = bisect.bisect_left(pts, frames.keyframes[k])
    if cut >= end or pts[min(end, len(pts)) - 1] - pts[cut] < step / 2:
        return end
    return max(cut, first + 1)


def _chunk(gap: resume.Gap, frames: FrameMap, first: int, cut: int, end: int) -> Chunk:
    pts = frames.pts
    start = gap.start_pts if first == gap.first_frame else pts[first]
    last = cut >= end
    stop = gap.end_pts if last else pts[cut]
    count: int | None = cut - first
    if last and gap.end_pts is None:
        # The tail runs to the end of the video, as an uninterrupted pass does.
        count = None if gap.frames is None else gap.first_frame + gap.frames - first
    before = tuple(pts[max(0, first - WARMUP_FRAMES) : first])
    return Chunk(Part(resume.Gap(first, start, stop, count), before, frames.stamped))


def chunk_folder(output: Path, chunk: Chunk) -> Path:
    return resume.segments_dir(output) / chunk.name
