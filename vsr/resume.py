"""Resumable jobs: the video is encoded in segments closed by work done, with a manifest.

Layout beside the target ``OUT.mkv``:

- ``.OUT.mkv.vsr.json``: the manifest (input identity, a hash of the settings, how many frames
  the job has, and every finished segment: its frames, first and next timestamps, a checksum)
  — kept after success as the record that the file is finished (batch jobs);
- ``.OUT.mkv.vsr-segments/``: one video-only file per finished segment plus the exact
  timestamps of its packets (containers round timestamps; the sidecar keeps them exact).
  Removed after the final mux;
- ``.OUT.mkv.vsr.lock``: held (flock) while a run writes OUT, so a second run on the same
  output stops at once instead of disturbing the first. The kernel drops the lock when the
  process ends, however it ends, so a crash never leaves a stale lock.

A segment is closed after ``checkpoint_every`` seconds of processing (or ``segment_seconds`` of
content, whichever comes first), at any frame: vsr encodes the video itself, so each segment
starts with a keyframe of its own. A killed run (kill -9, power loss) loses at most the segment
in progress. Running the same command again checks the input and the settings against the
manifest and each segment against its checksum, keeps what is intact, and decodes only from
the input keyframe before the first missing frame; temporal models first run a few frames
before it (their warm-up, dropped) so that their state at the seam matches an uninterrupted
run. Any change of input or settings starts over, with a notice saying what changed. Segment
files are written under a temporary name and renamed, and the manifest is replaced
atomically, so a kill at any instant leaves a consistent state.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from vsr import __version__
from vsr.config import UpscaleOptions
from vsr.errors import OutputBusyError, OutputError, ResumeError
from vsr.media import scan

MANIFEST_VERSION = 2


def manifest_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.vsr.json")


def segments_dir(output: Path) -> Path:
    return output.with_name(f".{output.name}.vsr-segments")


def lock_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.vsr.lock")


@dataclass
class Segment:
    """One finished piece of the output: frames [first_frame, first_frame + frames)."""

    index: int  # names its files; segments are ordered by first_frame, not by index
    first_frame: int
    frames: int
    # Output timestamps (the output video's time base): the first frame's, and the next
    # frame's, where the following segment starts (None: this one runs to the end).
    start_pts: int
    end_pts: int | None
    repeated: int = 0
    # sha256 of the media file and of its timestamp sidecar: a segment damaged on disk
    # (same size, bytes flipped) is redone rather than muxed.
    sha256: str = ""
    done: bool = True

    def file(self, directory: Path) -> Path:
        return directory / f"segment-{self.index:05d}.mkv"

    def timestamps(self, directory: Path) -> Path:
        return directory / f"segment-{self.index:05d}.json"


@dataclass(frozen=True)
class Gap:
    """Frames still to do: from `first_frame` (output pts `start_pts`; None: the beginning)
    up to `end_pts` exclusive (None: the end of the job), `frames` of them when known."""

    first_frame: int
    start_pts: int | None
    end_pts: int | None
    frames: int | None


@dataclass
class Manifest:
    version: int
    input: dict[str, Any]
    settings_hash: str
    settings: dict[str, Any]
    time_base: str
    segments: list[Segment]
    # Frames the whole job has (for progress; None when the scan could not tell).
    total_frames: int | None = None
    # The job's frame limit (--frames, or a preset's duration), None: every frame.
    max_frames: int | None = None
    # False when the video has packets without timestamps: a resume then decodes from the
    # start and drops what is done, instead of seeking.
    seekable: bool = True
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

    @property
    def done_frames(self) -> int:
        return sum(s.frames for s in self.segments)

    def ordered(self) -> list[Segment]:
        return sorted(self.segments, key=lambda s: s.first_frame)

    def gaps(self) -> list[Gap]:
        """What is left to do, in order; empty when every frame is in a finished segment."""
        gaps: list[Gap] = []
        frame, pts = 0, None
        for seg in self.ordered():
            if seg.first_frame > frame:
                gaps.append(Gap(frame, pts, seg.start_pts, seg.first_frame - frame))
            frame, pts = seg.first_frame + seg.frames, seg.end_pts
            if pts is None:
                return gaps
        remaining = None if self.max_frames is None else self.max_frames - frame
        if remaining is None or remaining > 0:
            gaps.append(Gap(frame, pts, None, remaining))
        return gaps

    def warmup_pts(self, gap: Gap, count: int, directory: Path) -> list[int]:
        """Output timestamps of the `count` frames just before `gap` (fewer near the start)."""
        if count <= 0 or gap.start_pts is None:
            return []
        found: list[int] = []
        expect = gap.first_frame
        for seg in reversed(self.ordered()):
            if seg.first_frame >= gap.first_frame:
                continue
            if seg.first_frame + seg.frames != expect:
                break  # not contiguous with what follows: its frames are not the ones before
            pts = sorted(int(p[0]) for p in read_stamps(seg, directory) if p[0] is not None)
            found = pts[-(count - len(found)) :] + found
            expect = seg.first_frame
            if len(found) >= count:
                break
        return found[-count:]


def read_stamps(segment: Segment, directory: Path) -> list[list[int | None]]:
    data = json.loads(segment.timestamps(directory).read_text(encoding="utf-8"))
    return list(data["packets"])


def file_identity(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def settings_digest(settings: dict[str, Any]) -> str:
    blob = json.dumps({"settings": settings, "vsr": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def segment_checksum(segment: Segment, directory: Path) -> str:
    digest = hashlib.sha256()
    for path in (segment.file(directory), segment.timestamps(directory)):
        with open(path, "rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()


def write_manifest(path: Path, manifest: Manifest) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(manifest.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        # A full disk fails here too: no half-written manifest is left beside the output.
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read_manifest(path: Path) -> Manifest | None:
    try:
        return Manifest.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError):
        return None


# -- what the job holds ---------------------------------------------------------------------


@dataclass(frozen=True)
class JobPlan:
    total_frames: int | None
    max_frames: int | None
    seekable: bool


def scan_video(path: Path, index: int) -> tuple[list[int], int, bool]:
    """Every video packet's pts (sorted), the packet count, and whether all had a pts.

    Demuxes only (no decoding), in a container of its own that is closed afterwards, so
    nothing is seeked: seeking back on a damaged file fails (a truncated MKV answers EPERM).
    """
    return scan.scan_video(path, index)


def plan_job(
    pts: list[int],
    count: int,
    time_base: Fraction,
    *,
    max_frames: int | None,
    max_seconds: float | None = None,
    frames_per_packet: int = 1,
) -> tuple[int | None, int | None]:
    """(frames the job will have, its frame limit) from the scan and the options."""
    limit = max_frames
    if max_seconds is not None and pts:
        within = bisect.bisect_left(pts, pts[0] + max_seconds / float(time_base))
        limit = within if limit is None else min(limit, within)
    total = count * frames_per_packet if count else None
    if limit is not None:
        total = limit if total is None else min(total, limit)
    return total, limit


# -- one writer per output ------------------------------------------------------------------


@contextlib.contextmanager
def job_lock(output: Path) -> Iterator[None]:
    """Hold ``.OUT.vsr.lock`` while writing OUT; a second run gets OutputBusyError at once.

    flock, not the file's existence, is the lock: the kernel releases it when the process
    ends in any way (kill -9 included), so a crash leaves nothing stale. The file holds the
    owner's pid for the message and is removed on release.
    """
    path = lock_path(output)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(
                f"cannot create a lock file in {path.parent} ({exc.strerror or exc})",
                hint="check that the output folder exists and is writable",
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_pid(fd)
            os.close(fd)
            raise OutputBusyError(
                f"another vsr is writing {output} (pid {owner})",
                # The user's next step: two runs on one output can't both win.
                hint="wait for it to finish, or pass another -o",
            ) from None
        # The previous owner may have removed the file between our open and our flock: then
        # we hold a lock on a file nobody else can see, so take the new one.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        if text.isdigit():
            return text
    return "unknown"


def clean_leftovers(output: Path) -> list[Path]:
    """Remove temp files that killed runs left for this output (hold the job lock).

    The final mux's hidden temp output (killed during the mux), half-written manifests and
    half-written segment files; finished segments are checked separately, by checksum.
    """
    removed: list[Path] = []
    temp_output = re.compile(
        re.escape(f".{output.stem}.vsr-tmp-") + r"\d+" + re.escape(output.suffix) + r"\Z"
    )
    temp_manifest = re.compile(re.escape(manifest_path(output).name) + r"\.tmp-\d+\Z")
    candidates: list[Path] = []
    with contextlib.suppress(OSError):
        candidates += [
            p
            for p in output.parent.iterdir()
            if temp_output.match(p.name) or temp_manifest.match(p.name)
        ]
    with contextlib.suppress(OSError):
        candidates += [p for p in segments_dir(output).iterdir() if ".partial" in p.name]
    for path in candidates:
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed


# -- state of one job -----------------------------------------------------------------------


@dataclass
class ResumeState:
    manifest: Manifest
    path: Path
    directory: Path
    resumed_frames: int = 0  # frames found done when the run started
    notices: list[str] = field(default_factory=list)

    def save(self) -> None:
        write_manifest(self.path, self.manifest)

    def next_index(self) -> int:
        return max((s.index for s in self.manifest.segments), default=-1) + 1

    def add_segment(self, segment: Segment) -> None:
        """Record a segment whose files are in place (renamed from their temp names)."""
        segment.sha256 = segment_checksum(segment, self.directory)
        self.manifest.segments.append(segment)
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

    def abandon(self, *, keep: bool = True) -> None:
        """After a failure: keep finished segments for a resume; with none, leave nothing.

        keep=False: the failure would repeat on a rerun of the same command (a damaged
        input), and the command that gets past it (--skip-corrupt) changes the settings and
        starts over anyway, so the segments are worth nothing and are removed too.
        """
        if keep and self.manifest.segments:
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
    plan: Callable[[], JobPlan],
) -> ResumeState:
    """Load a matching manifest (and its intact segments) or start a fresh one.

    `plan` is called (only when starting afresh) for the JobPlan; it runs before anything is
    created, so a file that cannot even be scanned leaves nothing behind.
    """
    mpath = manifest_path(output)
    directory = segments_dir(output)
    identity = file_identity(input_path)
    digest = settings_digest(settings)
    old = read_manifest(mpath) if mpath.exists() else None
    notices: list[str] = []
    if old is not None and not old.complete and old.version == MANIFEST_VERSION:
        same_input = {k: old.input.get(k) for k in identity} == identity
        if same_input and old.settings_hash == digest and old.time_base == str(time_base):
            state = ResumeState(old, mpath, directory, notices=notices)
            _drop_damaged(state)
            state.resumed_frames = old.done_frames
            if old.segments:
                total = f" of {old.total_frames:,}" if old.total_frames else ""
                notices.append(f"resumed: {state.resumed_frames:,}{total} frames done")
            state.save()
            return state
        if not same_input:
            notices.append("the input changed since the interrupted run: starting over")
        else:
            changed = ", ".join(_changed_keys(old.settings, settings)) or "version"
            notices.append(f"settings changed since the interrupted run ({changed}): starting over")
    job: JobPlan = plan()
    if directory.exists():
        shutil.rmtree(directory, ignore_errors=True)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResumeError(f"cannot create the segment folder {directory}: {exc}") from exc
    manifest = Manifest(
        MANIFEST_VERSION,
        identity,
        digest,
        settings,
        str(time_base),
        [],
        total_frames=job.total_frames,
        max_frames=job.max_frames,
        seekable=job.seekable,
    )
    state = ResumeState(manifest, mpath, directory, notices=notices)
    state.save()
    return state


def _drop_damaged(state: ResumeState) -> None:
    """Forget segments whose files are missing or differ from their checksum (redone)."""
    keep: list[Segment] = []
    for seg in state.manifest.segments:
        if _segment_ok(seg, state.directory):
            keep.append(seg)
            continue
        last = seg.first_frame + seg.frames - 1
        state.notices.append(
            f"segment {seg.index} (frames {seg.first_frame:,}-{last:,}) is missing or damaged "
            "on disk: doing it again"
        )
        for path in (seg.file(state.directory), seg.timestamps(state.directory)):
            with contextlib.suppress(OSError):
                path.unlink()
    state.manifest.segments = keep
    known = {s.file(state.directory).name for s in keep} | {
        s.timestamps(state.directory).name for s in keep
    }
    with contextlib.suppress(OSError):
        for path in state.directory.iterdir():
            if path.name not in known:
                with contextlib.suppress(OSError):
                    path.unlink()
    with contextlib.suppress(OSError):
        state.directory.mkdir(parents=True, exist_ok=True)


def _segment_ok(segment: Segment, directory: Path) -> bool:
    """A finished segment counts only if its files are there and match their checksum."""
    try:
        if not segment.sha256 or segment_checksum(segment, directory) != segment.sha256:
            return False
        return len(read_stamps(segment, directory)) == segment.frames > 0
    except (OSError, ValueError, KeyError, TypeError):
        return False


def job_settings(options: UpscaleOptions) -> dict[str, Any]:
    """What, if changed, makes finished segments unusable (the output would differ).

    `checkpoint_every` is not among them: where segments end changes no frame.
    """
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
    return scan.has_video_stream(output)


def discard(output: Path) -> None:
    """Forget any previous state for this output (used with --overwrite of a finished file)."""
    with contextlib.suppress(OSError):
        manifest_path(output).unlink()
    shutil.rmtree(segments_dir(output), ignore_errors=True)
