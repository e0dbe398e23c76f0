"""`vsr batch`: planning, failure isolation, skipping finished files, reports, job files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import clips
import cv2
import numpy as np
import pytest
from conftest import FAST, CliResult, check_one_error_line

from vsr.batch import BatchJob, plan_batch, plan_job_file, run_batch
from vsr.errors import ConfigError

Cli = Callable[..., CliResult]
FASTER = [*FAST, "--encoder-preset", "ultrafast"]


def register_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """`batch` and `preview` are part of the CLI: check they stay registered."""
    import vsr.cli as cli_module

    assert {"batch", "preview"} <= set(cli_module.COMMANDS)


@pytest.fixture
def vsr(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    register_commands(monkeypatch)
    return cli


ODD_NAME = "c <&>.mov"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """in/a.mp4 (with audio), in/sub/b.mkv, in/'c <&>.mov', in/bad.mp4 (not media)."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    clips.write_video(root / "a.mp4", frames=6, audio=[("aac", 48000, "stereo")])
    clips.write_video(root / "sub" / "b.mkv", frames=5, width=64, height=48)
    clips.write_video(root / ODD_NAME, frames=4, width=64, height=48)
    (root / "bad.mp4").write_bytes(b"this is not a video file " * 64)
    (root / "notes.txt").write_text("not media, not picked up")
    return root


def _frame_count(path: Path) -> int:
    return len(clips.read_video(path, pixels=False).times)


def test_batch_folder_isolates_failure_mirrors_tree_and_reports(vsr: Cli, tree: Path) -> None:
    out = tree.parent / "out"
    result = vsr("batch", tree, "-o", out, *FASTER)

    assert result.code == 3, result.err  # the one failure is a bad input (exit code 3)
    assert "Traceback" not in result.err
    # The good files are there, mirrored, with every frame, at twice the size.
    for rel, frames, size in (
        ("a.mp4", 6, (192, 128)),
        ("sub/b.mkv", 5, (128, 96)),
        (ODD_NAME, 4, (128, 96)),
    ):
        read = clips.read_video(out / rel, pixels=True)
        assert len(read.times) == frames, rel
        assert (read.width, read.height) == size, rel
        assert read.times == clips.read_video(tree / rel, pixels=False).times, rel
    assert not (out / "bad.mp4").exists()
    assert not (out / "notes.txt").exists()
    # Audio was copied, not re-encoded (vsr's pipeline tests check it packet for packet).
    copied, source = clips.packet_bytes(out / "a.mp4", 1), clips.packet_bytes(tree / "a.mp4", 1)
    assert copied and set(copied) <= set(source)

    # The readable table names every file and the failure's reason.
    table = result.out
    for name in ("a.mp4", "b.mkv", ODD_NAME, "bad.mp4"):
        assert name in table
    bad_line = next(line for line in table.splitlines() if "bad.mp4" in line)
    assert "failed" in bad_line and "not a media file" in bad_line
    assert "3 done, 0 skipped, 1 failed" in table

    report = json.loads((out / "vsr-report.json").read_text())
    by_name = {Path(f["input"]).name: f for f in report["files"]}
    assert set(by_name) == {"a.mp4", "b.mkv", ODD_NAME, "bad.mp4"}
    assert by_name["bad.mp4"]["result"] == "failed"
    assert "not a media file" in by_name["bad.mp4"]["reason"]
    assert by_name["bad.mp4"]["exit_code"] == 3
    assert by_name["a.mp4"]["result"] == "done"
    assert by_name["a.mp4"]["frames"] == 6
    assert by_name["a.mp4"]["fps"] > 0
    assert report["summary"]["failed"] == 1 and report["summary"]["done"] == 3

    page = (out / "vsr-report.html").read_text()
    assert page.count("data:image/png;base64,") == 3  # a thumbnail per finished file
    assert "c &lt;&amp;&gt;.mov" in page and ODD_NAME not in page
    assert "bad.mp4" in page and "not a media file" in page

    # A rerun skips the finished files (their outputs untouched) and tries the bad one again.
    stamps = {p: p.stat().st_mtime_ns for p in (out / "a.mp4", out / "sub" / "b.mkv")}
    again = vsr("batch", tree, "-o", out, *FASTER, "--json")
    assert again.code == 3
    data = json.loads(again.out)
    results = {Path(f["input"]).name: (f["result"], f["reason"]) for f in data["files"]}
    assert results["a.mp4"] == ("skipped", "already done")
    assert results["b.mkv"] == ("skipped", "already done")
    assert results[ODD_NAME] == ("skipped", "already done")
    assert results["bad.mp4"][0] == "failed"
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_thumbnail_is_bicubic_beside_output(tree: Path, tmp_path: Path) -> None:
    from vsr.report import THUMB_WIDTH, thumbnail

    src = tree / "sub" / "b.mkv"
    jobs = plan_batch([src], tmp_path / "o", overrides={"model": "bicubic", "scale": 2})
    report = run_batch(jobs)
    assert [r.status for r in report.results] == ["done"]
    image = thumbnail(src, jobs[0].output)
    assert image.shape[1] == 2 * THUMB_WIDTH + 4
    # Left and right of the whole-frame row show the same picture (bicubic model vs bicubic).
    th = round(96 * THUMB_WIDTH / 128)
    left, right = image[:th, :THUMB_WIDTH], image[:th, THUMB_WIDTH + 4 :]
    assert np.abs(left.astype(int) - right.astype(int)).mean() < 3


