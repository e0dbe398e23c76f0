"""The system-FFmpeg encoder back end (`--encoder-backend ffmpeg`), through ffmpeg-python.

For encoders PyAV's own FFmpeg lacks (or a newer FFmpeg's): each segment's frames, already
in the encoder's pixel format, are piped raw into `ffmpeg` running that encoder. FFmpeg sees
a constant-rate stream; every packet it writes is then mapped back, by frame index, to the
exact timestamps the frame had (VFR stays VFR), and those go into the segment's packet log,
which is all the final mux uses. So the output's timestamps, streams and final mux are the
same as with the PyAV back end.

It stands in for `OutputWriter` in segment mode (video only): `open`, `write_frame`,
`write_video_frame`, `write_packet` (nothing else is in a segment), `close`, `abort`,
`frames_written`, `packet_log`.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from vsr.errors import EncoderError
from vsr.media.color import from_rgb
from vsr.media.encode import VideoEncoding
from vsr.media.probe import MediaInfo

# FFmpeg's -colorspace/-color_* values are the same names ffprobe prints (ColorInfo.names()).
_TAG_OPTIONS = {
    "color_space": "colorspace",
    "color_primaries": "color_primaries",
    "color_trc": "color_trc",
    "color_range": "color_range",
}


def ffmpeg_binary() -> str:
    found = shutil.which("ffmpeg")
    if found is None:
        raise EncoderError(
            "--encoder-backend ffmpeg needs the ffmpeg program, and none is on PATH",
            hint="install FFmpeg (apt-get install ffmpeg) or use --encoder-backend pyav",
        )
    return found


def _raw_bytes(frame: av.VideoFrame) -> bytes:
    """The frame's planes without line padding: FFmpeg's rawvideo layout."""
    fmt = frame.format
    parts = []
    for index, plane in enumerate(frame.planes):
        comps = [c for c in fmt.components if c.plane == index]
        sample = 2 if max(c.bits for c in comps) > 8 else 1
        row = plane.width * len(comps) * sample
        data = np.frombuffer(memoryview(plane), dtype=np.uint8)
        parts.append(data.reshape(-1, plane.line_size)[: plane.height, :row].tobytes())
    return b"".join(parts)


class FfmpegSegmentWriter:
    """One segment's video, encoded by the system FFmpeg (see the module docstring)."""

    def __init__(
        self, path: Path, media: MediaInfo, encoding: VideoEncoding, width: int, height: int
    ) -> None:
        self.path = path
        self.media = media
        self.encoding = encoding
        self.width, self.height = width, height
        self.frames_written = 0
        self.packet_log: list[list[int | None]] = []
        self.reports: list[Any] = []
        self._stamps: list[tuple[int, int]] = []
        self._proc: subprocess.Popen[bytes] | None = None
        info = media.video
        self._rate = info.frame_rate if info.frame_rate else Fraction(25)

    def open(self) -> None:
        import ffmpeg

        binary = ffmpeg_binary()
        info = self.media.video
        stream = ffmpeg.input(
            "pipe:",
            format="rawvideo",
            pix_fmt=self.encoding.pix_fmt,
            s=f"{self.width}x{self.height}",
            framerate=str(self._rate),
        )
        out_args: dict[str, Any] = {
            "vcodec": self.encoding.codec,
            "pix_fmt": self.encoding.pix_fmt,
            "fps_mode": "passthrough",
            "format": "matroska",
            **dict(self.encoding.options),
        }
        for name, value in info.color.names().items():
            if value not in ("unknown", "unspecified"):
                out_args[_TAG_OPTIONS[name]] = value
        sar = info.sample_aspect_ratio
        if sar and sar != 1:
            stream = stream.filter("setsar", f"{sar.numerator}/{sar.denominator}")
        cmd = (
            ffmpeg.output(stream, str(self.path), **out_args)
            .global_args("-hide_banner", "-loglevel", "error", "-nostdin")
            .overwrite_output()
            .compile(cmd=binary)
        )
        try:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        except OSError as exc:
            raise EncoderError(f"cannot start {binary}: {exc}", path=self.path) from exc

    def write_frame(
        self, rgb: np.ndarray, alpha: np.ndarray | None, pts: int, duration: int = 0
    ) -> None:
        deep = rgb.dtype == np.uint16
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le" if deep else "rgb24")
        self.write_video_frame(
            from_rgb(frame, self.media.video.color, self.encoding.pix_fmt), pts, duration
        )

    def write_video_frame(self, frame: av.VideoFrame, pts: int, duration: int = 0) -> None:
        if frame.format.name != self.encoding.pix_fmt:
            frame = frame.reformat(format=self.encoding.pix_fmt)
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(_raw_bytes(frame))
        except (BrokenPipeError, OSError) as exc:
            raise self._failed() from exc
        self._stamps.append((pts, duration))
        self.frames_written += 1

    def write_packet(self, packet: av.Packet) -> None:
        """A segment holds video only (as with the PyAV back end)."""

    def _failed(self) -> EncoderError:
        err = b""
        if self._proc is not None:
            with contextlib.suppress(Exception):
                self._proc.kill()
                _, err = self._proc.communicate(timeout=10)
        text = err.decode("utf-8", "replace").strip().splitlines()
        last = text[-1] if text else f"exit code {self._proc.returncode if self._proc else '?'}"
        return EncoderError(f"ffmpeg ({self.encoding.codec}) failed: {last}", path=self.path)

    def close(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.close()
        err = proc.stderr.read() if proc.stderr is not None else b""
        proc.wait()
        if proc.returncode != 0:
            text = err.decode("utf-8", "replace").strip().splitlines()
            raise EncoderError(
                f"ffmpeg ({self.encoding.codec}) failed: {text[-1] if text else proc.returncode}",
                path=self.path,
            )
        self._map_timestamps()

    def _map_timestamps(self) -> None:
        """Each packet's frame index (from FFmpeg's constant-rate stamps) -> the real ones."""
        tb = self.media.video.time_base
        step = max(1, round(1 / (self._rate * tb)))
        stamps = self._stamps
        first = stamps[0][0] if stamps else 0

        def real(index: int) -> int:
            if index < 0:
                return first + index * step  # the encoder's decode delay before frame 0
            if index >= len(stamps):
                return stamps[-1][0] + (index - len(stamps) + 1) * step
            return stamps[index][0]

        packets: list[tuple[int, int | None, int]] = []
        with av.open(str(self.path)) as encoded:
            stream = encoded.streams.video[0]
            for packet in encoded.demux(stream):
                if not packet.size or packet.pts is None or packet.time_base is None:
                    continue
                index = round(float(packet.pts * packet.time_base * self._rate))
                dts_index = None
                if packet.dts is not None:
                    dts_index = round(float(packet.dts * packet.time_base * self._rate))
                packets.append((index, dts_index, int(packet.is_keyframe)))
        # Matroska keeps no decode times for the packets before the first frame's (the
        # encoder's reorder delay): they are the positions before it, as the encoder had them.
        delay = next((k for k, p in enumerate(packets) if p[1] is not None), len(packets))
        for position, (index, dts_index, key) in enumerate(packets):
            if dts_index is None:
                dts_index = position - delay
            duration = stamps[index][1] if 0 <= index < len(stamps) else 0
            self.packet_log.append([real(index), real(dts_index), duration or None, key])

    def abort(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(Exception):
                self._proc.kill()
                self._proc.communicate(timeout=10)


def system_encoding(codec: str, source_pix_fmt: str, options: Any) -> VideoEncoding:
    """Settings for an encoder only the system FFmpeg has (PyAV's FFmpeg can't check it).

    The pixel format is the source's when the encoder takes it (or --pix-fmt), else the
    encoder's first; --crf, --encoder-preset and -e options are passed through as given.
    """
    binary = ffmpeg_binary()
    try:
        text = subprocess.run(
            [binary, "-hide_banner", "-h", f"encoder={codec}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise EncoderError(f"cannot run {binary}: {exc}") from exc
    if "is not recognized" in text or f"Encoder {codec}" not in text:
        from vsr.errors import UsageError

        raise UsageError(f"unknown video encoder {codec!r} in PyAV's FFmpeg and in {binary}")
    formats: list[str] = []
    for line in text.splitlines():
        if "Supported pixel formats:" in line:
            formats = line.split(":", 1)[1].split()
    notices: list[str] = []
    if options.pix_fmt:
        pix_fmt = options.pix_fmt
    elif not formats or source_pix_fmt in formats:
        pix_fmt = source_pix_fmt
    else:
        pix_fmt = formats[0]
        notices.append(f"{codec} can't encode {source_pix_fmt}: encoding as {pix_fmt}")
    opts: dict[str, str] = {}
    if options.crf is not None:
        opts["crf"] = str(int(options.crf)) if float(options.crf).is_integer() else str(options.crf)
    if options.preset is not None:
        opts["preset"] = options.preset
    opts.update(dict(options.options))
    from vsr.media.probe import has_alpha

    return VideoEncoding(codec, pix_fmt, opts, has_alpha(pix_fmt), tuple(notices))
