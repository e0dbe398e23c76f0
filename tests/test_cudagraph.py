"""`--cuda-graphs` (vsr.models.cudagraph): one recorded graph per input shape, replayed.

Without a GPU the recording is faked (the replay runs the model on the recorded input), which
checks what vsr decides: when to record, what is copied, the bound on shapes and the fallbacks.
The CUDA test (marked `gpu`, run by scripts/gpu_check.sh) checks real graphs against eager.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import clips
import pytest
import torch
from conftest import CliResult

from vsr.models.cudagraph import GraphedForward

Cli = Callable[..., CliResult]


class FakeCapture:
    """Records like CUDA does: the replay runs the model on the static input, into the
    static output (the same tensor every replay)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.recorded: list[tuple[int, ...]] = []

    def __call__(self, forward: Any, static_input: torch.Tensor) -> tuple[Any, torch.Tensor]:
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing\nmore")
        self.recorded.append(tuple(static_input.shape))
        static_output = forward(static_input)

        def replay() -> None:
            static_output.copy_(forward(static_input))

        return replay, static_output


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 3, 1))


@torch.inference_mode()
def test_one_recording_per_shape_and_copies_out() -> None:
    net = _model()
    capture = FakeCapture()
    graphed = GraphedForward(net, capture=capture)
    a, b = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    out_a = graphed(a)
    out_b = graphed(b)
    torch.testing.assert_close(out_a, net(a))  # not overwritten by the replay for b
    torch.testing.assert_close(out_b, net(b))
    last = graphed(torch.rand(1, 3, 16, 16))  # a partial last batch: a second shape
    assert last.shape == (1, 3, 16, 16)
    assert capture.recorded == [(2, 3, 16, 16), (1, 3, 16, 16)]
    assert graphed.shapes == 2 and graphed.replays == 3 and graphed.eager_runs == 0


@torch.inference_mode()
def test_too_many_shapes_and_failed_recordings_run_eagerly_with_a_notice() -> None:
    net = _model()
    notices: list[str] = []
    graphed = GraphedForward(net, capture=FakeCapture(), notify=notices.append, max_shapes=2)
    for size in (8, 12, 16, 16):
        x = torch.rand(1, 3, size, size)
        torch.testing.assert_close(graphed(x), net(x))
    assert graphed.shapes == 2 and graphed.eager_runs == 2
    assert len(notices) == 1 and "more than 2 input shapes" in notices[0]  # said once

    notices.clear()
    failing = GraphedForward(net, capture=FakeCapture(fail=True), notify=notices.append)
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(failing(x), net(x))
    torch.testing.assert_close(failing(x), net(x))
    assert failing.shapes == 0 and failing.eager_runs == 2
    assert len(notices) == 1
    assert "could not record" in notices[0] and "not permitted" in notices[0]
    assert "\n" not in notices[0]


def test_cli_on_the_cpu_says_it_is_ignored(cli: Cli, tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=3)
    out = tmp_path / "out.mkv"
    model = ["--model", "realesr-animevideov3", "--scale", "2", "--device", "cpu"]
    result = cli("upscale", src.path, "-o", out, *model, "--cuda-graphs", "--json")
    assert result.code == 0, result.err
    assert any("--cuda-graphs: ignored" in n for n in result.json["notices"])
    assert result.json["settings"]["cuda_graphs"] is False
    assert len(clips.read_video(out, pixels=False).times) == 3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graphs_match_eager_on_the_device(tmp_path: Path) -> None:
    import vsr

    src = clips.cfr_h264_aac(tmp_path, frames=7)
    outs = {}
    for graphs in (False, True):
        out = tmp_path / f"graphs-{graphs}.mkv"
        result = vsr.upscale(
            src.path,
            out,
            model="realesr-animevideov3",
            scale=2,
            device="cuda",
            precision="fp16",
            batch=3,  # 7 frames: two full batches and a partial one (two shapes)
            cuda_graphs=graphs,
            codec="ffv1",
            overwrite=True,
        )
        assert result.settings["cuda_graphs"] is graphs
        outs[graphs] = clips.read_video(out)
    eager, graphed = outs[False], outs[True]
    assert graphed.times == eager.times
    for pa, pb in zip(eager.planes, graphed.planes, strict=True):
        for x, y in zip(pa, pb, strict=True):
            assert abs(x.astype(int) - y.astype(int)).max() <= 1