def test_dry_run_prints_plan_and_does_nothing(vsr: Cli, tree: Path) -> None:
    out = tree.parent / "out"
    result = vsr("batch", tree, "-o", out, *FASTER, "--crf", "23", "--container", "mkv", "-n")
    assert result.code == 0, result.err
    assert not out.exists()
    assert f"{tree / 'a.mp4'} -> {out / 'a.mkv'}" in result.out
    assert f"{tree / 'sub' / 'b.mkv'} -> {out / 'sub' / 'b.mkv'}" in result.out
    assert "model=bicubic" in result.out and "crf=23" in result.out
    assert "4 files; nothing was run" in result.out


def test_job_file_typo_fails_before_any_work(vsr: Cli, tree: Path, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(
        'output_dir = "done"\nmodel = "bicubic"\n\n'
        '[[job]]\ninput = "in/a.mp4"\n\n'
        '[[job]]\ninput = "in/sub/b.mkv"\ncrff = 20\n'
    )
    result = vsr("batch", jobs)
    line = check_one_error_line(result, 2, "jobs.toml", "job 2", "'crff'", "did you mean 'crf'")
    assert "unknown key" in line
    assert not (tmp_path / "done").exists()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('[[job]]\ninput = "in/a.mp4"\nscale = "big"\n', ["job 1", "scale", "a number"]),
        ('[[job]]\ninput = "in/nope.mp4"\n', ["job 1", "not found"]),
        ('[[job]]\ninput = "in/a.mp4"\npreset = "anmie"\n', ["job 1", "did you mean 'anime'"]),
        ('[[job]]\ninput = "in/a.mp4"\ncodec = "libx246"\n', ["job 1", "libx264"]),
        (
            '[[job]]\ninput = "in/a.mp4"\noutput = "x.mkv"\n\n'
            '[[job]]\ninput = "in/sub/b.mkv"\noutput = "x.mkv"\n',
            ["job 1", "job 2", "both write"],
        ),
        (
            '[[job]]\ninput = "in/a.mp4"\noutput = "in/sub/b.mkv"\n\n'
            '[[job]]\ninput = "in/sub/b.mkv"\noutput = "y.mkv"\n',
            ["is the input of"],
        ),
        ('modle = "bicubic"\n[[job]]\ninput = "in/a.mp4"\n', ["top level", "did you mean 'model'"]),
        ('[[job]]\noutput = "x.mkv"\n', ["job 1", "missing key 'input'"]),
    ],
)
def test_job_file_mistakes(tree: Path, tmp_path: Path, body: str, expected: list[str]) -> None:
    jobs = tmp_path / "jobs.toml"
    jobs.write_text('output_dir = "done"\nmodel = "bicubic"\n' * ("modle" not in body) + body)
    with pytest.raises(ConfigError) as info:
        plan_job_file(jobs)
    message = str(info.value)
    assert "jobs.toml" in message
    for text in expected:
        assert text in message, message
    assert not (tmp_path / "done").exists()


