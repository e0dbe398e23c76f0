"""Show that a change to vsr's code changes none of its results: run the same jobs with two
revisions and compare every output byte, exit code and message.

    python scripts/same_output.py --base main          # this checkout against main
    python scripts/same_output.py --base 074358f --json report.json

Why a script and not a test: the point is to compare against *another revision* of the code
(before a refactor), which a test of one checkout cannot do. It generates its clips once (with
this checkout's tests/clips.py, so both revisions read the very same input files), checks the base
revision out into a temporary git worktree, and runs each job as `python -m vsr ...` with
PYTHONPATH pointing at one tree or the other (the same interpreter and packages for both). What
is compared, per job:

- the exit code;
- stdout and stderr, with the output folder's path replaced by a placeholder (so the two runs,
  which write into different folders, can match), and time/speed fields dropped from `--json`;
- the bytes of every file the job wrote (video, image, preset), by SHA-256.

The jobs cover the streams users care about (audio copy and transcode, subtitles, chapters, VFR,
29.97, 10-bit, odd sizes, images), the three model kinds (bicubic, a real Real-ESRGAN network,
the temporal stabiliser), the restoration filters, resume files, the dry/inspection commands, and
bad input. Exit code 0 when every job matches, 1 otherwise (each difference named).

Run it on a quiet machine: without --tile, a model splits frames into tiles when free memory is
short, and tiled output differs from untiled output in the last bits (a job that differed only
under load and matches when rerun alone is that, not the change).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Fields of `--json` summaries that measure this run's speed, not its result.
# Also the file times and segment hashes in resume state (the finished file's bytes are compared).
_TIMING_KEYS = re.compile(
    r"(seconds|fps|elapsed|time_s|wall|speed|eta|mtime|sha256|written)", re.IGNORECASE
)


@dataclass(frozen=True)
class Job:
    """One vsr command line; `{in}` names the inputs folder, `{out}` this run's output folder."""

    name: str
    argv: tuple[str, ...]


