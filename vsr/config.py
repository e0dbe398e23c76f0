"""Frozen, typed job descriptions, validated on construction.

The CLI, the Python API, presets and batch files all build these; nothing downstream re-checks
user input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vsr.errors import UsageError
from vsr.media.filters import FilterSpec

Precision = Literal["auto", "fp32", "fp16", "bf16"]
Temporal = Literal["off", "stabilize"]
TEMPORAL_MODES: tuple[str, ...] = ("off", "stabilize")
ColorPath = Literal["auto", "tensor", "swscale"]
COLOR_PATHS: tuple[str, ...] = ("auto", "tensor", "swscale")
HwAccel = Literal["auto", "cuda", "none"]
HWACCELS: tuple[str, ...] = ("auto", "cuda", "none")
EncoderBackend = Literal["pyav", "ffmpeg"]
ENCODER_BACKENDS: tuple[str, ...] = ("pyav", "ffmpeg")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
DEFAULT_MODEL = "realesr-animevideov3"

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class ModelOptions:
    """Which model runs and how (mirrors --model, --scale, --tile, --precision ...)."""

    name: str = DEFAULT_MODEL
    scale: float | None = None
    # None: no tiling; 0: pick automatically ("--tile auto"); N: tiles of N x N input pixels.
    tile: int | None = None
    tile_overlap: int = 16
    precision: Precision = "auto"
    device: str = "auto"
    batch: int = 1
    compile: bool = False
    # Record the forward pass as a CUDA graph per input shape and replay it (CUDA only).
    cuda_graphs: bool = False
    # Bytes the model may use for activations when picking a tile size; None: a safe share of
    # free RAM or VRAM.
    max_memory: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise UsageError("expected a model name or a checkpoint path, got an empty string")
        if self.scale is not None and not (0 < self.scale <= 16):
            raise UsageError(f"expected --scale between 0 and 16, got {self.scale}")
        if self.tile is not None and self.tile != 0 and self.tile < 16:
            raise UsageError(f"expected --tile of at least 16 pixels or 'auto', got {self.tile}")
        if self.tile_overlap < 0:
            raise UsageError(f"expected a tile overlap >= 0, got {self.tile_overlap}")
        if self.precision not in PRECISIONS:
            raise UsageError(
                f"expected --precision one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if not _DEVICE_RE.match(self.device):
            raise UsageError(f"expected --device auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.batch < 1:
            raise UsageError(f"expected --batch of at least 1, got {self.batch}")
        if self.max_memory is not None and self.max_memory <= 0:
            raise UsageError(f"expected --max-memory above 0, got {self.max_memory}")


@dataclass(frozen=True)
class EncodeOptions:
    """Video encoder settings (mirrors --codec, --crf, --preset, --pix-fmt, --encoder-option)."""

    codec: str | None = None  # None: libx264, or libx265 for >8-bit sources
    crf: float | None = None  # None: 18 for x264/x265, the codec's default elsewhere
    preset: str | None = None  # None: medium for x264/x265
    pix_fmt: str | None = None  # None: keep the source's bit depth and chroma layout
    options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.crf is not None and not (0 <= self.crf <= 63):
            raise UsageError(f"expected --crf between 0 and 63, got {self.crf}")
        for key, _value in self.options:
            if not key:
                raise UsageError("expected --encoder-option KEY=VALUE, got an empty key")


@dataclass(frozen=True)
class UpscaleOptions:
    """Everything `vsr upscale` needs besides the input and output paths."""

    model: ModelOptions = field(default_factory=ModelOptions)
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    overwrite: bool = False
    skip_corrupt: bool = False
    # Frames held between stages; bounds memory whatever the video's length.
    queue_size: int = 8
    # Only the first N frames (preview, bench); None: all.
    max_frames: int | None = None
    # Only the first N seconds (presets' `duration`); None: all.
    max_seconds: float | None = None
    # Resumable segments: one is closed after this much processing time, so that a killed
    # job loses at most that much work whatever the model's speed ...
    checkpoint_every: float = 60.0
    # ... or after this much content, whichever comes first.
    segment_seconds: float = 30.0
    # Keep the manifest after success, as the record batch jobs check "finished" against.
    keep_manifest: bool = False
    # Restoration filters before the model (deinterlace, crop, square pixels, denoise).
    filters: FilterSpec = field(default_factory=FilterSpec)
    # Resize the model's output to this height (width keeps the aspect ratio, even).
    height: int | None = None
    temporal: Temporal = "off"
    temporal_strength: float | None = None
    # How frames travel between decoder, model and encoder: "tensor" (integer planes, colour
    # on the model's device, vsr.graph), "swscale" (float RGB made on the host), or "auto"
    # (tensor wherever it applies: it measured faster on CUDA and on the CPU alike).
    color_path: ColorPath = "auto"
    # NVDEC: "auto" where the codec and a CUDA job allow it (software otherwise, announced when
    # it was tried and failed), "cuda" or an error, "none".
    hwaccel: HwAccel = "auto"
    # Who encodes the video: PyAV's FFmpeg, or the system's `ffmpeg` fed raw frames
    # (for encoders PyAV's build lacks); timestamps and the final mux are the same.
    encoder_backend: EncoderBackend = "pyav"
    # Segments encoded side by side (vsr.segments): N encoders, or None for auto (more than
    # one only on a many-core host, and never for a hardware encoder).
    encode_workers: int | None = None

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise UsageError(f"expected a queue size of at least 1, got {self.queue_size}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise UsageError(f"expected a duration above 0 s, got {self.max_seconds}")
        if self.height is not None and (self.height < 16 or self.height % 2):
            raise UsageError(f"expected an even --height of at least 16, got {self.height}")
        if self.temporal not in TEMPORAL_MODES:
            raise UsageError(
                f"expected --temporal one of {', '.join(TEMPORAL_MODES)}, got {self.temporal!r}"
            )
        if not self.checkpoint_every > 0:
            raise UsageError(
                f"expected --checkpoint-every above 0 seconds, got {self.checkpoint_every}"
            )
        if self.color_path not in COLOR_PATHS:
            raise UsageError(
                f"expected --color-path one of {', '.join(COLOR_PATHS)}, got {self.color_path!r}"
            )
        if self.hwaccel not in HWACCELS:
            raise UsageError(
                f"expected --hwaccel one of {', '.join(HWACCELS)}, got {self.hwaccel!r}"
            )
        if self.encoder_backend not in ENCODER_BACKENDS:
            raise UsageError(
                f"expected --encoder-backend one of {', '.join(ENCODER_BACKENDS)}, "
                f"got {self.encoder_backend!r}"
            )
        check_encode_workers(self.encode_workers)
        if self.segment_seconds <= 0:
            raise UsageError(f"expected a segment length above 0 s, got {self.segment_seconds}")
        if self.max_frames is not None and self.max_frames < 1:
            raise UsageError(f"expected --frames of at least 1, got {self.max_frames}")


MAX_ENCODE_WORKERS = 64


def check_encode_workers(value: int | None) -> None:
    """--encode-workers: None (auto) or 1 to `MAX_ENCODE_WORKERS` encoders."""
    if value is not None and not 1 <= value <= MAX_ENCODE_WORKERS:
        raise UsageError(
            f"expected --encode-workers between 1 and {MAX_ENCODE_WORKERS} or 'auto', got {value}"
        )


def parse_key_values(items: list[str] | tuple[str, ...], what: str) -> tuple[tuple[str, str], ...]:
    """Turn ["k=v", ...] into pairs, with an error naming the bad item."""
    pairs: list[tuple[str, str]] = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"expected {what} KEY=VALUE, got {item!r}")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def as_path(value: str | Path) -> Path:
    return value if isinstance(value, Path) else Path(value)
