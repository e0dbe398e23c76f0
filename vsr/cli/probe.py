"""`vsr probe INPUT`: the facts vsr sees in a file."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    pr: argparse.ArgumentParser = subparsers.add_parser(name, help=help)
    pr.add_argument("input")
    pr.add_argument("--json", action="store_true")
    return pr


def run(args: argparse.Namespace) -> int:
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
