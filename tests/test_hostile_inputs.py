"""Real-world classes of input that used to fail (issue 12): each test generates its class.

Negative start times, DivX packed B-frames, damaged B-frame streams under --skip-corrupt,
non-finite model output, stills too big to decode, and log capture under threaded decoding.
"""

from __future__ import annotations

import contextlib
import itertools
import struct
import zlib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import clips
import pytest
import torch
from conftest import FAST, CliResult, check_one_error_line, files_in
from safetensors.torch import save_file

Cli = Callable[..., CliResult]


def video_times(path: Path) -> list[Fraction]:
    with av.open(str(path)) as container:
        return sorted(Fraction(f.pts * f.time_base) for f in container.decode(video=0))


def first_time(path: Path, kind: str) -> float:
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type == kind)
        return min(float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None)


# -- 1. streams that start before zero -----------------------------------------------------


@pytest.mark.parametrize("ext", ["mkv", "mp4", "ogv"])
def test_audio_before_zero_keeps_sync(cli: Cli, tmp_path: Path, ext: str) -> None:
    src = clips.audio_before_zero(tmp_path)
    assert clips.audio_marker_offset(src.path) == 0.0
    out = tmp_path / f"out.{ext}"
    result = cli("upscale", src.path, "-o", out, *FAST)
    assert result.code == 0, result.err
    # Within one video frame: Ogg's granule positions count whole frames.
    assert abs(clips.audio_marker_offset(out)) <= 0.04 + 1e-6
    assert len(video_times(out)) == src.frames
    assert files_in(tmp_path) == {src.path.name, out.name}


def test_audio_transcoded_from_before_zero_keeps_sync(cli: Cli, tmp_path: Path) -> None:
    src = clips.audio_before_zero(tmp_path)
    out = tmp_path / "out.webm"  # FLAC is not allowed in WebM: transcoded to Opus
    result = cli("upscale", src.path, "-o", out, *FAST, "--json")
    assert result.code == 0, result.err
    assert [s["action"] for s in result.json["streams"]] == ["encoded", "transcoded"]
    assert abs(clips.audio_marker_offset(out)) < 0.01


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_ogg_audio_timestamps_jumping_back(cli: Cli, tmp_path: Path, ext: str) -> None:
    src = clips.ogg_audio_before_zero()
    with av.open(str(src)) as container:
        stamps = [p.pts for p in container.demux(audio=0) if p.pts is not None]
    assert any(b < a for a, b in itertools.pairwise(stamps)), "not the class"
    out = tmp_path / f"out.{ext}"
    result = cli("upscale", src, "-o", out, *FAST, "--json")
    assert result.code == 0, result.err
    starts = {kind: first_time(out, kind) for kind in ("video", "audio")}
    with av.open(str(out)) as container:
        audio_stamps = [p.dts for p in container.demux(audio=0) if p.dts is not None]
    assert audio_stamps == sorted(audio_stamps)
    if ext == "mkv":  # MP4 trims the audio before zero with an edit list
        # The true start from the granule positions: 95327 samples at 22050 Hz before zero.
        lead = starts["video"] - starts["audio"]
        assert abs(lead - 95327 / 22050) <= 0.04 + 1e-3, starts


# -- 2. DivX/Xvid packed B-frames ----------------------------------------------------------


def test_packed_bframes_are_detected_by_ffmpeg(tmp_path: Path) -> None:
    src = clips.packed_bframes_avi(tmp_path)
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)
    try:
        with av.logging.Capture(local=False) as logs, av.open(str(src.path)) as container:
            for _ in container.decode(video=0):
                pass
    finally:
        av.logging.set_level(previous)
    assert any("packed B-frames" in message for _level, _name, message in logs)


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_packed_bframes_avi_upscales_with_exact_times(cli: Cli, tmp_path: Path, ext: str) -> None:
    src = clips.packed_bframes_avi(tmp_path)
    out = tmp_path / f"out.{ext}"
    result = cli("upscale", src.path, "-o", out, *FAST)
    assert result.code == 0, result.err
    times = video_times(out)
    assert len(times) == src.frames
    steps = {b - a for a, b in itertools.pairwise(times)}
    assert steps == {Fraction(1, 25)}, steps
    # FFmpeg's decoder reads packed frames itself (in display order): the same pictures.
    clips.check_pixels_and_order(src.path, out, min_psnr=28)


