"""The evaluation table (vsr.evaltable, `vsr eval --table`) on tiny generated clips, bicubic
only: its figures are checked against the same steps done by hand."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import CliResult, check_one_error_line

from vsr.degrade import benchmark_degradation, degrade_frames
from vsr.errors import UsageError
from vsr.evaltable import (
    Cell,
    ClipInfo,
    EvalTable,
    TableModel,
    TableSettings,
    card_section,
    hr_size,
    load_reference,
    run_cell,
    run_table,
    write_card_eval,
)
from vsr.media.frames import iter_video_rgb
from vsr.media.lossless import write_lossless
from vsr.metrics import psnr_y


def _moving(frames: int, h: int = 48, w: int = 64) -> np.ndarray:
    """(N, H, W, 3) uint8: a smooth pattern panning 1 px per frame."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = []
    for t in range(frames):
        x = xx - t
        r = 0.5 + 0.3 * np.sin(0.35 * x) * np.cos(0.25 * yy)
        g = 0.5 + 0.3 * np.sin(0.2 * x + 0.3 * yy + 1.0)
        b = 0.5 + 0.25 * np.cos(0.4 * yy - 0.15 * x)
        out.append(np.stack([r, g, b], axis=-1))
    return (np.clip(np.stack(out), 0, 1) * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("evaltable")
    moving, still = folder / "moving.mkv", folder / "still.mkv"
    write_lossless(moving, _moving(4))
    write_lossless(still, np.repeat(_moving(1), 4, axis=0))
    return moving, still


@pytest.fixture(scope="module")
def table(clips: tuple[Path, Path]) -> EvalTable:
    settings = TableSettings(scales=(2,), kinds=("bi", "bd"), models=("bicubic",), frames=3)
    return run_table(list(clips), settings)


def test_lossless_clip_round_trips_exactly(clips: tuple[Path, Path]) -> None:
    assert np.array_equal(np.stack(list(iter_video_rgb(clips[0]))), _moving(4))


def test_reference_size_and_resize() -> None:
    assert hr_size(640, 272, 360) == (360, 152)  # bikes
    assert hr_size(480, 270, 360) == (360, 204)  # b.avi
    assert hr_size(176, 144, 360) == (176, 144)  # carphone: never enlarged
    assert hr_size(63, 47, 360) == (60, 44)  # mod-crop to multiples of 4


def test_load_reference_resizes_with_antialiasing(tmp_path: Path) -> None:
    path = tmp_path / "hr.mkv"
    hr = _moving(3, 48, 64)
    write_lossless(path, hr)
    ref = load_reference(path, frames=2, width=32)
    assert ref.shape == (2, 24, 32, 3) and ref.dtype == np.uint8
    x = torch.from_numpy(hr[:2]).permute(0, 3, 1, 2).float() / 255
    want = F.interpolate(x, size=(24, 32), mode="bicubic", antialias=True, align_corners=False)
    want_u8 = (want.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    assert np.array_equal(ref, want_u8)
    assert np.array_equal(load_reference(path, frames=5, width=360), hr)  # all 3, unchanged


def test_bicubic_figures_match_the_steps_done_by_hand(
    table: EvalTable, clips: tuple[Path, Path]
) -> None:
    hr = torch.from_numpy(_moving(3)).permute(0, 3, 1, 2).float() / 255
    for kind in ("bi", "bd"):
        lr = degrade_frames(hr, scale=2, rng=0, degradation=benchmark_degradation(kind))
        lr_u8 = (lr * 255).round() / 255
        up = F.interpolate(lr_u8, scale_factor=2, mode="bicubic", align_corners=False)
        want = float(np.mean(psnr_y(hr, (up.clamp(0, 1) * 255).round() / 255, crop_border=2)))
        cell = table.cell("moving.mkv", kind, 2, "bicubic")
        assert cell is not None and cell.error is None and cell.frames == 3
        assert cell.psnr == pytest.approx(want, abs=1e-6)
        assert 25.0 < cell.psnr < 55.0 and 0.9 < cell.ssim <= 1.0  # a smooth pattern
        assert cell.seconds > 0 and 0 < cell.frame_seconds < cell.seconds
    # BD blurs more than BI: bicubic recovers less of it.
    bi, bd = (table.cell("moving.mkv", k, 2, "bicubic") for k in ("bi", "bd"))
    assert bi is not None and bd is not None and bd.psnr + 3 < bi.psnr and bi.psnr > 40


def test_static_clip_has_no_flicker(table: EvalTable) -> None:
    for kind in ("bi", "bd"):
        cell = table.cell("still.mkv", kind, 2, "bicubic")
        assert cell is not None and cell.error is None
        assert cell.reference_flicker == pytest.approx(0.0, abs=1e-6)
        assert cell.flicker == pytest.approx(0.0, abs=1e-6)
    assert table.reference_flicker("still.mkv") == pytest.approx(0.0, abs=1e-6)
    assert table.reference_flicker("moving.mkv") > 0


def test_summary_json_and_markdown(table: EvalTable) -> None:
    data = json.loads(json.dumps(table.to_dict()))
    assert [c["name"] for c in data["clips"]] == ["moving.mkv", "still.mkv"]
    assert data["clips"][0]["width"] == 64 and data["clips"][0]["frames"] == 3
    bi = data["summary"]["2"]["bi"]["bicubic"]
    psnrs = [table.cell(n, "bi", 2, "bicubic").psnr for n in ("moving.mkv", "still.mkv")]  # type: ignore[union-attr]
    assert bi["psnr"] == pytest.approx(np.mean(psnrs), abs=1e-5)
    assert bi["gain"] == 0.0 and bi["gain_db_per_clip"] == [0.0, 0.0]
    assert data["cost"]["2"]["bicubic"]["seconds_per_frame"] > 0
    assert data["cost"]["2"]["bicubic"]["ratio_to_animevideov3"] is None  # not run
    assert len(data["cells"]) == 4 and data["settings"]["frames"] == 3
    text = table.markdown()
    assert "### x2: mean over 2 clip(s)" in text and "| BD (Gaussian 1.6, subsample) |" in text
    assert "| moving.mkv | BI (antialiased bicubic) |" in text
    assert "### x2: cost per LR frame" in text and "| bicubic |" in text


def test_a_weights_card_gets_its_models_figures(table: EvalTable, tmp_path: Path) -> None:
    figures = json.loads(json.dumps(table.to_dict()))
    card = tmp_path / "bicubic.json"
    card.write_text(json.dumps({"name": "bicubic", "params": 0}))
    write_card_eval(card, figures)
    doc = json.loads(card.read_text())
    assert doc["params"] == 0  # the rest of the card is kept
    section = doc["eval_table"]
    assert section["scale"] == 2 and section["settings"]["frames"] == 3
    assert section["summary"]["bd"]["bicubic"] == figures["summary"]["2"]["bd"]["bicubic"]
    assert set(section["summary"]) == {"bi", "bd"}
    assert [c["name"] for c in section["clips"]] == ["moving.mkv", "still.mkv"]
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(UsageError, match="no column for 'vsr-temporal-x2'"):
        card_section(figures, "vsr-temporal-x2")
    card.write_text("[1, 2]")
    with pytest.raises(UsageError, match="not a weights card"):
        write_card_eval(card, figures)


def test_a_failing_model_is_a_cell_with_its_error(clips: tuple[Path, Path], tmp_path: Path) -> None:
    lr = tmp_path / "lr.mkv"
    write_lossless(lr, _moving(2, 24, 32))
    ref = _moving(2, 48, 64)
    key = Cell("moving.mkv", "bi", 2, "broken")
    cell = run_cell(ref, lr, TableModel("broken", "no-such-model"), key)
    assert cell.error is not None and "no-such-model" in cell.error and cell.exit_code == 4
    assert math.isnan(cell.psnr) and not (tmp_path / "lr_broken.mkv").exists()


def test_settings_are_checked() -> None:
    only = TableSettings(models=("vsr-temporal",)).models_at(2)
    assert [m.label for m in only] == ["bicubic", "vsr-temporal"]
    assert only[1].name_at(2) == "vsr-temporal-x2"
    labels = [m.label for m in TableSettings(scales=(2,)).models_at(2)]
    assert "x4plus" not in labels and labels[0] == "bicubic"  # x4plus has no x2 variant
    assert "x4plus+stabilize" in [m.label for m in TableSettings().models_at(4)]
    with pytest.raises(UsageError, match="degradation kinds"):
        TableSettings(kinds=("blurry",))
    with pytest.raises(UsageError, match="models among"):
        TableSettings(models=("x2plus",))
    with pytest.raises(UsageError, match="at least 2 frames"):
        TableSettings(frames=1)
    with pytest.raises(UsageError, match="at least 1 thread"):
        TableSettings(threads=0)


def test_vsr_eval_table(cli: Callable[..., CliResult], clips: tuple[Path, Path]) -> None:
    args = ["eval", "--table", "--clips", clips[0], "--scales", "2", "--kinds", "bi"]
    threads = torch.get_num_threads()
    result = cli(*args, "--models", "bicubic", "--frames", "2", "--threads", "1", "--json")
    assert result.code == 0, result.err
    assert result.json["settings"]["torch_threads"] == 1 and torch.get_num_threads() == threads
    assert result.json["cells"][0]["model"] == "bicubic" and result.json["cells"][0]["frames"] == 2
    assert "moving.mkv x2 bi bicubic:" in result.err
    check_one_error_line(cli(*args, "--models", "nope"), 2, "models among")
    check_one_error_line(cli(*args, "--scale", "2"), 2, "--table without")
    check_one_error_line(cli("eval", "--reference", clips[0], "--test", clips[0]), 2, "--scale")


def test_summaries_from_known_cells() -> None:
    def cell(clip: str, model: str, psnr: float, flicker: float, cost: float) -> Cell:
        return Cell(clip, "bi", 4, model, 10, psnr, 0.9, flicker, 2.0, 10 * cost, cost)

    cells = (
        cell("a", "bicubic", 30.0, 1.0, 0.01),
        cell("a", "animevideov3", 31.0, 3.0, 0.1),
        cell("a", "x4plus", 32.0, 4.0, 1.0),
        cell("a", "x4plus+stabilize", 32.5, 2.0, 1.2),
        cell("b", "bicubic", 20.0, 1.0, 0.03),
        cell("b", "animevideov3", 22.0, 3.0, 0.3),
        cell("b", "x4plus", 23.0, 2.0, 3.0),
        Cell("b", "bi", 4, "x4plus+stabilize", error="boom", exit_code=4),
    )
    settings = TableSettings(
        scales=(4,), kinds=("bi",), models=("animevideov3", "x4plus", "x4plus+stabilize")
    )
    clips = tuple(ClipInfo(n, n, 64, 48, 10) for n in ("a", "b"))
    table = EvalTable(settings, clips, cells)
    assert table.values("bi", 4, "x4plus", "gain") == [2.0, 3.0]
    assert table.mean("bi", 4, "x4plus", "gain") == 2.5
    assert table.values("bi", 4, "animevideov3", "flicker_vs_reference") == [50.0, 50.0]
    assert table.values("bi", 4, "x4plus+stabilize", "stabilize_flicker")[0] == -50.0
    assert table.values("bi", 4, "x4plus+stabilize", "stabilize_gain")[0] == 0.5
    # A failed cell leaves its clip out, and a mean over part of the clips is no mean.
    assert math.isnan(table.values("bi", 4, "x4plus+stabilize", "psnr")[1])
    assert math.isnan(table.mean("bi", 4, "x4plus+stabilize", "psnr"))
    assert table.cost(4, "x4plus") == pytest.approx(2.0)  # the mean over cells
    assert table.cost(4, "x4plus") / table.cost(4, "animevideov3") == pytest.approx(10.0)
    text = table.markdown()
    assert "| BI (antialiased bicubic) | +1.50 (+1.00 / +2.00) | +2.50 (+2.00 / +3.00) |" in text
    assert "--temporal stabilize against the same model" in text
    assert "| x4plus | 2.0000 | 10.00 |" in text
    assert "- error: b bi x4plus+stabilize: boom" in text
    data = table.to_dict()["summary"]["4"]["bi"]
    assert data["x4plus+stabilize"]["stabilize_flicker_change_pct_per_clip"] == [-50.0, None]
    assert "stabilize_gain_db" not in data["x4plus"]
