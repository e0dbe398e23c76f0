"""Every user option of a job, written once: the table the CLI, presets, job files and the API read.

An option is one row of :data:`OPTIONS`: its name (the Python keyword, the job-file key, the
override name), its command-line flag and help, the preset key it sets (if any), the values it
takes and its default. From this table

- ``vsr.cli`` builds the argument groups of ``upscale``, ``bench``, ``batch`` and ``preview``
  and turns parsed arguments back into options;
- ``vsr.presets`` knows which preset key an override sets (``encoder_preset`` is
  ``[encode] preset``) and which keys a preset section holds;
- ``vsr.batch`` knows which keys a job file may hold and checks their types;
- ``vsr.api.upscale`` takes the options as keyword arguments (its signature is generated).

Adding an option is one row here plus what it does. This module is plain data and pure
functions: no argparse (only ``vsr.cli`` parses argv), no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Literal

from vsr.config import (
    COLOR_PATHS,
    DEFAULT_MODEL,
    ENCODER_BACKENDS,
    HWACCELS,
    PRECISIONS,
    TEMPORAL_MODES,
)
from vsr.errors import UsageError
from vsr.media.filters import DEINTERLACE_CHOICES, DEINTERLACE_MODES, DEINTERLACERS
from vsr.spelling import did_you_mean, edit_distance  # the look-ups of the table, re-exported

# The commands whose flags come from this table (others have only their own flags).
Command = Literal["upscale", "bench", "batch", "preview"]
JOB_COMMANDS: tuple[Command, ...] = ("upscale", "bench", "batch", "preview")
_ALL: frozenset[str] = frozenset(JOB_COMMANDS)
_DIRECT: frozenset[str] = frozenset({"upscale", "bench"})

# Where a value goes:
# - "preset": a preset key, merged over the preset (vsr.presets.merge); None means not given;
# - "model": a ModelOptions field presets don't hold (the machine: device, batch ...);
# - "run": an UpscaleOptions field of the same name presets don't hold;
# - "plan": how a job is planned (which preset, which container), not part of its options.
Target = Literal["preset", "model", "run", "plan"]
# How the command line takes it: a value, an on/off switch, or a repeatable value.
FlagKind = Literal["value", "switch", "append"]

# Argument groups, in the order the commands show them.
MODEL = "model"
FRAME_PATH = "frame path (decoder, device, encoder)"
RESTORATION = "restoration (before the model)"
ENCODING = "encoding"
GROUPS: tuple[str, ...] = (MODEL, FRAME_PATH, RESTORATION, ENCODING)


def _parse_workers(text: str) -> int | None:
    # "auto" is None: vsr.segments decides from the host's cores and the encoder.
    value = text.strip().lower()
    if value == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"expected --encode-workers N or 'auto', got {text!r}") from None


def _parse_memory(text: str) -> int:
    # The name shows in argparse's message for a bad value ("invalid _parse_memory value").
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


@dataclass(frozen=True)
class Option:
    """One user option: every fact the CLI, presets, job files and the API need about it."""

    name: str  # the Python keyword, the job-file key, the override name
    help: str | None = None
    flags: tuple[str, ...] = ()  # on the command line; () for none
    group: str | None = None  # argument group; None: among the command's own options
    commands: frozenset[str] = frozenset()  # the commands whose parser has the flag
    target: Target = "preset"
    preset: tuple[str | None, str] | None = None  # (section or None for top level, key)
    job: bool = False  # a job-file key (every preset target is one)
    api: bool = True  # a keyword of vsr.upscale()
    flag: FlagKind = "value"
    parse: Callable[[str], Any] | None = None  # the CLI's conversion (None: the string)
    choices: tuple[str, ...] | None = None
    default: Any = None  # what a job gets when nobody sets it
    metavar: str | None = None
    accepts: tuple[type, ...] = (str,)  # the types a job-file value may have ...
    expects: str = "a string"  # ... as an error names them
    help_in: tuple[tuple[str, str | None], ...] = ()  # (command, help) where a command differs
    default_in: tuple[tuple[str, Any], ...] = ()  # (command, default) where a command differs
    hidden: bool = False  # a flag for tests, left out of --help
    # The range a number must be in (checked where presets and job files are read), and
    # whether the low end is excluded ("above 0").
    bounds: tuple[float, float] | None = None
    above_low: bool = False

    @property
    def dest(self) -> str:
        """The attribute argparse stores the flag under (its first long flag)."""
        long = next((f for f in self.flags if f.startswith("--")), f"--{self.name}")
        return long[2:].replace("-", "_")

    def cli_default(self, command: str) -> Any:
        """The parsed value when the flag is not given: None (not given) for preset keys."""
        if self.flag == "append":
            return []
        if command in dict(self.default_in):
            return dict(self.default_in)[command]
        return None if self.target == "preset" else self.default

    @property
    def api_default(self) -> Any:
        """The keyword's default in vsr.upscale(): None (not given) for what a preset decides."""
        return None if self.target in ("preset", "plan") else self.default

    def help_for(self, command: str) -> str | None:
        return dict(self.help_in).get(command, self.help)