def _jobs() -> list[Job]:
    up = ("upscale", "-q")
    return [
        Job(
            "bicubic-multitrack",
            (*up, "{in}/multi.mkv", "-o", "{out}/multi.mkv", "--model", "bicubic"),
        ),
        Job(
            "bicubic-ntsc-mp4",
            (*up, "{in}/ntsc.mp4", "-o", "{out}/ntsc.mp4", "--model", "bicubic", "--crf", "20"),
        ),
        Job(
            "bicubic-vfr",
            (*up, "{in}/vfr.mkv", "-o", "{out}/vfr.mkv", "--model", "bicubic", "--scale", "3"),
        ),
        Job(
            "bicubic-10bit",
            (*up, "{in}/hevc10.mkv", "-o", "{out}/hevc10.mkv", "--model", "bicubic"),
        ),
        Job(
            "bicubic-odd",
            (*up, "{in}/odd.mkv", "-o", "{out}/odd.mp4", "--model", "bicubic", "--height", "100"),
        ),
        Job(
            "bicubic-to-mov",
            (*up, "{in}/cfr25.mp4", "-o", "{out}/cfr25.mov", "--model", "bicubic", "--frames", "7"),
        ),
        Job(
            "bicubic-webm",
            (
                *up,
                "{in}/cfr25.mp4",
                "-o",
                "{out}/cfr25.webm",
                "--model",
                "bicubic",
                "--frames",
                "5",
            ),
        ),
        Job(
            "anime-v3",
            (
                *up,
                "{in}/cfr25.mp4",
                "-o",
                "{out}/anime.mkv",
                "--model",
                "realesr-animevideov3",
                "--scale",
                "2",
            ),
        ),
        Job(
            "anime-v3-tiled",
            (
                *up,
                "{in}/odd.mkv",
                "-o",
                "{out}/tiled.mkv",
                "--model",
                "realesr-animevideov3",
                "--tile",
                "32",
                "--frames",
                "3",
            ),
        ),
        Job(
            "x4plus",
            (
                *up,
                "{in}/tiny.mkv",
                "-o",
                "{out}/x4plus.mkv",
                "--model",
                "realesrgan-x4plus",
                "--frames",
                "2",
            ),
        ),
        Job(
            "stabilize",
            (
                *up,
                "{in}/cfr25.mp4",
                "-o",
                "{out}/stab.mkv",
                "--model",
                "realesr-animevideov3",
                "--scale",
                "2",
                "--temporal",
                "stabilize",
                "--frames",
                "6",
            ),
        ),
        Job(
            "deinterlace-crop",
            (
                *up,
                "{in}/interlaced.mkv",
                "-o",
                "{out}/deint.mkv",
                "--model",
                "bicubic",
                "--deinterlace",
                "auto",
                "--crop",
                "auto",
            ),
        ),
        Job(
            "denoise-x265",
            (
                *up,
                "{in}/cfr25.mp4",
                "-o",
                "{out}/dn.mkv",
                "--model",
                "bicubic",
                "--denoise",
                "atadenoise",
                "--codec",
                "libx265",
                "--frames",
                "4",
            ),
        ),
        Job(
            "encoder-options",
            (
                *up,
                "{in}/cfr25.mp4",
                "-o",
                "{out}/eo.mp4",
                "--model",
                "bicubic",
                "--preset",
                "veryfast",
                "-e",
                "tune=animation",
                "--pix-fmt",
                "yuv444p",
            ),
        ),
        Job("image-png", (*up, "{in}/still.png", "-o", "{out}/still.png", "--model", "bicubic")),
        Job(
            "image-anime",
            (
                *up,
                "{in}/still.png",
                "-o",
                "{out}/still_anime.png",
                "--model",
                "realesr-animevideov3",
            ),
        ),
        Job(
            "vsr-preset",
            (
                *up,
                "{in}/cfr25.mp4",
                "-o",
                "{out}/preset.mkv",
                "--preset",
                "anime-fast",
                "--frames",
                "4",
            ),
        ),
        Job(
            "json-summary",
            ("upscale", "--json", "{in}/ntsc.mp4", "-o", "{out}/ntsc.mkv", "--model", "bicubic"),
        ),
        Job("probe-json", ("probe", "--json", "{in}/multi.mkv")),
        Job("probe-text", ("probe", "{in}/vfr.mkv")),
        Job("models-list", ("models", "list")),
        Job("models-list-json", ("models", "list", "--json")),
        Job("presets-list", ("presets", "list")),
        Job("presets-show", ("presets", "show", "vhs")),
        Job("help", ("--help",)),
        Job("help-upscale", ("upscale", "--help")),
        Job("help-batch", ("batch", "--help")),
        Job("help-preview", ("preview", "--help")),
        Job(
            "batch-folder",
            ("batch", "-q", "--json", "{in}/batch", "-o", "{out}/batch", "--model", "bicubic"),
        ),
        Job(
            "preview-still",
            (
                "preview",
                "-q",
                "{in}/cfr25.mp4",
                "-o",
                "{out}/preview.png",
                "--model",
                "bicubic",
                "--at",
                "0.2",
                "--seconds",
                "0.3",
            ),
        ),
        Job("err-missing", (*up, "{in}/nope.mp4", "-o", "{out}/x.mkv")),
        Job("err-not-video", (*up, "{in}/text.mp4", "-o", "{out}/x.mkv")),
        Job(
            "err-unknown-model",
            (*up, "{in}/cfr25.mp4", "-o", "{out}/x.mkv", "--model", "realesrgan-x4plus-anim"),
        ),
        Job("err-bad-flag", (*up, "{in}/cfr25.mp4", "-o", "{out}/x.mkv", "--crff", "3")),
        Job("err-bad-option", (*up, "{in}/cfr25.mp4", "-o", "{out}/x.mkv", "-e", "nosuchoption=1")),
        Job("err-exists", (*up, "{in}/cfr25.mp4", "-o", "{in}/cfr25.mp4", "--model", "bicubic")),
    ]


