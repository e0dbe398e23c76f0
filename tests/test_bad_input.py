"""Bad inputs: one clear line naming the file, the right exit code, and nothing left behind."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import clips
import pytest
from conftest import FAST, CliResult, check_one_error_line, files_in

Cli = Callable[..., CliResult]


def fails_cleanly(
    cli: Cli, src: Path, tmp_path: Path, code: int, *fragments: str, ext: str = "mp4"
) -> str:
    """Upscale SRC, expect CODE with one error line naming the file, and no output at all."""
    existed = files_in(tmp_path)
    out = tmp_path / f"out.{ext}"
    result = cli("upscale", src, "-o", out, *FAST)
    line = check_one_error_line(result, code, src.name, *fragments)
    assert not out.exists()
    assert files_in(tmp_path) == existed, "a temporary file was left behind"
    return line


def test_missing_file(cli: Cli, tmp_path: Path) -> None:
    fails_cleanly(cli, tmp_path / "nowhere.mp4", tmp_path, 3)


def test_directory_as_input(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "clips.mp4"
    folder.mkdir()
    fails_cleanly(cli, folder, tmp_path, 3)


def test_text_file_named_mp4(cli: Cli, tmp_path: Path) -> None:
    fails_cleanly(cli, clips.text_as_mp4(tmp_path), tmp_path, 3)


def test_empty_file(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "zero.mkv"
    path.write_bytes(b"")
    fails_cleanly(cli, path, tmp_path, 3)


def test_audio_only(cli: Cli, tmp_path: Path) -> None:
    fails_cleanly(cli, clips.audio_only(tmp_path), tmp_path, 3, "video")


def test_zero_frames(cli: Cli, tmp_path: Path) -> None:
    fails_cleanly(cli, clips.zero_frames(tmp_path), tmp_path, 3, ext="mkv")


def test_unsupported_codec(cli: Cli, tmp_path: Path) -> None:
    fails_cleanly(cli, clips.unsupported_codec(tmp_path), tmp_path, 3, "codec", ext="mkv")


def test_truncated_faststart_mp4(cli: Cli, tmp_path: Path) -> None:
    src = clips.faststart_mp4(tmp_path, frames=25)
    cut = clips.truncated(src.path, tmp_path, 0.6)
    src.path.unlink()
    fails_cleanly(cli, cut, tmp_path, 3)


def test_truncated_mkv(cli: Cli, tmp_path: Path) -> None:
    src = clips.write_video(tmp_path / "whole.mkv", frames=25, audio=[("aac", 48000, "stereo")])
    cut = clips.truncated(src.path, tmp_path, 0.6)
    src.path.unlink()
    fails_cleanly(cli, cut, tmp_path, 3, ext="mkv")


def test_truncated_mp4_moov_at_end(cli: Cli, tmp_path: Path) -> None:
    """Without faststart the index is at the end: 60% of the file has no index at all."""
    src = clips.write_video(tmp_path / "whole.mp4", frames=25)
    cut = clips.truncated(src.path, tmp_path, 0.6)
    src.path.unlink()
    fails_cleanly(cli, cut, tmp_path, 3)


def test_corrupt_frame_stops_the_run_naming_frame_and_time(cli: Cli, tmp_path: Path) -> None:
    src = clips.corrupt_mid_stream(tmp_path, frames=20, frame_index=10)
    line = fails_cleanly(cli, src.path, tmp_path, 3, "--skip-corrupt", ext="mkv")
    # Frame 10 at 0.4 s: the message says which one (a number and a time a user can seek to).
    assert "10" in line, line
    assert any(t in line for t in ("0.4", "00:00:00.4", "0:00:00.4", "400 ms")), line


def test_skip_corrupt_repeats_and_keeps_sync(cli: Cli, tmp_path: Path) -> None:
    src = clips.corrupt_mid_stream(tmp_path, frames=20, frame_index=10)
    out = tmp_path / "out.mkv"
    result = cli("upscale", src.path, "-o", out, *FAST, "--skip-corrupt", "--json")
    assert result.code == 0, result.err
    summary = result.json
    assert summary["repeated_frames"] == 1
    assert summary["frames"] == 20
    # Every time slot is still there: the bad frame was replaced, not dropped.
    clips.check_times(src.path, out)
    assert any("corrupt" in n.lower() or "repeat" in n.lower() for n in summary["notices"])
    # The replacement is the previous good frame, so the output frame 10 matches input frame 9.
    scores = clips.frame_scores(src.path, out)
    assert scores[10][9] > 30, scores[10]
    for k in (0, 5, 9, 11, 19):
        assert scores[k][k] > 30, (k, scores[k][k])


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_failure_after_start_leaves_no_temp_file(cli: Cli, tmp_path: Path, ext: str) -> None:
    """A failure in the middle of decoding: the temporary output is removed, not left behind."""
    src = clips.corrupt_mid_stream(tmp_path, frames=20, frame_index=15)
    out = tmp_path / f"out.{ext}"
    result = cli("upscale", src.path, "-o", out, *FAST)
    check_one_error_line(result, 3, src.path.name)
    assert files_in(tmp_path) == {src.path.name}


def test_probe_of_bad_inputs(cli: Cli, tmp_path: Path) -> None:
    for path in (tmp_path / "missing.mkv", clips.text_as_mp4(tmp_path)):
        result = cli("probe", path)
        check_one_error_line(result, 3, path.name)


def test_corrupt_times_in_clip_are_what_the_test_expects(tmp_path: Path) -> None:
    """Guards the generator: frame 10 is at 0.4 s and is the only one flagged corrupt."""
    import av

    src = clips.corrupt_mid_stream(tmp_path, frames=20, frame_index=10)
    assert src.extra["corrupt_time"] == Fraction(2, 5)
    flagged = []
    with av.open(str(src.path)) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if frame.is_corrupt:
                flagged.append(k)
    assert flagged == [10]
