"""`vsr preview`: the split-view PNG at an exact time, and the short clip from the pipeline."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import clips
import cv2
import numpy as np
import pytest
import torch
from conftest import FAST, CliResult, check_one_error_line
from test_batch import register_commands

from vsr.preview import parse_time, split_view

Cli = Callable[..., CliResult]
W, H = 160, 96
GOP = 25  # a keyframe every second at 25 fps


@pytest.fixture
def vsr(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    register_commands(monkeypatch)
    return cli


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> clips.Clip:
    """4 s of 160x96 H.264 at 25 fps, keyframes at whole seconds, with AAC audio."""
    path = tmp_path_factory.mktemp("preview") / "talk.mp4"
    return clips.write_video(
        path,
        width=W,
        height=H,
        frames=100,
        options={"g": str(GOP), "sc_threshold": "0", "bf": "0"},
        audio=[("aac", 48000, "stereo")],
    )


def input_frames_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return np.ascontiguousarray(image[..., ::-1])


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


class InvertingBicubic:
    """A test model whose output differs visibly from bicubic: 1 - bicubic."""

    def __init__(self, scale: float) -> None:
        from vsr.models.processors import BicubicProcessor

        self.inner = BicubicProcessor(scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        return 1.0 - self.inner.process(frames)

    def flush(self) -> torch.Tensor:
        return self.inner.flush()


def test_png_is_split_bicubic_and_model_at_exact_frame(
    vsr: Cli, video: clips.Clip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vsr.models.registry as registry

    monkeypatch.setattr(
        registry, "create_processor", lambda options, notify=None: InvertingBicubic(2.0)
    )
    png = tmp_path / "compare.png"
    # 1.62 s falls inside frame 40's display time (1.60-1.64 s), 15 frames after a keyframe.
    result = vsr("preview", video.path, "--at", "00:00:01.62", "-o", png, *FAST, "--no-clip")
    assert result.code == 0, result.err
    assert not png.with_suffix(".mp4").exists()
    image = read_png(png)
    assert image.shape == (2 * H, 2 * W, 3)

    frames = input_frames_rgb(video.path)
    bicubic = [clips.bicubic(f, 2 * W, 2 * H).clip(0, 255) for f in frames]
    half = W  # output width // 2
    rows = slice(30, 2 * H)  # below the labels
    left = image[rows, : half - 3]
    right = image[rows, half + 3 :]
    errors = [mad(left, b[rows, : half - 3]) for b in bicubic]
    assert int(np.argmin(errors)) == 40, errors[35:45]
    assert errors[40] < 2.0
    # The right half is the model's output (here: inverted bicubic) of the same frame.
    assert mad(right, 255 - bicubic[40][rows, half + 3 :]) < 2.0
    assert mad(right, bicubic[40][rows, half + 3 :]) > 20
    # A divider between the halves.
    assert (image[rows, half - 1 : half + 1] == 255).all()


def test_at_past_the_end_is_a_clear_error(vsr: Cli, video: clips.Clip, tmp_path: Path) -> None:
    png = tmp_path / "late.png"
    result = vsr("preview", video.path, "--at", "0:10", "-o", png, *FAST)
    check_one_error_line(result, 2, "past the end", "talk.mp4", "00:00:04")
    assert list(tmp_path.iterdir()) == []


def test_clip_has_duration_audio_and_content(vsr: Cli, video: clips.Clip, tmp_path: Path) -> None:
    png = tmp_path / "compare.png"
    # 1.5 s is between keyframes: the clip starts at the keyframe at 1.0 s and runs to 2.5 s.
    result = vsr("preview", video.path, "--at", "1.5", "--seconds", "1", "-o", png, *FAST)
    assert result.code == 0, result.err
    assert "keyframe before" in result.err
    clip = tmp_path / "compare.mp4"
    assert result.out.split() == [str(png), str(clip)]
    read = clips.read_video(clip)
    assert (read.width, read.height) == (2 * W, 2 * H)
    # Frames 25..62 of the input (1.00 s to 2.48 s), re-timed to start at 0.
    assert read.times == [Fraction(i, 25) for i in range(38)]
    # The first frame of the clip is input frame 25, upscaled.
    src = input_frames_rgb(video.path)
    first = read.frames[0].to_ndarray(format="rgb24")
    scores = [mad(first, clips.bicubic(src[i], 2 * W, 2 * H).clip(0, 255)) for i in (24, 25, 26)]
    assert scores[1] < 4 and scores[1] < min(scores[0], scores[2])
    # Audio is there, copied, and covers the clip.
    audio = clips.stream_indices(clip, "audio")
    assert len(audio) == 1
    times = clips.packet_times(clip, audio[0])
    assert times[0] <= Fraction(1, 20) and Fraction(14, 10) <= times[-1] <= Fraction(16, 10)
    source_packets = set(clips.packet_bytes(video.path, 1))
    assert set(clips.packet_bytes(clip, audio[0])) <= source_packets

    # Nothing is overwritten without --overwrite.
    before = png.stat().st_mtime_ns, clip.stat().st_mtime_ns
    again = vsr("preview", video.path, "--at", "1.5", "--seconds", "1", "-o", png, *FAST)
    check_one_error_line(again, 5, "already exists", "--overwrite")
    assert (png.stat().st_mtime_ns, clip.stat().st_mtime_ns) == before


def test_a_codec_matroska_refuses_is_cut_in_its_own_container(vsr: Cli, tmp_path: Path) -> None:
    # QuickTime RLE with alpha goes in no container but its own: the clip's stream copy falls
    # back to .mov (it used to stop with "unexpected ValueError" from the MKV muxer).
    source = clips.alpha_clip(tmp_path)
    png, clip = tmp_path / "a.png", tmp_path / "a.mov"
    result = vsr(
        "preview", source.path, "--at", "0.1", "--seconds", "0.2", "-o", png, "--clip", clip, *FAST
    )
    assert result.code == 0, result.err
    read = clips.read_video(clip)
    assert (read.width, read.height) == (2 * source.width, 2 * source.height)
    assert len(read.frames) == 6 and read.pix_fmt.startswith("yuva")  # the alpha kept


def test_a_clip_the_run_would_refuse_fails_before_the_still(vsr: Cli, tmp_path: Path) -> None:
    # Alpha into the default .mp4 clip: the clip is planned first, so nothing is written.
    source = clips.alpha_clip(tmp_path)
    before = set(tmp_path.iterdir())
    result = vsr("preview", source.path, "--at", "0.1", "-o", tmp_path / "a.png", *FAST)
    check_one_error_line(result, 5, "alpha channel", ".mov")
    assert set(tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("1:30", 90.0), ("00:01:30", 90.0), ("01:02:03.5", 3723.5), ("0.04", 0.04)],
)
def test_parse_time(text: str, seconds: float) -> None:
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["-1", "1:75", "abc", "1:2:3:4", ""])
def test_parse_time_rejects(text: str) -> None:
    from vsr.errors import UsageError

    with pytest.raises(UsageError):
        parse_time(text)


def test_split_view_halves() -> None:
    before = np.zeros((200, 300, 3), np.uint8)
    after = np.full((200, 300, 3), 200, np.uint8)
    image = split_view(before, after, left_label="bicubic", right_label="model")
    assert (image[100:, :140] == 0).all()
    assert (image[100:, 160:] == 200).all()
    assert (image[:, 149:151] == 255).all()
    # The labels were drawn (white text) in the top corners.
    assert image[:40, :140].max() > 200 and (image[:40, 160:] > 200).any()
