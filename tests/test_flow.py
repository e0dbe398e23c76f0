"""Flow, warping, occlusion and scene cuts on synthetic motion whose true flow is known."""

from __future__ import annotations

import pytest
import torch
from motion import moving_square, texture

from vsr.errors import UsageError
from vsr.temporal import (
    DISFlow,
    SceneCutDetector,
    detect_cuts,
    make_flow,
    occlusion_mask,
    outside_mask,
    resize_flow,
    upscale_flow,
    warp,
)

H, W = 64, 96
INNER = (slice(None), slice(None), slice(8, -8), slice(8, -8))


@pytest.mark.parametrize(("dx", "dy"), [(1.3, -0.7), (0.25, 0.4), (2.6, 1.4)])
def test_dis_recovers_subpixel_translation(dx: float, dy: float) -> None:
    a = texture(H, W)
    b = texture(H, W, dx, dy)  # b(x) = a(x - d)  =>  flow b -> a is -d
    flow = DISFlow().estimate(b, a)
    assert flow.shape == (1, 2, H, W) and flow.dtype == torch.float32
    inner = flow[INNER]
    epe = ((inner[:, 0] + dx) ** 2 + (inner[:, 1] + dy) ** 2).sqrt().mean()
    assert float(epe) < 0.1
    # And the reverse direction points the other way.
    back = DISFlow().estimate(a, b)[INNER]
    assert abs(float(back[:, 0].mean()) - dx) < 0.1
    assert abs(float(back[:, 1].mean()) - dy) < 0.1


def test_warp_with_estimated_flow_aligns_frames() -> None:
    a, b = texture(H, W), texture(H, W, 1.3, -0.7)
    flow = DISFlow().estimate(b, a)
    aligned = warp(a, flow)
    before = float((a - b)[INNER].abs().mean())
    after = float((aligned - b)[INNER].abs().mean())
    assert after < 0.005
    assert after < before / 10


def test_warp_with_true_flow_is_exact_for_integer_shift_and_identity() -> None:
    a = texture(H, W)
    assert torch.allclose(warp(a, torch.zeros(1, 2, H, W)), a, atol=1e-6)
    flow = torch.zeros(1, 2, H, W)
    flow[:, 0] = 3.0  # sample 3 px to the right
    shifted = warp(a, flow)
    assert torch.allclose(shifted[..., :-3], a[..., 3:], atol=1e-5)
    # Border padding repeats the last column for samples beyond the edge.
    assert torch.allclose(shifted[..., -1], a[..., -1], atol=1e-5)
    zeros = warp(a, flow, padding="zeros")
    assert float(zeros[..., -1].abs().max()) == 0.0


def test_warp_half_pixel_is_the_average_of_neighbours() -> None:
    a = torch.rand(1, 3, 8, 8)
    flow = torch.zeros(1, 2, 8, 8)
    flow[:, 0] = 0.5
    expected = (a[..., :-1] + a[..., 1:]) / 2
    assert torch.allclose(warp(a, flow)[..., :-1], expected, atol=1e-5)


