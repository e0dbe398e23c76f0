"""The device frame path (vsr.graph) on the CPU: rings, ordering, bounds, and whole jobs.

The same code runs on CUDA with streams and pinned buffers (tests marked `gpu` below and
scripts/gpu_check.sh); here the streams are plain order, which is what makes ordering and
the ring bound testable with a deliberately slow stage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import clips
import numpy as np
import pytest
import torch
from conftest import FAST, CliResult, check_one_error_line

from vsr import runtime
from vsr.config import EncodeOptions, ModelOptions, UpscaleOptions
from vsr.graph import plan_device_graph
from vsr.models.processors import BicubicProcessor
from vsr.pipeline import GRAPH_TIMING, upscale_file

Cli = Callable[..., CliResult]


# -- the ring itself --------------------------------------------------------------------------


def test_ring_bound_and_order_with_a_slow_consumer() -> None:
    """A fast producer and a slow consumer: items come out in order, live slots never pass
    the bound, and the producer waits instead of allocating."""
    ring = runtime.HostRing(3, 4, torch.uint8, pin=False)
    handed: list[tuple[int, int]] = []
    lock = threading.Lock()
    seen: list[int] = []

    def produce() -> None:
        for n in range(40):
            slot = ring.acquire()
            ring.view(slot).fill_(n)
            with lock:
                handed.append((n, slot))

    producer = threading.Thread(target=produce)
    producer.start()
    while len(seen) < 40:
        with lock:
            item = handed.pop(0) if handed else None
        if item is None:
            time.sleep(0.001)
            continue
        n, slot = item
        time.sleep(0.002)  # the slow stage
        assert int(ring.view(slot)[0]) == n  # nobody overwrote a slot still in use
        seen.append(n)
        ring.release(slot)
    producer.join()
    assert seen == list(range(40))
    assert ring.peak_live <= 3
    assert ring.peak_live == 3  # the producer did run ahead as far as allowed
    assert ring.live == 0


def test_ring_release_waits_for_the_fence() -> None:
    ring = runtime.HostRing(1, 1, torch.uint8, pin=False)
    waited: list[bool] = []

    class SlowFence(runtime.Fence):
        def wait(self) -> None:
            time.sleep(0.05)
            waited.append(True)

    slot = ring.acquire()
    ring.release(slot, SlowFence())
    assert ring.acquire() == slot
    assert waited == [True]
    with pytest.raises(ValueError, match="not in use"):
        ring.release(5)


def test_ring_acquire_is_cancellable() -> None:
    stop = threading.Event()
    ring = runtime.HostRing(1, 1, torch.uint8, pin=False, stop=stop)
    ring.acquire()
    threading.Timer(0.05, stop.set).start()
    with pytest.raises(runtime.RingClosed):
        ring.acquire()


# -- whole jobs through the graph --------------------------------------------------------------


class SlowBicubic(BicubicProcessor):
    """A slow model stage: the decoder runs ahead until the ring stops it."""

    def __init__(self, delay: float) -> None:
        super().__init__(2.0)
        self.delay = delay
        self.calls = 0

    def process_device(self, frames: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        time.sleep(self.delay)
        return super().process_device(frames)


def _run(src: Path, out: Path, processor: Any, **options: Any) -> Any:
    opts = UpscaleOptions(model=ModelOptions(name="bicubic", scale=2), overwrite=True, **options)
    return upscale_file(src, out, opts, processor)


def test_slow_model_frames_in_order_and_ring_bounded(tmp_path: Path) -> None:
    src = clips.lossless_ffv1(tmp_path, frames=24, pix_fmt="yuv420p")
    out = tmp_path / "out.mkv"
    processor = SlowBicubic(0.01)
    GRAPH_TIMING.enabled = True
    GRAPH_TIMING.graphs.clear()
    try:
        result = _run(src.path, out, processor, color_path="tensor", queue_size=2)
        graphs = list(GRAPH_TIMING.graphs)
    finally:
        GRAPH_TIMING.enabled = False
        GRAPH_TIMING.graphs.clear()
    assert result.settings["frame_path"]["color_path"] == "tensor"
    assert result.frames == 24 and processor.calls == 24
    stats = graphs[0].stats
    assert stats.frames == 24
    # The decoder ran ahead of the slow model as far as the ring allows, and no further.
    assert 1 < stats.peak_input_slots <= stats.input_slots
    assert stats.peak_output_slots <= stats.output_slots
    clips.check_pixels_and_order(src.path, out, min_psnr=35)
    clips.check_times(src.path, out)


@pytest.mark.parametrize(
    "maker",
    ["ntsc_h264", "vfr_h264", "hevc_10bit", "odd_size", "bt709_full_range", "bt601_limited"],
)
def test_tensor_path_same_streams_times_and_pixels_as_swscale(tmp_path: Path, maker: str) -> None:
    src = getattr(clips, maker)(tmp_path)
    outs = {}
    for path in ("tensor", "swscale"):
        outs[path] = tmp_path / f"{path}.mkv"
        # FFV1: the comparison sees the two colour paths, not two lossy encodes.
        lossless = EncodeOptions(codec="ffv1")
        result = _run(src.path, outs[path], BicubicProcessor(2.0), color_path=path, encode=lossless)
        assert result.settings["frame_path"]["color_path"] == path
    a = clips.read_video(outs["tensor"])
    b = clips.read_video(outs["swscale"])
    assert a.times == b.times
    assert (a.pix_fmt, a.color, a.time_base) == (b.pix_fmt, b.color, b.time_base)
    assert clips.stream_summary(outs["tensor"]) == clips.stream_summary(outs["swscale"])
    clips.check_times(src.path, outs["tensor"], max_shift=0.05)  # AAC priming, MP4 -> MKV
    clips.check_pixels_and_order(src.path, outs["tensor"], min_psnr=35)
    # Luma through either path is the same picture (chroma siting differs by design: the
    # tensor path honours H.264's left siting, swscale assumes centred).
    for pa, pb in zip(a.planes, b.planes, strict=True):
        peak = float((1 << clips.bits_of(a.pix_fmt)) - 1)
        assert clips.psnr(pa[0] / peak, pb[0] / peak) >= 45


def test_alpha_source_takes_the_swscale_path(tmp_path: Path) -> None:
    src = clips.alpha_clip(tmp_path)
    plan = plan_device_graph(
        _video(src.path),
        "yuva444p",
        BicubicProcessor(2.0),
        (src.width * 2, src.height * 2),
        batch=1,
        queue_size=4,
        mode="tensor",
    )
    assert plan is None


def test_auto_takes_the_tensor_path_where_it_applies(tmp_path: Path) -> None:
    src = clips.bt709_limited(tmp_path)
    video = _video(src.path)
    kwargs: dict[str, Any] = {"batch": 1, "queue_size": 4}
    size = (src.width * 2, src.height * 2)
    proc = BicubicProcessor(2.0)
    plan = plan_device_graph(video, "yuv420p", proc, size, mode="auto", **kwargs)
    assert plan is not None and plan.describe()["color_path"] == "tensor"
    assert plan_device_graph(video, "yuv420p", proc, size, mode="swscale", **kwargs) is None
    # Processors that need frames on the host (temporal ones, --height) keep swscale.
    assert plan_device_graph(video, "yuv420p", object(), size, mode="auto", **kwargs) is None
    # The encoder's pixel format must be one the planes can carry.
    assert plan_device_graph(video, "pal8", proc, size, mode="auto", **kwargs) is None


def _video(path: Path) -> Any:
    from vsr.media.probe import probe

    return probe(path).video


class Exploding(BicubicProcessor):
    def __init__(self, after: int) -> None:
        super().__init__(2.0)
        self.after = after

    def process_device(self, frames: torch.Tensor) -> torch.Tensor:
        self.after -= 1
        if self.after < 0:
            raise RuntimeError("model blew up")
        return super().process_device(frames)


def test_a_failing_model_stops_every_thread_and_leaves_nothing(tmp_path: Path) -> None:
    src = clips.lossless_ffv1(tmp_path, frames=30, pix_fmt="yuv420p")
    out = tmp_path / "out.mkv"
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="blew up"):
        _run(src.path, out, Exploding(5), color_path="tensor", queue_size=2)
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before
    assert not out.exists()


def test_cli_color_path_json(cli: Cli, tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=6)
    out = tmp_path / "out.mp4"
    result = cli("upscale", src.path, "-o", out, *FAST, "--color-path", "tensor", "--json")
    assert result.code == 0, result.err
    assert result.json["settings"]["frame_path"]["color_path"] == "tensor"
    assert clips.stream_summary(out) == clips.stream_summary(_swscale_twin(cli, src.path, tmp_path))
    bad = cli("upscale", src.path, "-o", tmp_path / "x.mp4", *FAST, "--color-path", "gpu")
    check_one_error_line(bad, 2, "--color-path")


def _swscale_twin(cli: Cli, src: Path, tmp_path: Path) -> Path:
    out = tmp_path / "twin.mp4"
    result = cli("upscale", src, "-o", out, *FAST, "--color-path", "swscale", "--json")
    assert result.code == 0, result.err
    assert result.json["settings"]["frame_path"]["color_path"] == "swscale"
    return out


# -- on a GPU (scripts/gpu_check.sh runs these) -------------------------------------------------

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@gpu
def test_gpu_colour_matches_cpu(tmp_path: Path) -> None:
    from vsr.media.tensor_color import PlaneFormat, frame_to_packed, planes_to_rgb, rgb_to_planes

    for maker in ("bt709_limited", "hevc_10bit", "odd_size"):
        src = getattr(clips, maker)(tmp_path)
        video = _video(src.path)
        fmt = PlaneFormat.for_pix_fmt(video.pix_fmt)
        assert fmt is not None
        import av

        with av.open(str(src.path)) as container:
            frame = next(container.decode(video=0))
        packed = torch.from_numpy(
            frame_to_packed(frame, fmt, src.width, src.height).view(
                np.int16 if fmt.deep else np.uint8
            )
        )[None]
        cpu = planes_to_rgb(packed, fmt, src.width, src.height, video.color)
        gpu_rgb = planes_to_rgb(packed.cuda(), fmt, src.width, src.height, video.color)
        assert float((gpu_rgb.cpu() - cpu).abs().max()) < 1e-5
        back = rgb_to_planes(gpu_rgb, fmt, video.color).cpu()
        assert torch.equal(back, rgb_to_planes(cpu, fmt, video.color))


@pytest.mark.gpu
@gpu
def test_gpu_job_same_times_and_pixels_as_cpu(tmp_path: Path) -> None:
    """A whole job through the CUDA graph (streams, pinned rings, batches of 3)."""
    src = clips.ntsc_h264(tmp_path, "mkv", frames=20)
    outs = {}
    for device in ("cuda", "cpu"):
        outs[device] = tmp_path / f"{device}.mkv"
        model = ModelOptions(name="bicubic", scale=2, device=device, batch=3)
        opts = UpscaleOptions(model=model, overwrite=True, color_path="tensor")
        processor = _GpuBicubic(torch.device(device))
        result = upscale_file(src.path, outs[device], opts, processor)
        assert result.settings["frame_path"]["device"].startswith(device)
    a = clips.read_video(outs["cuda"])
    b = clips.read_video(outs["cpu"])
    assert a.times == b.times
    for pa, pb in zip(a.planes, b.planes, strict=True):
        assert clips.psnr(pa[0] / 255.0, pb[0] / 255.0) >= 45


class _GpuBicubic(BicubicProcessor):
    def __init__(self, device: torch.device) -> None:
        super().__init__(2.0)
        self._dev = device
        self._batch = 3

    @property
    def device(self) -> torch.device:
        return self._dev

    @property
    def settings(self) -> dict[str, object]:
        return {**super().settings, "device": str(self._dev), "batch": 3}


# -- the processor's device entry point ---------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, gpu])])
def test_process_device_backs_off_on_oom_and_matches_process(device: str) -> None:
    """Out of memory on the device path: tiles, then batch 1; every frame comes back, equal to
    the host path's result."""
    from test_processors import OomAbove, tiny_srvgg

    from vsr.models.base import ModelDescriptor
    from vsr.models.processors import TorchProcessor

    desc = ModelDescriptor(name="t", architecture="SRVGGNetCompact", scale=2)
    precision = "fp32"
    seen: list[str] = []
    opts = ModelOptions(device=device, precision=precision, batch=2, tile_overlap=8)
    proc = TorchProcessor(
        OomAbove(tiny_srvgg(2), max_pixels=2 * 40 * 40), desc, opts, notify=seen.append
    )
    frames = torch.rand(3, 3, 64, 56)
    out = proc.process_device(frames.to(device))
    assert out.device.type == device and out.shape == (3, 3, 128, 112)
    assert len(seen) == 1 and "none skipped" in seen[0]
    plain = TorchProcessor(tiny_srvgg(2), desc, ModelOptions(device=device, precision=precision))
    expected = plain.process(frames)
    assert float((out.float().cpu() - expected).abs().max()) <= 1 / 255


def test_hdr_sources_keep_the_host_path(tmp_path: Path) -> None:
    """PQ/HLG are mapped into the model's domain on the host (vsr.media.color): not here."""
    import dataclasses

    src = clips.bt709_limited(tmp_path)
    video = _video(src.path)
    proc = BicubicProcessor(2.0)
    size = (src.width * 2, src.height * 2)
    for trc in (16, 18):
        hdr = dataclasses.replace(video, color=dataclasses.replace(video.color, trc=trc))
        plan = plan_device_graph(hdr, "yuv420p10le", proc, size, batch=1, queue_size=4)
        assert plan is None, trc
