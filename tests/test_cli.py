"""The CLI edge: options, exit codes, one-line errors, --json, overwrite rules, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import clips
import pytest
from conftest import FAST, REPO, CliResult, check_one_error_line, files_in, run_vsr_subprocess

Cli = Callable[..., CliResult]


@pytest.fixture
def small(tmp_path: Path) -> clips.Clip:
    return clips.cfr_h264_aac(tmp_path, frames=4)


def test_upscale_help_lists_every_option(cli: Cli) -> None:
    result = cli("upscale", "--help")
    assert result.code == 0
    for option in (
        "--output",
        "--model",
        "--scale",
        "--overwrite",
        "--json",
        "--codec",
        "--crf",
        "--preset",
        "--pix-fmt",
        "--encoder-option",
        "--skip-corrupt",
        "--tile",
        "--precision",
        "--device",
    ):
        assert option in result.out, option


def test_top_level_help_lists_commands(cli: Cli) -> None:
    result = cli("--help")
    assert result.code == 0
    for command in ("upscale", "probe", "bench"):
        assert command in result.out


def test_starting_up_imports_only_the_command_that_runs() -> None:
    """`vsr --help`, `--version` and a light command's help do not pay for torch or PyAV."""
    code = (
        "import sys\n"
        "from vsr.cli import main\n"
        "for argv in (['--help'], ['--version'], ['probe', '--help'], ['presets', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, (argv, exc.code)\n"
        "heavy = sorted({'torch', 'av', 'cv2', 'numpy', 'vsr.cli.upscale'} & set(sys.modules))\n"
        "print(' '.join(heavy), file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", f"imported at start-up: {proc.stderr.strip()}"


def test_python_m_vsr_train_is_vsr_train() -> None:
    """`python -m vsr.train` (named in vsr/weights/README.md) runs the CLI's train command."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def run(*args: str) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "vsr.train", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        return CliResult(code=proc.returncode, out=proc.stdout, err=proc.stderr)

    result = run("--help")
    assert result.code == 0, result.err
    assert "--max-minutes" in result.out and "--init" in result.out
    check_one_error_line(run(), 2, "required: clips, -o/--output")


def test_one_summary_line_on_a_pipe(cli: Cli, small: clips.Clip, tmp_path: Path) -> None:
    """No progress bar without a terminal, but one line at the end, as FFmpeg prints."""
    out = tmp_path / "out.mp4"
    result = cli("upscale", small.path, "-o", out, *FAST)
    assert result.code == 0, result.err
    assert result.out == ""
    assert len(result.error_lines) == 1, result.err
    line = result.error_lines[0]
    match = re.fullmatch(
        r"vsr: (.+) -> (.+): (\d+) frames in ([\d.]+) s \(([\d.]+) fps; bicubic, cpu, fp32\)",
        line,
    )
    assert match, line
    assert (match[1], match[2], int(match[3])) == (str(small.path), str(out), 4)
    assert out.is_file()
    quiet = cli("upscale", small.path, "-o", out, *FAST, "--overwrite", "--quiet")
    assert quiet.code == 0 and quiet.err == "" and quiet.out == ""


def test_json_is_the_only_stdout(cli: Cli, small: clips.Clip, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result = cli("upscale", small.path, "-o", out, *FAST, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert set(data) >= {
        "input",
        "output",
        "frames",
        "seconds",
        "fps",
        "model",
        "settings",
        "streams",
        "repeated_frames",
        "notices",
    }
    assert data["frames"] == 4
    assert isinstance(data["settings"], dict)
    for stream in data["streams"]:
        assert set(stream) >= {"index", "type", "codec", "action", "note"}
        assert stream["action"] in ("encoded", "copied", "transcoded")
    assert [s["type"] for s in data["streams"]] == ["video", "audio"]
    assert abs(data["fps"] - data["frames"] / data["seconds"]) < 0.01 * data["fps"] + 0.01


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--crf", "99"], "crf"),
        (["--tile", "3"], "tile"),
        (["--scale", "0"], "scale"),
        (["--encoder-option", "novalue"], "encoder-option"),
        (["--device", "tpu"], "device"),
    ],
)
def test_bad_option_values_exit_2(
    cli: Cli, small: clips.Clip, tmp_path: Path, args: list[str], fragment: str
) -> None:
    out = tmp_path / "out.mp4"
    result = cli("upscale", small.path, "-o", out, "--model", "bicubic", *args)
    check_one_error_line(result, 2, fragment)
    assert not out.exists()


def test_argparse_errors_exit_2_without_traceback(cli: Cli, small: clips.Clip) -> None:
    result = cli("upscale", small.path)  # no -o
    assert result.code == 2
    assert "Traceback" not in result.err
    assert "error" in result.err.lower()
    result = cli("upscale", small.path, "-o", "x.mp4", "--no-such-option")
    assert result.code == 2
    assert "Traceback" not in result.err


def test_unknown_model_exits_4(cli: Cli, small: clips.Clip, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result = cli("upscale", small.path, "-o", out, "--model", "no-such-model-xyz")
    check_one_error_line(result, 4, "no-such-model-xyz")
    assert not out.exists()
    assert files_in(tmp_path) == {small.path.name}


def test_missing_checkpoint_path_exits_4_or_3(cli: Cli, small: clips.Clip, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result = cli("upscale", small.path, "-o", out, "--model", str(tmp_path / "nope.pth"))
    assert result.code in (3, 4), result.err
    check_one_error_line(result, result.code, "nope.pth")


def test_existing_output_not_overwritten(cli: Cli, small: clips.Clip, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    before = out.stat().st_mtime_ns
    result = cli("upscale", small.path, "-o", out, *FAST)
    line = check_one_error_line(result, 5, out.name, "--overwrite")
    assert "exist" in line.lower()
    assert out.read_bytes() == b"precious"
    assert out.stat().st_mtime_ns == before
    assert files_in(tmp_path) == {small.path.name, out.name}

    result = cli("upscale", small.path, "-o", out, *FAST, "--overwrite")
    assert result.code == 0, result.err
    assert clips.read_video(out, pixels=False).width == 2 * small.width
    assert files_in(tmp_path) == {small.path.name, out.name}


def test_output_same_as_input_refused(cli: Cli, small: clips.Clip) -> None:
    data = small.path.read_bytes()
    result = cli("upscale", small.path, "-o", small.path, *FAST, "--overwrite")
    assert result.code in (2, 5), result.err
    check_one_error_line(result, result.code, small.path.name)
    assert small.path.read_bytes() == data


def test_input_untouched(cli: Cli, small: clips.Clip, tmp_path: Path) -> None:
    data = small.path.read_bytes()
    stat = small.path.stat()
    out = tmp_path / "out.mkv"
    result = cli("upscale", small.path, "-o", out, *FAST)
    assert result.code == 0, result.err
    assert small.path.read_bytes() == data
    after = small.path.stat()
    assert after.st_mtime_ns == stat.st_mtime_ns
    assert after.st_mode == stat.st_mode


def test_output_in_missing_directory(cli: Cli, small: clips.Clip, tmp_path: Path) -> None:
    """Either the folders are made and the output is whole, or one clear line and nothing."""
    out = tmp_path / "no" / "such" / "dir" / "out.mp4"
    result = cli("upscale", small.path, "-o", out, *FAST)
    if result.code == 0:
        assert files_in(out.parent) == {out.name}
        assert len(clips.read_video(out, pixels=False).times) == small.frames
    else:
        check_one_error_line(result, 5, "dir")
        assert not out.exists()


def test_unknown_output_extension(cli: Cli, small: clips.Clip, tmp_path: Path) -> None:
    out = tmp_path / "out.xyz"
    result = cli("upscale", small.path, "-o", out, *FAST)
    assert result.code in (2, 5), result.err
    check_one_error_line(result, result.code, ".xyz")
    assert files_in(tmp_path) == {small.path.name}


def test_first_n_frames_option(cli: Cli, tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=12)
    out = tmp_path / "out.mkv"
    result = cli("upscale", src.path, "-o", out, *FAST, "--frames", "5", "--json")
    assert result.code == 0, result.err
    assert result.json["frames"] == 5
    video = clips.read_video(out, pixels=False)
    assert len(video.times) == 5
    # MP4 -> MKV may move the timeline as a whole (AAC priming); the spacing stays.
    shift = video.times[0] - src.times[0]
    assert abs(shift) <= Fraction(1, 20)
    assert [t - shift for t in video.times] == src.times[:5]
    # The audio is cut to the same span, not left running for the whole clip.
    with av.open(str(out)) as container:
        assert container.duration is not None
        assert container.duration / av.time_base < 5 / 25 + 0.1


def test_python_m_vsr_subprocess(tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=4)
    out = tmp_path / "out.mp4"
    result = run_vsr_subprocess("upscale", src.path, "-o", out, *FAST, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["frames"] == 4
    assert result.err == ""
    clips.check_times(src.path, out)

    result = run_vsr_subprocess("upscale", tmp_path / "missing.mp4", "-o", tmp_path / "x.mp4")
    check_one_error_line(result, 3, "missing.mp4")


def test_ctrl_c_exits_130_and_leaves_nothing(tmp_path: Path) -> None:
    src = clips.long_clip(tmp_path, frames=240, width=320, height=240)
    out = tmp_path / "out.mp4"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vsr",
            "upscale",
            str(src.path),
            "-o",
            str(out),
            *FAST,
            "--preset",
            "veryslow",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        # A runner started in the background (or under nohup) ignores SIGINT, and children
        # inherit that; a user's vsr at a terminal does not, so neither does this one.
        preexec_fn=_default_sigint,
    )
    try:
        # Wait until the run is under way: its temporary output appears beside the target.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if files_in(tmp_path) - {src.path.name}:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"vsr ended before Ctrl-C: {proc.communicate()}"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Aborted!" in stderr
    assert "Traceback" not in stderr
    assert not out.exists()
    assert files_in(tmp_path) == {src.path.name}, "a temporary file was left behind"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_bench_reports_every_stage(cli: Cli, tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=6)
    result = cli("bench", src.path, "--model", "bicubic", "--frames", "4", "--json")
    assert result.code == 0, result.err
    data = result.json
    flat = json.dumps(data).lower()
    for word in ("decode", "model", "encode", "end"):
        assert word in flat, word
    numbers = [v for v in _numbers(data) if v > 0]
    assert len(numbers) >= 5, data
    assert files_in(tmp_path) == {src.path.name}, "bench left files behind"


def _numbers(value: object) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


@pytest.mark.parametrize(
    ("option", "words"),
    [("tune=flim", "invalid tune 'flim'"), ("profile=hihg", "invalid profile: hihg")],
)
def test_a_value_x264_rejects_itself_is_one_error_line(
    tmp_path: Path, option: str, words: str
) -> None:
    # x264 checks tune and profile before FFmpeg's log callback is its own, and used to print
    # "x264 [error]: ..." on the process's stderr above vsr's line. A subprocess, because only
    # the real file descriptor 2 shows it.
    src = clips.cfr_h264_aac(tmp_path, frames=3)
    out = tmp_path / "out.mkv"
    result = run_vsr_subprocess("upscale", src.path, "-o", out, "--model", "bicubic", "-e", option)
    check_one_error_line(result, 2, words, "libx264", "--encoder-option")
    assert not out.exists()