def test_job_file_runs_with_per_job_overrides(vsr: Cli, tree: Path, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(
        'model = "bicubic"\nscale = 2\nencoder_preset = "ultrafast"\n\n'
        '[[job]]\ninput = "in/sub/b.mkv"\noutput = "res/b-x3.mp4"\nscale = 3\ncrf = 30\n\n'
        '[[job]]\ninput = "in/sub"\noutput = "res/sub"\ncontainer = "mov"\n'
    )
    planned = plan_job_file(jobs)
    assert [j.output.relative_to(tmp_path).as_posix() for j in planned] == [
        "res/b-x3.mp4",
        "res/sub/b.mov",
    ]
    assert planned[0].options.model.scale == 3 and planned[0].options.encode.crf == 30
    assert planned[1].options.model.scale == 2 and planned[1].origin == "jobs.toml, job 2"

    # --jobs 2 on a machine without two GPUs: a notice, then one file after another.
    result = vsr("batch", jobs, "--jobs", "2", "-o", tmp_path / "reports")
    assert result.code == 0, result.err
    assert "running one file at a time" in result.err
    first = clips.read_video(tmp_path / "res" / "b-x3.mp4", pixels=False)
    assert (first.width, first.height, len(first.times)) == (192, 144, 5)
    second = clips.read_video(tmp_path / "res" / "sub" / "b.mov", pixels=False)
    assert (second.width, second.height, len(second.times)) == (128, 96, 5)
    assert (tmp_path / "reports" / "vsr-report.json").is_file()


def test_output_folder_inside_input_folder_is_not_scanned(vsr: Cli, tree: Path) -> None:
    out = tree / "upscaled"
    first = vsr("batch", tree / "sub", "-o", tree / "sub" / "up", *FASTER)
    assert first.code == 0, first.err
    # A second run over the same folder neither picks up the outputs nor redoes the input.
    again = vsr("batch", tree / "sub", "-o", tree / "sub" / "up", *FASTER, "--json")
    assert again.code == 0, again.err
    data = json.loads(again.out)
    assert [(Path(f["input"]).name, f["result"]) for f in data["files"]] == [("b.mkv", "skipped")]
    assert not out.exists()
    same = vsr("batch", tree / "sub", "-o", tree / "sub", *FASTER)
    check_one_error_line(same, 2, "output folder is the input folder")


def test_ctrl_c_stops_batch_without_marking_file_failed(tree: Path, tmp_path: Path) -> None:
    files = [tree / "sub" / "b.mkv", tree / ODD_NAME, tree / "a.mp4"]
    jobs = plan_batch(
        files, tmp_path / "o", overrides={"model": "bicubic", "encoder_preset": "ultrafast"}
    )

    def progress(job: BatchJob, done: int, total: int | None) -> None:
        if job.number == 2 and done == 2:
            raise KeyboardInterrupt  # what Ctrl-C raises in the middle of the second file

    report = run_batch(jobs, progress=progress)
    assert report.interrupted
    assert [r.status for r in report.results] == ["done", "interrupted", "not run"]
    assert report.failed == []
    assert jobs[0].output.is_file()
    assert not jobs[1].output.exists() and not jobs[2].output.exists()
    leftovers = [p.name for p in (tmp_path / "o").iterdir() if "vsr-tmp" in p.name]
    assert leftovers == []


def test_still_images_batch(tmp_path: Path) -> None:
    root = tmp_path / "stills"
    root.mkdir()
    still = clips.still_png(root)
    jobs = plan_batch([root], tmp_path / "o", overrides={"model": "bicubic", "scale": 2})
    assert [j.output.suffix for j in jobs] == [".png"]
    report = run_batch(jobs)
    assert [r.status for r in report.results] == ["done"]
    out = cv2.imread(str(jobs[0].output), cv2.IMREAD_UNCHANGED)
    assert out is not None and out.shape[:2] == (still.height * 2, still.width * 2)
    assert [r.status for r in run_batch(jobs).results] == ["skipped"]
