"""Many files in one run: plan, skip what is finished, isolate failures, report.

A batch is planned completely before any work starts (:func:`plan_batch`, :func:`plan_job_file`):
every input is found, every preset is loaded and merged with its overrides, every output path
is decided and checked for collisions. A mistake in a job file is a :class:`ConfigError`
naming the file, the job number and the key, before a single frame is decoded.

:func:`run_batch` then runs the jobs one after another (or one per GPU with ``workers``): a
file that fails is recorded with its reason and the rest go on; Ctrl-C stops the batch and
marks the file in flight "interrupted", not failed. Finished outputs are skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import queue
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vsr.config import UpscaleOptions
from vsr.errors import ConfigError, InputNotFoundError, Interrupted, UsageError, VsrError
from vsr.events import Notify, ignore
from vsr.media.probe import IMAGE_SUFFIXES
from vsr.media.remux import CONTAINERS
from vsr.options import JOB_OPTIONS, MODEL_DEFAULTS, OVERRIDES, did_you_mean, option, type_error
from vsr.preflight import check_reachable
from vsr.presets import Preset, option_keys, refuse_file_options

if TYPE_CHECKING:
    # Only for annotations: the pipeline is imported when a job runs, not when a batch is
    # planned (--dry-run, the job-file checks).
    from vsr.pipeline import UpscaleResult

Status = Literal["done", "skipped", "failed", "interrupted", "not run"]

# What a folder scan picks up. Writable containers come from vsr.media.remux; these are
# formats FFmpeg reads that vsr cannot write (the output then becomes .mkv).
READ_ONLY_VIDEO_SUFFIXES = frozenset(
    {".mpg", ".mpeg", ".vob", ".m2v", ".ogv", ".ogg", ".flv", ".wmv", ".asf", ".3gp", ".dv"}
    | {".mxf", ".y4m", ".rm", ".rmvb", ".divx", ".f4v", ".h264", ".hevc", ".264", ".265"}
)
VIDEO_SUFFIXES = frozenset(CONTAINERS) | READ_ONLY_VIDEO_SUFFIXES
MEDIA_SUFFIXES = VIDEO_SUFFIXES | frozenset(IMAGE_SUFFIXES)
# The container for an input whose own container vsr cannot write: MKV holds any stream.
FALLBACK_CONTAINER = ".mkv"

# The job file's own keys, besides the options (vsr.options.JOB_OPTIONS) it may set at the top
# (for every job) or in a [[job]]: where the jobs are, what each reads and writes.
_PATH_KEYS = ("input", "output", "output_dir")
_TOP_KEYS = ("job", "output_dir", *JOB_OPTIONS)
_JOB_KEYS = ("input", "output", *JOB_OPTIONS)


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class BatchJob:
    """One file to upscale, fully resolved: nothing is decided later except the device."""

    number: int  # 1-based position in the plan
    input: Path
    output: Path
    preset: Preset  # the preset with every override applied
    options: UpscaleOptions
    # Where the job came from: "command line" or "jobs.toml, job 3".
    origin: str = "command line"

    @property
    def is_image(self) -> bool:
        return self.input.suffix.lower() in IMAGE_SUFFIXES

    def settings(self) -> dict[str, Any]:
        """The resolved settings, for --dry-run and the report."""
        model, enc, spec = self.options.model, self.options.encode, self.preset.filters
        filters = {
            k: v
            for k, v in dataclasses.asdict(spec).items()
            if v != getattr(type(spec)(), k) or k == "deinterlace"
        }
        return {
            "model": model.name,
            "scale": model.scale,
            "height": self.preset.height,
            "tile": "off" if model.tile is None else ("auto" if model.tile == 0 else model.tile),
            "precision": model.precision,
            "device": model.device,
            "temporal": self.preset.temporal,
            "filters": filters,
            "codec": enc.codec,
            "crf": enc.crf,
            "encoder_preset": enc.preset,
            "pix_fmt": enc.pix_fmt,
            "encoder_options": dict(enc.options),
            "duration": self.preset.duration,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "input": str(self.input),
            "output": str(self.output),
            "preset": self.preset.name,
            "origin": self.origin,
            "settings": self.settings(),
        }


def resolve_job_options(
    preset: str | Path | Preset | None,
    overrides: Mapping[str, object] | None = None,
    *,
    model_extra: Mapping[str, Any] | None = None,
    temporal_strength: float | None = None,
    overwrite: bool = False,
    skip_corrupt: bool = False,
    segment_seconds: float | None = None,
    keep_manifest: bool = False,
    trusted_options: Iterable[str] | None = None,
) -> tuple[Preset, UpscaleOptions]:
    """Load a preset (name, path or object), apply overrides, and build the pipeline options.

    ``overrides`` are preset keys (see vsr.options.OVERRIDES; None means not given);
    ``model_extra`` sets what presets do not hold (device, batch, tile_overlap, compile,
    max_memory). ``keep_manifest`` keeps the resume manifest beside a finished output, the
    record that lets a later batch skip it. Raises ConfigError for an unknown preset, key or
    value, with a did-you-mean.
    """
    from vsr.api import options_from_preset, resolve_preset

    resolved = resolve_preset(preset, overrides, trusted_options=trusted_options)
    extra = {k: v for k, v in (model_extra or {}).items() if v is not None}
    if segment_seconds is not None:
        extra["segment_seconds"] = segment_seconds
    return resolved, options_from_preset(
        resolved,
        temporal_strength=temporal_strength,
        overwrite=overwrite,
        skip_corrupt=skip_corrupt,
        keep_manifest=keep_manifest,
        **extra,
    )


def output_suffix(input_path: Path, container: str | None) -> str:
    """The output extension: the asked-for container, else the input's when vsr can write it."""
    suffix = input_path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return suffix  # a still stays a still in its own format
    if container is not None:
        return normalise_container(container)
    return suffix if suffix in CONTAINERS else FALLBACK_CONTAINER


