"""`vsr train`: data sampling, a short training run, export, resume and fine-tuning."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vsr.cli.train import add_parser as add_train_parser
from vsr.cli.train import config_from_args
from vsr.config import ModelOptions
from vsr.errors import InputError, OutputExistsError, UsageError
from vsr.temporal.processor import create_temporal_processor, load_network
from vsr.train import TrainConfig, TrainProgress, train
from vsr.train.data import SequenceSampler, load_clip
from vsr.train.loop import charbonnier, cosine_rate, schedule_position


def write_clip(path: Path, *, frames: int = 14, width: int = 80, height: int = 64) -> Path:
    """A textured clip panning right by 1.5 px a frame, nearly lossless H.264."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        stream.options = {"crf": "4", "preset": "ultrafast"}
        for i in range(frames):
            xs = x + 1.5 * i
            r = 0.5 + 0.35 * np.sin(xs * 0.45) * np.cos(y * 0.3)
            g = 0.5 + 0.3 * np.sin(xs * 0.21 + y * 0.17)
            b = 0.5 + 0.25 * np.cos(xs * 0.6 - y * 0.4)
            rgb = (np.stack([r, g, b], -1).clip(0, 1) * 255).round().astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("train") / "pan.mp4")


def tiny_config(clip: Path, out: Path, **kwargs: object) -> TrainConfig:
    base = TrainConfig(
        clips=(clip,),
        val_clips=(clip,),
        output=out,
        channels=8,
        blocks=1,
        upsample_channels=4,
        steps=3,
        batch=2,
        seq_len=3,
        patch=16,
        learning_rate=2e-3,
        checkpoint_every=1,
        clean_fraction=1.0,
        val_frames=4,
        workers=0,
        precision="fp32",
    )
    return replace(base, **kwargs)  # type: ignore[arg-type]


def test_sampler_is_deterministic_and_shaped(clip: Path) -> None:
    frames = load_clip(clip)
    assert frames.count == 14 and (frames.height, frames.width) == (64, 80)
    sampler = SequenceSampler([frames], scale=2, seq_len=4, patch=16, batch=3, seed=7)
    a, b = sampler.sample(5), sampler.sample(5)
    assert a.hr.shape == (3, 4, 3, 32, 32)
    assert a.lr.shape == (3, 4, 3, 16, 16)
    assert a.flows_to_previous.shape == a.flows_to_next.shape == (3, 3, 2, 16, 16)
    torch.testing.assert_close(a.lr, b.lr)
    assert not torch.equal(a.hr, sampler.sample(6).hr)
    # The clip pans by 1.5 HR px a frame = 0.75 LR px: the flows see that motion.
    assert 0.3 < float(a.flows_to_previous.abs().amax(dim=2).mean()) < 1.5
    with pytest.raises(Exception, match="at least 20 frames"):
        SequenceSampler([frames], scale=2, seq_len=20, patch=16, batch=1, seed=0)


def _loss_on(path: Path, clip: Path) -> float:
    net = load_network(path)
    batch = SequenceSampler(
        [load_clip(clip)], scale=2, seq_len=3, patch=16, batch=4, seed=123, clean_fraction=1.0
    ).sample(0)
    with torch.no_grad():
        out = net(batch.lr, batch.flows_to_previous, batch.flows_to_next)
    return float(charbonnier(out, batch.hr))


def test_three_steps_lower_the_loss_and_export(clip: Path, tmp_path: Path) -> None:
    seen: list[TrainProgress] = []
    before = train(tiny_config(clip, tmp_path / "zero.safetensors", steps=1, learning_rate=1e-12))
    result = train(tiny_config(clip, tmp_path / "w.safetensors", workers=1), progress=seen.append)
    assert result.steps == 3
    assert [p.step for p in seen if p.phase == "train"] == [1, 2, 3]
    assert {p.phase for p in seen} >= {"load", "train", "validate", "export"}
    # On held-back batches the trained weights beat the (bicubic) starting point.
    assert _loss_on(result.output, clip) < _loss_on(before.output, clip)
    doc = json.loads(result.output.with_suffix(".json").read_text())
    assert doc["trained"]["steps"] == 3
    assert [p["step"] for p in doc["loss_curve"]] == [1, 2, 3]
    assert doc["recipe"]["data"]["train"][0]["file"] == "pan.mp4"
    assert len(doc["recipe"]["data"]["train"][0]["sha256"]) == 64
    assert doc["validation"][0]["clip"] == "pan.mp4"
    assert doc["validation"][0]["psnr"] > 20
    proc = create_temporal_processor(
        str(result.output), ModelOptions(name="x", device="cpu", precision="fp32")
    )
    assert proc is not None
    assert proc.process(torch.rand(2, 3, 16, 20)).shape == (2, 3, 32, 40)