# -- 7. --skip-corrupt on B-frames: repeats land exactly on the missing slots ---------------


def test_skip_corrupt_with_bframes_fills_each_missing_time_once(cli: Cli, tmp_path: Path) -> None:
    src = clips.bframes_with_damage(tmp_path)
    out = tmp_path / "out.mkv"
    result = cli("upscale", src.path, "-o", out, *FAST, "--skip-corrupt", "--json")
    assert result.code == 0, result.err
    got = [round(float(t), 3) for t in video_times(out)]
    want = [round(float(t), 3) for t in src.times]
    assert got == want  # every input time exactly once: none missing, none doubled
    assert result.json["repeated_frames"] > 0


# -- 8. non-finite model output ------------------------------------------------------------


def test_nan_checkpoint_stops_with_a_model_error(cli: Cli, tmp_path: Path) -> None:
    from vsr.models.archs.srvgg import SRVGGNetCompact

    net = SRVGGNetCompact(num_feat=8, num_conv=3, upscale=2)
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    weights["body.0.weight"].fill_(float("nan"))
    checkpoint = tmp_path / "broken.safetensors"
    save_file({k: v.contiguous() for k, v in weights.items()}, str(checkpoint))
    src = clips.write_video(tmp_path / "in.mp4", frames=4)
    out = tmp_path / "out.mkv"
    result = cli("upscale", src.path, "-o", out, "--model", checkpoint, "--precision", "fp32")
    check_one_error_line(result, 4, "broken.safetensors", "non-finite")
    assert not out.exists()


def test_finite_output_passes_the_check() -> None:
    from vsr.config import ModelOptions
    from vsr.models.archs.srvgg import SRVGGNetCompact
    from vsr.models.base import ModelDescriptor
    from vsr.models.processors import TorchProcessor

    net = SRVGGNetCompact(num_feat=8, num_conv=3, upscale=2).eval()
    descriptor = ModelDescriptor("tiny", "SRVGGNetCompact", 2)
    proc = TorchProcessor(net, descriptor, ModelOptions(name="tiny", precision="fp32"))
    out = proc.process(torch.rand(1, 3, 16, 16))
    assert out.shape == (1, 3, 32, 32) and bool(torch.isfinite(out).all())


# -- 5. stills too big to decode or to fit ---------------------------------------------------


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims `width` x `height` (the pixel data is a few rows)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width * 3 + 1) * 2)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )
    return path


def test_png_header_over_the_pixel_limit_is_refused(cli: Cli, tmp_path: Path) -> None:
    src = png_claiming(tmp_path / "huge.png", 60000, 60000)
    result = cli("upscale", src, "-o", tmp_path / "out.png", *FAST)
    line = check_one_error_line(result, 3, "60000x60000", "GB")
    assert "unexpected" not in line
    assert files_in(tmp_path) == {"huge.png"}


def test_still_larger_than_max_memory_is_refused_before_decoding(cli: Cli, tmp_path: Path) -> None:
    src = png_claiming(tmp_path / "big.png", 16384, 16384)
    result = cli("upscale", src, "-o", tmp_path / "out.png", *FAST, "--max-memory", "1G")
    check_one_error_line(result, 6, "16384x16384", "needs about", "--max-memory")
    assert files_in(tmp_path) == {"big.png"}


# -- 4. log capture vs. closing the container under threaded decoding -----------------------


