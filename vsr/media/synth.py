"""Writing a made-up clip: pictures from a function, sine-tone AAC tracks, chapters, a title.

`vsr sample` draws the pictures and picks the tracks; this module owns the encoding, so the
clip carries what real files carry (exact rational frame rate, BT.709 tags, language tags,
chapters) the way FFmpeg writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

_AUDIO_RATE = 48000
_CHUNK = 1024  # AAC's frame size


@dataclass(frozen=True)
class SynthClip:
    """What to write. ``picture(i)`` is frame i as (height, width, 3) uint8 RGB."""

    width: int
    height: int
    rate: Fraction
    frames: int
    picture: Callable[[int], np.ndarray]
    tones: tuple[tuple[str, float], ...]  # one stereo AAC track per (language, tone in Hz)
    chapters: tuple[tuple[int, int, str], ...]  # (start, end) in milliseconds, title
    title: str


def write_clip(path: Path, fmt: str, clip: SynthClip) -> None:
    """Write ``clip`` to ``path`` in the container ``fmt`` (H.264 CRF 20, BT.709 limited)."""
    with av.open(str(path), mode="w", format=fmt) as out:
        video = out.add_stream("libx264", rate=clip.rate)
        video.width, video.height, video.pix_fmt = clip.width, clip.height, "yuv420p"
        cc = video.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1
        cc.options = {"crf": "20", "preset": "fast"}
        audio = []
        for lang, _tone in clip.tones:
            a = out.add_stream("aac", rate=_AUDIO_RATE)
            a.layout = "stereo"
            a.metadata["language"] = lang
            audio.append(a)
        out.set_chapters(
            [
                {
                    "id": i,
                    "start": start,
                    "end": end,
                    "time_base": Fraction(1, 1000),
                    "metadata": {"title": title},
                }
                for i, (start, end, title) in enumerate(clip.chapters, start=1)
            ]
        )
        out.metadata["title"] = clip.title
        for i in range(clip.frames):
            frame = av.VideoFrame.from_ndarray(clip.picture(i), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace=1, dst_color_range=1)
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        samples = int(clip.frames / clip.rate * _AUDIO_RATE)
        for stream, (_lang, tone) in zip(audio, clip.tones, strict=True):
            for start in range(0, samples, _CHUNK):
                n = np.arange(start, start + _CHUNK) / float(_AUDIO_RATE)
                wave = (0.2 * np.sin(2 * np.pi * tone * n)).astype(np.float32)
                chunk = av.AudioFrame.from_ndarray(
                    np.stack([wave, wave]), format="fltp", layout="stereo"
                )
                chunk.sample_rate = _AUDIO_RATE
                chunk.pts = start
                out.mux(stream.encode(chunk))
            out.mux(stream.encode(None))
