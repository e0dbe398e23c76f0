"""scripts/same_output.py: its Matroska masking hides only what changes from run to run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import clips

_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "same_output.py"


def _load():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("same_output", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["same_output"] = module
    spec.loader.exec_module(module)
    return module


def test_two_muxings_of_the_same_frames_match_only_after_masking(tmp_path: Path) -> None:
    same_output = _load()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = clips.multi_track_mkv(tmp_path / "a")
    b = clips.multi_track_mkv(tmp_path / "b")
    raw_a, raw_b = a.path.read_bytes(), b.path.read_bytes()
    assert raw_a != raw_b  # random UIDs, the date and CRCs differ between runs
    assert same_output.mask_matroska(raw_a) == same_output.mask_matroska(raw_b)


def test_a_real_difference_still_shows(tmp_path: Path) -> None:
    same_output = _load()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = clips.write_video(tmp_path / "a" / "v.mkv", frames=4)
    b = clips.write_video(tmp_path / "b" / "v.mkv", frames=4, options={"crf": "30"})
    assert same_output.mask_matroska(a.path.read_bytes()) != same_output.mask_matroska(
        b.path.read_bytes()
    )


def test_other_containers_are_compared_unmasked() -> None:
    same_output = _load()
    data = b"\x00\x00\x00\x20ftypisom" + b"\x73\xa4\x90" + bytes(range(16))
    assert same_output.mask_matroska(data) == data
