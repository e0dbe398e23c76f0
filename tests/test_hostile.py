"""Issue 12, items 10-13: failures known, explained and safe; presets and job files untrusted.

Each test generates an input of its class. Disk-full and read-only cases use a real tmpfs
(mounting needs root: skipped elsewhere); permission cases run vsr without the root
capabilities that ignore file modes (setpriv), or as they are for a normal user; a file
limit (RLIMIT_FSIZE) gives a real EFBIG anywhere.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import clips
import pytest
import torch
from conftest import FAST, REPO, CliResult, check_one_error_line, files_in, run_vsr_subprocess
from safetensors.torch import save_file

from vsr import resume

Cli = Callable[..., CliResult]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _segmented_clip(directory: Path, frames: int = 60) -> Path:
    """160x120 H.264, a keyframe every 5 frames (segments of 0.4 s can be cut), AAC audio."""
    return clips.write_video(
        directory / "src.mp4",
        width=160,
        height=120,
        frames=frames,
        rate=25,
        options={"g": "5", "keyint_min": "5", "sc_threshold": "0"},
        audio=[("aac", 48000, "stereo")],
    ).path


# Lossless x4: megabytes of output in a second or two, so a small disk fills up mid-job.
BIG = ["--model", "bicubic", "--scale", "4", "--crf", "0", "--encoder-preset", "ultrafast"]


# -- real file systems -------------------------------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """mount(size, read_only=False) -> a fresh tmpfs folder; unmounted after the test."""
    mounted: list[Path] = []

    def mount(size: int, *, read_only: bool = False) -> Path:
        target = tmp_path / f"fs{len(mounted)}"
        target.mkdir()
        flags = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", flags, "tmpfs", str(target)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()[:120]})")
        mounted.append(target)
        return target

    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _resize(target: Path, size: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(target)], check=True)


def _used(target: Path) -> int:
    usage = shutil.disk_usage(target)
    return usage.total - usage.free


@pytest.mark.slow
def test_disk_full_says_how_much_more_and_resumes_once_there_is_room(
    tmp_path: Path, tmpfs: Callable[..., Path]
) -> None:
    src = _segmented_clip(tmp_path)
    ref = tmp_path / "ref.mkv"
    args = [*BIG, "--segment-seconds", "0.4"]
    first = run_vsr_subprocess("upscale", src, "-o", ref, *args)
    assert first.code == 0, first.err
    size = ref.stat().st_size
    disk = tmpfs((size * 6 // 10) // 4096 * 4096)
    out = disk / "out.mkv"

    full = run_vsr_subprocess("upscale", src, "-o", out, *args)
    line = check_one_error_line(full, 5, f"no space left on device writing {out}")
    needed = int(re.search(r"needs about (\d+) MB more", line)[1])  # type: ignore[index]
    # The job peaks at its segments plus the final file beside them: about twice the output.
    assert 1 <= needed <= 3 * size / 2**20 + 1, (needed, size)
    # Resumable: the finished segments and the manifest stay, nothing else does.
    manifest = resume.read_manifest(resume.manifest_path(out))
    assert manifest is not None and any(s.done for s in manifest.segments)
    assert files_in(disk) == {resume.manifest_path(out).name, resume.segments_dir(out).name}
    assert all(".partial" not in p.name for p in resume.segments_dir(out).iterdir())

    # As much room as the message asked for is enough.
    _resize(disk, _used(disk) + (needed + 1) * 2**20)
    again = run_vsr_subprocess("upscale", src, "-o", out, *args)
    assert again.code == 0, again.err
    assert "resumed" in again.err
    assert len(clips.read_video(out, pixels=False).times) == 60
    assert files_in(disk) == {"out.mkv"}


def test_read_only_output_folder_is_an_output_error(
    tmp_path: Path, tmpfs: Callable[..., Path], cli: Cli
) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=4)
    disk = tmpfs(1 << 20, read_only=True)
    result = cli("upscale", src.path, "-o", disk / "out.mp4", *FAST)
    check_one_error_line(result, 5, "read-only file system")
    # A new folder under a read-only one fails the same way, before anything is made.
    result = cli("upscale", src.path, "-o", disk / "new" / "out.mp4", *FAST)
    check_one_error_line(result, 5, "read-only file system")


def test_file_size_limit_is_an_output_error(tmp_path: Path) -> None:
    """RLIMIT_FSIZE gives a real EFBIG from the writes (as FAT32 does past 4 GB)."""
    src = _segmented_clip(tmp_path, frames=20)
    out = tmp_path / "out.mkv"

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    proc = subprocess.run(
        [sys.executable, "-m", "vsr", "upscale", str(src), "-o", str(out), *BIG],
        capture_output=True,
        text=True,
        env=_env(),
        preexec_fn=limit,
        timeout=120,
    )
    result = CliResult(proc.returncode, proc.stdout, proc.stderr)
    check_one_error_line(result, 5, "refuses a file this large", str(out))
    assert files_in(tmp_path) == {src.name}


# -- permissions (root ignores file modes: vsr runs without those capabilities) ----------------


def _unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file modes can't be tested")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", "--inh-caps=-all", f"--bounding-set={caps}"]


def _run_unprivileged(*args: str | Path) -> CliResult:
    command = [*_unprivileged(), sys.executable, "-m", "vsr", *[str(a) for a in args]]
    proc = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=120)
    if "setpriv" in proc.stderr and proc.returncode != 0 and "vsr" not in proc.stderr:
        pytest.skip(f"setpriv refused: {proc.stderr.strip()[:120]}")
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@contextlib.contextmanager
def _mode(path: Path, mode: int) -> Iterator[None]:
    old = path.stat().st_mode
    path.chmod(mode)
    try:
        yield
    finally:
        path.chmod(old)


def test_input_in_unsearchable_folder_is_permission_denied(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    src = clips.cfr_h264_aac(folder, frames=4)
    commands = [
        ["upscale", src.path, "-o", tmp_path / "out.mp4", *FAST],
        ["probe", src.path],
        ["batch", src.path, "-o", tmp_path / "batch", *FAST],
        ["eval", "--reference", src.path, "--test", src.path, "--scale", "1"],
    ]
    for args in commands:
        with _mode(folder, 0o600):  # a readable listing, but no x: nothing inside is reachable
            result = _run_unprivileged(*args)
        check_one_error_line(result, 3, "permission denied", str(src.path))
    unreadable = clips.cfr_h264_aac(tmp_path, frames=4)
    with _mode(unreadable.path, 0o000):
        result = _run_unprivileged("upscale", unreadable.path, "-o", tmp_path / "o.mp4", *FAST)
    check_one_error_line(result, 3, "permission denied")
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "o.mp4").exists()


def test_output_folder_without_write_permission_is_exit_5(tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=4)
    folder = tmp_path / "ro"
    folder.mkdir()
    with _mode(folder, 0o555):
        result = _run_unprivileged("upscale", src.path, "-o", folder / "out.mp4", *FAST)
    check_one_error_line(result, 5, "permission denied", str(folder))
    assert files_in(folder) == set()


# -- encoders checked before any state ---------------------------------------------------------


@pytest.mark.parametrize(
    ("ext", "expected"),
    [
        ("mkv", ["can't hold rawvideo", "not supported natively in matroska"]),
        # NUT and AVI take the stream, but its pixel format is lost on the way: it would
        # be written and read back as garbage.
        ("nut", ["does not read back", "ffv1"]),
        ("avi", ["does not read back", "ffv1"]),
    ],
)
def test_encoder_the_container_refuses_fails_before_any_state(
    cli: Cli, tmp_path: Path, ext: str, expected: list[str]
) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=4)
    before = files_in(tmp_path)
    out = tmp_path / f"x.{ext}"
    result = cli("upscale", src.path, "-o", out, *FAST, "--codec", "rawvideo")
    check_one_error_line(result, 5, "rawvideo", *expected)
    assert files_in(tmp_path) == before, "resume state or a temp file was left behind"


def test_lossless_alternative_the_error_names_works(cli: Cli, tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=4)
    out = tmp_path / "x.mkv"
    result = cli("upscale", src.path, "-o", out, *FAST, "--codec", "ffv1")
    assert result.code == 0, result.err
    video = clips.read_video(out, pixels=False)
    assert (video.width, len(video.times)) == (192, 4)


def test_encoder_options_rejected_when_the_encoder_opens(cli: Cli, tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=4)
    before = files_in(tmp_path)
    # x264 only says "CRF is incompatible with 2pass" when it opens.
    stats = tmp_path / "missing.log"
    args = ["-e", f"x264-params=pass=2:stats={stats}"]
    result = cli("upscale", src.path, "-o", tmp_path / "x.mkv", *FAST, *args)
    check_one_error_line(result, 2, "libx264 cannot encode", "2pass")
    assert files_in(tmp_path) == before


# -- SIGTERM -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_and_keeps_finished_segments(tmp_path: Path) -> None:
    src = _segmented_clip(tmp_path, frames=60)
    out = tmp_path / "out.mkv"
    args = [*FAST, "--encoder-preset", "veryslow", "--segment-seconds", "0.4"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vsr", "upscale", str(src), "-o", str(out), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    mpath = resume.manifest_path(out)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            manifest = resume.read_manifest(mpath) if mpath.exists() else None
            if manifest is not None and sum(s.done for s in manifest.segments) >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"vsr ended before SIGTERM: {proc.communicate()}"
        proc.send_signal(signal.SIGTERM)
        _stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr
    assert "Aborted!" in stderr and "terminated" in stderr
    assert "Traceback" not in stderr
    assert not out.exists()
    kept = resume.read_manifest(mpath)
    assert kept is not None and sum(s.done for s in kept.segments) >= 2
    assert not any(".partial" in p.name for p in resume.segments_dir(out).iterdir())
    assert not [p for p in tmp_path.iterdir() if "vsr-tmp" in p.name]
    again = run_vsr_subprocess("upscale", src, "-o", out, *args, timeout=300)
    assert again.code == 0, again.err
    assert "resumed" in again.err
    assert len(clips.read_video(out, pixels=False).times) == 60


# -- PyAV's log callback -------------------------------------------------------------------------

_LOG_SCRIPT = """
import sys, threading, av, av.logging
from pathlib import Path
from vsr.media.avlog import errors_logged
from vsr.media.decode import VideoReader
from vsr.media.probe import open_input, probe

