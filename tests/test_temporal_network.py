"""The temporal network and its Processor: shapes, streaming, chunking, resets, weights."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from vsr.config import ModelOptions
from vsr.errors import UnknownModelError, UsageError, WeightsError
from vsr.models.base import Processor
from vsr.temporal.network import TemporalNet, TemporalNetConfig, count_parameters, macs_per_pixel
from vsr.temporal.processor import (
    TemporalProcessor,
    create_temporal_processor,
    describe_temporal_model,
    load_network,
    resolve_weights,
    upscale_sequence,
)
from vsr.train.loop import export

CPU = ModelOptions(name="vsr-temporal-x2", device="cpu", precision="fp32")


def random_net(
    *, scale: int = 2, bidirectional: bool = False, seed: int = 0, std: float = 0.08
) -> TemporalNet:
    """A tiny network with every weight random (the shipped init zeroes the output conv, which
    would make the network plain bicubic and every test below pass trivially)."""
    torch.manual_seed(seed)
    net = TemporalNet(
        config=TemporalNetConfig(
            scale=scale, channels=8, blocks=1, bidirectional=bidirectional, upsample_channels=4
        )
    )
    for p in net.parameters():
        nn.init.normal_(p, std=std)
    return net.eval()


def moving_frames(
    count: int, h: int = 24, w: int = 32, *, seed: int = 0, dx: float = 1.0
) -> torch.Tensor:
    """(count, 3, h, w) smooth texture translating by dx pixels a frame (flow-friendly)."""
    g = torch.Generator().manual_seed(seed)
    phase = torch.rand(3, generator=g) * 6.0
    freq = 0.25 + torch.rand(3, generator=g) * 0.3
    y = torch.arange(h, dtype=torch.float32).view(h, 1)
    x = torch.arange(w, dtype=torch.float32).view(1, w)
    frames = []
    for i in range(count):
        xs = x - dx * i
        chans = [
            0.5 + 0.3 * torch.sin(freq[c] * xs + phase[c]) * torch.cos(0.3 * y + c)
            for c in range(3)
        ]
        frames.append(torch.stack(chans))
    return torch.stack(frames).clamp(0, 1)


def processor(net: TemporalNet, **kwargs: object) -> TemporalProcessor:
    return TemporalProcessor(net, CPU, name="test", **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- network


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_forward_shapes_and_scale(scale: int, bidirectional: bool) -> None:
    net = random_net(scale=scale, bidirectional=bidirectional)
    lr = torch.rand(2, 5, 3, 12, 10)
    flows = torch.zeros(2, 4, 2, 12, 10)
    out = net(lr, flows, flows)
    assert out.shape == (2, 5, 3, 12 * scale, 10 * scale)
    assert torch.isfinite(out).all()


def test_step_shapes_and_state() -> None:
    net = random_net(scale=4)
    frame = torch.rand(1, 3, 9, 11)
    y, state = net.step(frame, None, None)
    assert y.shape == (1, 3, 36, 44)
    assert state.shape == (1, 8, 9, 11)
    y2, _ = net.step(frame, torch.zeros(1, 2, 9, 11), state)
    # The carried state changes the output: the second frame is not processed from scratch.
    assert (y2 - y).abs().max() > 1e-4


def test_fresh_network_is_bicubic() -> None:
    """The output conv starts at zero so training starts from the bicubic baseline."""
    net = TemporalNet(config=TemporalNetConfig(channels=8, blocks=1))
    lr = torch.rand(1, 2, 3, 8, 8)
    out = net(lr, torch.zeros(1, 1, 2, 8, 8))
    expected = torch.nn.functional.interpolate(lr[0], scale_factor=2, mode="bicubic")
    torch.testing.assert_close(out[0], expected)


def test_step_matches_forward() -> None:
    net = random_net()
    lr = moving_frames(4).unsqueeze(0)
    flows = torch.randn(1, 3, 2, 24, 32) * 0.5
    whole = net(lr, flows)
    state = None
    for i in range(4):
        y, state = net.step(lr[:, i], flows[:, i - 1] if i else None, state)
        torch.testing.assert_close(y, whole[:, i], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("lr_shape", "flow_shape", "needle"),
    [
        ((2, 3, 8, 8), (2, 2, 2, 8, 8), "(N, T, 3, H, W)"),
        ((1, 3, 4, 8, 8), (1, 3, 2, 8, 8), "(N, T, 3, H, W)"),
        ((1, 3, 3, 8, 8), (1, 3, 2, 8, 8), "to-previous flows shaped (1, 2, 2, 8, 8)"),
        ((1, 3, 3, 8, 8), (1, 2, 2, 8, 9), "got (1, 2, 2, 8, 9)"),
    ],
)
def test_shape_errors(lr_shape: tuple[int, ...], flow_shape: tuple[int, ...], needle: str) -> None:
    net = random_net()
    with pytest.raises(UsageError, match="expected") as err:
        net(torch.rand(*lr_shape), torch.zeros(*flow_shape))
    assert needle in str(err.value)


def test_config_validation() -> None:
    with pytest.raises(UsageError, match="expected a scale of 2 or 4, got 3"):
        TemporalNetConfig(scale=3)
    with pytest.raises(UsageError, match="residual blocks"):
        TemporalNetConfig(blocks=0)
    with pytest.raises(WeightsError, match="unknown"):
        TemporalNetConfig.from_dict({"scale": 2, "colour": 1})
    assert TemporalNetConfig.from_dict(TemporalNetConfig(scale=4).to_dict()).scale == 4
    with pytest.raises(UsageError, match="bidirectional"):
        random_net(bidirectional=True).step(torch.rand(1, 3, 8, 8), None, None)


def test_macs_and_params() -> None:
    cfg = TemporalNetConfig(channels=8, blocks=1, upsample_channels=4)
    net = TemporalNet(config=cfg)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert count_parameters(net) == sum(c.weight.numel() + c.out_channels for c in convs)
    # head 9*11*8, block 2*9*8*8, upsample 9*8*16, tail at 4x the area 9*4*3*4
    assert macs_per_pixel(cfg) == 9 * 11 * 8 + 2 * 9 * 64 + 9 * 8 * 16 + 9 * 4 * 3 * 4


# ---------------------------------------------------------------------- processor


def test_unidirectional_stream_count_order_and_flush() -> None:
    net = random_net()
    proc = processor(net, detect_cuts=False)
    assert isinstance(proc, Processor)
    assert proc.descriptor.temporal and proc.descriptor.delay == 0
    frames = moving_frames(8)
    outs = []
    for a, b in ((0, 3), (3, 4), (4, 8)):
        out = proc.process(frames[a:b])
        assert out.shape == (b - a, 3, 48, 64)  # no look-ahead: every frame at once
        outs.append(out)
    tail = proc.flush()
    assert tail.shape == (0, 3, 48, 64)
    streamed = torch.cat(outs)
    whole = upscale_sequence(net, frames, flow=proc._flow).clamp(0, 1)
    torch.testing.assert_close(streamed, whole, atol=1e-5, rtol=1e-5)
    # Frame order: each output is closest to the upscale of its own input, not a neighbour's.
    for i in range(8):
        errs = [float((streamed[i] - whole[j]).abs().mean()) for j in range(8)]
        assert int(torch.tensor(errs).argmin()) == i


def test_reset_forgets_previous_frames() -> None:
    net = random_net()
    a, b = moving_frames(4, seed=1), moving_frames(4, seed=2)
    proc = processor(net, detect_cuts=False)
    proc.process(a)
    proc.reset()
    after_reset = proc.process(b)
    fresh = processor(net, detect_cuts=False).process(b)
    torch.testing.assert_close(after_reset, fresh)
    # Without the reset the state from `a` leaks into the first frame of `b`.
    proc2 = processor(net, detect_cuts=False)
    proc2.process(a)
    assert (proc2.process(b)[0] - fresh[0]).abs().max() > 1e-4


def test_scene_cut_resets_state() -> None:
    net = random_net()
    a = moving_frames(4, seed=1)
    b = 1.0 - moving_frames(4, seed=5, dx=-2.0).flip(-2)
    proc = processor(net)
    proc.process(a)
    out_b = proc.process(b)
    assert proc.cuts == 1
    fresh = processor(net).process(b)
    torch.testing.assert_close(out_b, fresh)


@pytest.mark.parametrize(("chunk", "overlap"), [(4, 3), (5, 2)])
def test_bidirectional_chunks_match_whole_sequence(chunk: int, overlap: int) -> None:
    # Weights small enough that what a frame contributes fades over a few frames, as it must
    # for any chunking to work (a chaotic random net remembers everything).
    net = random_net(bidirectional=True, seed=3, std=0.03)
    frames = moving_frames(14, seed=4)
    proc = processor(net, chunk=chunk, overlap=overlap, detect_cuts=False)
    assert proc.descriptor.delay == chunk + overlap - 1
    outs, counts = [], []
    for i in range(14):
        out = proc.process(frames[i : i + 1])
        counts.append(out.shape[0])
        outs.append(out)
    outs.append(proc.flush())
    chunked = torch.cat(outs)
    assert chunked.shape == (14, 3, 48, 64)
    # Nothing comes out before delay + 1 frames are in, then whole chunks.
    assert sum(counts[: chunk + overlap - 1]) == 0
    assert counts[chunk + overlap - 1] == chunk
    whole = upscale_sequence(net, frames, flow=proc._flow).clamp(0, 1)
    err = (chunked - whole).abs()
    # With `overlap` frames of context the chunk seams stay far below a code value (1/255).
    assert float(err.max()) < 1.0 / 255
    # ... while a window without context differs visibly at the same seam.
    no_ctx = processor(net, chunk=chunk, overlap=0, detect_cuts=False)
    bare = torch.cat([no_ctx.process(frames), no_ctx.flush()])
    assert float((bare - whole).abs().max()) > 4 * float(err.max())


def test_bidirectional_batches_and_small_inputs() -> None:
    net = random_net(bidirectional=True)
    frames = moving_frames(3)
    proc = processor(net, chunk=4, overlap=2, detect_cuts=False)
    assert proc.process(frames).shape[0] == 0
    out = proc.flush()
    assert out.shape == (3, 3, 48, 64)
    torch.testing.assert_close(out, upscale_sequence(net, frames, flow=proc._flow).clamp(0, 1))
    # reset drops held frames and starts a new window
    proc.process(frames[:2])
    proc.reset()
    assert proc.flush().shape[0] == 0


def test_bidirectional_window_stops_at_scene_cut() -> None:
    net = random_net(bidirectional=True)
    a = moving_frames(5, seed=1)
    b = 1.0 - moving_frames(5, seed=5, dx=-2.0).flip(-2)
    proc = processor(net, chunk=8, overlap=2)
    out = torch.cat([proc.process(torch.cat([a, b])), proc.flush()])
    assert out.shape[0] == 10 and proc.cuts == 1
    torch.testing.assert_close(out[5:], upscale_sequence(net, b, flow=proc._flow).clamp(0, 1))
    torch.testing.assert_close(out[:5], upscale_sequence(net, a, flow=proc._flow).clamp(0, 1))


def test_post_scale_and_size_change() -> None:
    net = random_net()
    opts = ModelOptions(name="x", device="cpu", precision="fp32", scale=3.0)
    proc = TemporalProcessor(net, opts, name="t", detect_cuts=False)
    assert proc.scale == 3.0 and proc.notices
    assert proc.process(moving_frames(2, h=10, w=14)).shape == (2, 3, 30, 42)
    bi = processor(random_net(bidirectional=True), chunk=4, overlap=1, detect_cuts=False)
    bi.process(moving_frames(2))
    with pytest.raises(UsageError, match="until flush"):
        bi.process(moving_frames(1, h=10, w=14))


# ---------------------------------------------------------------------- weights


def test_safetensors_round_trip(tmp_path: Path) -> None:
    net = random_net(scale=4, bidirectional=True)
    path = export(
        net, tmp_path / "mine.safetensors", name="my-temporal", recipe={"steps": 1}, report={}
    )
    doc = json.loads(path.with_suffix(".json").read_text())
    assert doc["config"]["scale"] == 4 and doc["params"] == count_parameters(net)
    back = load_network(path)
    assert back.config == net.config
    for k, v in net.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)
    proc = create_temporal_processor(str(path), CPU)
    assert proc is not None and proc.descriptor.name == "my-temporal"
    assert proc.descriptor.scale == 4 and proc.descriptor.delay > 0
    desc = describe_temporal_model(str(path))
    assert desc is not None and desc.params == count_parameters(net)
    assert not math.isnan(desc.macs_per_pixel)


def test_foreign_and_broken_weights(tmp_path: Path) -> None:
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    assert create_temporal_processor(str(other), CPU) is None
    assert create_temporal_processor("realesr-animevideov3", CPU) is None
    with pytest.raises(WeightsError, match="format"):
        load_network(other)
    net = random_net()
    path = export(net, tmp_path / "t.safetensors", name="t", recipe={}, report={})
    tensors = {k: v for k, v in net.state_dict().items() if not k.startswith("upsampler.tail")}
    meta = {"format": "vsr-temporal", "config": json.dumps(net.config.to_dict())}
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(WeightsError, match="2 missing"):
        load_network(path)
    with pytest.raises(UnknownModelError, match="expected one of the shipped temporal models"):
        resolve_weights("vsr-temporal-x8")
    with pytest.raises(UnknownModelError, match="expected a vsr-temporal-\\* name"):
        resolve_weights(tmp_path / "missing.safetensors")


def test_shipped_names_resolve_by_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vsr.temporal.processor as tp

    monkeypatch.setattr(tp, "weights_dir", lambda: tmp_path)
    export(
        random_net(scale=2),
        tmp_path / "vsr-temporal-x2.safetensors",
        name="vsr-temporal-x2",
        recipe={},
        report={"validation_mean": {"gain": 1.0}},
    )
    export(
        random_net(scale=4),
        tmp_path / "vsr-temporal-x4.safetensors",
        name="vsr-temporal-x4",
        recipe={},
        report={},
    )
    proc = create_temporal_processor("vsr-temporal-x2", CPU)
    assert proc is not None and proc.descriptor.name == "vsr-temporal-x2" and proc.scale == 2
    # --scale 4 on the x2 name picks the x4 weights rather than resizing the x2 output.
    opts4 = ModelOptions(name="vsr-temporal-x2", device="cpu", precision="fp32", scale=4.0)
    proc4 = create_temporal_processor("vsr-temporal-x2", opts4)
    assert proc4 is not None and proc4.descriptor.name == "vsr-temporal-x4" and not proc4.notices
    rows = tp.list_temporal_models()
    assert [r["name"] for r in rows] == ["vsr-temporal-x2", "vsr-temporal-x4"]
    assert rows[0]["validation"] == {"gain": 1.0} and rows[1]["scale"] == 4
    with pytest.raises(UnknownModelError, match=r"\['vsr-temporal-x2', 'vsr-temporal-x4'\]"):
        create_temporal_processor("vsr-temporal-x2-bi", CPU)