def _opt(name: str, help: str | None = None, **facts: Any) -> Option:
    """A row: flags default to --NAME; a preset key is a job-file key."""
    facts.setdefault("flags", (f"--{name.replace('_', '-')}",))
    if facts.get("target", "preset") == "preset":
        facts["job"] = True
    return Option(name, help, **facts)


_NUMBER: dict[str, Any] = {"accepts": (int, float), "expects": "a number"}
_INTEGER: dict[str, Any] = {"accepts": (int,), "expects": "an integer"}
_SWITCH: dict[str, Any] = {
    "flag": "switch",
    "accepts": (bool,),
    "expects": "true or false",
    "default": False,
}
_TEN_DAYS = 10 * 24 * 3600
_SECONDS: dict[str, Any] = {
    "bounds": (0, _TEN_DAYS),
    "above_low": True,
    "parse": float,
    "accepts": (int, float),
    "expects": "a number of seconds",
}

OPTIONS: tuple[Option, ...] = (
    # -- the command's own options (where each command places them among its other flags)
    _opt(
        "container",
        "output container for videos: mkv, mp4, mov, webm ...",
        commands=frozenset({"batch"}),
        target="plan",
        job=True,
        api=False,
        expects="an extension such as mkv or mp4",
    ),
    _opt(
        "overwrite",
        "replace an existing output",
        flags=("--overwrite", "-y"),
        commands=frozenset({"upscale", "batch", "preview"}),
        target="run",
        job=True,
        help_in=(("batch", "redo and replace outputs"), ("preview", "replace existing outputs")),
        **_SWITCH,
    ),
    _opt(
        "skip_corrupt",
        "repeat the previous frame for corrupt frames instead of stopping",
        commands=frozenset({"upscale", "batch"}),
        target="run",
        job=True,
        help_in=(("batch", "repeat frames over corrupt ones"),),
        **_SWITCH,
    ),
    # bench measures 30 frames unless told otherwise.
    _opt(
        "max_frames",
        "only the first N frames",
        flags=("--frames",),
        commands=_DIRECT,
        target="run",
        parse=int,
        help_in=(("bench", None),),
        default_in=(("bench", 30),),
        **_INTEGER,
    ),
    _opt(
        "segment_seconds",
        flags=("--segment-seconds",),
        commands=frozenset({"upscale"}),
        target="run",
        api=False,
        hidden=True,
        default=30.0,
        **_SECONDS,
    ),
    _opt(
        "allow_outside",
        "let a job file write to absolute paths outside its folder and -o",
        commands=frozenset({"batch"}),
        target="plan",
        api=False,
        **_SWITCH,
    ),
    _opt(
        "duration",
        "process only the first N seconds (used by `preview`)",
        flags=(),
        preset=(None, "duration"),
        **_SECONDS,
    ),
    _opt(
        "checkpoint_every",
        "save finished work this often, so a killed job loses at most that much (default: 60)",
        commands=frozenset({"upscale", "batch"}),
        preset=(None, "checkpoint_every"),
        metavar="SECONDS",
        default=60.0,
        **_SECONDS,
    ),
    # Scale-out (vsr.cluster): where a batch runs, not what it computes.
    _opt(
        "cluster",
        "run on Ray: 'ray' (a local Ray for this run), 'ray://HOST:PORT', or 'auto' "
        '(RAY_ADDRESS); needs pip install "vsr[ray]"',
        commands=frozenset({"batch"}),
        target="plan",
        api=False,
        metavar="ADDRESS",
    ),
    _opt(
        "workers",
        "with --cluster: worker processes, each holding the model once "
        "(default: one per GPU of the cluster, else one per CPU)",
        commands=frozenset({"batch"}),
        target="plan",
        api=False,
        parse=int,
        metavar="N",
        **_INTEGER,
    ),
    _opt(
        "chunk_seconds",
        "with --cluster: split videos longer than 1.5 chunks into keyframe-aligned chunks of "
        "about this much content, run on different workers (default: 30)",
        commands=frozenset({"batch"}),
        target="plan",
        api=False,
        metavar="SECONDS",
        default=30.0,
        **_SECONDS,
    ),
    # -- model
    _opt(
        "model",
        "model name (see 'vsr models list') or a .pth/.safetensors file "
        f"(default: {DEFAULT_MODEL})",
        group=MODEL,
        commands=_ALL,
        preset=("model", "name"),
        default=DEFAULT_MODEL,
        accepts=(str, PurePath),
        expects="a model name or checkpoint path",
    ),
    _opt(
        "scale",
        "output size / input size (default: the model's)",
        group=MODEL,
        commands=_ALL,
        preset=("model", "scale"),
        parse=float,
        bounds=(0, 16),
        above_low=True,
        **_NUMBER,
    ),
    _opt(
        "height",
        "resize the result to this height (e.g. 1080)",
        group=MODEL,
        commands=_ALL,
        preset=("output", "height"),
        parse=int,
        bounds=(16, 8640),
        **_INTEGER,
    ),
    _opt(
        "tile",
        "tile size in input pixels, 'auto' or 'off' (default: off)",
        group=MODEL,
        commands=_ALL,
        preset=("model", "tile"),
        default="off",
        bounds=(16, 16384),
        accepts=(str, int),
        expects='"off", "auto" or a number',
    ),
    _opt(
        "tile_overlap",
        "tile overlap in pixels",
        group=MODEL,
        commands=_ALL,
        target="model",
        job=True,
        parse=int,
        default=16,
        **_INTEGER,
    ),
    _opt(
        "precision",
        "default: auto",
        group=MODEL,
        commands=_ALL,
        preset=("model", "precision"),
        choices=PRECISIONS,
        default="auto",
    ),
    _opt(
        "device",
        "auto, cpu, cuda or cuda:N",
        group=MODEL,
        commands=_ALL,
        target="model",
        job=True,
        default="auto",
        expects='"auto", "cpu", "cuda" or "cuda:N"',
    ),
    _opt(
        "batch",
        "frames per forward pass",
        group=MODEL,
        commands=_ALL,
        target="model",
        job=True,
        parse=int,
        default=1,
        **_INTEGER,
    ),
    _opt(
        "compile",
        "torch.compile the model (slow start)",
        group=MODEL,
        commands=_ALL,
        target="model",
        **_SWITCH,
    ),
    _opt(
        "cuda_graphs",
        "on CUDA, record the model once per input shape and replay it (fewer kernel launches; "
        "with --compile: torch.compile's reduce-overhead mode)",
        group=MODEL,
        commands=_ALL,
        target="model",
        **_SWITCH,
    ),
    _opt(
        "max_memory",
        "memory for --tile auto, e.g. 4G",
        group=MODEL,
        commands=_ALL,
        target="model",
        parse=_parse_memory,
        **_INTEGER,
    ),
    _opt(
        "temporal",
        "stabilize: steady textures",
        group=MODEL,
        commands=_ALL,
        preset=("model", "temporal"),
        choices=TEMPORAL_MODES,
        default="off",
    ),
    _opt(
        "temporal_strength",
        "0..1 (default: per model)",
        group=MODEL,
        commands=_ALL,
        target="run",
        parse=float,
        **_NUMBER,
    ),
    # -- frame path
    _opt(
        "color_path",
        "tensor: frames cross as integer planes, colour on the model's device; swscale: "
        "float RGB made on the host (default auto: tensor wherever it applies; swscale for "
        "alpha, temporal models and --height)",
        group=FRAME_PATH,
        commands=_DIRECT,
        target="run",
        choices=COLOR_PATHS,
        default="auto",
    ),
    _opt(
        "hwaccel",
        "NVDEC hardware decoding: auto (when the model runs on CUDA and the codec allows; "
        "software otherwise, with a notice if it failed), cuda (or an error), none",
        group=FRAME_PATH,
        commands=_DIRECT,
        target="run",
        choices=HWACCELS,
        default="auto",
    ),
    _opt(
        "encoder_backend",
        "pyav (default), or ffmpeg: the system ffmpeg program encodes raw frames piped "
        "in (for encoders PyAV's FFmpeg lacks); same timestamps and final mux",
        group=FRAME_PATH,
        commands=_DIRECT,
        target="run",
        choices=ENCODER_BACKENDS,
        default="pyav",
    ),
    _opt(
        "encode_workers",
        "segments encoded side by side when the model outruns one encoder: N, or auto "
        "(default: one per 4 cores from 8 usable cores, at most 4; one for hardware encoders)",
        group=FRAME_PATH,
        commands=_DIRECT,
        target="run",
        parse=_parse_workers,
        metavar="N|auto",
        default=None,
        **_INTEGER,
    ),
    # -- restoration
    _opt(
        "deinterlace",
        group=RESTORATION,
        commands=_ALL,
        preset=("filters", "deinterlace"),
        choices=DEINTERLACE_CHOICES,
        default="off",
    ),
    _opt(
        "deinterlace_mode",
        "frame: one frame per frame; field: double rate",
        group=RESTORATION,
        commands=_ALL,
        preset=("filters", "deinterlace_mode"),
        choices=DEINTERLACE_MODES,
        default="frame",
    ),
    _opt(
        "deinterlacer",
        group=RESTORATION,
        commands=_ALL,
        preset=("filters", "deinterlacer"),
        choices=DEINTERLACERS,
        default="bwdif",
    ),
    _opt(
        "crop",
        "auto, off, or W:H:X:Y",
        group=RESTORATION,
        commands=_ALL,
        preset=("filters", "crop"),
        default="off",
        accepts=(str, list, tuple),
        expects='"off", "auto", "W:H:X:Y" or [w, h, x, y]',
    ),
    _opt(
        "square_pixels",
        "resample anamorphic video to square pixels",
        group=RESTORATION,
        commands=_ALL,
        preset=("filters", "square_pixels"),
        **_SWITCH,
    ),
    _opt(
        "denoise",
        "off, atadenoise, fftdnoiz, nlmeans, hqdn3d",
        group=RESTORATION,
        commands=_ALL,
        preset=("filters", "denoise"),
        default="off",
    ),
    _opt(
        "denoise_strength",
        group=RESTORATION,
        commands=_ALL,
        preset=("filters", "denoise_strength"),
        parse=float,
        bounds=(0, 10),
        above_low=True,
        default=1.0,
        **_NUMBER,
    ),
    # -- encoding
    _opt(
        "preset",
        "a vsr preset (see 'vsr presets list'), or an x264/x265 speed such as medium",
        group=ENCODING,
        commands=_ALL,
        target="plan",
        job=True,
        expects="a preset name or path",
    ),
    _opt(
        "codec",
        "video encoder (default: libx264; libx265 for >8-bit input)",
        group=ENCODING,
        commands=_ALL,
        preset=("encode", "codec"),
    ),
    _opt(
        "crf",
        "quality (default: 18 for x264/x265)",
        group=ENCODING,
        commands=_ALL,
        preset=("encode", "crf"),
        parse=float,
        bounds=(0, 63),
        **_NUMBER,
    ),
    # Named apart from --preset, which picks the vsr preset itself.
    _opt(
        "encoder_preset",
        "the encoder's speed preset (default: medium)",
        group=ENCODING,
        commands=_ALL,
        preset=("encode", "preset"),
    ),
    _opt(
        "pix_fmt",
        "output pixel format (default: the source's)",
        group=ENCODING,
        commands=_ALL,
        preset=("encode", "pix_fmt"),
    ),
    _opt(
        "encoder_options",
        "any FFmpeg encoder option (repeatable), e.g. -e tune=animation",
        flags=("--encoder-option", "-e"),
        group=ENCODING,
        commands=_ALL,
        preset=("encode", "options"),
        flag="append",
        metavar="KEY=VALUE",
        accepts=(dict,),
        expects="a table of key = value",
    ),
)

_BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


def option(name: str) -> Option:
    """The option called ``name``; KeyError for an unknown one."""
    return _BY_NAME[name]


def for_command(command: str, group: str | None) -> tuple[Option, ...]:
    """The options a command's parser has in one group (None: among its own flags), in order."""
    return tuple(o for o in OPTIONS if command in o.commands and o.group == group)


# The preset's [sections], in the table's order.
PRESET_SECTIONS: tuple[str, ...] = tuple(
    dict.fromkeys(o.preset[0] for o in OPTIONS if o.preset and o.preset[0] is not None)
)


def _job_order(opt: Option) -> int:
    # The preset first, then the preset keys section by section (top-level keys last), then
    # the machine and the run: the order job-file and override errors list them in.
    if opt.name == "preset":
        return 0
    if opt.preset is None:
        return 2 + len(PRESET_SECTIONS)
    return 1 + (*PRESET_SECTIONS, None).index(opt.preset[0])


_BY_JOB_ORDER = sorted(OPTIONS, key=_job_order)

OVERRIDES: dict[str, tuple[str | None, str]] = {o.name: o.preset for o in _BY_JOB_ORDER if o.preset}
"""Option name -> (section or None for the top level, key) of every option a preset holds."""


def preset_keys(section: str | None) -> tuple[str, ...]:
    """The keys a preset section holds (None: the top level's plain values)."""
    return tuple(key for sec, key in OVERRIDES.values() if sec == section)


