"""Parallel segment encoders (`--encode-workers`, vsr.segments): when one encoder cannot keep
up, segments are encoded side by side, and the output is the same video: the same frames,
timestamps and streams as one encoder writes, with memory bounded and nothing lost on a failure.

The encoders are made slow on purpose (a wrapper that sleeps per frame, releasing the GIL as
a real encoder does), so the cut-and-hand-over path runs on any machine.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import clips
import numpy as np
import pytest
from conftest import FAST, CliResult, check_one_error_line

import vsr
from vsr import segments
from vsr.errors import EncoderError, UsageError
from vsr.segments import EncoderPool, plan_encoders

Cli = Callable[..., CliResult]
GIB = 1 << 30
needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None,
    reason="the ffmpeg program is not installed (apt-get install ffmpeg; .ci/run does)",
)


# -- the plan ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cpus", "codec", "workers"),
    [
        (1, "libx264", 1),
        (2, "libx264", 1),  # the model is the bottleneck; queues would only cost memory
        (7, "libx265", 1),
        (8, "libx264", 2),
        (16, "libx264", 4),
        (64, "libsvtav1", 4),
        (64, "h264_nvenc", 1),  # hardware encoders have few sessions
        (64, "hevc_qsv", 1),
    ],
)
def test_auto_workers(cpus: int, codec: str, workers: int) -> None:
    pool = plan_encoders(None, codec, cpus, 64 * GIB)
    assert pool.workers == workers
    assert pool.reason.startswith("auto")
    assert (pool.queue_bytes > 0) == (workers > 1)


def test_asked_for_workers_and_queue_memory_bounds() -> None:
    assert plan_encoders(3, "h264_nvenc", 2, 64 * GIB).workers == 3  # the user decides
    assert plan_encoders(1, "libx264", 64, 64 * GIB) == EncoderPool(1, 0, "asked for")
    small = plan_encoders(2, "libx264", 2, 1 * GIB)
    big = plan_encoders(2, "libx264", 2, 512 * GIB)
    assert segments.QUEUE_BYTES_MIN <= small.queue_bytes <= GIB // 4
    assert big.queue_bytes == segments.QUEUE_BYTES_MAX
    for bad in (0, -1, segments.MAX_ENCODERS + 1):
        with pytest.raises(UsageError, match="--encode-workers"):
            plan_encoders(bad, "libx264", 8, GIB)


# -- the sink, with encoders made slow --------------------------------------------------------
class _Slow:
    """A segment writer that takes `delay` seconds per frame; counts encoders at work."""

    live = 0
    peak = 0
    opened = 0
    lock = threading.Lock()
    fail_in_segment: int | None = None  # the n-th segment opened (0-based) fails ...
    fail_at = "write"  # ... opening, writing its third frame or closing, ...
    closed: ClassVar[set[int]] = set()  # ... once the first one is closed (so that it can be kept)

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        with _Slow.lock:
            self.number = _Slow.opened
            _Slow.opened += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _fails(self, step: str) -> bool:
        return self.number == _Slow.fail_in_segment and step == _Slow.fail_at

    def _break(self) -> None:
        deadline = time.monotonic() + 30
        while 0 not in _Slow.closed and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # its thread marks it done just after close() returns
        raise EncoderError("the encoder broke (test)")

    def _slow(self) -> None:
        with _Slow.lock:
            _Slow.live += 1
            _Slow.peak = max(_Slow.peak, _Slow.live)
        time.sleep(self.delay)
        with _Slow.lock:
            _Slow.live -= 1
        if self._fails("write") and self.inner.frames_written >= 2:
            self._break()

    def open(self) -> None:
        self.inner.open()  # the file exists, as when a disk fills up writing the header
        if self._fails("open"):
            self._break()

    def close(self) -> None:
        if self._fails("close"):
            self._break()
        self.inner.close()
        _Slow.closed.add(self.number)

    def write_frame(self, *args: Any) -> None:
        self._slow()
        self.inner.write_frame(*args)

    def write_video_frame(self, *args: Any) -> None:
        self._slow()
        self.inner.write_video_frame(*args)


@pytest.fixture
def slow_encoders(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Slow]]:
    real = segments.segment_writer

    def slow_writer(*args: Any) -> _Slow:
        return _Slow(real(*args), 0.02)

    monkeypatch.setattr(segments, "segment_writer", slow_writer)
    # Cut as soon as an encoder is a quarter second behind: short clips get several segments.
    monkeypatch.setattr(segments, "BEHIND_SECONDS", 0.25)
    _Slow.live = _Slow.peak = _Slow.opened = 0
    _Slow.fail_in_segment = None
    _Slow.fail_at = "write"
    _Slow.closed = set()
    yield _Slow


def _upscale(src: Path, out: Path, workers: int, **extra: Any) -> vsr.UpscaleResult:
    return vsr.upscale(
        src,
        out,
        model="bicubic",
        scale=2,
        codec="ffv1",  # lossless: the frames can be compared exactly
        encode_workers=workers,
        overwrite=True,
        **extra,
    )


@pytest.mark.parametrize(
    ("color_path", "backend"),
    [
        ("tensor", "pyav"),  # frames reach the encoders as planes (the device graph)
        ("swscale", "pyav"),  # as RGB: the colour conversion runs on the encoder threads too
        pytest.param("tensor", "ffmpeg", marks=needs_ffmpeg),  # one ffmpeg process each
    ],
)
def test_parallel_encoders_write_the_same_video(
    tmp_path: Path, slow_encoders: type[_Slow], color_path: str, backend: str
) -> None:
    src = clips.multi_track_mkv(tmp_path, frames=48, attachment=False)
    one = tmp_path / "one.mkv"
    paths = {"color_path": color_path, "encoder_backend": backend}
    _upscale(src.path, one, 1, **paths)
    assert slow_encoders.peak == 1 and slow_encoders.opened == 1

    slow_encoders.peak = slow_encoders.opened = 0
    three = tmp_path / "three.mkv"
    result = _upscale(src.path, three, 3, **paths)
    # The slow encoder fell behind: the frames were split over segments encoded side by side,
    # never more at once than asked for.
    assert slow_encoders.opened >= 3
    assert 2 <= slow_encoders.peak <= 3
    assert result.frames == 48
    assert result.to_dict()["encoder"]["workers"]["workers"] == 3

    a, b = clips.read_video(one), clips.read_video(three)
    assert b.times == a.times == src.times
    assert len(b.planes) == len(a.planes) == 48
    for pa, pb in zip(a.planes, b.planes, strict=True):
        for x, y in zip(pa, pb, strict=True):
            np.testing.assert_array_equal(x, y)
    assert clips.stream_summary(three) == clips.stream_summary(one)
    for index in clips.stream_indices(one, "audio"):
        assert clips.packet_bytes(three, index) == clips.packet_bytes(one, index)
    assert clips.subtitle_texts(three) == clips.subtitle_texts(one)
    assert clips.chapters_of(three) == clips.chapters_of(one)


def test_queues_stay_bounded(
    tmp_path: Path, slow_encoders: type[_Slow], monkeypatch: pytest.MonkeyPatch
) -> None:
    """However far behind the encoders are, the frames waiting for them stay within bounds."""
    monkeypatch.setattr(segments, "QUEUE_FRAMES", (3, 3))
    seen: list[int] = []
    real_hand_over = segments.SegmentSink._hand_over

    def hand_over(self: segments.SegmentSink, enc: Any, item: Any) -> None:
        real_hand_over(self, enc, item)
        waiting = sum(e.backlog for e in [*self._inflight, enc])
        seen.append(waiting)

    monkeypatch.setattr(segments.SegmentSink, "_hand_over", hand_over)
    src = clips.multi_track_mkv(tmp_path, frames=40, attachment=False)
    result = _upscale(src.path, tmp_path / "out.mkv", 2)
    assert result.frames == 40
    assert seen and max(seen) <= 2 * 3  # two encoders, three frames each
    assert clips.read_video(tmp_path / "out.mkv", pixels=False).times == src.times


@pytest.mark.parametrize(
    ("step", "workers"), [("open", 3), ("write", 3), ("close", 3), ("open", 1)]
)
def test_a_failing_encoder_loses_nothing_and_the_job_resumes(
    tmp_path: Path,
    slow_encoders: type[_Slow],
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    workers: int,
) -> None:
    src = clips.multi_track_mkv(tmp_path, frames=48, attachment=False)
    out = tmp_path / "out.mkv"
    if workers == 1:
        # One encoder: segments end by content only.
        monkeypatch.setattr(segments, "BEHIND_SECONDS", 1000.0)
    slow_encoders.fail_in_segment = 1  # the second segment's encoder fails
    slow_encoders.fail_at = step
    extra = {"checkpoint_every": 0.3} if workers == 1 else {}
    with pytest.raises(EncoderError, match="broke"):
        _upscale(src.path, out, workers, **extra)
    assert not out.exists()
    leftovers = [p.name for p in tmp_path.rglob("*") if "partial" in p.name]
    assert leftovers == []

    # The next run keeps what was finished in order and does the rest.
    slow_encoders.fail_in_segment = None
    result = _upscale(src.path, out, workers, **extra)
    assert 0 < result.resumed_frames < 48
    reference = tmp_path / "reference.mkv"
    _upscale(src.path, reference, 1)
    a, b = clips.read_video(reference), clips.read_video(out)
    assert b.times == a.times == src.times
    for pa, pb in zip(a.planes, b.planes, strict=True):
        np.testing.assert_array_equal(pa[0], pb[0])


# -- the command line -------------------------------------------------------------------------
def test_cli_takes_auto_and_a_count(cli: Cli, tmp_path: Path) -> None:
    src = clips.multi_track_mkv(tmp_path, frames=6, attachment=False)
    for value, workers in (("auto", None), ("2", 2)):
        out = tmp_path / f"out-{value}.mkv"
        result = cli("upscale", src.path, "-o", out, *FAST, "--encode-workers", value, "--json")
        assert result.code == 0, result.err
        pool = result.json["encoder"]["workers"]
        if workers is not None:
            assert pool == {**pool, "workers": workers, "reason": "asked for"}
        else:
            assert pool["reason"].startswith("auto")
        assert clips.read_video(out, pixels=False).times == src.times


@pytest.mark.parametrize("value", ["0", "many", "65"])
def test_cli_rejects_a_bad_count(cli: Cli, tmp_path: Path, value: str) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=4)
    out = tmp_path / "out.mkv"
    result = cli("upscale", src.path, "-o", out, *FAST, "--encode-workers", value)
    check_one_error_line(result, 2, "--encode-workers")
    assert not out.exists()


def test_bench_times_the_encoders_side_by_side(cli: Cli, tmp_path: Path) -> None:
    src = clips.multi_track_mkv(tmp_path, frames=8, attachment=False)
    result = cli("bench", src.path, *FAST, "--frames", "8", "--encode-workers", "2", "--json")
    assert result.code == 0, result.err
    report = result.json
    assert report["encode_workers"]["workers"] == 2
    assert report["encode_side_by_side_fps"] > 0
    # The headline end-to-end figure is the path the job itself takes ("auto": tensor).
    assert report["color_path"] == "tensor"
    assert set(report["paths"]) == {"tensor", "swscale"}
    assert all(p["frames"] == 8 for p in report["paths"].values())