def make_inputs(folder: Path) -> None:
    """The clips every job reads, generated once so both revisions see the same bytes."""
    sys.path.insert(0, str(ROOT / "tests"))
    import clips

    folder.mkdir(parents=True, exist_ok=True)
    clips.multi_track_mkv(folder)
    clips.ntsc_h264(folder)
    clips.vfr_h264(folder)
    clips.hevc_10bit(folder)
    clips.cfr_h264_aac(folder)
    clips.interlaced(folder)
    shutil.move(str(clips.odd_size(folder).path), folder / "odd.mkv")
    tiny = clips.write_video(folder / "tiny.mkv", width=32, height=24, frames=3)
    assert tiny.frames == 3
    shutil.move(str(clips.still_png(folder).path), folder / "still.png")
    shutil.copy(clips.text_as_mp4(folder), folder / "text.mp4")
    batch = folder / "batch"
    batch.mkdir()
    clips.write_video(batch / "a.mkv", frames=4)
    clips.write_video(batch / "b.mp4", frames=3, width=64, height=48)


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str
    files: dict[str, str] = field(default_factory=dict)


def _scrub(text: str, out: Path, inputs: Path) -> str:
    text = text.replace(str(out), "<OUT>").replace(str(inputs), "<IN>")
    text = text.replace(str(ROOT), "<TREE>").replace(str(inputs.parent / "base"), "<TREE>")
    # tqdm is off with -q; anything timing-shaped left in plain text is blanked.
    return re.sub(r"\d+(\.\d+)? ?(s|fps|min)\b", "<T>", text)


def _drop_timing(value: object) -> object:
    if isinstance(value, dict):
        return {k: _drop_timing(v) for k, v in value.items() if not _TIMING_KEYS.search(k)}
    if isinstance(value, list):
        return [_drop_timing(v) for v in value]
    return value


def _normalise_stdout(text: str, out: Path, inputs: Path) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return _scrub(text, out, inputs)
    return _scrub(json.dumps(_drop_timing(data), indent=1, sort_keys=True), out, inputs)


# Matroska/WebM: the elements FFmpeg fills with values that differ on every run unless the
# muxer is bitexact: SegmentUID (16 random bytes), DateUTC (the wall clock), the random 64-bit
# UIDs of tracks, chapters and attachments and the tags that point at them, and the CRC-32 of
# every element that contains one of those. Each is written as its ID, a one-byte size and a
# fixed-length payload, so (ID + size byte, payload length) pins it down.
_MKV_VOLATILE = (
    (b"\x73\xa4\x90", 16),  # SegmentUID
    (b"\x44\x61\x88", 8),  # DateUTC
    (b"\x73\xc5\x88", 8),  # TrackUID
    (b"\x73\xc4\x88", 8),  # ChapterUID
    (b"\x46\xae\x88", 8),  # FileUID (attachments)
    (b"\x63\xc5\x88", 8),  # TagTrackUID
    (b"\x63\xc4\x88", 8),  # TagChapterUID
    (b"\x63\xc6\x88", 8),  # TagAttachmentUID
    (b"\xbf\x84", 4),  # CRC-32
)


def mask_matroska(data: bytes) -> bytes:
    """The file with its run-specific Matroska bytes zeroed; anything else unchanged.

    Every packet, timestamp, track header, tag, chapter and attachment is still compared byte for
    byte. The search is by byte pattern, so a few payload bytes that happen to look like one of
    these elements are masked too: the same way in both files, so equal files stay equal, and a
    real change (which moves or alters far more than 16 bytes) still shows.
    """
    if not data.startswith(b"\x1a\x45\xdf\xa3"):
        return data
    out = bytearray(data)
    for element_id, length in _MKV_VOLATILE:
        at = data.find(element_id)
        while at != -1:
            head = at + len(element_id)
            out[head : head + length] = bytes(length)
            at = data.find(element_id, head)
    return bytes(out)