def test_warp_rejects_mismatched_shapes() -> None:
    with pytest.raises(UsageError, match="expected"):
        warp(torch.rand(1, 3, 8, 8), torch.zeros(1, 2, 4, 4))
    with pytest.raises(UsageError, match=r"\(N, 2, H, W\)"):
        warp(torch.rand(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_resize_flow_scales_displacements_and_keeps_centres() -> None:
    flow = torch.zeros(1, 2, 10, 20)
    flow[:, 0], flow[:, 1] = 1.5, -0.25
    up = upscale_flow(flow, 4)
    assert up.shape == (1, 2, 40, 80)
    assert torch.allclose(up[:, 0], torch.full((1, 40, 80), 6.0))
    assert torch.allclose(up[:, 1], torch.full((1, 40, 80), -1.0))
    odd = resize_flow(flow, (15, 50))
    assert torch.allclose(odd[:, 0], torch.full((1, 15, 50), 1.5 * 50 / 20))
    # A flow field that is a linear function of position is resampled exactly (away from the
    # border): check the pixel-centre convention x_hr = (x_lr + 0.5) * s - 0.5.
    xs = torch.arange(20, dtype=torch.float32).view(1, 1, 1, 20).expand(1, 1, 10, 20)
    ramp = torch.cat([xs * 0.1, torch.zeros_like(xs)], dim=1)
    hr = upscale_flow(ramp, 2)[0, 0, 5]
    x_hr = torch.arange(40, dtype=torch.float32)
    expected = ((x_hr + 0.5) / 2 - 0.5) * 0.1 * 2
    assert torch.allclose(hr[2:-2], expected[2:-2], atol=1e-5)


def test_occlusion_mask_marks_the_disoccluded_strip_behind_a_moving_object() -> None:
    frames, lefts = moving_square(2, H, W, speed=4.0, pan=0.0, start=20)
    prev, cur = frames[0:1], frames[1:2]
    dis = DISFlow()
    to_prev, to_cur = dis.estimate(cur, prev), dis.estimate(prev, cur)
    mask = occlusion_mask(to_prev, to_cur)[0, 0]
    y0, size = H // 4, H // 2
    # On the current frame, the background uncovered left of the square was hidden before.
    strip = mask[y0 + 3 : y0 + size - 3, lefts[0] : lefts[1]]
    assert float(strip.float().mean()) > 0.5
    # Little else is flagged: outside the strip (widened by 2 px for the flow's blur at motion
    # boundaries), under 1% of the frame.
    near = torch.zeros_like(mask)
    near[y0 - 2 : y0 + size + 2, lefts[0] - 2 : lefts[1] + 2] = True
    assert float(mask[~near].float().mean()) < 0.01
    assert int(mask.sum()) > 0.5 * (lefts[1] - lefts[0]) * size


def test_occlusion_mask_flags_content_entering_at_the_border() -> None:
    a, b = texture(H, W), texture(H, W, 3.0, 0.0)  # content moves right: new on the left
    dis = DISFlow()
    mask = occlusion_mask(dis.estimate(b, a), dis.estimate(a, b))[0, 0]
    assert bool(mask[:, :2].all())
    assert float(mask[:, 6:].float().mean()) < 0.01
    flow = torch.zeros(1, 2, 4, 4)
    flow[:, 0] = -1.0
    assert outside_mask(flow)[0, 0, :, 0].all() and not outside_mask(flow)[0, 0, :, 1:].any()


def test_occlusion_thresholds_are_exposed_and_checked() -> None:
    f = torch.zeros(1, 2, 8, 8)
    b = torch.full((1, 2, 8, 8), 0.9)  # inconsistent by 0.9 px: 0.81*2 px^2 > beta 0.5
    assert occlusion_mask(f, b, include_outside=False).all()
    assert not occlusion_mask(f, b, beta=2.0, include_outside=False).any()
    with pytest.raises(UsageError, match="thresholds"):
        occlusion_mask(f, b, alpha=-1.0)


def _pan(frames: int, seed: int, speed: float = 1.0, start: int = 0) -> list[torch.Tensor]:
    return [texture(H, W, (start + t) * speed, 0.3 * t, seed=seed) for t in range(frames)]


def test_scene_cut_found_at_the_right_frame_between_similar_looking_shots() -> None:
    # Same kind of texture on both sides: the histograms barely differ, the flow must tell.
    clip = torch.cat(_pan(5, seed=1) + _pan(5, seed=2))
    assert detect_cuts(clip, flow=DISFlow()) == [5]


def test_scene_cut_found_between_unlike_shots_without_flow() -> None:
    dark = [texture(H, W, t, 0, seed=3) * 0.3 for t in range(4)]
    bright = [0.6 + 0.4 * texture(H, W, t, 0, seed=4) ** 3 for t in range(4)]
    assert detect_cuts(torch.cat(dark + bright)) == [4]


@pytest.mark.parametrize(
    "clip",
    [
        pytest.param(
            [texture(H, W, t * 0.5, 0, seed=1) * (1 - 0.09 * t) for t in range(10)], id="fade"
        ),
        pytest.param([texture(H, W, t * 7.0, t * 3.0, seed=1) for t in range(6)], id="fast-pan"),
        pytest.param(_pan(8, seed=5, speed=0.3), id="slow-pan"),
        pytest.param([torch.zeros(1, 3, H, W) for _ in range(3)], id="black"),
    ],
)
def test_no_scene_cut_in_fades_and_pans(clip: list[torch.Tensor]) -> None:
    assert detect_cuts(torch.cat(clip), flow=DISFlow()) == []


def test_scene_cut_detector_streams_and_resets() -> None:
    detector = SceneCutDetector(flow=DISFlow())
    a, b = texture(H, W, seed=1), texture(H, W, seed=2)
    assert detector.update(a[0]) is False  # first frame never a cut
    assert detector.update(b[0]) is True
    assert detector.last is not None and detector.last.inconsistent > 0.4
    detector.reset()
    assert detector.update(a[0]) is False
    with pytest.raises(UsageError, match="one RGB frame"):
        detector.update(torch.zeros(2, 3, 4, 4))


def test_make_flow_names() -> None:
    assert make_flow("dis-fast").name == "dis-fast"
    assert make_flow(None).name == "dis-medium"
    with pytest.raises(UsageError, match="dis-medium"):
        make_flow("raft")
