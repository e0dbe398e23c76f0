"""Hardware decode (NVDEC through PyAV's hwaccel) and NVENC detection.

Hardware is asked for explicitly and every fallback is announced: `--hwaccel cuda` fails
with a device error when NVDEC can't be opened; `--hwaccel auto` uses it only where the codec
has an NVDEC decoder and the job runs on a CUDA device, and falls back to software with a
notice when opening it fails. Whether NVDEC can open is tried on a container of its own,
decoding the first frame, before the real pass starts: a failure there costs nothing, and the
real pass never switches decoders midway (which could lose or repeat frames).

NVENC is probed the same way: an encoder that PyAV's FFmpeg lists may still be unusable,
because the GPU has no NVENC unit (H100, H200, A100 ...), the driver is too old, or there is
no GPU at all; `nvenc_status` says which.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import av.error

from vsr.errors import DeviceError

HwAccelMode = Literal["auto", "cuda", "none"]
HWACCEL_MODES: tuple[str, ...] = ("auto", "cuda", "none")

# Codecs FFmpeg's NVDEC hwaccel decodes (libavcodec's *_nvdec hwaccels).
NVDEC_CODECS = {"h264", "hevc", "av1", "vp8", "vp9", "mpeg1video", "mpeg2video", "mpeg4", "vc1"}
NVENC_ENCODERS = ("h264_nvenc", "hevc_nvenc", "av1_nvenc")


@dataclass(frozen=True)
class HwDecode:
    """What was decided for one job, for `--json` and the progress line."""

    requested: str
    used: str  # "cuda" or "none"
    reason: str

    def open_options(self) -> dict[str, Any]:
        """Keyword arguments for av.open that give this decoding."""
        if self.used != "cuda":
            return {}
        from av.codec.hwaccel import HWAccel

        return {"hwaccel": HWAccel("cuda", allow_software_fallback=False)}

    def to_dict(self) -> dict[str, str]:
        return {"requested": self.requested, "used": self.used, "reason": self.reason}


def _cuda_listed() -> bool:
    try:
        from av.codec.hwaccel import hwdevices_available
    except ImportError:
        return False
    return "cuda" in hwdevices_available()


def _try_nvdec(path: Path, stream_index: int) -> str | None:
    """None when NVDEC opens and decodes this file's first frame, else why not."""
    from av.codec.hwaccel import HWAccel

    try:
        with av.open(
            str(path), hwaccel=HWAccel("cuda", allow_software_fallback=False)
        ) as container:
            stream = container.streams[stream_index]
            for packet in container.demux(stream):
                for _frame in packet.decode():
                    return None
            return "no frame came out of the hardware decoder"
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        return _reason(exc)
    return None


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "strerror", None) or exc)
    if isinstance(exc, PermissionError) or "not permitted" in text.lower():
        return f"no usable NVIDIA GPU or driver for NVDEC ({text})"
    return text


def choose_hwaccel(
    mode: str, path: Path, codec: str, stream_index: int, job_on_cuda: bool
) -> tuple[HwDecode, str | None]:
    """Decide hardware decoding for one input; returns the decision and a notice (or None).

    Raises DeviceError for `cuda` when NVDEC can't decode this file.
    """
    if mode not in HWACCEL_MODES:
        raise DeviceError(f"expected --hwaccel auto, cuda or none, got {mode!r}")
    if mode == "none":
        return HwDecode(mode, "none", "software decoding asked for"), None
    why: str | None = None
    if codec not in NVDEC_CODECS:
        why = f"NVDEC has no {codec} decoder"
    elif not _cuda_listed():
        why = "this FFmpeg build has no CUDA hardware device support"
    elif mode == "auto" and not job_on_cuda:
        # Decoding on a GPU the model doesn't use only moves work around; not worth a notice.
        return HwDecode(mode, "none", "the model runs on the CPU"), None
    else:
        why = _try_nvdec(path, stream_index)
    if why is None:
        return HwDecode(mode, "cuda", "NVDEC"), None
    if mode == "cuda":
        raise DeviceError(
            f"--hwaccel cuda: hardware decoding is not available: {why}",
            path=path,
            hint="use --hwaccel auto (falls back to software) or --hwaccel none",
        )
    return (
        HwDecode(mode, "none", why),
        f"--hwaccel auto: decoding in software ({why})",
    )


def open_with(decision: HwDecode, path: Path) -> av.container.InputContainer | None:
    """A container decoding through the decision's hardware, or None for software."""
    if decision.used != "cuda":
        return None
    return av.open(
        str(path), mode="r", options={"probesize": "50000000"}, **decision.open_options()
    )


def nvenc_status() -> dict[str, str]:
    """For each NVENC encoder: "ok", or why it can't be used here."""
    status: dict[str, str] = {}
    gpu = _gpu_name()
    for name in NVENC_ENCODERS:
        if name not in av.codecs_available:
            status[name] = "not in this FFmpeg build"
            continue
        try:
            ctx: Any = av.codec.CodecContext.create(name, "w")
            ctx.width, ctx.height = 256, 256
            ctx.pix_fmt = "yuv420p"
            ctx.time_base = Fraction(1, 25)
            ctx.framerate = Fraction(25)
            ctx.open()
            frame = av.VideoFrame(256, 256, "yuv420p")
            frame.pts = 0
            ctx.encode(frame)
            with contextlib.suppress(av.error.FFmpegError):
                ctx.encode(None)
            status[name] = "ok"
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            text = str(getattr(exc, "strerror", None) or exc)
            if gpu and _no_nvenc_unit(gpu):
                status[name] = f"{gpu} has no NVENC unit ({text})"
            elif gpu is None:
                status[name] = f"no NVIDIA GPU visible ({text})"
            else:
                status[name] = f"cannot open on {gpu} ({text})"
    return status


def _gpu_name() -> str | None:
    try:
        import torch

        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(0))
    except Exception:
        return None
    return None


def _no_nvenc_unit(gpu: str) -> bool:
    """Datacenter GPUs without video encoders (NVIDIA's NVENC support matrix)."""
    return any(tag in gpu for tag in ("H100", "H200", "H800", "A100", "A800", "B200", "GH200"))


def check_encoder_usable(codec: str) -> str | None:
    """None when `codec` can be used here; for NVENC names, why not (for a clear error)."""
    if codec not in NVENC_ENCODERS:
        return None
    why = nvenc_status().get(codec, "unknown")
    return None if why == "ok" else why
