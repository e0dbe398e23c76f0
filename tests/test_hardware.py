"""Hardware decode and encode choices: NVDEC through --hwaccel, NVENC detection.

On a machine without a usable NVIDIA GPU (CI), opening NVDEC fails: `auto` must fall back to
software with a notice and lose no frame, `cuda` must fail with a device error. Where a GPU
decodes (scripts/gpu_check.sh), the same tests check the hardware path instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import clips
import pytest
import torch
from conftest import FAST, CliResult, check_one_error_line

from vsr.config import ModelOptions, UpscaleOptions
from vsr.errors import DeviceError
from vsr.media.hardware import choose_hwaccel, nvenc_status
from vsr.models.processors import BicubicProcessor
from vsr.pipeline import upscale_file

Cli = Callable[..., CliResult]


def _nvdec_works(path: Path) -> bool:
    decision, _ = choose_hwaccel("auto", path, "h264", 0, True)
    return decision.used == "cuda"


def test_auto_on_a_cpu_job_stays_in_software_quietly(tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=3)
    decision, notice = choose_hwaccel("auto", src.path, "h264", 0, False)
    assert decision.used == "none" and notice is None
    assert "cpu" in decision.reason.lower()


def test_codec_without_nvdec(tmp_path: Path) -> None:
    src = clips.odd_size(tmp_path)  # FFV1
    decision, notice = choose_hwaccel("auto", src.path, "ffv1", 0, True)
    assert decision.used == "none" and notice is not None and "ffv1" in notice
    with pytest.raises(DeviceError, match="NVDEC has no ffv1"):
        choose_hwaccel("cuda", src.path, "ffv1", 0, True)


def test_auto_falls_back_with_a_notice_or_uses_nvdec(tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=3)
    decision, notice = choose_hwaccel("auto", src.path, "h264", 0, True)
    if decision.used == "cuda":
        assert notice is None
        return
    assert notice is not None and "software" in notice
    assert decision.reason in notice
    with pytest.raises(DeviceError, match="hwaccel cuda"):
        choose_hwaccel("cuda", src.path, "h264", 0, True)


class _ClaimsCuda(BicubicProcessor):
    """Runs on the CPU but says CUDA: the pipeline then tries NVDEC as for a GPU job."""

    @property
    def device(self) -> torch.device:
        return torch.device("cuda")


def test_failed_nvdec_loses_no_frame(tmp_path: Path) -> None:
    src = clips.ntsc_h264(tmp_path, "mkv", frames=15)
    if _nvdec_works(src.path):
        pytest.skip("NVDEC works here: the fallback can't be exercised")
    seen: list[str] = []
    opts = UpscaleOptions(
        model=ModelOptions(name="bicubic", scale=2), color_path="swscale", overwrite=True
    )
    out = tmp_path / "out.mkv"
    result = upscale_file(src.path, out, opts, _ClaimsCuda(2.0), notify=seen.append)
    assert any("--hwaccel auto: decoding in software" in s for s in seen), seen
    assert result.settings["frame_path"]["hwaccel"]["used"] == "none"
    clips.check_times(src.path, out)
    clips.check_pixels_and_order(src.path, out, min_psnr=35)


def test_cli_hwaccel_cuda_without_a_gpu_is_a_device_error(cli: Cli, tmp_path: Path) -> None:
    src = clips.cfr_h264_aac(tmp_path, frames=3)
    if _nvdec_works(src.path):
        pytest.skip("NVDEC works here")
    result = cli("upscale", src.path, "-o", tmp_path / "o.mp4", *FAST, "--hwaccel", "cuda")
    check_one_error_line(result, 6, "hwaccel cuda", str(src.path))
    assert not (tmp_path / "o.mp4").exists()
    bad = cli("upscale", src.path, "-o", tmp_path / "o.mp4", *FAST, "--hwaccel", "vaapi")
    check_one_error_line(bad, 2, "--hwaccel")


def test_nvenc_is_detected_and_explained(cli: Cli, tmp_path: Path) -> None:
    status = nvenc_status()
    assert set(status) == {"h264_nvenc", "hevc_nvenc", "av1_nvenc"}
    if status["h264_nvenc"] == "ok":
        pytest.skip("this machine has NVENC")
    assert all(v != "ok" and v for v in status.values()), status
    src = clips.cfr_h264_aac(tmp_path, frames=3)
    out = tmp_path / "o.mp4"
    result = cli("upscale", src.path, "-o", out, *FAST, "--codec", "h264_nvenc", "--json")
    assert result.code == 0, result.err
    assert result.json["encoder"]["codec"] == "libx264"
    assert any("h264_nvenc can't be used here" in n for n in result.json["notices"])
    assert clips.read_video(out, pixels=False).codec == "h264"