class Stop(Exception):
    pass


def test_resume_continues_and_matches_an_uninterrupted_run(clip: Path, tmp_path: Path) -> None:
    straight = train(tiny_config(clip, tmp_path / "a.safetensors", steps=4, checkpoint_every=2))

    def stop_after_two(p: TrainProgress) -> None:
        if p.phase == "train" and p.step == 3:
            raise Stop

    config = tiny_config(clip, tmp_path / "b.safetensors", steps=4, checkpoint_every=2)
    with pytest.raises(Stop):
        train(config, progress=stop_after_two)
    assert not config.output.exists()
    with pytest.raises(OutputExistsError, match="--resume"):
        train(config)
    steps: list[int] = []
    resumed = train(replace(config, resume=True), progress=lambda p: steps.append(p.step))
    assert resumed.steps == 4
    assert [s for s in steps if s > 0][:2] == [3, 4]  # counting went on from the checkpoint
    doc = json.loads(resumed.output.with_suffix(".json").read_text())
    assert doc["trained"]["steps"] == 4 and len(doc["loss_curve"]) == 4
    # Batches depend on (seed, step) only, so the resumed run ends where the straight one did.
    a, b = load_network(straight.output).state_dict(), load_network(resumed.output).state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)


def test_resume_without_checkpoint_and_mismatched_network(clip: Path, tmp_path: Path) -> None:
    config = tiny_config(clip, tmp_path / "c.safetensors", steps=2)
    with pytest.raises(UsageError, match="no checkpoint"):
        train(replace(config, resume=True))
    train(config)
    with pytest.raises(UsageError, match="same network"):
        train(replace(config, channels=12, resume=True, overwrite=True))


def test_fine_tune_from_weights_and_across_scales(clip: Path, tmp_path: Path) -> None:
    first = train(tiny_config(clip, tmp_path / "x2.safetensors", steps=2))
    tuned = train(
        tiny_config(clip, tmp_path / "tuned.safetensors", steps=1, init=str(first.output))
    )
    doc = json.loads(tuned.output.with_suffix(".json").read_text())
    assert doc["recipe"]["init_tensors"] == len(load_network(first.output).state_dict())
    # The card keeps the lineage (what the init was trained on) and the damage mix drawn.
    first_doc = json.loads(first.output.with_suffix(".json").read_text())
    assert doc["recipe"]["init_card"]["sha256"] == first_doc["sha256"]
    assert doc["recipe"]["init_card"]["trained"]["steps"] == 2
    mix = doc["recipe"]["degradations"]
    assert mix["clean_bicubic"] + sum(mix["blind"].values()) == pytest.approx(1.0, abs=1e-3)
    assert set(mix["blind"]) == {"clean", "aliased", "blur-subsample", "second-order"}
    x4 = train(
        tiny_config(
            clip, tmp_path / "x4.safetensors", steps=1, scale=4, patch=12, init=str(first.output)
        )
    )
    net4, net2 = load_network(x4.output), load_network(first.output)
    assert net4.scale == 4
    # The propagation branch came from the x2 weights (then moved by one small step).
    w2 = net2.forward_branch.head.weight.detach()
    w4 = net4.forward_branch.head.weight.detach()
    assert float((w4 - w2).abs().max()) < 0.01 < float(w2.abs().max())


def test_cli_arguments(clip: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers(), "train", "train")
    args = parser.parse_args(
        [
            "train",
            str(clip),
            "-o",
            str(tmp_path / "o.safetensors"),
            "--scale",
            "4",
            "--bidirectional",
            "--steps",
            "7",
            "--val",
            str(clip),
            "--lr",
            "3e-4",
        ]
    )
    config = config_from_args(args)
    assert config.scale == 4 and config.bidirectional and config.steps == 7
    assert config.name == "vsr-temporal-x4-bi" and config.learning_rate == 3e-4
    assert config.val_clips == (clip,)
    with pytest.raises(UsageError, match="safetensors"):
        replace(config, output=tmp_path / "o.pt")