JOB_OPTIONS: tuple[str, ...] = tuple(o.name for o in _BY_JOB_ORDER if o.job)
"""Every option a job file may set, at the top (for every job) or in a [[job]]."""

API_OPTIONS: tuple[str, ...] = tuple(o.name for o in OPTIONS if o.api)
"""Every keyword vsr.upscale() takes besides the paths and the callbacks."""

MODEL_DEFAULTS: dict[str, Any] = {o.name: o.default for o in OPTIONS if o.target == "model"}
"""The machine's options (ModelOptions fields presets don't hold), left at their default."""


def type_error(name: str, value: object) -> str | None:
    """Why a job-file value has the wrong type for option ``name``, or None when it fits.

    Only the type: ranges and choices are checked by the preset checker, whose messages name
    the preset key (``encode.crf``).
    """
    opt = _BY_NAME[name]
    bad_bool = isinstance(value, bool) and bool not in opt.accepts
    if bad_bool or not isinstance(value, opt.accepts):
        return f"expected {name} to be {opt.expects}, got {value!r}"
    return None


__all__ = [
    "API_OPTIONS",
    "GROUPS",
    "JOB_COMMANDS",
    "JOB_OPTIONS",
    "MODEL_DEFAULTS",
    "OPTIONS",
    "OVERRIDES",
    "PRESET_SECTIONS",
    "Option",
    "did_you_mean",
    "edit_distance",
    "for_command",
    "option",
    "preset_keys",
    "type_error",
]
