"""The Python API: the same options as the CLI, as keyword arguments.

Options are resolved the way the CLI resolves them: a preset (or the defaults), then every
option the caller gave on top, checked by the preset checker, so a typo fails the same way
from Python, from the command line and from a job file.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsr.config import UpscaleOptions

if TYPE_CHECKING:
    from vsr.models.base import Processor
    from vsr.plan import ImagePlan, VideoPlan
    from vsr.presets import Preset
from vsr.errors import ConfigError, UsageError
from vsr.events import Notify, ProgressFn
from vsr.media.probe import MediaInfo
from vsr.media.probe import probe as _probe
from vsr.options import API_OPTIONS, OPTIONS, OVERRIDES, did_you_mean, option
from vsr.pipeline import UpscaleResult, upscale_file

# Where each option's value goes (vsr.options.Target): a preset key, the machine, the run.
OPTION_TARGETS = {o.name: o.target for o in OPTIONS}


def parse_tile(tile: int | str | None) -> int | None:
    """--tile N | auto | off -> ModelOptions.tile (0 means auto, None no tiling)."""
    if tile is None:
        return None
    if isinstance(tile, str):
        text = tile.strip().lower()
        if text == "auto":
            return 0
        if text in ("off", "none", "0"):
            return None
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"expected --tile N, 'auto' or 'off', got {tile!r}") from None
    return int(tile)


def split_preset(preset: str | None, encoder_preset: str | None) -> tuple[str | None, str | None]:
    """`--preset medium` is the encoder's speed unless a vsr preset is called that.

    ffmpeg users know `-preset` as x264's speed; vsr presets are whole jobs. Only the ten x264
    speed names are ambiguous, and a vsr preset of that name wins.
    """
    from vsr.presets import X26X_PRESETS, find_preset

    if preset is None or preset not in X26X_PRESETS:
        return preset, encoder_preset

    try:
        find_preset(preset)
    except ConfigError:
        return None, encoder_preset or preset
    return preset, encoder_preset


def resolve_preset(
    preset: str | Path | Preset | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    trusted_options: Iterable[str] | None = None,
) -> Preset:
    """A preset (name, path or object; None: the defaults) with `overrides` on top.

    `overrides` are preset keys (vsr.options.OVERRIDES); None means "not given". Every
    value goes through the preset checker, so a typo fails the same way from Python, the
    command line and a job file. A preset file's encoder options that name a file are refused
    unless the caller gives that key itself: ``trusted_options`` (default: the keys of
    ``overrides["encoder_options"]``, what the command line or the Python caller passed).
    """
    from vsr.presets import Preset, load_preset, merge, option_keys

    if trusted_options is None:
        trusted_options = option_keys((overrides or {}).get("encoder_options"))
    if preset is None:
        base = Preset(name="defaults")
    elif isinstance(preset, Preset):
        base = preset
    else:
        base = load_preset(preset, trusted_options=trusted_options)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "tile" in given:
        tile = parse_tile(given["tile"])
        given["tile"] = "off" if tile is None else tile
    return merge(base, given) if given else base


def options_from_preset(
    resolved: Preset, *, keep_manifest: bool = False, **run: Any
) -> UpscaleOptions:
    """The pipeline's options: the preset's job plus what presets don't hold.

    ``run`` holds the options of the table (vsr.options) that presets don't hold, by name: the
    machine's (device, batch, tile_overlap, compile, max_memory, set on ModelOptions) and the
    run's (overwrite, max_frames, color_path ..., set on UpscaleOptions); what is left out
    takes its default. ``keep_manifest`` keeps the resume manifest beside a finished output.
    """
    machine: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    for name, value in run.items():
        target = OPTION_TARGETS.get(name)
        if target not in ("model", "run"):
            raise TypeError(f"options_from_preset() got an unexpected keyword argument {name!r}")
        (machine if target == "model" else fields)[name] = value
    return UpscaleOptions(
        model=resolved.model_options(**machine),
        encode=resolved.encode_options(),
        filters=resolved.filter_spec(),
        height=resolved.height,
        temporal=resolved.temporal,
        max_seconds=resolved.duration,
        checkpoint_every=resolved.checkpoint_every or UpscaleOptions.checkpoint_every,
        keep_manifest=keep_manifest,
        **fields,
    )


def build_options(
    *,
    preset: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    **extras: Any,
) -> UpscaleOptions:
    """resolve_preset + options_from_preset: what the CLI and `upscale()` use."""
    return options_from_preset(resolve_preset(preset, overrides), **extras)


def upscale(
    input: str | Path,
    output: str | Path,
    *,
    progress: ProgressFn | None = None,
    notify: Notify | None = None,
    **options: Any,
) -> UpscaleResult:
    """Upscale a video or image file; see `vsr upscale --help` for every option.

    The keyword arguments are the options of vsr.options.OPTIONS (below); what is not given
    comes from the preset (or vsr's defaults). A misspelt keyword is a TypeError with a
    did-you-mean, a bad value a ConfigError naming the option.
    """
    given = _api_options(options)
    name, speed = split_preset(
        str(given["preset"]) if given["preset"] is not None else None, given["encoder_preset"]
    )
    overrides = {k: given[k] for k in OVERRIDES if k in given}
    overrides["model"] = str(given["model"]) if given["model"] is not None else None
    overrides["encoder_preset"] = speed
    encoder_options = given["encoder_options"]
    overrides["encoder_options"] = dict(encoder_options) if encoder_options else None
    run_options = {k: v for k, v in given.items() if OPTION_TARGETS[k] in ("model", "run")}
    built = build_options(preset=name, overrides=overrides, **run_options)
    return run(input, output, built, progress=progress, notify=notify)


def _api_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Every keyword of upscale(), the caller's or its default; TypeError for an unknown one."""
    for name in options:
        if name not in API_OPTIONS:
            hint = did_you_mean(name, API_OPTIONS)
            raise TypeError(
                f"upscale() got an unexpected keyword argument {name!r}"
                + (f" ({hint})" if hint else "")
            )
    return {name: options.get(name, option(name).api_default) for name in API_OPTIONS}


def _signature() -> inspect.Signature:
    """upscale()'s signature as help() and inspect show it: ``**options`` from the table."""
    written = inspect.signature(upscale)
    paths = [p for p in written.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    callbacks = [p for p in written.parameters.values() if p.kind is p.KEYWORD_ONLY]
    table = []
    for name in API_OPTIONS:
        opt = option(name)
        kinds = [t.__name__ for t in opt.accepts] + (["None"] if opt.api_default is None else [])
        table.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=opt.api_default,
                annotation=" | ".join(kinds),
            )
        )
    return written.replace(parameters=[*paths, *table, *callbacks])