def test_cosine_rate_is_a_function_of_the_step(clip: Path, tmp_path: Path) -> None:
    config = tiny_config(clip, tmp_path / "r.safetensors", steps=10, min_learning_rate=1e-5)
    assert cosine_rate(config, 0) == pytest.approx(2e-3)
    assert cosine_rate(config, 5) == pytest.approx((2e-3 + 1e-5) / 2)
    assert cosine_rate(config, 10) == pytest.approx(1e-5)
    assert cosine_rate(config, 50) == pytest.approx(1e-5)


def test_time_budget_anneals_over_the_budget(clip: Path, tmp_path: Path) -> None:
    config = tiny_config(clip, tmp_path / "t.safetensors", steps=1000, max_minutes=2.0)
    assert schedule_position(config, 10, 60.0) == pytest.approx(0.5)  # time is further along
    assert schedule_position(config, 900, 6.0) == pytest.approx(0.9)  # steps are
    assert cosine_rate(config, 0, 120.0) == pytest.approx(config.min_learning_rate)
    # A run whose budget is spent before the first step still exports (the initial weights).
    result = train(replace(config, max_minutes=1e-6))
    assert result.steps == 0 and result.output.exists()
    doc = json.loads(result.output.with_suffix(".json").read_text())
    assert doc["trained"]["steps"] == 0 and doc["loss_curve"] == []


def test_downscaled_samples_are_sharper(clip: Path) -> None:
    frames = load_clip(clip)
    plain = SequenceSampler([frames], scale=2, seq_len=2, patch=12, batch=8, seed=1)
    halved = SequenceSampler(
        [frames], scale=2, seq_len=2, patch=12, batch=8, seed=1, downscale_prob=1.0
    )

    def detail(x: torch.Tensor) -> float:
        return float((x[..., 1:] - x[..., :-1]).abs().mean())

    a, b = plain.sample(0), halved.sample(0)
    assert a.hr.shape == b.hr.shape == (8, 2, 3, 24, 24)
    assert detail(b.hr) > 1.5 * detail(a.hr)
    assert torch.equal(b.hr, (b.hr * 255).round() / 255)  # 8-bit targets


def test_a_still_photo_becomes_a_moving_clip(tmp_path: Path) -> None:
    import cv2

    rng = np.random.default_rng(3)
    photo = cv2.GaussianBlur(rng.random((120, 160, 3)).astype(np.float32), (0, 0), 1.5)
    photo = ((photo - photo.min()) / (photo.max() - photo.min()) * 255).astype(np.uint8)
    path = tmp_path / "photo.png"
    assert cv2.imwrite(str(path), photo)
    clip = load_clip(path, max_frames=20)
    assert clip.frames.shape == (20, 60, 80, 3) and clip.frames.dtype == np.uint8
    again = load_clip(path, max_frames=20)
    assert np.array_equal(clip.frames, again.frames)  # the camera path is seeded
    moved = np.abs(clip.frames[1:].astype(int) - clip.frames[:-1]).mean(axis=(1, 2, 3))
    assert (moved > 0.5).all()  # the camera never stops
    # Sharp, like the photo at that scale: the frame's detail survives (no resampling blur).
    lap = [float(cv2.Laplacian(f, cv2.CV_32F).var()) for f in clip.frames]
    ref = float(
        cv2.Laplacian(cv2.resize(photo, (107, 80), interpolation=cv2.INTER_AREA), cv2.CV_32F).var()
    )
    assert min(lap) > 0.5 * ref
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(InputError, match="could not read"):
        load_clip(bad)


def test_temporal_loss_counts_only_flicker_the_target_lacks() -> None:
    from vsr.train.loop import temporal_loss

    rng = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 3, 16, 16, generator=rng).repeat_interleave(1, dim=1)
    target = target[:, :1].expand(-1, 3, -1, -1, -1).contiguous()  # a static scene
    flows = torch.zeros(2, 2, 2, 8, 8)
    assert float(temporal_loss(target, target, flows)) < 2e-3  # the truth itself: ~eps
    jitter = target + 0.05 * torch.randn(target.shape, generator=rng)
    assert float(temporal_loss(jitter, target, flows)) > 0.03
    steady_but_wrong = target + 0.05  # wrong by a constant: fidelity's problem, not flicker's
    assert float(temporal_loss(steady_but_wrong, target, flows)) < 2e-3
    # Where the target itself changes by over 10 levels (a cut, an occlusion), nothing counts.
    changing = torch.rand(2, 3, 3, 16, 16, generator=rng)
    assert (
        float(
            temporal_loss(
                changing + 0.05 * torch.randn(changing.shape, generator=rng), changing, flows
            )
        )
        < 0.02
    )