def test_reader_closed_mid_stream_restores_logging_before_close(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from vsr.errors import CorruptInputError
    from vsr.media.decode import VideoReader
    from vsr.media.probe import open_input, probe

    # Damaged B-frame H.264: frame threads log errors while the reader stops mid-stream.
    src = clips.bframes_with_damage(tmp_path)
    info = probe(src.path)
    before = av.logging.get_level()
    for attempt in range(8):
        container = open_input(src.path)
        with VideoReader(container, info.video, src.path, copy_indices=set()) as reader:
            suspended = False
            # Stopped by the damage (the generator ends itself) or suspended mid-stream.
            with contextlib.suppress(CorruptInputError):
                for n, _ in enumerate(reader):
                    if n == 8 + 4 * attempt:
                        suspended = True
                        break
            if suspended:
                assert av.logging.get_level() == av.logging.ERROR
        # Closed: FFmpeg's threads no longer call into Python, so closing can't deadlock.
        assert av.logging.get_level() == before
        container.close()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "av.logging" not in err, err


# -- 7. --skip-corrupt on a truncated file says what is missing -------------------------------


@pytest.mark.parametrize("kind", ["faststart-mp4", "mkv"])
def test_skip_corrupt_on_truncated_file_reports_the_loss(
    cli: Cli, tmp_path: Path, kind: str
) -> None:
    if kind == "mkv":
        src = clips.write_video(tmp_path / "full.mkv", frames=50, audio=[("aac", 48000, "stereo")])
    else:
        src = clips.faststart_mp4(tmp_path, frames=50)
    cut = clips.truncated(src.path, tmp_path, 0.6)
    out = tmp_path / "out.mkv"
    result = cli("upscale", cut, "-o", out, *FAST, "--skip-corrupt", "--json")
    assert result.code == 0, result.err
    frames = result.json["frames"]
    assert 0 < frames < 50
    lost = result.json["lost"]
    assert lost["frames"] == 50 - frames
    assert abs(lost["seconds"] - (50 - frames) / 25) < 0.05
    notices = result.json["notices"]
    assert any("ends early" in n and f"{lost['frames']} frames" in n for n in notices)


def test_intact_file_reports_no_loss(cli: Cli, tmp_path: Path) -> None:
    src = clips.write_video(tmp_path / "full.mkv", frames=20, audio=[("aac", 48000, "stereo")])
    result = cli("upscale", src.path, "-o", tmp_path / "o.mkv", *FAST, "--skip-corrupt", "--json")
    assert result.code == 0, result.err
    assert result.json["lost"] is None


@pytest.mark.parametrize(
    ("bits", "alpha", "ext"), [(8, False, "png"), (16, True, "png"), (8, True, "tif")]
)
def test_still_in_bands_equals_the_whole_image(
    cli: Cli, tmp_path: Path, bits: int, alpha: bool, ext: str
) -> None:
    import cv2
    import numpy as np

    rng = np.random.default_rng(bits)
    peak = 65535 if bits == 16 else 255
    image = (rng.random((401, 603, 4 if alpha else 3)) * peak).astype(
        np.uint16 if bits == 16 else np.uint8
    )
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), image)
    whole, banded = tmp_path / f"whole.{ext}", tmp_path / f"banded.{ext}"
    assert cli("upscale", src, "-o", whole, *FAST).code == 0
    # A budget the whole image's float copies don't fit in (about 45 MB): processed in bands.
    result = cli("upscale", src, "-o", banded, *FAST, "--max-memory", "40M")
    assert result.code == 0, result.err
    assert "processed in bands" in result.err
    a = cv2.imread(str(whole), cv2.IMREAD_UNCHANGED)
    b = cv2.imread(str(banded), cv2.IMREAD_UNCHANGED)
    assert a.shape == b.shape == (802, 1206, image.shape[2]) and a.dtype == b.dtype
    assert np.array_equal(a, b)


# -- output containers with their own rules ------------------------------------------------


def test_avi_output_of_h264_with_bframes(cli: Cli, tmp_path: Path) -> None:
    # AVI takes H.264 with start codes only; the segments hold it length-prefixed.
    src = clips.cfr_h264_aac(tmp_path)
    out = tmp_path / "out.avi"
    result = cli("upscale", src.path, "-o", out, *FAST)
    assert result.code == 0, result.err
    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        frames = list(container.decode(video=0))
    assert len(frames) == src.frames
    assert (frames[0].width, frames[0].height) == (2 * src.width, 2 * src.height)