def _options_doc() -> str:
    lines = ["", "    Options:", ""]
    for name in API_OPTIONS:
        opt = option(name)
        text = opt.help or (", ".join(opt.choices) if opt.choices else opt.expects)
        lines.append(f"        {name}: {text}")
    return "\n".join(lines)


upscale.__signature__ = _signature()  # type: ignore[attr-defined]
upscale.__doc__ = (upscale.__doc__ or "") + _options_doc()


def run(
    input: str | Path,
    output: str | Path,
    options: UpscaleOptions,
    *,
    progress: ProgressFn | None = None,
    notify: Notify | None = None,
    on_model: Callable[[Mapping[str, object]], None] | None = None,
    processor: Processor | None = None,
) -> UpscaleResult:
    """Upscale with a ready-made options object (what presets and batch jobs build).

    ``on_model`` is called once the model is loaded, with its resolved settings (device,
    precision, tiling ...): what a progress line shows. ``processor``: one already built for
    ``options.model`` (a cluster worker keeps its model loaded from file to file).
    """
    from vsr import preflight
    from vsr.models.registry import create_processor
    from vsr.outputs import check_paths

    input_path, output_path = Path(input), Path(output)
    # Cheap checks first, before a model loads, in the order a user fixes things: an existing
    # output must not hide a missing input, a non-media input or a misspelt checkpoint.
    preflight.check_input(input_path)
    preflight.check_model(options.model)
    check_paths(input_path, output_path, options.overwrite)
    preflight.check_output_folder(output_path)
    early: list[str] = []

    def keep_notice(message: str) -> None:
        early.append(message)
        if notify is not None:
            notify(message)

    if processor is None:
        processor = create_processor(options.model, notify=keep_notice)
    if on_model is not None:
        on_model(dict(processor.settings))
    tracker = preflight.SpaceTracker(input_path, output_path)
    with preflight.output_errors(tracker):
        result = upscale_file(
            input_path,
            output_path,
            options,
            processor,
            progress=tracker.wrap(progress),
            notify=notify,
        )
    # Notices from loading the model (resize to a non-native scale, forced tiling ...) and
    # from the processor while it ran (an out-of-memory back-off) belong in the summary too.
    later = [n for n in getattr(processor, "notices", []) if n not in early]
    result.notices[:0] = early
    result.notices.extend(n for n in later if n not in result.notices)
    return result


def probe(path: str | Path) -> MediaInfo:
    """The facts vsr sees in a file (streams, timing, colour, layout)."""
    return _probe(path)


def plan(input: str | Path, output: str | Path, options: UpscaleOptions) -> VideoPlan | ImagePlan:
    """What `run` would do with these options (sizes, encoder, streams, frame count, resume
    state), decided without decoding a frame, loading weights or writing anything: the plan
    `vsr upscale --dry-run` prints. Its `to_dict()` is JSON-able."""
    from vsr.plan import plan_file

    return plan_file(input, output, options)