path = Path(sys.argv[1])
info = probe(path)
for _ in range(int(sys.argv[2])):
    container = open_input(path)
    reader = VideoReader(container, info.video, path, copy_indices=set(), skip_corrupt=True)
    for _item in reader:
        pass
    container.close()
    assert isinstance(av.logging.get_level(), int), av.logging.get_level()
# After the readers: FFmpeg errors print nothing, as with PyAV's default.
try:
    av.open(str(path.with_name("nothing-here.mkv")))
except Exception:
    pass
with errors_logged(), av.logging.Capture() as logs:
    try:
        av.open(str(path), format="matroska", options={"probesize": "32"})
    except Exception:
        pass
print("ok")
"""


def test_corrupt_frames_never_print_a_log_callback_traceback(tmp_path: Path) -> None:
    src = clips.corrupt_mid_stream(tmp_path, frames=20, frame_index=10)
    proc = subprocess.run(
        [sys.executable, "-c", _LOG_SCRIPT, str(src.path), "20"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert "av.logging" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr == "", proc.stderr


# -- checkpoints ---------------------------------------------------------------------------------


def test_checkpoint_missing_tensors_names_them(cli: Cli, tmp_path: Path) -> None:
    from vsr.models.archs.rrdbnet import RRDBNet
    from vsr.models.archs.srvgg import SRVGGNetCompact

    src = clips.cfr_h264_aac(tmp_path, frames=2)
    nets = {
        "srvgg.safetensors": (SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2), "body.2."),
        "rrdb.pth": (RRDBNet(num_feat=8, num_block=2, num_grow_ch=4, scale=2), "body.1.rdb2."),
    }
    for name, (net, prefix) in nets.items():
        state = {k: v for k, v in net.state_dict().items() if not k.startswith(prefix)}
        missing = sorted(set(net.state_dict()) - set(state))
        path = tmp_path / name
        if name.endswith(".safetensors"):
            save_file(state, str(path))
        else:
            torch.save(state, path)
        result = cli("upscale", src.path, "-o", tmp_path / "out.mkv", "--model", path)
        line = check_one_error_line(result, 4, name, "missing")
        for key in missing[:8]:
            assert key in line, (key, line)
        assert type(net).__name__ in line


def test_train_init_with_a_malicious_pickle_says_it_was_refused(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Touch:
        def __reduce__(self) -> tuple[object, ...]:
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.pth"
    torch.save({"params": Touch()}, evil)
    clip = clips.cfr_h264_aac(tmp_path, frames=4)
    result = cli("train", clip.path, "-o", tmp_path / "w.safetensors", "--init", evil)
    check_one_error_line(result, 4, "evil.pth", "refusing to load", "contains code")
    assert "safetensors file" not in result.err
    assert not marker.exists()


# -- the order of checks -------------------------------------------------------------------------


def test_existing_output_hides_no_input_or_model_problem(cli: Cli, tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=2)
    out = tmp_path / "exists.mp4"
    out.write_bytes(b"keep me")
    missing = cli("upscale", tmp_path / "missing.mp4", "-o", out, *FAST)
    check_one_error_line(missing, 3, "missing.mp4", "no such file")
    text = clips.text_as_mp4(tmp_path)
    not_media = cli("upscale", text, "-o", out, *FAST)
    check_one_error_line(not_media, 3, text.name, "not a media file")
    fake_png = tmp_path / "fake.png"
    fake_png.write_text("not an image")
    check_one_error_line(cli("upscale", fake_png, "-o", tmp_path / "o.png"), 3, "fake.png")
    no_model = cli("upscale", src.path, "-o", out, "--model", tmp_path / "nope.pth")
    check_one_error_line(no_model, 3, "nope.pth", "not found")
    # With everything else right, the existing output is what is reported.
    exists = cli("upscale", src.path, "-o", out, *FAST)
    check_one_error_line(exists, 5, "already exists")
    assert out.read_bytes() == b"keep me"


# -- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["upscal", "a.mp4"], "did you mean 'upscale'?"),
        (["upscale", "a.mp4", "-o", "b.mp4", "--sacle", "2"], "did you mean '--scale'?"),
        (["upscale", "a.mp4", "-o", "b.mp4", "--modle=x"], "did you mean '--model'?"),
        (["models", "lst"], "did you mean 'list'?"),
        (["batch", "d", "-o", "o", "--overwirte"], "did you mean '--overwrite'?"),
        (["upscale", "a.mp4", "-o", "b.mp4", "--precision", "fp61"], "did you mean 'fp16'?"),
    ],
)
def test_misspelt_commands_and_options_get_a_did_you_mean(
    cli: Cli, args: list[str], expected: str
) -> None:
    check_one_error_line(cli(*args), 2, expected)


def test_option_prefixes_are_not_accepted(cli: Cli, tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=2)
    out = tmp_path / "out.mp4"
    result = cli("upscale", src.path, "-o", out, "--model", "bicubic", "--scal", "2")
    check_one_error_line(result, 2, "unrecognized arguments: --scal", "'--scale'")
    assert not out.exists()
    result = cli("upscale", src.path, "--out", out, "--model", "bicubic")
    check_one_error_line(result, 2)
    from vsr.cli import build_parser

    def walk(parser: object) -> Iterator[object]:
        yield parser
        for action in getattr(parser, "_actions", []):
            choices = getattr(action, "choices", None)
            for child in choices.values() if isinstance(choices, dict) else ():
                yield from walk(child)

    # Every command's own parser (training's included) and the top level with only one.
    for command in (None, "", "train"):
        parsers = list(walk(build_parser(command)))
        assert len(parsers) > 10
        assert all(p.allow_abbrev is False for p in parsers)  # type: ignore[attr-defined]


def test_progress_label_shows_device_and_precision(tmp_path: Path) -> None:
    from vsr.api import build_options, run
    from vsr.cli.console import Bar

    src = clips.cfr_h264_aac(tmp_path, frames=2)
    seen: list[dict[str, object]] = []
    progress = Bar(True, "clip.mp4")

    def on_model(settings: object) -> None:
        seen.append(dict(settings))  # type: ignore[call-overload]
        progress.describe(settings)

    options = build_options(overrides={"model": "bicubic", "scale": 2})
    run(src.path, tmp_path / "o.mp4", options, on_model=on_model)
    assert seen and seen[0]["precision"] == "fp32" and seen[0]["device"] == "cpu"
    assert progress.label == "clip.mp4 [cpu fp32]"


def test_probe_names_data_streams(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "timecode.mov"
    with av.open(str(path), "w") as out:
        out.metadata["timecode"] = "01:00:00:00"
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(3):
            frame = clips.make_frame(64, 48, i)
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    result = cli("probe", path)
    assert result.code == 0, result.err
    data_lines = [line for line in result.out.splitlines() if " data:" in line]
    assert data_lines, result.out
    for line in data_lines:
        assert not re.search(r"data: *(,|$)", line), line
        assert "timecode" in line
    streams = cli("probe", path, "--json").json["streams"]
    assert all(s["codec"] for s in streams)


# -- untrusted presets and job files -------------------------------------------------------------

_FILE_OPTIONS = [
    ("x264-params", "pass=1:stats={victim}"),
    ("x264-params", "qpfile={victim}"),
    ("x264opts", "dump-yuv={victim}"),
    ("stats", "{victim}"),
    ("passlogfile", "{victim}"),
    ("flags", "+pass1"),
    ("x265-params", "csv={victim}"),
    ("x265-params", "analysis-save={victim}"),
    ("x265-params", "analysis-load=data.bin"),
    ("x265-stats", "{victim}"),
    ("svtav1-params", "fgs-table={victim}"),
    ("aom-params", "film-grain-table=grain.tbl"),
]


@pytest.mark.parametrize(("key", "value"), _FILE_OPTIONS)
def test_preset_cannot_name_files_for_the_encoder(
    cli: Cli, tmp_path: Path, key: str, value: str
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    value = value.format(victim=victim)
    preset = tmp_path / "shared.toml"
    preset.write_text(
        f'[model]\nname = "bicubic"\nscale = 2\n[encode]\noptions = {{ {key} = "{value}" }}\n'
    )
    src = clips.cfr_h264_aac(tmp_path, frames=2)
    result = cli("upscale", src.path, "-o", tmp_path / "o.mkv", "--preset", preset)
    check_one_error_line(result, 2, "shared.toml", key, "names a file", f"-e {key}=")
    assert victim.read_text() == "precious"
    assert not (tmp_path / "o.mkv").exists()


def test_preset_file_option_is_accepted_when_the_command_line_gives_it(
    cli: Cli, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    preset = tmp_path / "shared.toml"
    preset.write_text(
        '[model]\nname = "bicubic"\nscale = 2\n[encode]\npreset = "ultrafast"\n'
        f'options = {{ x264-params = "pass=1:stats={victim}", tune = "film" }}\n'
    )
    src = clips.cfr_h264_aac(tmp_path, frames=2)
    out = tmp_path / "o.mkv"
    # The user's own value replaces the preset's; safe options of the preset still apply.
    result = cli("upscale", src.path, "-o", out, "--preset", preset, "-e", "x264-params=ref=2")
    assert result.code == 0, result.err
    assert victim.read_text() == "precious"
    settings = clips.x264_settings(out)
    assert settings["ref"] == "2"
    # And the command line may name a stats file itself.
    stats = tmp_path / "mine.log"
    result = cli(
        "upscale",
        src.path,
        "-o",
        tmp_path / "p.mkv",
        *FAST,
        "-e",
        f"x264-params=pass=1:stats={stats}",
    )
    assert result.code == 0, result.err
    assert stats.exists()


def _job_tree(tmp_path: Path) -> Path:
    folder = tmp_path / "shared" / "jobs"
    (folder / "in").mkdir(parents=True)
    clips.cfr_h264_aac(folder / "in", frames=2)
    return folder


def test_job_file_cannot_write_outside_its_folder(cli: Cli, tmp_path: Path) -> None:
    folder = _job_tree(tmp_path)
    victim = tmp_path / "x.mkv"
    victim.write_bytes(b"precious")
    jobs = folder / "jobs.toml"
    base = 'model = "bicubic"\nencoder_preset = "ultrafast"\n[[job]]\ninput = "in/cfr25.mp4"\n'
    jobs.write_text(base + 'output = "../../x.mkv"\noverwrite = true\n')
    result = cli("batch", jobs)
    check_one_error_line(result, 2, "jobs.toml", "job 1", "outside")
    # Not with --allow-outside either: that is for absolute paths only.
    check_one_error_line(cli("batch", jobs, "--allow-outside"), 2, "outside")
    assert victim.read_bytes() == b"precious"

    # A symlink inside the folder that leads out is outside too.
    (folder / "link").symlink_to(tmp_path)
    jobs.write_text(base + 'output = "link/x.mkv"\noverwrite = true\n')
    check_one_error_line(cli("batch", jobs), 2, "outside")
    jobs.write_text('output_dir = "../.."\n' + base)
    check_one_error_line(cli("batch", jobs), 2, "output_dir", "outside")
    assert victim.read_bytes() == b"precious"

    # An absolute path needs --allow-outside from the user.
    elsewhere = tmp_path / "elsewhere" / "y.mkv"
    jobs.write_text(base + f'output = "{elsewhere}"\n')
    line = check_one_error_line(cli("batch", jobs), 2, "outside")
    assert "--allow-outside" in line
    allowed = cli("batch", jobs, "--allow-outside", "--no-html")
    assert allowed.code == 0, allowed.err
    assert len(clips.read_video(elsewhere, pixels=False).times) == 2

    # Inside its folder, or inside the -o the user gave, is fine.
    jobs.write_text(base + 'output = "done/z.mkv"\n')
    assert cli("batch", jobs, "--no-html").code == 0
    assert (folder / "done" / "z.mkv").is_file()
    jobs.write_text(base)
    out = tmp_path / "chosen"
    assert cli("batch", jobs, "-o", out, "--no-html").code == 0
    assert (out / "cfr25.mp4").is_file()


def test_job_file_cannot_name_files_for_the_encoder(cli: Cli, tmp_path: Path) -> None:
    folder = _job_tree(tmp_path)
    victim = tmp_path / "victim.log"
    victim.write_text("precious")
    jobs = folder / "jobs.toml"
    jobs.write_text(
        'model = "bicubic"\n[[job]]\ninput = "in/cfr25.mp4"\noutput = "o.mkv"\n'
        f'encoder_options = {{ x264-params = "pass=1:stats={victim}" }}\n'
    )
    result = cli("batch", jobs)
    check_one_error_line(result, 2, "jobs.toml", "job 1", "names a file")
    # A preset the job file names is held to the same rule.
    (folder / "p.toml").write_text(f'[encode]\noptions = {{ stats = "{victim}" }}\n')
    jobs.write_text('preset = "p.toml"\n[[job]]\ninput = "in/cfr25.mp4"\noutput = "o.mkv"\n')
    check_one_error_line(cli("batch", jobs, "--model", "bicubic"), 2, "p.toml", "names a file")
    assert victim.read_text() == "precious"
    assert not (folder / "o.mkv").exists()