def _digest(path: Path, out: Path, inputs: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".json":
        # Batch reports and resume files: what was done, not how long it took or where.
        try:
            text = json.dumps(_drop_timing(json.loads(data)), sort_keys=True)
            data = _scrub(text, out, inputs).encode()
        except ValueError:
            pass
    elif path.suffix in (".html", ".htm"):
        # The batch report page: its speed columns (the only decimals) and its date vary.
        data = data.replace(str(out).encode(), b"<OUT>")
        data = re.sub(rb"\d{4}-\d\d-\d\dT[\d:+.]+|\b\d+\.\d+\b", b"<N>", data)
    else:
        data = mask_matroska(data)
    return hashlib.sha256(data).hexdigest()


def _hash_tree(folder: Path, inputs: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): _digest(p, folder, inputs)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run_job(job: Job, tree: Path, inputs: Path, out: Path, cache: Path) -> Outcome:
    out.mkdir(parents=True, exist_ok=True)
    argv = [a.replace("{in}", str(inputs)).replace("{out}", str(out)) for a in job.argv]
    env = dict(os.environ, PYTHONPATH=str(tree), COLUMNS="100", TERM="dumb", PYTHONHASHSEED="0")
    # Each revision converts and caches the zoo's weights itself (that path is compared too).
    env["VSR_CACHE_DIR"] = str(cache)
    proc = subprocess.run(
        [sys.executable, "-m", "vsr", *argv],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return Outcome(
        rc=proc.returncode,
        stdout=_normalise_stdout(proc.stdout.replace(str(cache), "<CACHE>"), out, inputs),
        stderr=_scrub(proc.stderr.replace(str(cache), "<CACHE>"), out, inputs),
        files=_hash_tree(out, inputs),
    )


def compare(a: Outcome, b: Outcome) -> list[str]:
    diffs = []
    if a.rc != b.rc:
        diffs.append(f"exit code {a.rc} -> {b.rc}")
    if a.stdout != b.stdout:
        diffs.append(f"stdout differs:\n--- base\n{a.stdout[:1500]}\n--- this\n{b.stdout[:1500]}")
    if a.stderr != b.stderr:
        diffs.append(f"stderr differs:\n--- base\n{a.stderr[:1500]}\n--- this\n{b.stderr[:1500]}")
    if a.files != b.files:
        for name in sorted(set(a.files) | set(b.files)):
            if a.files.get(name) != b.files.get(name):
                before, after = a.files.get(name, "absent"), b.files.get(name, "absent")
                diffs.append(f"file {name}: {before[:12]} -> {after[:12]}")
    return diffs


def _base_tree(rev: str, where: Path) -> Path:
    tree = where / "base"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), rev], check=True
    )
    return tree


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare against (e.g. main)")
    parser.add_argument("--only", help="run only jobs whose name contains this text")
    parser.add_argument("--json", type=Path, help="write every job's outcome here")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="vsr-same-"))
    tree = None
    try:
        inputs = work / "in"
        make_inputs(inputs)
        tree = _base_tree(args.base, work)
        jobs = [j for j in _jobs() if not args.only or args.only in j.name]
        failed, report = 0, {}
        for job in jobs:
            base = run_job(job, tree, inputs, work / "base-out" / job.name, work / "cache-base")
            this = run_job(job, ROOT, inputs, work / "this-out" / job.name, work / "cache-this")
            diffs = compare(base, this)
            report[job.name] = {
                "rc": this.rc,
                "files": this.files,
                "same": not diffs,
                "diffs": diffs,
            }
            mark = "same" if not diffs else "DIFFERENT"
            print(f"{job.name:22} rc={this.rc} files={len(this.files)} {mark}", flush=True)
            for d in diffs:
                print("    " + d.replace("\n", "\n    "))
            failed += bool(diffs)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(f"{len(jobs) - failed}/{len(jobs)} jobs identical to {args.base}")
        return 1 if failed else 0
    finally:
        if tree is not None:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
            )
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
