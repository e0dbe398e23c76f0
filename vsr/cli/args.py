"""Argument groups that several commands share, and turning them into options.

`vsr upscale`, `bench`, `batch` and `preview` take the same model, filter and encoding
options; they are declared once here so that the commands cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from vsr.config import (
    COLOR_PATHS,
    DEFAULT_MODEL,
    ENCODER_BACKENDS,
    HWACCELS,
    PRECISIONS,
    TEMPORAL_MODES,
    UpscaleOptions,
    parse_key_values,
)
from vsr.errors import UsageError


def parse_memory(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    value = text.strip().lower().removesuffix("ib").removesuffix("b")
    factor = 1
    if value and value[-1] in units:
        factor = units[value[-1]]
        value = value[:-1]
    try:
        return int(float(value) * factor)
    except ValueError:
        raise UsageError(f"expected --max-memory like 4G or 512M, got {text!r}") from None


def add_checkpoint_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint-every",
        type=float,
        metavar="SECONDS",
        help="save finished work this often, so a killed job loses at most that much (default: 60)",
    )


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        help=f"model name (see 'vsr models list') or a .pth/.safetensors file "
        f"(default: {DEFAULT_MODEL})",
    )
    g.add_argument("--scale", type=float, help="output size / input size (default: the model's)")
    g.add_argument("--height", type=int, help="resize the result to this height (e.g. 1080)")
    g.add_argument("--tile", help="tile size in input pixels, 'auto' or 'off' (default: off)")
    g.add_argument("--tile-overlap", type=int, default=16, help="tile overlap in pixels")
    g.add_argument("--precision", choices=PRECISIONS, help="default: auto")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--batch", type=int, default=1, help="frames per forward pass")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (slow start)")
    g.add_argument("--max-memory", type=parse_memory, help="memory for --tile auto, e.g. 4G")
    g.add_argument("--temporal", choices=TEMPORAL_MODES, help="stabilize: steady textures")
    g.add_argument("--temporal-strength", type=float, help="0..1 (default: per model)")


def add_frame_path_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("frame path (decoder, device, encoder)")
    g.add_argument(
        "--color-path",
        choices=COLOR_PATHS,
        default="auto",
        help="tensor: frames cross as integer planes, colour on the model's device; swscale: "
        "float RGB made on the host (default auto: tensor wherever it applies; swscale for "
        "alpha, temporal models and --height)",
    )
    g.add_argument(
        "--hwaccel",
        choices=HWACCELS,
        default="auto",
        help="NVDEC hardware decoding: auto (when the model runs on CUDA and the codec allows; "
        "software otherwise, with a notice if it failed), cuda (or an error), none",
    )
    g.add_argument(
        "--encoder-backend",
        choices=ENCODER_BACKENDS,
        default="pyav",
        help="pyav (default), or ffmpeg: the system ffmpeg program encodes raw frames piped "
        "in (for encoders PyAV's FFmpeg lacks); same timestamps and final mux",
    )


def add_filter_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("restoration (before the model)")
    g.add_argument("--deinterlace", choices=("auto", "off", "tff", "bff"))
    g.add_argument(
        "--deinterlace-mode",
        choices=("frame", "field"),
        help="frame: one frame per frame; field: double rate",
    )
    g.add_argument("--deinterlacer", choices=("bwdif", "yadif"))
    g.add_argument("--crop", help="auto, off, or W:H:X:Y")
    g.add_argument(
        "--square-pixels",
        action="store_true",
        default=None,
        help="resample anamorphic video to square pixels",
    )
    g.add_argument("--denoise", help="off, atadenoise, fftdnoiz, nlmeans, hqdn3d")
    g.add_argument("--denoise-strength", type=float)


def add_encode_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("encoding")
    g.add_argument(
        "--preset",
        help="a vsr preset (see 'vsr presets list'), or an x264/x265 speed such as medium",
    )
    g.add_argument("--codec", help="video encoder (default: libx264; libx265 for >8-bit input)")
    g.add_argument("--crf", type=float, help="quality (default: 18 for x264/x265)")
    g.add_argument("--encoder-preset", help="the encoder's speed preset (default: medium)")
    g.add_argument("--pix-fmt", help="output pixel format (default: the source's)")
    g.add_argument(
        "--encoder-option",
        "-e",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any FFmpeg encoder option (repeatable), e.g. -e tune=animation",
    )


def options_from_args(args: argparse.Namespace) -> UpscaleOptions:
    """The pipeline options of `vsr upscale` and `vsr bench` arguments."""
    from vsr.api import build_options, split_preset

    preset, speed = split_preset(args.preset, args.encoder_preset)
    pairs = parse_key_values(args.encoder_option, "--encoder-option")
    options = build_options(
        preset=preset,
        overrides={
            "model": args.model,
            "scale": args.scale,
            "height": args.height,
            "tile": args.tile,
            "precision": args.precision,
            "temporal": args.temporal,
            "deinterlace": args.deinterlace,
            "deinterlace_mode": args.deinterlace_mode,
            "deinterlacer": args.deinterlacer,
            "crop": args.crop,
            "square_pixels": args.square_pixels,
            "denoise": args.denoise,
            "denoise_strength": args.denoise_strength,
            "codec": args.codec,
            "crf": args.crf,
            "encoder_preset": speed,
            "pix_fmt": args.pix_fmt,
            "encoder_options": dict(pairs) if pairs else None,
            "checkpoint_every": getattr(args, "checkpoint_every", None),
        },
        tile_overlap=args.tile_overlap,
        device=args.device,
        batch=args.batch,
        compile=args.compile,
        max_memory=args.max_memory,
        temporal_strength=args.temporal_strength,
        overwrite=getattr(args, "overwrite", False),
        skip_corrupt=getattr(args, "skip_corrupt", False),
        max_frames=getattr(args, "frames", None),
        segment_seconds=getattr(args, "segment_seconds", 30.0),
    )
    return with_frame_path(options, args)


def with_frame_path(options: UpscaleOptions, args: argparse.Namespace) -> UpscaleOptions:
    """The frame-path options (--color-path ...), which presets don't hold."""
    return dataclasses.replace(
        options,
        color_path=getattr(args, "color_path", "auto"),
        hwaccel=getattr(args, "hwaccel", "auto"),
        encoder_backend=getattr(args, "encoder_backend", "pyav"),
    )


