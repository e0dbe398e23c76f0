"""The issue-9 benchmark table, run by scripts/gpu_check.sh (one `vsr bench` per case).

Makes a 1080p H.264 source (and a 540p one for the x4 cases) here, then for each case runs
`python -m vsr bench --json` in its own process (a crash or a timeout loses one row, not the
table): model-only fps, end-to-end fps through the device graph and through the old float32
host path (both in the same bench run), per-stage fps and busy share, TFLOP/s against the bf16
matmul peak measured in the same run, peak device memory. Also probes NVDEC (--hwaccel) and
NVENC. Writes OUT/gpu_table.json and prints a Markdown table.

    python scripts/gpu_table.py --out DIR [--cpu-rehearsal] [--deadline UNIX_TIME]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np


def make_source(path: Path, width: int, height: int, frames: int) -> None:
    """A moving, textured BT.709 clip (x264 ultrafast: made fast, decoded like any H.264)."""
    import av
    import cv2

    rng = np.random.default_rng(9)
    base = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    big = cv2.resize(base, (width + 64, height + 64), interpolation=cv2.INTER_CUBIC)
    y, x = np.mgrid[0 : height + 64, 0 : width + 64]
    lines = ((np.sin(x * 0.21) * np.cos(y * 0.17)) * 40).astype(np.int16)
    canvas = np.clip(big.astype(np.int16) + lines[..., None], 0, 255).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(24000, 1001))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        cc = stream.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1
        for i in range(frames):
            dx, dy = (3 * i) % 64, (2 * i) % 64
            rgb = np.ascontiguousarray(canvas[dy : dy + height, dx : dx + width])
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace=1, dst_color_range=1)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def probe_hardware(log: Any) -> dict[str, Any]:
    """NVDEC through PyAV, NVENC encoders: what this machine offers (and why not)."""
    import av

    facts: dict[str, Any] = {}
    try:
        from av.codec.hwaccel import hwdevices_available

        facts["hwdevices"] = list(hwdevices_available())
    except Exception as exc:
        facts["hwdevices"] = f"error: {exc}"
    try:
        from vsr.media.hardware import nvenc_status

        facts["nvenc"] = nvenc_status()
    except Exception as exc:
        facts["nvenc"] = f"error: {type(exc).__name__}: {exc}"
    facts["av"] = av.__version__
    print(f"hardware: {facts}", file=log, flush=True)
    return facts


def run_case(case: dict[str, Any], timeout: float, log: Any) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "vsr", "bench", str(case["source"]), "--json", *case["args"]]
    print("$ " + " ".join(cmd), file=log, flush=True)
    start = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    print(proc.stderr[-4000:], file=log, flush=True)
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}"}
    report = json.loads(proc.stdout)
    report["wall_s"] = round(time.time() - start, 1)
    print(json.dumps(report, indent=1), file=log, flush=True)
    return report


def run_rss(cmd: list[str], env: dict[str, str], timeout: float, cwd: str) -> dict[str, Any]:
    """Run `cmd` under a wrapper whose only child it is: its peak RSS is the job's own."""
    wrapper = (
        "import resource, subprocess, sys, json\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr[-2000:], "
        "'peak_rss_mib': round(kb / 1024, 1)}))\n"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", wrapper, *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=cwd,  # `python -m` puts the working folder first on sys.path
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    try:
        return dict(json.loads(proc.stdout))
    except ValueError:
        return {"error": proc.stderr[-500:]}


def cpu_goal(work: Path, deadline: float, log: Any, rehearsal: bool) -> dict[str, Any]:
    """The issue's CPU goal on two cores (taskset): 180x100, animevideov3 x4, `vsr bench`:
    end to end / model only, and the whole process's peak RSS, before (the tree in
    VSR_BASE_TREE, if carried) and after, in this one run."""
    import shutil

    out: dict[str, Any] = {}
    if time.time() > deadline:
        return {"error": "skipped: the 8-minute budget was spent"}
    src = work / "c180.mkv"
    make_source(src, 180, 100, 40)
    pin = ["taskset", "-c", "0,1"] if shutil.which("taskset") and not rehearsal else []
    site = os.environ.get("PYTHONPATH", "")
    repo = str(Path(__file__).resolve().parent.parent)
    trees = {"after": repo}
    base = os.environ.get("VSR_BASE_TREE")
    if base and Path(base).is_dir():
        trees = {"before": base, **trees}
    frames = "30" if not rehearsal else "4"
    for label, tree in trees.items():
        env = dict(os.environ)
        parts = [p for p in site.split(os.pathsep) if p and Path(p).resolve() != Path(repo)]
        env["PYTHONPATH"] = os.pathsep.join([tree, *parts])
        env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU's figures, whatever the machine has
        model = ["--model", "realesr-animevideov3", "--scale", "4", "--device", "cpu"]
        cmd = [*pin, sys.executable, "-m", "vsr", "bench", str(src), "--json", "--frames", frames]
        cmd += model
        print(f"$ ({label}) " + " ".join(cmd), file=log, flush=True)
        run = run_rss(cmd, env, max(30.0, deadline + 60 - time.time()), tree)
        if run.get("rc") == 0:
            report = json.loads(run["out"])
            out[label] = {
                "peak_rss_mib": run["peak_rss_mib"],
                "model_fps": report["model_fps"],
                "end_to_end_fps": report["end_to_end_fps"],
                "ratio_end_to_end_to_model": report["ratio_end_to_end_to_model"],
                "paths": {k: v["fps"] for k, v in report.get("paths", {}).items()},
                "settings": report["settings"],
            }
            for name, fps in out[label]["paths"].items():
                if report["model_fps"]:
                    out[label][f"ratio_{name}_to_model"] = round(fps / report["model_fps"], 3)
        else:
            out[label] = {k: v for k, v in run.items() if k != "out"}
        print(f"cpu {label}: {out[label]}", file=log, flush=True)
        print(f"cpu {label}: {out[label]}")
    return out


def row(name: str, report: dict[str, Any]) -> str:
    if "error" in report:
        return f"| {name} | {report['error'][:80]} | | | | | | |"
    paths = report.get("paths", {})
    new = paths.get("tensor", {})
    old = paths.get("swscale", {})
    share = report.get("model_share_of_bf16_peak")
    share_text = f"{100 * share:.1f}%" if share is not None else "n/a"
    vram = new.get("peak_device_memory_mib")
    vram_old = old.get("peak_device_memory_mib")
    ratio = report.get("ratio_tensor_to_swscale")
    side = report.get("encode_side_by_side_fps")
    workers = report.get("encode_workers", {}).get("workers", 1)
    side_text = f"{side:.1f} ({workers} encoders)" if side is not None else "n/a (1 encoder)"
    return (
        f"| {name} ({report['frames']} frames) | {report['model_fps']:.1f} | "
        f"{new.get('fps', 0):.1f} | {old.get('fps', 0):.1f} | "
        f"{ratio if ratio is not None else 'n/a'} | {share_text} | "
        f"{vram if vram is not None else 'n/a'} / {vram_old if vram_old is not None else 'n/a'} "
        f"| {report['encode_fps']:.1f} | {side_text} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--cpu-rehearsal", action="store_true")
    parser.add_argument("--deadline", type=float, help="unix time to stop starting cases")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.log, "a", encoding="utf-8") if args.log else sys.stderr  # noqa: SIM115
    deadline = args.deadline or time.time() + 420
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"vsr-table-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)

    rehearsal = args.cpu_rehearsal
    if rehearsal:
        hd, sd, frames_av3, frames_x4plus = (192, 108), (96, 54), 6, 3
        device = ["--device", "cpu", "--precision", "fp32"]
        half = ["--device", "cpu", "--precision", "bf16"]
        fp16 = device
    else:
        hd, sd = (1920, 1080), (960, 540)
        frames_av3 = int(os.environ.get("VSR_GPU_FRAMES", "150"))
        frames_x4plus = int(os.environ.get("VSR_GPU_FRAMES_X4PLUS", "60"))
        device = ["--device", "cuda"]
        half = [*device, "--precision", "bf16"]
        fp16 = [*device, "--precision", "fp16"]
    source_frames = 300 if not rehearsal else 8
    result: dict[str, Any] = {"rehearsal": rehearsal, "cases": {}}
    t0 = time.time()
    src_hd = work / "src1080.mkv"
    src_sd = work / "src540.mkv"
    make_source(src_hd, *hd, source_frames)
    make_source(src_sd, *sd, max(frames_av3, frames_x4plus) + 2)
    result["source_seconds"] = round(time.time() - t0, 1)
    result["hardware"] = probe_hardware(log)
    # x264 ultrafast: the encoder is the CPU's job; the table is about the device graph.
    enc = ["--encoder-preset", "ultrafast", "--batch", "4"]
    cases = [
        ("animevideov3 x2 fp16, 1080p -> 4K", src_hd, ["--scale", "2", *fp16], frames_av3),
        ("animevideov3 x2 bf16, 1080p -> 4K", src_hd, ["--scale", "2", *half], frames_av3),
        ("animevideov3 x4 fp16, 540p -> 4K", src_sd, ["--scale", "4", *fp16], frames_av3),
        # CUDA graphs against the eager row above: the compact model launches ~35 small
        # kernels per batch.
        (
            "animevideov3 x4 fp16 --cuda-graphs, 540p -> 4K",
            src_sd,
            ["--scale", "4", *fp16, "--cuda-graphs"],
            frames_av3,
        ),
        (
            "x4plus x4 fp16, 540p -> 4K",
            src_sd,
            ["--model", "realesrgan-x4plus", *fp16],
            frames_x4plus,
        ),
        # torch.compile against the eager row above (needs a C compiler for Triton; if the
        # machine has none the row says so).
        (
            "animevideov3 x4 fp16 --compile, 540p -> 4K",
            src_sd,
            ["--scale", "4", *fp16, "--compile"],
            frames_av3,
        ),
    ]
    for name, source, extra, frames in cases:
        if time.time() > deadline:
            result["cases"][name] = {"error": "skipped: the 8-minute budget was spent"}
            continue
        model = [] if "--model" in extra else ["--model", "realesr-animevideov3"]
        case = {"source": source, "args": [*model, *extra, *enc, "--frames", str(frames)]}
        budget = max(30.0, deadline + 40 - time.time())
        result["cases"][name] = run_case(case, budget, log)
        (args.out / "gpu_table.json").write_text(json.dumps(result, indent=1), encoding="utf-8")

    # NVDEC through --hwaccel on a whole job, asked for explicitly and through auto.
    for mode in ("cuda", "auto"):
        if time.time() > deadline + 20:
            break
        out = work / f"hw-{mode}.mkv"
        cmd = [
            sys.executable, "-m", "vsr", "upscale", str(src_hd), "-o", str(out), "-y",
            "--json", "--frames", "30" if not rehearsal else "4", "--hwaccel", mode,
            "--model", "realesr-animevideov3", "--scale", "2", *fp16, *enc,
        ]  # fmt: skip
        print("$ " + " ".join(cmd), file=log, flush=True)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
            print(proc.stderr[-2000:], file=log, flush=True)
            if proc.returncode == 0:
                summary = json.loads(proc.stdout)
                result[f"hwaccel_{mode}"] = {
                    "fps": summary["fps"],
                    "frames": summary["frames"],
                    "hwaccel": summary["settings"]["frame_path"].get("hwaccel"),
                    "notices": summary["notices"],
                }
            else:
                result[f"hwaccel_{mode}"] = {"exit": proc.returncode, "stderr": proc.stderr[-500:]}
        except subprocess.TimeoutExpired:
            result[f"hwaccel_{mode}"] = {"error": "timed out"}
        print(f"hwaccel {mode}: {result[f'hwaccel_{mode}']}", file=log, flush=True)
        print(f"hwaccel {mode}: {result[f'hwaccel_{mode}']}")

    result["cpu"] = cpu_goal(work, deadline + 60, log, rehearsal)

    lines = [
        "| case | model-only fps | e2e fps (device graph) | e2e fps (old float32 host path) "
        "| new/old | % of measured bf16 peak | peak VRAM MiB new / old | encode-only fps "
        "| encode-only fps, segments side by side |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [row(name, report) for name, report in result["cases"].items()]
    table = "\n".join(lines)
    result["table"] = table
    (args.out / "gpu_table.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    (args.out / "gpu_table.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    print(table, file=log, flush=True)
    for name, report in result["cases"].items():
        stages = report.get("paths", {}).get("tensor", {}).get("stages")
        if stages:
            text = ", ".join(
                f"{k} {v['fps']:.0f} fps/{100 * v['busy_share']:.0f}%" for k, v in stages.items()
            )
            print(f"{name}: {text}")
            print(f"{name}: {text}", file=log, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
