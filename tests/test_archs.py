"""RRDBNet and SRVGGNetCompact: key layout, shapes, residual paths, cost formulas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from vsr.models.archs.rrdbnet import RRDB, RRDBNet, rrdbnet_macs_per_pixel
from vsr.models.archs.rrdbnet import count_params as _params_rrdbnet
from vsr.models.archs.srvgg import SRVGGNetCompact, srvgg_macs_per_pixel
from vsr.models.archs.srvgg import count_params as _params_srvgg


def _conv_macs(model: torch.nn.Module, x: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    # FlopCounterMode counts 2 FLOPs per multiply-add.
    return counter.get_total_flops() / 2


def test_rrdbnet_key_layout_matches_basicsr() -> None:
    net = RRDBNet(num_feat=8, num_grow_ch=4, num_block=2)
    keys = list(net.state_dict())
    expected = ["conv_first.weight", "conv_first.bias"]
    for b in range(2):
        for r in (1, 2, 3):
            for c in range(1, 6):
                expected += [f"body.{b}.rdb{r}.conv{c}.weight", f"body.{b}.rdb{r}.conv{c}.bias"]
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"):
        expected += [f"{name}.weight", f"{name}.bias"]
    assert keys == expected
    assert net.state_dict()["body.1.rdb3.conv5.weight"].shape == (8, 8 + 4 * 4, 3, 3)


@pytest.mark.parametrize(("scale", "first_in"), [(4, 3), (2, 12), (1, 48)])
def test_rrdbnet_scales_unshuffle_input(scale: int, first_in: int) -> None:
    net = RRDBNet(num_feat=8, num_grow_ch=4, num_block=1, scale=scale).eval()
    assert net.conv_first.in_channels == first_in
    x = torch.rand(2, 3, 8, 12)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 3, 8 * scale, 12 * scale)
    assert net.size_multiple == {4: 1, 2: 2, 1: 4}[scale]


def test_rrdbnet_rejects_bad_input_and_config() -> None:
    with pytest.raises(ValueError, match="divisible by 2"):
        RRDBNet(num_feat=8, num_grow_ch=4, num_block=1, scale=2)(torch.rand(1, 3, 7, 8))
    with pytest.raises(ValueError, match=r"expected input shaped \(N, 3, H, W\)"):
        RRDBNet(num_feat=8, num_grow_ch=4, num_block=1)(torch.rand(1, 4, 8, 8))
    with pytest.raises(ValueError, match="scale 1, 2 or 4"):
        RRDBNet(scale=3)


def test_rrdb_residual_scaling_is_0_2() -> None:
    # With conv5 weights zero, each dense block adds 0.2 * bias; the RRDB then scales the
    # result by 0.2 again and adds its input: out = 0.2 * (x + 0.6 b) + x.
    block = RRDB(num_feat=4, num_grow_ch=2)
    bias = torch.tensor([0.5, -1.0, 2.0, 0.25])
    with torch.no_grad():
        for rdb in (block.rdb1, block.rdb2, block.rdb3):
            rdb.conv5.weight.zero_()
            assert rdb.conv5.bias is not None
            rdb.conv5.bias.copy_(bias)
        x = torch.randn(1, 4, 5, 6)
        y = block(x)
    expected = 1.2 * x + 0.12 * bias.view(1, 4, 1, 1)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)


def test_srvgg_key_layout_and_skip() -> None:
    net = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=3).eval()
    keys = list(net.state_dict())
    assert keys == [
        "body.0.weight", "body.0.bias", "body.1.weight",
        "body.2.weight", "body.2.bias", "body.3.weight",
        "body.4.weight", "body.4.bias", "body.5.weight",
        "body.6.weight", "body.6.bias",
    ]  # fmt: skip
    assert net.state_dict()["body.6.weight"].shape == (27, 8, 3, 3)
    # Zero the last conv: only the nearest-upsampled input is left.
    with torch.no_grad():
        last = net.body[-1]
        assert isinstance(last, torch.nn.Conv2d) and last.bias is not None
        last.weight.zero_()
        last.bias.zero_()
        x = torch.rand(1, 3, 4, 5)
        y = net(x)
    assert y.shape == (1, 3, 12, 15)
    torch.testing.assert_close(y, F.interpolate(x, scale_factor=3, mode="nearest"))
    assert torch.equal(y[0, :, 0:3, 0:3], x[0, :, 0:1, 0:1].expand(3, 3, 3))


@pytest.mark.parametrize("act_type", ["relu", "leakyrelu"])
def test_srvgg_other_activations_have_no_params(act_type: str) -> None:
    net = SRVGGNetCompact(num_feat=8, num_conv=1, act_type=act_type)
    assert list(net.state_dict()) == [
        "body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias",
        "body.4.weight", "body.4.bias",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="act_type"):
        SRVGGNetCompact(act_type="gelu")


def test_srvgg_rejects_wrong_channels() -> None:
    with pytest.raises(ValueError, match="expected input shaped"):
        SRVGGNetCompact(num_feat=4, num_conv=0)(torch.rand(3, 8, 8))


@pytest.mark.parametrize(
    "cfg",
    [
        {"num_block": 2, "num_feat": 8, "num_grow_ch": 4, "scale": 4},
        {"num_block": 1, "num_feat": 8, "num_grow_ch": 4, "scale": 2},
        {"num_block": 1, "num_feat": 6, "num_grow_ch": 3, "scale": 1},
    ],
)
def test_rrdbnet_cost_formulas_match_module(cfg: dict[str, int]) -> None:
    net = RRDBNet(**cfg)
    assert _params_rrdbnet(cfg) == sum(p.numel() for p in net.parameters())
    h, w = 8, 12
    measured = _conv_macs(net, torch.rand(1, 3, h, w))
    assert rrdbnet_macs_per_pixel(**cfg) == pytest.approx(measured / (h * w), rel=1e-9)


def test_srvgg_cost_formulas_match_module() -> None:
    cfg = {"num_feat": 8, "num_conv": 3, "upscale": 4}
    net = SRVGGNetCompact(num_feat=8, num_conv=3, upscale=4)
    assert _params_srvgg(cfg) == sum(p.numel() for p in net.parameters())
    measured = _conv_macs(net, torch.rand(1, 3, 6, 7))
    assert srvgg_macs_per_pixel(**cfg) == pytest.approx(measured / 42, rel=1e-9)
    # The published figure for realesr-animevideov3: about 1.24 MFLOP per input pixel.
    assert 2 * srvgg_macs_per_pixel() == pytest.approx(1.2384e6)