def add_job_args(p: argparse.ArgumentParser) -> None:
    """--preset and the options that override it: the same as `vsr upscale`'s."""
    add_model_args(p)
    add_filter_args(p)
    add_encode_args(p)


def preset_from_args(args: argparse.Namespace) -> tuple[str | None, dict[str, object]]:
    """(vsr preset, overrides the user gave) from `vsr upscale`-style arguments."""
    from vsr.api import split_preset
    from vsr.batch import _OVERRIDE_KEYS

    preset, speed = split_preset(args.preset, args.encoder_preset)
    pairs = parse_key_values(args.encoder_option or [], "--encoder-option")
    overrides: dict[str, object] = {
        k: getattr(args, k, None) for k in _OVERRIDE_KEYS if k not in ("duration",)
    }
    overrides["encoder_preset"] = speed
    overrides["encoder_options"] = dict(pairs) if pairs else None
    return preset, {k: v for k, v in overrides.items() if v is not None}


def model_extra_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Model options presets do not hold; a value left at its default is not an override."""
    defaults = {"device": "auto", "batch": 1, "tile_overlap": 16, "compile": False}
    extra: dict[str, Any] = {}
    for key in ("device", "batch", "tile_overlap", "compile", "max_memory"):
        value = getattr(args, key, None)
        if value is not None and value != defaults.get(key):
            extra[key] = value
    return extra