def normalise_container(container: str) -> str:
    ext = "." + container.strip().lower().lstrip(".")
    if ext not in CONTAINERS:
        raise UsageError(
            f"expected a container one of {', '.join(sorted(c[1:] for c in CONTAINERS))}, "
            f"got {container!r}",
            hint=did_you_mean(ext[1:], [c[1:] for c in CONTAINERS]),
        )
    return ext


def _is_media(path: Path) -> bool:
    return path.suffix.lower() in MEDIA_SUFFIXES


def _hidden(name: str) -> bool:
    # Hidden files include vsr's own temporary outputs (".name.vsr-tmp-PID.mp4").
    return name.startswith(".") or ".vsr-tmp-" in name


def scan_folder(folder: Path, exclude: Sequence[Path] = ()) -> list[Path]:
    """Media files under a folder, recursively, sorted; hidden files and `exclude` left out."""
    excluded = [e.resolve() for e in exclude]
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        # Prune hidden folders and the output folder when it sits inside the input folder.
        dirs[:] = sorted(d for d in dirs if not _hidden(d) and (here / d).resolve() not in excluded)
        for name in sorted(files):
            path = here / name
            if not _hidden(name) and _is_media(path):
                found.append(path)
    return found


def _same_path(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _expand(
    input_path: Path, output: Path, output_is_dir: bool, container: str | None, origin: str
) -> list[tuple[Path, Path]]:
    """(input file, output file) pairs for one input (a file, or a folder to mirror)."""
    if input_path.is_dir():
        if not output_is_dir:
            raise UsageError(
                f"{origin}: the input {input_path} is a folder, so the output must be a folder"
            )
        if _same_path(input_path, output):
            raise UsageError(
                f"{origin}: the output folder is the input folder {input_path}; "
                "expected a separate output folder"
            )
        files = scan_folder(input_path, exclude=[output])
        if not files:
            raise UsageError(
                f"{origin}: found no video or image files in {input_path}",
                hint=f"looked for {', '.join(sorted(MEDIA_SUFFIXES))}",
            )
        return [
            (f, (output / f.relative_to(input_path)).with_suffix(output_suffix(f, container)))
            for f in files
        ]
    if output_is_dir:
        return [
            (
                input_path,
                (output / input_path.name).with_suffix(output_suffix(input_path, container)),
            )
        ]
    return [(input_path, output)]


def _check_collisions(pairs: list[tuple[Path, Path, str]], where: Path | None) -> None:
    """No two jobs write the same file, and no job writes over any input."""
    seen: dict[Path, str] = {}
    inputs = {p[0].resolve(): p[2] for p in pairs}
    for input_path, output, origin in pairs:
        key = output.resolve()
        if key in seen:
            raise ConfigError(
                f"{seen[key]} and {origin} both write {output}",
                path=where,
                hint="give one of them another output or container",
            )
        seen[key] = origin
        if key in inputs:
            raise ConfigError(
                f"{origin} writes {output}, which is the input of {inputs[key]}",
                path=where,
                hint="choose an output folder outside the inputs",
            )
        if (
            output.suffix.lower() in IMAGE_SUFFIXES
            and input_path.suffix.lower() not in IMAGE_SUFFIXES
        ):
            raise ConfigError(
                f"{origin}: the input {input_path.name} is a video but the output "
                f"{output.name} is an image",
                path=where,
            )


def plan_batch(
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    *,
    preset: str | Path | Preset | None = None,
    overrides: Mapping[str, object] | None = None,
    container: str | None = None,
    model_extra: Mapping[str, Any] | None = None,
    temporal_strength: float | None = None,
    overwrite: bool = False,
    skip_corrupt: bool = False,
) -> list[BatchJob]:
    """The jobs for files and folders under one preset; folders are mirrored into output_dir.

    ``overrides`` are preset keys (``crf``, ``model``, ``deinterlace`` ...) that win over the
    preset; ``model_extra`` holds device, batch, tile_overlap, compile and max_memory.
    """
    if not inputs:
        raise UsageError("expected at least one input file or folder")
    out_dir = Path(output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"the output {out_dir} is a file; expected a folder for a batch")
    if container is not None:
        container = normalise_container(container)
    resolved, options = resolve_job_options(
        preset,
        overrides,
        model_extra=model_extra,
        temporal_strength=temporal_strength,
        overwrite=overwrite,
        skip_corrupt=skip_corrupt,
        keep_manifest=True,
    )
    pairs: list[tuple[Path, Path, str]] = []
    for item in inputs:
        path = Path(item)
        check_reachable(path, "file or folder")
        for src, dst in _expand(path, out_dir, True, container, "command line"):
            pairs.append((src, dst, f"{src}"))
    _check_collisions(pairs, None)
    return [
        BatchJob(n, src, dst, resolved, options)
        for n, (src, dst, _origin) in enumerate(pairs, start=1)
    ]


def _check_table(table: Mapping[str, Any], allowed: Sequence[str], where: str, path: Path) -> None:
    for key, value in table.items():
        if key not in allowed:
            raise ConfigError(
                f"{where}: unknown key {key!r}",
                path=path,
                hint=did_you_mean(key, allowed) or f"keys: {', '.join(allowed)}",
            )
        if key == "job":
            wrong = None  # its tables are checked one by one
        elif key in _PATH_KEYS:
            is_path = isinstance(value, str)
            wrong = None if is_path else f"expected {key} to be a path, got {value!r}"
        else:
            wrong = type_error(key, value)
        if wrong is not None:
            raise ConfigError(f"{where}: {wrong}", path=path)


def plan_job_file(
    path: str | Path,
    *,
    output_dir: str | Path | None = None,
    overrides: Mapping[str, object] | None = None,
    model_extra: Mapping[str, Any] | None = None,
    overwrite: bool | None = None,
    allow_outside: bool = False,
) -> list[BatchJob]:
    """The jobs of a TOML job file, all checked before anything runs.

    Layout: top-level keys are defaults for every job (``preset``, ``output_dir``, any
    override such as ``crf`` or ``model``, and ``device``/``batch``/``container``...), then one
    ``[[job]]`` table per job with ``input`` (a file or a folder), optional ``output`` (a file,
    or a folder when the input is one; default: ``output_dir``) and its own overrides.
    Relative paths are relative to the job file. ``overrides`` and ``model_extra`` (the
    command line's; None values are not given) win over everything in the file.

    Job files get shared, so they are not trusted to write anywhere: every output (and
    ``output_dir``) must resolve inside the job file's folder or the ``output_dir`` argument
    (the command line's -o), symlinks and ``..`` included, unless the file gives an absolute
    path and ``allow_outside`` is set; and encoder options that name a file (two-pass stats,
    dumps ...) are refused unless the command line gives them (``overrides``).
    """
    job_file = Path(path)
    if not job_file.is_file():
        raise ConfigError("job file not found", path=job_file)
    try:
        table = tomllib.loads(job_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the job file ({exc})", path=job_file) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=job_file) from exc
    base_dir = job_file.parent
    _check_table(table, _TOP_KEYS, "top level", job_file)
    raw_jobs = table.get("job")
    if not isinstance(raw_jobs, list) or not raw_jobs:
        raise ConfigError(
            "expected at least one [[job]] table with an input", path=job_file, hint=None
        )
    defaults = {k: v for k, v in table.items() if k not in ("job", "output_dir")}
    roots = [base_dir] + ([Path(output_dir)] if output_dir is not None else [])
    trusted = option_keys((overrides or {}).get("encoder_options"))

    def confine(target: Path, raw: object, key: str, where: str) -> None:
        _confine(target, raw, key, where, roots, allow_outside, job_file)

    default_out: Path | None = None
    if output_dir is not None:
        default_out = Path(output_dir)
    elif "output_dir" in table:
        default_out = _rel(base_dir, table["output_dir"])
        confine(default_out, table["output_dir"], "output_dir", "top level")

    pairs: list[tuple[Path, Path, str]] = []
    resolved: list[tuple[Preset, UpscaleOptions, str]] = []
    for number, job in enumerate(raw_jobs, start=1):
        where = f"job {number}"
        if not isinstance(job, dict):
            raise ConfigError(f"{where}: expected a [[job]] table, got {job!r}", path=job_file)
        _check_table(job, _JOB_KEYS, where, job_file)
        if "input" not in job:
            raise ConfigError(f"{where}: missing key 'input'", path=job_file)
        settings = {**defaults, **{k: v for k, v in job.items() if k not in ("input", "output")}}
        input_path = _rel(base_dir, job["input"])
        try:
            check_reachable(input_path)
        except InputNotFoundError:
            raise ConfigError(
                f"{where}: input {str(input_path)!r} not found", path=job_file
            ) from None
        container = settings.pop("container", None)

        def fail(message: str, hint: str | None, where: str = where) -> ConfigError:
            return ConfigError(f"{where}: {message}", path=job_file, hint=hint)

        refuse_file_options(settings.get("encoder_options") or {}, trusted, fail, "encoder_options")
        try:
            if container is not None:
                container = normalise_container(container)
            preset_name = settings.pop("preset", None)
            if isinstance(preset_name, str) and preset_name.endswith(".toml"):
                preset_name = str(_rel(base_dir, preset_name))
            job_overrides = {k: settings[k] for k in OVERRIDES if k in settings}
            job_overrides.update({k: v for k, v in (overrides or {}).items() if v is not None})
            preset, options = resolve_job_options(
                preset_name,
                job_overrides,
                model_extra={
                    **{k: settings.get(k) for k in MODEL_DEFAULTS if option(k).job},
                    **(model_extra or {}),
                },
                overwrite=overwrite if overwrite is not None else settings.get("overwrite", False),
                skip_corrupt=settings.get("skip_corrupt", False),
                keep_manifest=True,
                trusted_options=trusted,
            )
        except VsrError as exc:
            raise _job_error(exc, where, job_file) from exc
        if "output" in job:
            output = _rel(base_dir, job["output"])
            confine(output, job["output"], "output", where)
            output_is_dir = input_path.is_dir() or (output.is_dir() and not output.suffix)
        elif default_out is not None:
            output, output_is_dir = default_out, True
        else:
            raise ConfigError(
                f"{where}: missing key 'output'",
                path=job_file,
                hint="give the job an output, set output_dir at the top, or pass -o",
            )
        try:
            expanded = _expand(input_path, output, output_is_dir, container, where)
            if not output_is_dir:
                # An explicit output file must be a container vsr can write.
                suffix = output.suffix.lower()
                if suffix not in CONTAINERS and suffix not in IMAGE_SUFFIXES:
                    normalise_container(suffix or "(none)")
        except VsrError as exc:
            raise _job_error(exc, where, job_file) from exc
        for src, dst in expanded:
            # A folder job's files too: a symlinked subfolder must not lead outside.
            confine(dst, job.get("output", str(dst)), "output", where)
            origin = f"{job_file.name}, {where}"
            pairs.append((src, dst, origin if len(expanded) == 1 else f"{origin} ({src.name})"))
            resolved.append((preset, options, origin))
    _check_collisions(pairs, job_file)
    return [
        BatchJob(n, src, dst, preset, options, origin)
        for n, ((src, dst, _o), (preset, options, origin)) in enumerate(
            zip(pairs, resolved, strict=True), start=1
        )
    ]


def _confine(
    target: Path,
    raw: object,
    key: str,
    where: str,
    roots: Sequence[Path],
    allow_outside: bool,
    job_file: Path,
) -> None:
    """A job file's output must stay inside its folder (or -o) unless the user allows more."""
    real = target.resolve()
    for root in roots:
        if real.is_relative_to(root.resolve()):
            return
    absolute = isinstance(raw, str) and Path(raw).expanduser().is_absolute()
    if absolute and allow_outside:
        return
    inside = " or ".join(str(r) for r in roots)
    raise ConfigError(
        f"{where}: {key} {raw!r} is {real}, outside {inside}",
        path=job_file,
        hint="a job file writes only inside its own folder or -o; pass --allow-outside to let "
        "it write to this absolute path"
        if absolute
        else "a job file writes only inside its own folder or -o, and a relative path may not "
        "climb out of it",
    )


def _rel(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def job_file_outdir(job_file: Path) -> Path:
    """Where a job file's batch report goes when -o is not given: its ``output_dir``, else
    the job file's own folder (an unreadable file's error comes from planning, not here)."""
    with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
        value = tomllib.loads(job_file.read_text(encoding="utf-8")).get("output_dir")
        if isinstance(value, str):
            return _rel(job_file.parent, value)
    return job_file.parent


def _job_error(exc: VsrError, where: str, job_file: Path) -> ConfigError:
    message = exc.message.removeprefix("command line: ")
    if exc.path is not None and exc.path != job_file and str(exc.path) not in message:
        message = f"{exc.path}: {message}"  # the preset file the job names
    return ConfigError(f"{where}: {message}", path=job_file, hint=exc.hint)


# --------------------------------------------------------------------------- finished?


def expected_frames(job: BatchJob) -> int | None:
    """Frames the output of a job should have (None when the input does not say)."""
    from vsr.media.probe import probe

    if job.is_image:
        return 1
    info = probe(job.input).video
    frames = info.frames
    limit = max_frames_for(job, info.frame_rate)
    if limit is not None:
        frames = limit if frames is None else min(frames, limit)
    if (
        frames is not None
        and job.preset.filters.deinterlace_mode == "field"
        and (job.preset.filters.deinterlace != "off")
    ):
        return None  # field-rate output doubles only the interlaced frames: not predictable
    return frames


def max_frames_for(job: BatchJob, rate: Any) -> int | None:
    """The preset's ``duration`` (first N seconds) as a frame count for this input."""
    if job.preset.duration is None:
        return job.options.max_frames
    fps = float(rate) if rate else 25.0
    return max(1, math.ceil(job.preset.duration * fps - 1e-9))


def is_finished(job: BatchJob) -> bool:
    """True when the job's output is complete and can be skipped.

    Uses ``vsr.resume.is_complete`` (the manifest and the file itself) where it exists;
    without it, an output counts as finished when it opens and has the expected frame count
    (for a still: when it opens as an image).
    """
    if not job.is_image:
        import importlib

        try:
            resume: Any = importlib.import_module("vsr.resume")
        except ImportError:
            resume = None
        check = getattr(resume, "is_complete", None)
        if check is not None:
            return bool(check(job.input, job.output, job.options))
    if not job.output.is_file():
        return False
    if job.is_image:
        import cv2

        return cv2.imread(str(job.output), cv2.IMREAD_UNCHANGED) is not None
    from vsr.media.probe import probe

    try:
        want = expected_frames(job)
        got = probe(job.output).video.frames
    except VsrError:
        return False
    return want is not None and got == want


# --------------------------------------------------------------------------- running


@dataclass
class FileResult:
    job: BatchJob
    status: Status
    frames: int | None = None
    seconds: float | None = None
    reason: str | None = None
    exit_code: int = 0
    result: UpscaleResult | None = None
    notices: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float | None:
        if self.result is not None:
            return self.result.fps
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": str(self.job.input),
            "output": str(self.job.output),
            "preset": self.job.preset.name,
            "origin": self.job.origin,
            "result": self.status,
            "frames": self.frames,
            "fps": round(self.fps, 3) if self.fps is not None else None,
            "seconds": round(self.seconds, 3) if self.seconds is not None else None,
            "reason": self.reason,
            "exit_code": self.exit_code,
            "device": self.result.settings.get("device") if self.result else None,
            "streams": [s.to_dict() for s in self.result.streams] if self.result else [],
            "notices": self.notices,
        }


@dataclass
class BatchReport:
    results: list[FileResult]
    seconds: float
    output_dir: Path | None = None
    interrupted: bool = False
    notices: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "failed"]

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [r.to_dict() for r in self.results],
            "summary": {
                "total": len(self.results),
                "done": self.count("done"),
                "skipped": self.count("skipped"),
                "failed": self.count("failed"),
                "interrupted": self.count("interrupted"),
                "not_run": self.count("not run"),
                "seconds": round(self.seconds, 3),
            },
            "interrupted": self.interrupted,
            "notices": self.notices,
        }


