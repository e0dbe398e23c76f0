"""The Python API: the same options as the CLI, as keyword arguments."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from vsr.config import DEFAULT_MODEL, EncodeOptions, ModelOptions, Precision, UpscaleOptions
from vsr.media.probe import MediaInfo
from vsr.media.probe import probe as _probe
from vsr.pipeline import UpscaleResult, upscale_file


def parse_tile(tile: int | str | None) -> int | None:
    """--tile N | auto -> ModelOptions.tile (0 means auto)."""
    if tile is None:
        return None
    if isinstance(tile, str):
        if tile.strip().lower() == "auto":
            return 0
        try:
            return int(tile)
        except ValueError:
            from vsr.errors import UsageError

            raise UsageError(f"expected --tile N or 'auto', got {tile!r}") from None
    return int(tile)


def model_options(
    *,
    model: str = DEFAULT_MODEL,
    scale: float | None = None,
    tile: int | str | None = None,
    tile_overlap: int = 16,
    precision: Precision = "auto",
    device: str = "auto",
    batch: int = 1,
    compile: bool = False,
    max_memory: int | None = None,
) -> ModelOptions:
    return ModelOptions(
        name=str(model),
        scale=scale,
        tile=parse_tile(tile),
        tile_overlap=tile_overlap,
        precision=precision,
        device=device,
        batch=batch,
        compile=compile,
        max_memory=max_memory,
    )


def upscale(
    input: str | Path,
    output: str | Path,
    *,
    model: str | Path = DEFAULT_MODEL,
    scale: float | None = None,
    overwrite: bool = False,
    codec: str | None = None,
    crf: float | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
    encoder_options: Mapping[str, str] | None = None,
    skip_corrupt: bool = False,
    tile: int | str | None = None,
    tile_overlap: int = 16,
    precision: Precision = "auto",
    device: str = "auto",
    batch: int = 1,
    compile: bool = False,
    max_memory: int | None = None,
    max_frames: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> UpscaleResult:
    """Upscale a video or image file; see `vsr upscale --help` for every option."""

    options = UpscaleOptions(
        model=model_options(
            model=str(model),
            scale=scale,
            tile=tile,
            tile_overlap=tile_overlap,
            precision=precision,
            device=device,
            batch=batch,
            compile=compile,
            max_memory=max_memory,
        ),
        encode=EncodeOptions(
            codec=codec,
            crf=crf,
            preset=preset,
            pix_fmt=pix_fmt,
            options=tuple((encoder_options or {}).items()),
        ),
        overwrite=overwrite,
        skip_corrupt=skip_corrupt,
        max_frames=max_frames,
    )
    return run(input, output, options, progress=progress, notify=notify)


def run(
    input: str | Path,
    output: str | Path,
    options: UpscaleOptions,
    *,
    progress: Callable[[int, int | None], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> UpscaleResult:
    """Upscale with a ready-made options object (what presets and batch jobs build)."""
    from vsr.models.registry import create_processor
    from vsr.pipeline import check_paths

    # Cheap checks first: a missing input or an existing output fails before a model loads.
    check_paths(Path(input), Path(output), options.overwrite)
    if not Path(input).exists():
        from vsr.errors import InputNotFoundError

        raise InputNotFoundError("no such file", path=input)
    processor = create_processor(options.model, notify=notify)
    return upscale_file(input, output, options, processor, progress=progress, notify=notify)


def probe(path: str | Path) -> MediaInfo:
    """The facts vsr sees in a file (streams, timing, colour, layout)."""
    return _probe(path)