def test_flac_audio_in_mov_is_transcoded(cli: Cli, tmp_path: Path) -> None:
    src = clips.audio_before_zero(tmp_path, lead=0.0)
    out = tmp_path / "out.mov"
    result = cli("upscale", src.path, "-o", out, *FAST, "--json")
    assert result.code == 0, result.err
    assert [(s["action"], s["codec"]) for s in result.json["streams"]][1] == ("transcoded", "aac")
    assert abs(clips.audio_marker_offset(out)) < 0.01


def test_tags_that_are_not_utf8_do_not_stop_the_run(cli: Cli, tmp_path: Path) -> None:
    # A garbled header (found by scripts/fuzz_inputs.py): PyAV raised UnicodeDecodeError.
    src = clips.write_video(tmp_path / "src.mkv", frames=6)
    path = tmp_path / "tags.mkv"
    with av.open(str(src.path)) as inp, av.open(str(path), "w") as out:
        out.metadata["title"] = "TITLE-MARK"
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(video=0):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    data = path.read_bytes()
    assert data.count(b"TITLE-MARK") == 1
    path.write_bytes(data.replace(b"TITLE-MARK", b"\x8d\xff\xfeTITLE-"))
    result = cli("upscale", path, "-o", tmp_path / "out.mkv", *FAST)
    assert result.code == 0, result.err
    assert len(video_times(tmp_path / "out.mkv")) == 6


# -- damaged audio that has to be transcoded -------------------------------------------------
def _damage_audio_packet(source: Path, target: Path, which: int) -> float:
    """A copy of `source` whose `which`-th audio packet holds garbage; returns its time."""
    damaged_at = 0.0
    with av.open(str(source)) as src, av.open(str(target), "w", format="matroska") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        seen = 0
        for packet in src.demux():
            if packet.dts is None and packet.pts is None:
                continue
            out = packet
            if packet.stream.type == "audio":
                if seen == which:
                    # AAC with every byte 0xFF: no valid frame header, the decoder refuses it.
                    out = av.Packet(b"\xff" * packet.size)
                    out.pts, out.dts = packet.pts, packet.dts
                    out.duration, out.time_base = packet.duration, packet.time_base
                    damaged_at = float(packet.pts * packet.time_base)
                seen += 1
            out.stream = streams[packet.stream.index]
            dst.mux(out)
    return damaged_at


def _audio_end(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        ends = [
            float((p.pts + (p.duration or 0)) * p.time_base)
            for p in container.demux(stream)
            if p.pts is not None
        ]
    return max(ends)


def test_damaged_audio_in_a_transcode_is_bad_input_or_a_gap_with_skip_corrupt(
    cli: Cli, tmp_path: Path
) -> None:
    src = clips.write_video(tmp_path / "src.mp4", frames=25, audio=[("aac", 48000, "stereo")]).path
    damaged = tmp_path / "damaged.mkv"
    at = _damage_audio_packet(src, damaged, which=10)
    src.unlink()
    # Ogg can't hold AAC, so the audio is decoded and re-encoded to Opus: the damage shows.
    out = tmp_path / "out.ogv"
    result = cli("upscale", str(damaged), "-o", str(out), *FAST)
    assert result.code == 3, result.err
    assert "Traceback" not in result.err
    errors = [line for line in result.err.splitlines() if line.startswith("vsr: error:")]
    assert len(errors) == 1 and "audio stream #1 is damaged" in errors[0], result.err
    assert "--skip-corrupt" in errors[0]
    # The same command would fail the same way: nothing is kept for a resume.
    assert files_in(tmp_path) == {damaged.name}

    result = cli("upscale", str(damaged), "-o", str(out), *FAST, "--skip-corrupt", "--json")
    assert result.code == 0, result.err
    assert "1 damaged audio packet(s) left out" in result.out + result.err
    assert files_in(tmp_path) == {damaged.name, out.name}
    # The gap keeps the audio after it in place: it still ends where the source's ends.
    assert abs(_audio_end(out) - _audio_end(damaged)) < 0.05
    assert at > 0