# Progress of one job of the batch: events.ProgressFn with the job in front.
JobProgressFn = Callable[[BatchJob, int, "int | None"], None]
FileDoneFn = Callable[[FileResult], None]


class _Stop(Exception):
    """Raised from a progress callback to stop a pipeline running in a worker thread."""


def _devices_for(jobs: Sequence[BatchJob], workers: int, notify: Notify) -> list[str | None]:
    """One device per worker: `cuda:i` when there are enough GPUs, else one worker (None)."""
    if workers <= 1:
        return [None]
    explicit = {j.options.model.device for j in jobs} - {"auto", "cuda"}
    try:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken CUDA install means: no GPU to spread over
        gpus = 0
    if explicit:
        notify(
            f"--jobs {workers}: jobs ask for device {', '.join(sorted(explicit))}; "
            "running one file at a time"
        )
        return [None]
    if gpus < workers:
        where = "no GPU" if gpus == 0 else f"{gpus} GPU{'s' if gpus > 1 else ''}"
        notify(
            f"--jobs {workers} runs one file per GPU and this machine has {where}; "
            "running one file at a time"
        )
        return [None]
    return [f"cuda:{i}" for i in range(workers)]


def run_batch(
    jobs: Sequence[BatchJob],
    *,
    workers: int = 1,
    skip_finished: bool = True,
    output_dir: str | Path | None = None,
    progress: JobProgressFn | None = None,
    notify: Notify | None = None,
    on_file: FileDoneFn | None = None,
) -> BatchReport:
    """Run every job; a failure is recorded and the batch goes on.

    Ctrl-C (KeyboardInterrupt) stops the batch: the file in flight is "interrupted" (its
    output is not left behind), the rest "not run", and ``report.interrupted`` is set; the
    report is returned rather than the exception raised, so the caller can still write it.
    """
    notify = notify if notify is not None else ignore
    started = time.perf_counter()
    batch_notices: list[str] = []

    def keep_notice(message: str) -> None:
        batch_notices.append(message)
        notify(message)

    results: dict[int, FileResult] = {}
    devices = _devices_for(jobs, workers, keep_notice)
    pending: list[BatchJob] = []
    for job in jobs:
        if skip_finished and not job.options.overwrite and _safe_finished(job):
            res = FileResult(
                job,
                "skipped",
                frames=_safe_frames(job.output),
                reason="already done",
            )
            results[job.number] = res
            notify(f"{job.input}: skipped: already done ({job.output})")
            if on_file is not None:
                on_file(res)
        else:
            pending.append(job)

    interrupted = False
    if len(devices) == 1:
        for i, job in enumerate(pending):
            res = _run_one(job, devices[0], progress, notify, None)
            results[job.number] = res
            if on_file is not None:
                on_file(res)
            if res.status == "interrupted":
                interrupted = True
                for rest in pending[i + 1 :]:
                    results[rest.number] = FileResult(rest, "not run", reason="batch interrupted")
                break
    else:
        interrupted = _run_parallel(pending, devices, results, progress, notify, on_file)

    ordered = [results[j.number] for j in jobs]
    return BatchReport(
        ordered,
        time.perf_counter() - started,
        Path(output_dir) if output_dir is not None else None,
        interrupted,
        batch_notices,
    )


