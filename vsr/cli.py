"""The command line: the one place that prints errors and picks exit codes."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import importlib
import json
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, NoReturn

from vsr import __version__
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
from vsr.errors import Interrupted, UsageError, VsrError


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line and exit code 2 like every other usage error.

    Prefixes of long options are not accepted (``--scal`` is not ``--scale``): a shortened
    flag in a script would silently change meaning the day another option starts the same
    way. A misspelt option or command gets a did-you-mean instead.
    """

    # Every parser that parsed, outermost first: the last is the (sub)command's own, whose
    # options are the ones a misspelt flag was meant to be.
    parsed: ClassVar[list[argparse.ArgumentParser]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        _Parser.parsed.append(self)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        parser = _Parser.parsed[-1] if _Parser.parsed else self
        guess = _guess(message, parser)
        see = f"see '{parser.prog} --help'"
        raise UsageError(f"{message} ({f'{guess} ' if guess else ''}{see})")


def _guess(message: str, parser: argparse.ArgumentParser) -> str | None:
    """'did you mean ...?' for an unknown option or an invalid choice (a command name)."""
    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        word, options = choice.group(1), re.findall(r"'([^']*)'", choice.group(2))
    else:
        unknown = re.search(r"unrecognized arguments: (.*)", message)
        flags = [w.split("=")[0] for w in (unknown.group(1).split() if unknown else ())]
        flags = [w for w in flags if w.startswith("--")]
        if not flags:
            return None
        word = flags[0]
        options = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def _parse_memory(text: str) -> int:
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


def _add_checkpoint_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint-every",
        type=float,
        metavar="SECONDS",
        help="save finished work this often, so a killed job loses at most that much (default: 60)",
    )


def _add_model_args(p: argparse.ArgumentParser) -> None:
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
    g.add_argument("--max-memory", type=_parse_memory, help="memory for --tile auto, e.g. 4G")
    g.add_argument("--temporal", choices=TEMPORAL_MODES, help="stabilize: steady textures")
    g.add_argument("--temporal-strength", type=float, help="0..1 (default: per model)")


def _add_frame_path_args(p: argparse.ArgumentParser) -> None:
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


def _add_filter_args(p: argparse.ArgumentParser) -> None:
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


def _add_encode_args(p: argparse.ArgumentParser) -> None:
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


