"""The batch report on disk: ``vsr-report.json`` and a self-contained ``vsr-report.html``.

The HTML page needs nothing beside it: styles are inline and thumbnails are embedded as
base64 PNG. Each finished file gets a before/after picture of a frame from the middle of the
output: on top, the whole frame (input scaled by bicubic to the output size | the output),
below, a 1:1 crop from the centre of both (no resampling), where the model's detail shows.
Every name from the file system is escaped.
"""

from __future__ import annotations

import base64
import html
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from vsr.errors import OutputError, VsrError
from vsr.media.probe import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from vsr.batch import BatchReport, FileResult

REPORT_JSON = "vsr-report.json"
REPORT_HTML = "vsr-report.html"
THUMB_WIDTH = 320  # each half of the whole-frame row
CROP_HEIGHT = 160  # the 1:1 detail crop (THUMB_WIDTH wide), in output pixels


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.vsr-tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write the report ({exc.strerror or exc})", path=path) from exc


def write_reports(
    report: BatchReport, folder: str | Path, *, html: bool = True
) -> tuple[Path, Path | None]:
    """Write the JSON (and HTML) report into `folder`; returns their paths."""
    folder = Path(folder)
    data = report.to_dict()
    data["written"] = datetime.now(UTC).isoformat(timespec="seconds")
    json_path = folder / REPORT_JSON
    _atomic_write(json_path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
    html_path: Path | None = None
    if html:
        html_path = folder / REPORT_HTML
        _atomic_write(html_path, render_html(report).encode("utf-8"))
    return json_path, html_path


# --------------------------------------------------------------------------- thumbnails


def _read_rgb(path: Path, at: float | None) -> tuple[np.ndarray, float]:
    """(8-bit RGB, frame time) of a still, or of the video frame shown at ``at`` seconds
    (None: the middle of the video)."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        from vsr.image import read_image

        image = read_image(path)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        rgb = np.ascontiguousarray(image[..., 2::-1])
        if rgb.dtype == np.uint16:
            rgb = np.round(rgb.astype(np.float32) / 257.0).astype(np.uint8)
        return rgb, 0.0
    from vsr.media.frames import frame_rgb, grab_frame
    from vsr.media.probe import probe

    info = probe(path)
    if at is None:
        duration = info.video.duration or info.duration or 0.0
        at = duration / 2
    grabbed = grab_frame(path, at, info=info)
    return frame_rgb(grabbed.frame, info.video.color), grabbed.time - (info.video.start_time or 0.0)


def thumbnail(input_path: Path, output_path: Path) -> np.ndarray:
    """The before/after picture for one file (RGB uint8)."""
    from vsr.preview import bicubic_resize

    after, at = _read_rgb(output_path, None)
    before_src, _ = _read_rgb(
        input_path, at if input_path.suffix.lower() not in IMAGE_SUFFIXES else None
    )
    out_h, out_w = after.shape[:2]
    before = bicubic_resize(before_src, out_w, out_h)
    # Row 1: both whole frames at a fixed width.
    th = max(1, round(out_h * THUMB_WIDTH / out_w))
    small = [
        cv2.resize(img, (THUMB_WIDTH, th), interpolation=cv2.INTER_AREA) for img in (before, after)
    ]
    gap = np.full((th, 4, 3), 255, np.uint8)
    row1 = np.concatenate([small[0], gap, small[1]], axis=1)
    # Row 2: a 1:1 crop from the centre, where upscaling detail is visible.
    cw, ch = min(THUMB_WIDTH, out_w), min(CROP_HEIGHT, out_h)
    x0, y0 = (out_w - cw) // 2, (out_h - ch) // 2
    crops = []
    for img in (before, after):
        crop = np.full((ch, THUMB_WIDTH, 3), 255, np.uint8)
        crop[:, :cw] = img[y0 : y0 + ch, x0 : x0 + cw]
        crops.append(crop)
    gap2 = np.full((ch, 4, 3), 255, np.uint8)
    row2 = np.concatenate([crops[0], gap2, crops[1]], axis=1)
    sep = np.full((4, row1.shape[1], 3), 255, np.uint8)
    return np.concatenate([row1, sep, row2], axis=0)


def png_data_uri(rgb: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OutputError("OpenCV could not encode a thumbnail")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


# --------------------------------------------------------------------------- the page

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;background:#fafafa}
h1{font-size:1.4em}table{border-collapse:collapse;width:100%;background:#fff}
th,td{border:1px solid #ddd;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
.done{color:#11772d}.skipped{color:#555}.failed{color:#b00020;font-weight:bold}
.interrupted,.not-run{color:#a05a00}.reason{font-family:monospace;white-space:pre-wrap}
img{display:block;max-width:100%}.cap{font-size:12px;color:#666}
.path{font-family:monospace;word-break:break-all}
"""


def _cell(value: object, cls: str = "") -> str:
    text = "" if value is None else html.escape(str(value))
    return f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>"


def _thumb_html(result: FileResult) -> str:
    if result.status not in ("done", "skipped"):
        return ""
    try:
        uri = png_data_uri(thumbnail(result.job.input, result.job.output))
    except (VsrError, OSError, ValueError, cv2.error) as exc:
        return f'<span class="cap">no thumbnail: {html.escape(str(exc))}</span>'
    return (
        f'<img alt="before and after: {html.escape(result.job.output.name)}" src="{uri}">'
        '<span class="cap">left: input, bicubic to the output size · right: output · '
        "bottom: 1:1 centre crop</span>"
    )


def render_html(report: BatchReport) -> str:
    """The whole report as one self-contained HTML page."""
    summary: dict[str, Any] = report.to_dict()["summary"]
    rows: list[str] = []
    for r in report.results:
        status = r.status.replace(" ", "-")
        rows.append(
            "<tr>"
            f'<td class="path">{html.escape(str(r.job.input))}<br>&rarr; '
            f"{html.escape(str(r.job.output))}</td>"
            + _cell(r.job.preset.name)
            + _cell(r.frames, "num")
            + _cell(None if r.fps is None else f"{r.fps:.2f}", "num")
            + _cell(None if r.seconds is None else f"{r.seconds:.1f}", "num")
            + _cell(r.status, status)
            + _cell(r.reason, "reason")
            + f"<td>{_thumb_html(r)}</td>"
            "</tr>"
        )
    notices = "".join(f"<li>{html.escape(n)}</li>" for n in report.notices)
    counts = ", ".join(
        f"{summary[k]} {k.replace('_', ' ')}"
        for k in ("done", "skipped", "failed", "interrupted", "not_run")
        if summary[k] or k in ("done", "failed")
    )
    title = "vsr batch report"
    if report.output_dir is not None:
        title += f" — {report.output_dir}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p>{len(report.results)} files: {html.escape(counts)} in {report.seconds:.1f} s"
        f"{' — interrupted by Ctrl-C' if report.interrupted else ''}.</p>"
        + (f"<ul>{notices}</ul>" if notices else "")
        + "<table><thead><tr><th>file</th><th>preset</th><th>frames</th><th>fps</th>"
        "<th>seconds</th><th>result</th><th>reason</th><th>before / after</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></body></html>\n"
    )