def _safe_finished(job: BatchJob) -> bool:
    try:
        return is_finished(job)
    except VsrError:
        return False


def _safe_frames(path: Path) -> int | None:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return 1
    from vsr.media.probe import probe

    try:
        return probe(path).video.frames
    except VsrError:
        return None


def _run_one(
    job: BatchJob,
    device: str | None,
    progress: JobProgressFn | None,
    notify: Notify,
    stop: threading.Event | None,
) -> FileResult:
    """Upscale one file; every failure becomes a FileResult, Ctrl-C an "interrupted" one."""
    from vsr.api import run

    notices: list[str] = []

    def keep_notice(message: str) -> None:
        notices.append(message)
        notify(f"{job.input.name}: {message}")

    def step(done: int, total: int | None) -> None:
        if stop is not None and stop.is_set():
            raise _Stop()
        if progress is not None:
            progress(job, done, total)

    options = job.options
    if device is not None:
        options = dataclasses.replace(
            options, model=dataclasses.replace(options.model, device=device)
        )

    def attempt() -> UpscaleResult:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        return run(job.input, job.output, options, progress=step, notify=keep_notice)

    return file_result(job, attempt, notices, stops=(_Stop,))


def file_result(
    job: BatchJob,
    attempt: Callable[[], UpscaleResult],
    notices: list[str],
    *,
    stops: tuple[type[BaseException], ...] = (),
) -> FileResult:
    """The outcome of one file's run as a FileResult: every failure is one (a broken file must
    not end the batch), and Ctrl-C, or one of `stops`, an "interrupted" one. The one mapping
    for the batch on one machine and on a cluster's workers."""
    start = time.perf_counter()
    interrupts: tuple[type[BaseException], ...] = (KeyboardInterrupt, Interrupted, *stops)
    try:
        result = attempt()
    except interrupts:
        return FileResult(
            job,
            "interrupted",
            seconds=time.perf_counter() - start,
            reason="stopped by Ctrl-C",
            exit_code=130,
            notices=notices,
        )
    except VsrError as exc:
        return FileResult(
            job,
            "failed",
            seconds=time.perf_counter() - start,
            reason=str(exc),
            exit_code=exc.exit_code,
            notices=notices,
        )
    except Exception as exc:  # one broken file must not end the batch
        return FileResult(
            job,
            "failed",
            seconds=time.perf_counter() - start,
            reason=f"unexpected {type(exc).__name__}: {exc}",
            exit_code=1,
            notices=notices,
        )
    return FileResult(
        job,
        "done",
        frames=result.frames,
        seconds=result.seconds,
        result=result,
        notices=notices,
    )