def build_parser(wants_train: bool = False) -> argparse.ArgumentParser:
    parser = _Parser(prog="vsr", description="Video super-resolution, faithful to the source.")
    parser.add_argument("--version", action="version", version=f"vsr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    up = sub.add_parser("upscale", help="upscale a video or image file")
    up.add_argument("input")
    up.add_argument("-o", "--output", required=True)
    up.add_argument("--overwrite", "-y", action="store_true", help="replace an existing output")
    up.add_argument(
        "--skip-corrupt",
        action="store_true",
        help="repeat the previous frame for corrupt frames instead of stopping",
    )
    up.add_argument("--frames", type=int, help="only the first N frames")
    up.add_argument("--json", action="store_true", help="print a JSON summary")
    up.add_argument("--quiet", "-q", action="store_true", help="no progress bar or notices")
    up.add_argument("--segment-seconds", type=float, default=30.0, help=argparse.SUPPRESS)
    _add_checkpoint_arg(up)
    _add_model_args(up)
    _add_frame_path_args(up)
    _add_filter_args(up)
    _add_encode_args(up)

    pr = sub.add_parser("probe", help="show the facts vsr sees in a file")
    pr.add_argument("input")
    pr.add_argument("--json", action="store_true")

    be = sub.add_parser("bench", help="measure decode, model, encode and end-to-end speed")
    be.add_argument("input")
    be.add_argument("--frames", type=int, default=30)
    be.add_argument("--json", action="store_true")
    _add_model_args(be)
    _add_frame_path_args(be)
    _add_filter_args(be)
    _add_encode_args(be)

    from vsr.batch import add_batch_parser
    from vsr.preview import add_preview_parser

    add_batch_parser(sub)
    add_preview_parser(sub)
    if wants_train:
        from vsr.train import add_train_parser

        add_train_parser(sub)
    else:
        # Training brings torch along (a second of start-up); its full parser is only built
        # when the command is `train`.
        sub.add_parser("train", help="train or fine-tune the temporal model on your own clips")

    ev = sub.add_parser(
        "eval",
        help="measure an upscaled clip against its HR reference, or make the LR clip",
        description="vsr eval --reference HR.mp4 --test OUT.mp4 --scale N   (PSNR-Y, SSIM-Y, "
        "flicker)\nvsr eval --degrade HR.mp4 -o LR.mp4 --scale N   (make the LR input)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("--reference", help="the high-resolution original")
    ev.add_argument("--test", help="the upscaled clip to measure")
    ev.add_argument("--degrade", metavar="HR", help="make an LR clip from this HR clip")
    ev.add_argument("-o", "--output", help="where --degrade writes the LR clip")
    ev.add_argument("--scale", type=int, required=True)
    ev.add_argument("--frames", type=int, help="only the first N frames")
    ev.add_argument("--seed", type=int, default=0, help="--degrade: random seed")
    ev.add_argument("--blur", type=float, default=0.0, help="--degrade: blur sigma (pixels)")
    ev.add_argument("--noise", type=float, default=0.0, help="--degrade: noise sigma (0-255)")
    ev.add_argument("--jpeg", type=int, help="--degrade: JPEG quality 1-100")
    ev.add_argument("--crf", type=int, default=18, help="--degrade: H.264 CRF of the LR clip")
    ev.add_argument("--no-temporal", action="store_true", help="skip the flicker measurement")
    ev.add_argument("--overwrite", "-y", action="store_true")
    ev.add_argument("--json", action="store_true")

    ps = sub.add_parser("presets", help="list and show presets")
    psub = ps.add_subparsers(dest="presets_command", metavar="ACTION", parser_class=_Parser)
    psub.required = True
    pl = psub.add_parser("list", help="every preset, shipped and yours")
    pl.add_argument("--json", action="store_true")
    pw = psub.add_parser("show", help="one preset, resolved, as TOML")
    pw.add_argument("name")

    sa = sub.add_parser("sample", help="write a short sample clip to try vsr on")
    sa.add_argument("output", nargs="?", default="sample.mp4")
    sa.add_argument("--seconds", type=float, default=3.0)
    sa.add_argument("--size", default="480x270", help="WIDTHxHEIGHT")

    mo = sub.add_parser("models", help="list, describe and convert models")
    msub = mo.add_subparsers(dest="models_command", metavar="ACTION", parser_class=_Parser)
    msub.required = True
    ml = msub.add_parser("list", help="every model vsr knows")
    ml.add_argument("--json", action="store_true")
    mi = msub.add_parser("info", help="one model")
    mi.add_argument("name")
    mi.add_argument("--json", action="store_true")
    mc = msub.add_parser("convert", help="convert shipped weights ahead of time")
    mc.add_argument("names", nargs="*")
    mc.add_argument("--all", action="store_true")
    return parser


# -- commands ------------------------------------------------------------------------------


def _notifier(enabled: bool) -> Callable[[str], None]:
    def notify(message: str) -> None:
        if enabled:
            print(f"vsr: {message}", file=sys.stderr, flush=True)

    return notify


def _options_from_args(args: argparse.Namespace) -> UpscaleOptions:
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
    return _with_frame_path(options, args)


def _with_frame_path(options: UpscaleOptions, args: argparse.Namespace) -> UpscaleOptions:
    """The frame-path options (--color-path ...), which presets don't hold."""
    return dataclasses.replace(
        options,
        color_path=getattr(args, "color_path", "auto"),
        hwaccel=getattr(args, "hwaccel", "auto"),
        encoder_backend=getattr(args, "encoder_backend", "pyav"),
    )


class _Progress:
    """A tqdm bar on a terminal (frames, fps, ETA); nothing at all otherwise."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.bar: Any = None
        self.enabled = enabled and sys.stderr.isatty()
        self.label = label

    def describe(self, settings: Any) -> None:
        """Once the model is loaded: its device and precision join the label."""
        detail = " ".join(str(settings[k]) for k in ("device", "precision") if settings.get(k))
        if detail:
            self.label = f"{self.label} [{detail}]"
            if self.bar is not None:
                self.bar.set_description(self.label)

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            # A resumed job reports the frames already done first: the bar starts there, and
            # its rate counts only this run's frames.
            self.bar = tqdm(
                total=total,
                initial=done,
                unit="frame",
                desc=f"{self.label} (resumed at {done:,})" if done else self.label,
                dynamic_ncols=True,
                leave=False,
                file=sys.stderr,
            )
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def summary_line(result: Any) -> str:
    """One line for the end of a run, on a terminal or not (as FFmpeg prints its own)."""
    settings = result.settings
    how = ", ".join(
        str(v) for v in (result.model, settings.get("device"), settings.get("precision")) if v
    )
    return (
        f"vsr: {result.input} -> {result.output}: {result.frames} frames in "
        f"{result.seconds:.1f} s ({result.fps:.2f} fps; {how})"
    )


def cmd_upscale(args: argparse.Namespace) -> int:
    from vsr.api import run

    options = _options_from_args(args)
    show = not args.quiet
    progress = _Progress(show, os.path.basename(args.input))
    try:
        result = run(
            args.input,
            args.output,
            options,
            progress=progress,
            notify=_notifier(show and not args.json),
            on_model=progress.describe,
        )
    finally:
        progress.close()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    elif show:
        print(summary_line(result), file=sys.stderr)
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from vsr.media.probe import probe

    info = probe(args.input)
    data = info.to_dict()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"{data['path']}: {data['format']}, {_fmt_seconds(data['duration'])}")
    for s in data["streams"]:
        line = f"  #{s['index']} {s['type']}: {s['codec']}"
        if s["index"] == info.video.index:
            v = info.video
            rate = s["frame_rate"] or "?"
            line += (
                f", {v.width}x{v.height}, {s['pix_fmt']} ({v.bit_depth}-bit), "
                f"{rate} fps{' (VFR)' if v.vfr else ''}, {s['color_space']}/"
                f"{s['color_primaries']}/{s['color_trc']} {s['color_range']} range"
                f"{'' if v.color.tagged_matrix else ' (untagged, assumed)'}, "
                f"{v.field_order}, {v.frames if v.frames is not None else '?'} frames"
            )
            if v.rotation:
                line += f", rotated {v.rotation}°"
            if s["sample_aspect_ratio"] not in (None, "1/1", "0/1"):
                line += f", SAR {s['sample_aspect_ratio']}"
        elif s["type"] == "audio":
            line += f", {s.get('channels')} ch, {s.get('sample_rate')} Hz"
        for key in ("language", "title", "filename"):
            if s.get(key):
                line += f", {key} {s[key]!r}"
        print(line)
        if s["index"] == info.video.index and s.get("hdr"):
            print(f"      HDR: {info.video.hdr.describe()}")
    for c in data["chapters"]:
        print(f"  chapter {c['start']:.3f}-{c['end']:.3f} s {c['title'] or ''}")
    return 0


def _fmt_seconds(value: float | None) -> str:
    return "duration unknown" if value is None else f"{value:.3f} s"


def cmd_bench(args: argparse.Namespace) -> int:
    from vsr.bench import format_table, run_bench

    options = _options_from_args(args)
    report = run_bench(args.input, options, frames=args.frames)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_table(report))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from vsr.models import zoo
    from vsr.temporal.processor import list_temporal_models

    temporal = {str(r["name"]): r for r in list_temporal_models()}
    if args.models_command == "list":
        rows = [zoo.model_info(e) for e in zoo.list_models()]
        rows += [{**r, "cached": True} for r in temporal.values()]
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        header = ("name", "arch", "scale", "params", "licence", "source", "cached")
        table = [header] + [
            (
                str(r["name"]),
                str(r["architecture"]),
                f"x{r['scale']}",
                f"{int(r['params']):,}",
                str(r["license"]),
                str(r["source"]),
                "yes" if r["cached"] else "no",
            )
            for r in rows
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        print("\nAny ESRGAN/Compact .pth or .safetensors file works too: --model path/to/file")
        return 0
    if args.models_command == "info":
        info = temporal.get(args.name) or zoo.model_info(zoo.get_entry(args.name))
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            for key, value in info.items():
                print(f"{key}: {value}")
        return 0
    names = [e.name for e in zoo.list_models()] if args.all or not args.names else args.names
    notify = _notifier(True)
    for name in names:
        entry = zoo.get_entry(name)
        zoo.load_state_dict(entry, on_convert=notify)
        print(f"{entry.name}: cached")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if args.degrade:
        if args.reference or args.test or not args.output:
            raise UsageError("expected 'vsr eval --degrade HR -o LR.mp4 --scale N'")
        from vsr.degrade import Degradation, DegradeRound, degrade_file

        damage = DegradeRound(blur_sigma=args.blur, noise_sigma=args.noise, jpeg_quality=args.jpeg)
        made = degrade_file(
            args.degrade,
            args.output,
            scale=args.scale,
            degradation=Degradation(first=damage),
            crf=args.crf,
            seed=args.seed,
            overwrite=args.overwrite,
            max_frames=args.frames,
        )
        if args.json:
            print(
                json.dumps(
                    {
                        "output": str(made.output),
                        "frames": made.frames,
                        "width": made.width,
                        "height": made.height,
                    },
                    indent=2,
                )
            )
        else:
            print(f"{made.output}: {made.frames} frames, {made.width}x{made.height}")
        return 0
    if not (args.reference and args.test):
        raise UsageError("expected --reference HR and --test OUT (or --degrade HR -o LR)")
    from vsr.metrics import evaluate

    report = evaluate(
        args.reference,
        args.test,
        scale=args.scale,
        temporal=not args.no_temporal,
        max_frames=args.frames,
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from vsr import presets

    if args.presets_command == "show":
        print(presets.show_preset(args.name), end="")
        return 0
    rows = presets.list_presets()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": r.name,
                        "description": r.description,
                        "path": str(r.path),
                        "builtin": r.builtin,
                        "shadows": str(r.shadows) if r.shadows else None,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return 0
    width = max((len(r.name) for r in rows), default=4)
    for r in rows:
        where = "shipped" if r.builtin else f"yours ({r.path})"
        print(f"{r.name.ljust(width)}  {r.description}  [{where}]")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from vsr.sample import make_sample

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise UsageError(f"expected --size WIDTHxHEIGHT, got {args.size!r}") from None
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise UsageError(f"expected an even --size of at least 64x64, got {args.size}")
    if not 0 < args.seconds <= 600:
        raise UsageError(f"expected --seconds between 0 and 600, got {args.seconds}")
    path = make_sample(args.output, seconds=args.seconds, width=width, height=height)
    print(path)
    return 0


def _elsewhere(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A command that lives in another module, imported only when it runs (start-up time)."""

    def run(args: argparse.Namespace) -> int:
        command: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(module), name
        )
        return command(args)

    return run


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "upscale": cmd_upscale,
    "probe": cmd_probe,
    "bench": cmd_bench,
    "models": cmd_models,
    "sample": cmd_sample,
    "presets": cmd_presets,
    "eval": cmd_eval,
    "train": _elsewhere("vsr.train", "cmd_train"),
    "batch": _elsewhere("vsr.batch", "cmd_batch"),
    "preview": _elsewhere("vsr.preview", "cmd_preview"),
}


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that a run stops the same clean way."""


@contextlib.contextmanager
def _sigterm_stops_cleanly() -> Iterator[list[bool]]:
    """While the CLI runs, SIGTERM (kill, systemd, docker stop) acts like Ctrl-C.

    The handler raises in the main thread, where every ``except KeyboardInterrupt`` already
    cleans up (temporary files go, finished segments stay for a resume); the flag tells the
    exit code apart: 143, as a shell reports a process SIGTERM ended.
    """
    seen = [False]

    def handler(_signum: int, _frame: Any) -> None:
        if not seen[0]:
            seen[0] = True
            raise _Terminated

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding app): leave signals alone
        yield seen
        return
    try:
        yield seen
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    debug = bool(os.environ.get("VSR_DEBUG"))
    with _sigterm_stops_cleanly() as terminated:
        code = _main(argv, debug, terminated)
        # The pipeline and batch turn the interrupt into their own "stopped" result (130).
        return 143 if terminated[0] and code == Interrupted.exit_code else code


def _main(argv: Sequence[str] | None, debug: bool, terminated: list[bool]) -> int:
    try:
        words = list(sys.argv[1:] if argv is None else argv)
        _Parser.parsed.clear()
        args = build_parser(wants_train="train" in words[:1]).parse_args(words)
        return COMMANDS[args.command](args)
    except Interrupted as exc:
        print(f"{exc.message} (terminated)" if terminated[0] else exc.message, file=sys.stderr)
        return exc.exit_code
    except _Terminated:
        print("Aborted! (terminated)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("Aborted!", file=sys.stderr)
        return 130
    except VsrError as exc:
        if debug:
            raise
        print(f"vsr: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return 1
    except Exception as exc:
        if debug:
            raise
        print(
            f"vsr: error: unexpected {type(exc).__name__}: {exc} "
            "(rerun with VSR_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1
