"""Resumable jobs: the video is encoded in segments that start at keyframes, with a manifest.

Layout beside the target ``OUT.mkv``:

- ``.OUT.mkv.vsr.json``: the manifest (input identity, a hash of the settings, the segment
  plan, which segments are done) — kept after success as the record that the file is finished;
- ``.OUT.mkv.vsr-segments/``: one video-only file per finished segment plus the exact
  timestamps of its packets (containers round timestamps; the sidecar keeps them exact).
  Removed after the final mux.

A killed run (kill -9, power loss) leaves finished segments and the manifest; running the same
command again checks the input and the settings against the manifest, keeps the finished
segments and carries on. Any change of input or settings starts over, with a notice saying
what changed. Each segment is written under a temporary name and renamed, and the manifest is
replaced atomically, so a kill at any instant leaves a consistent state.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from vsr import __version__
from vsr.config import UpscaleOptions
from vsr.errors import ResumeError

MANIFEST_VERSION = 1


def manifest_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.vsr.json")


def segments_dir(output: Path) -> Path:
    return output.with_name(f".{output.name}.vsr-segments")


@dataclass
class Segment:
    index: int
    start_pts: int | None  # None: from the start of the file, no seek
    end_pts: int | None  # exclusive; None: to the end
    first_frame: int
    expected_frames: int
    done: bool = False
    frames: int = 0
    repeated: int = 0

    def file(self, directory: Path) -> Path:
        return directory / f"segment-{self.index:05d}.mkv"

    def timestamps(self, directory: Path) -> Path:
        return directory / f"segment-{self.index:05d}.json"


@dataclass
class Manifest:
    version: int
    input: dict[str, Any]
    settings_hash: str
    settings: dict[str, Any]
    time_base: str
    segments: list[Segment]
    complete: bool = False
    output: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        data["segments"] = [Segment(**s) for s in data["segments"]]
        return cls(**data)


def file_identity(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def settings_digest(settings: dict[str, Any]) -> str:
    blob = json.dumps({"settings": settings, "vsr": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_manifest(path: Path, manifest: Manifest) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(manifest.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_manifest(path: Path) -> Manifest | None:
    try:
        return Manifest.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def scan_keyframes(
    container: av.container.InputContainer, index: int
) -> tuple[list[int], list[int]] | None:
    """Every video packet's pts (sorted) and the keyframes' pts, by demuxing (no decoding).

    None when the stream has packets without timestamps: such a file is processed in one
    piece (it can't be cut at keyframes reliably).
    """
    stream = container.streams[index]
    pts: list[int] = []
    keys: list[int] = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                return None
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
    except av.error.FFmpegError:
        # A damaged tail: cut points before it stay valid, and the decoder reports the damage.
        pass
    finally:
        container.seek(0)
    pts.sort()
    return pts, sorted(set(keys))


def plan_segments(
    pts: list[int],
    keys: list[int],
    time_base: Fraction,
    *,
    segment_seconds: float,
    max_frames: int | None,
    max_seconds: float | None = None,
) -> list[Segment]:
    """Cut at keyframes roughly every `segment_seconds` of content."""
    if max_seconds is not None and pts:
        limit = pts[0] + max_seconds / float(time_base)
        count = bisect.bisect_left(pts, limit)
        max_frames = count if max_frames is None else min(max_frames, count)
    if max_frames is not None:
        pts = pts[:max_frames]
    if not pts:
        return [Segment(0, None, None, 0, 0)]
    limit_pts = None
    if max_frames is not None and max_frames < len(pts) + 1:
        limit_pts = pts[-1] + 1
    step = segment_seconds / float(time_base)
    cuts: list[int] = []
    last = pts[0]
    for key in keys:
        if key > pts[0] and key - last >= step and (limit_pts is None or key < limit_pts):
            cuts.append(key)
            last = key
    bounds: list[int | None] = [None, *cuts]
    ends: list[int | None] = [*cuts, limit_pts]
    segments: list[Segment] = []
    first = 0
    for i, (start, end) in enumerate(zip(bounds, ends, strict=True)):
        lo = 0 if start is None else bisect.bisect_left(pts, start)
        hi = len(pts) if end is None else bisect.bisect_left(pts, end)
        segments.append(Segment(i, start, end, first, hi - lo))
        first += hi - lo
    return segments


@dataclass
class ResumeState:
    manifest: Manifest
    path: Path
    directory: Path
    resumed: int  # segments found done
    notice: str | None = None

    def save(self) -> None:
        write_manifest(self.path, self.manifest)

    def mark_done(self, segment: Segment, frames: int, repeated: int) -> None:
        segment.done = True
        segment.frames = frames
        segment.repeated = repeated
        self.save()

    def finish(self, output: Path, *, keep_manifest: bool = False) -> None:
        """Segments go; the manifest stays only as a record for batch jobs ("finished")."""
        shutil.rmtree(self.directory, ignore_errors=True)
        if keep_manifest:
            self.manifest.complete = True
            self.manifest.output = file_identity(output)
            self.save()
        else:
            with contextlib.suppress(OSError):
                self.path.unlink()

    def abandon(self) -> None:
        """After a failure: keep finished segments for a resume; with none, leave nothing."""
        if any(s.done for s in self.manifest.segments):
            return
        shutil.rmtree(self.directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.path.unlink()


def _changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k)]


def prepare(
    input_path: Path,
    output: Path,
    settings: dict[str, Any],
    time_base: Fraction,
    plan: Callable[[], list[Segment]],
) -> ResumeState:
    """Load a matching manifest (and its finished segments) or start a fresh one."""
    mpath = manifest_path(output)
    directory = segments_dir(output)
    identity = file_identity(input_path)
    digest = settings_digest(settings)
    old = read_manifest(mpath) if mpath.exists() else None
    notice = None
    if old is not None and not old.complete and old.version == MANIFEST_VERSION:
        same_input = {k: old.input.get(k) for k in identity} == identity
        if same_input and old.settings_hash == digest and old.time_base == str(time_base):
            done = [s for s in old.segments if s.done and _segment_ok(s, directory)]
            for s in old.segments:
                if s.done and s not in done:
                    s.done = False
            state = ResumeState(old, mpath, directory, len(done))
            if done:
                state.notice = (
                    f"resuming: {len(done)} of {len(old.segments)} segments "
                    f"({sum(s.frames for s in done)} frames) already done"
                )
            return state
        if not same_input:
            notice = "the input changed since the interrupted run: starting over"
        else:
            changed = ", ".join(_changed_keys(old.settings, settings)) or "version"
            notice = f"settings changed since the interrupted run ({changed}): starting over"
    if directory.exists():
        shutil.rmtree(directory, ignore_errors=True)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResumeError(f"cannot create the segment folder {directory}: {exc}") from exc
    manifest = Manifest(MANIFEST_VERSION, identity, digest, settings, str(time_base), plan())
    state = ResumeState(manifest, mpath, directory, 0, notice)
    state.save()
    return state


def _segment_ok(segment: Segment, directory: Path) -> bool:
    """A finished segment counts only if its files are there and agree with each other."""
    media, stamps = segment.file(directory), segment.timestamps(directory)
    if not media.exists() or not stamps.exists():
        return False
    try:
        count = len(json.loads(stamps.read_text(encoding="utf-8"))["packets"])
        with av.open(str(media)) as container:
            packets = sum(1 for p in container.demux(video=0) if p.size)
    except (OSError, ValueError, KeyError, av.error.FFmpegError):
        return False
    return count == packets and count > 0


def job_settings(options: UpscaleOptions) -> dict[str, Any]:
    """What, if changed, makes finished segments unusable (the output would differ)."""
    settings: dict[str, Any] = {
        "model": asdict(options.model),
        "encode": asdict(options.encode),
        "skip_corrupt": options.skip_corrupt,
        "max_frames": options.max_frames,
        "max_seconds": options.max_seconds,
        "segment_seconds": options.segment_seconds,
        "filters": asdict(options.filters),
        "height": options.height,
        "temporal": options.temporal,
        "temporal_strength": options.temporal_strength,
    }
    weights = Path(options.model.name).expanduser()
    if weights.is_file():
        settings["weights"] = file_identity(weights)
    return json.loads(json.dumps(settings, default=str))


def is_complete(input_path: str | Path, output: str | Path, options: UpscaleOptions) -> bool:
    """True when `output` is a finished vsr result of this input with these settings.

    Checked against the manifest (input identity, settings, completion) and the output file
    itself (size and mtime as recorded, and it opens as media).
    """
    input_path, output = Path(input_path), Path(output)
    if not output.exists() or not input_path.exists():
        return False
    manifest = read_manifest(manifest_path(output))
    if manifest is None or not manifest.complete:
        return False
    identity = file_identity(input_path)
    if {k: manifest.input.get(k) for k in identity} != identity:
        return False
    if manifest.settings_hash != settings_digest(job_settings(options)):
        return False
    if manifest.output != file_identity(output):
        return False
    with contextlib.suppress(av.error.FFmpegError, OSError), av.open(str(output)) as container:
        return bool(container.streams.video)
    return False


def discard(output: Path) -> None:
    """Forget any previous state for this output (used with --overwrite of a finished file)."""
    with contextlib.suppress(OSError):
        manifest_path(output).unlink()
    shutil.rmtree(segments_dir(output), ignore_errors=True)