def _run_parallel(
    jobs: list[BatchJob],
    devices: list[str | None],
    results: dict[int, FileResult],
    progress: JobProgressFn | None,
    notify: Notify,
    on_file: FileDoneFn | None,
) -> bool:
    """One worker thread per GPU; returns True when Ctrl-C stopped the batch."""
    free: queue.Queue[str | None] = queue.Queue()
    for d in devices:
        free.put(d)
    stop = threading.Event()
    lock = threading.Lock()

    def work(job: BatchJob) -> FileResult:
        if stop.is_set():
            return FileResult(job, "not run", reason="batch interrupted")
        device = free.get()
        try:
            return _run_one(job, device, _locked(progress, lock), notify, stop)
        finally:
            free.put(device)

    interrupted = False
    with ThreadPoolExecutor(max_workers=len(devices), thread_name_prefix="vsr-batch") as pool:
        futures: dict[Future[FileResult], BatchJob] = {pool.submit(work, j): j for j in jobs}
        remaining = set(futures)
        while remaining:
            try:
                done, remaining = wait(remaining, timeout=0.5, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                # Workers see the flag at their next frame and stop; their outputs are removed.
                interrupted = True
                stop.set()
                continue
            for fut in done:
                res = fut.result()
                results[res.job.number] = res
                if on_file is not None:
                    on_file(res)
    return interrupted or stop.is_set()


def _locked(progress: JobProgressFn | None, lock: threading.Lock) -> JobProgressFn | None:
    if progress is None:
        return None

    def call(job: BatchJob, done: int, total: int | None) -> None:
        with lock:
            progress(job, done, total)

    return call


# --------------------------------------------------------------------------- the table


def format_table(report: BatchReport) -> str:
    """The readable report: file, preset, frames, fps, seconds, result, reason."""
    base = report.output_dir
    header = ("file", "preset", "frames", "fps", "seconds", "result", "reason")
    rows: list[tuple[str, ...]] = [header]
    for r in report.results:
        name = str(r.job.input)
        rows.append(
            (
                name,
                r.job.preset.name,
                "" if r.frames is None else str(r.frames),
                "" if r.fps is None else f"{r.fps:.2f}",
                "" if r.seconds is None else f"{r.seconds:.1f}",
                r.status,
                r.reason or "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    s = report.to_dict()["summary"]
    lines.append("")
    lines.append(
        f"{s['done']} done, {s['skipped']} skipped, {s['failed']} failed"
        + (
            f", {s['interrupted'] + s['not_run']} not finished (interrupted)"
            if report.interrupted
            else ""
        )
        + f" in {report.seconds:.1f} s"
        + (f"; reports in {base}" if base is not None else "")
    )
    return "\n".join(lines)


def format_plan(jobs: Sequence[BatchJob]) -> str:
    """--dry-run: input -> output, preset and resolved settings per job."""
    lines: list[str] = []
    for job in jobs:
        lines.append(f"[{job.number}] {job.input} -> {job.output}")
        lines.append(f"    preset: {job.preset.name} ({job.origin})")
        settings = {k: v for k, v in job.settings().items() if v not in (None, {}, "")}
        lines.append("    " + ", ".join(f"{k}={_show(v)}" for k, v in settings.items()))
    lines.append(f"{len(jobs)} file{'s' if len(jobs) != 1 else ''}; nothing was run (--dry-run)")
    return "\n".join(lines)


def _show(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
