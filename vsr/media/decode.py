"""Demux and decode: video frames as RGB arrays with their timestamps, other packets as they are.

One pass over the file yields, in file order, decoded video frames (converted to RGB with the
stream's own matrix and range, at the source's bit depth) and untouched packets of every
stream that is copied or transcoded. Errors never make a frame vanish: a corrupt frame stops
the run, or with ``skip_corrupt`` the previous good frame is repeated at its timestamp so
that audio stays in sync, and the repeat is counted.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.bitstream
import av.error
import av.logging
import numpy as np

from vsr.errors import CorruptInputError, EmptyInputError
from vsr.media.avlog import errors_logged
from vsr.media.color import to_rgb
from vsr.media.filters import FilterChain
from vsr.media.probe import VideoInfo

# Demuxer log lines at ERROR level that mean the file is damaged or cut short.
_DAMAGE_HINTS = ("ended prematurely", "partial file", "packet corrupt", "truncat", "invalid")


ArraysFn = Callable[[av.VideoFrame], tuple[np.ndarray, np.ndarray | None]]


@dataclass
class DecodedFrame:
    index: int
    pts: int
    rgb: np.ndarray  # H x W x 3, uint8 or uint16, full-range RGB (packed planes in vsr.graph)
    alpha: np.ndarray | None  # H x W, same dtype, or None
    repeated: bool = False
    duration: int = 0  # in the stream's time base; 0 when the file doesn't say
    # Run through the model only to bring a temporal model's state to where an uninterrupted
    # run has it; never written (see OutputWindow).
    warmup: bool = False


@dataclass(frozen=True)
class OutputWindow:
    """The frames of one resumed pass, by *output* timestamp (after the restoration filters).

    Decoding starts at the input keyframe at or before `seek_pts` (source time base; None: from
    the start, no seek). Frames before `warmup_pts` are decoded and dropped; frames in
    [`warmup_pts`, `keep_pts`) are yielded marked `warmup`; decoding stops before `stop_pts`
    (None: at the end). Restoration filters see every decoded frame, so their own temporal
    state is warm too.
    """

    seek_pts: int | None
    warmup_pts: int | None
    keep_pts: int | None
    stop_pts: int | None


class SeekMissed(Exception):
    """The seek landed after the frames a window needs (a container with a coarse index):
    decode that window from the start instead."""


@dataclass
class DecodeStats:
    frames: int = 0
    repeated: int = 0
    damage: str | None = None


def rgb_format(info: VideoInfo) -> str:
    """The RGB layout that keeps the source's precision (and alpha)."""
    deep = info.bit_depth > 8
    if info.has_alpha:
        return "rgba64le" if deep else "rgba"
    return "rgb48le" if deep else "rgb24"


def frame_to_arrays(
    frame: av.VideoFrame, info: VideoInfo, fmt: str
) -> tuple[np.ndarray, np.ndarray | None]:
    # A mid-stream size change is scaled back to the stream's size: the encoder and the
    # model were set up for one size.
    array = to_rgb(frame, info.color, fmt, info.width, info.height).to_ndarray()
    if array.shape[-1] == 4:
        return np.ascontiguousarray(array[..., :3]), np.ascontiguousarray(array[..., 3])
    return array, None


class VideoReader:
    """Iterates a file once; see the module docstring for what it yields."""

    def __init__(
        self,
        container: av.container.InputContainer,
        info: VideoInfo,
        path: Path,
        *,
        copy_indices: set[int],
        skip_corrupt: bool = False,
        max_frames: int | None = None,
        start_pts: int | None = None,
        end_pts: int | None = None,
        first_index: int = 0,
        chain: FilterChain | None = None,
        out_info: VideoInfo | None = None,
        window: OutputWindow | None = None,
        arrays: ArraysFn | None = None,
    ) -> None:
        self.container = container
        self.info = info
        self.path = path
        self.copy_indices = copy_indices
        self.skip_corrupt = skip_corrupt
        self.max_frames = max_frames
        # A window [start_pts, end_pts) of presentation times: one resumable segment. The
        # decoder emits frames in presentation order, so the first frame at or past end_pts
        # means every frame of the window has been seen.
        self.start_pts = start_pts
        self.end_pts = end_pts
        self.first_index = first_index
        self.window = window
        self._first_decoded = True
        self._past_end = False
        self.stats = DecodeStats()
        # Restoration filters between decoder and model; `out_info` describes their output
        # (size, time base and rate change with crop, square pixels and field-rate output).
        self.chain = chain
        self.out_info = out_info or info
        self._fmt = rgb_format(info)
        # How a frame becomes arrays: RGB through swscale unless the device graph hands in
        # its own (the frame's planes, packed into a host buffer; see vsr.graph).
        self._arrays = arrays
        self._last: DecodedFrame | None = None
        self._last_good: av.VideoFrame | None = None
        self._missing: list[int] = []  # pts of frames that failed to decode, sorted
        # Presentation times of the demuxed video packets not yet matched by a frame (a
        # heap). They are the frame slots: after a decode error the slots a frame never came
        # for are the missing frames. The packet that fails is not the one whose frame is
        # lost: with B-frames and frame threads the error surfaces packets later.
        self._slots: list[int] = []
        self._errors = 0
        # Set once the decoder's output timestamps are seen to go backwards: the container
        # stores no real presentation times (AVI with B-frames), so frames, which the decoder
        # returns in display order, take the packets' times in sorted order instead.
        self._slot_order = False
        self._last_src_pts: int | None = None
        self._step = self._default_step(self.info)
        self._out_step = self._default_step(self.out_info)
        self.end_time: float | None = None  # set when max_frames cut the video short
        self._items: Generator[DecodedFrame | av.Packet, None, None] | None = None

    @staticmethod
    def _default_step(info: VideoInfo) -> int:
        rate = info.frame_rate or Fraction(25)
        step = 1 / (rate * info.time_base)
        return max(1, round(step))

    def _time(self, pts: int) -> float:
        return float(pts * self.info.time_base)

    def _corrupt(self, what: str, pts: int | None) -> CorruptInputError:
        index = self.first_index + self.stats.frames
        t = self._time(pts) if pts is not None else None
        at = f"frame {index}" + (f" ({t:.3f} s)" if t is not None else "")
        return CorruptInputError(
            f"{what} at {at}",
            path=self.path,
            hint="pass --skip-corrupt to repeat the previous frame and carry on",
            frame=index,
            time=t,
        )

    def __iter__(self) -> Iterator[DecodedFrame | av.Packet]:
        if self._items is None:
            self._items = self._iterate()
        return self._items

    def close(self) -> None:
        """Stop reading and switch FFmpeg's log capture off; call it before closing the file.

        Run it on the thread that decodes. While logs are captured, FFmpeg's decoder threads
        call into Python (they need the GIL) to report errors; closing the container frees
        the codec context, which waits for those threads while holding the GIL. Closing the
        reader first ends the capture, after which the threads never wait for the GIL.
        """
        if self._items is not None:
            with contextlib.suppress(ValueError):  # running on another thread: it ends itself
                self._items.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _iterate(self) -> Generator[DecodedFrame | av.Packet, None, None]:
        stream: Any = self.container.streams[self.info.index]
        if stream.codec_context.is_open:
            # A later segment of the same file: forget the previous window's state.
            stream.codec_context.flush_buffers()
        else:
            stream.thread_type = "AUTO"
        streams = [stream] + [
            s for s in self.container.streams if s.index in self.copy_indices and s is not stream
        ]
        demuxer = self.container.format.name
        with errors_logged(), av.logging.Capture(local=False) as logs:
            try:
                yield from self._run(stream, streams, logs, demuxer)
            finally:
                # Wait, with the GIL released, for the decoder's threads to go idle before
                # the capture ends: a thread still inside PyAV's log callback needs the GIL,
                # and one waiting for it when the container is closed (which frees the codec
                # context and joins its threads with the GIL held) deadlocks the close.
                if stream.codec_context.is_open:
                    with contextlib.suppress(av.error.FFmpegError):
                        stream.codec_context.flush_buffers()

    def _run(
        self,
        stream: av.video.VideoStream,
        streams: list[av.stream.Stream],
        logs: list[tuple[int, str, str]],
        demuxer: str,
    ) -> Iterator[DecodedFrame | av.Packet]:
        if self.start_pts is not None:
            self.container.seek(self.start_pts, stream=stream, backward=True, any_frame=False)
        elif self.window is not None and self.window.seek_pts is not None:
            try:
                self.container.seek(
                    self.window.seek_pts, stream=stream, backward=True, any_frame=False
                )
            except av.error.FFmpegError as exc:
                # A damaged index (a truncated MKV answers EPERM): decode from the start.
                raise SeekMissed(f"cannot seek to {self.window.seek_pts}: {exc}") from exc
        demux = self.container.demux(*streams)
        unpack = packed_bframes_filter(stream)
        # AVI keeps one time per packet, in decode order: with B-frames, FFmpeg's guessed
        # presentation times follow the packets, not the pictures. Without B-frames they are
        # exact, and a frame lost to damage keeps its own slot.
        self._slot_order = demuxer == "avi" and bool(stream.codec_context.has_b_frames)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                self._damaged(f"unreadable data ({exc.strerror or exc})")
                break
            if self._past_end:
                break
            if self._done():
                if packet.stream.index == stream.index:
                    continue
                if not self._before_end(packet):
                    continue
            if packet.stream.index != stream.index:
                if packet.size or packet.stream.type == "subtitle":
                    yield packet
                continue
            if packet.size == 0:
                # Theora in Ogg and some AVIs store "repeat previous" as empty packets;
                # the decoder rejects them, and dropping them is what FFmpeg does too.
                continue
            for ready in unpack.filter(packet) if unpack is not None else [packet]:
                yield from self._decode(stream, ready, logs)
            self._check_logs(logs, demuxer)
        if unpack is not None and not self._done():
            for ready in unpack.filter(None):
                yield from self._decode(stream, ready, logs)
        if not self._done():
            try:
                for frame in stream.decode(None):
                    yield from self._emit(frame)
            except av.error.FFmpegError as exc:
                if not self.skip_corrupt:
                    raise self._corrupt(f"corrupt video data ({exc})", None) from exc
                self._errors += 1
        self._slots_missing(self.end_pts)
        yield from self._fill_missing(self.end_pts)
        yield from self._drain_chain()
        if self._missing and self._last is None and self.start_pts is not None:
            raise self._corrupt("no frame of this part could be decoded", self._missing[0])
        if self._last is None and self.window is not None:
            raise self._corrupt("no frame of this part could be decoded", None)
        if self._last is None and self.start_pts is None:
            raise EmptyInputError(
                "has a video stream but no frame could be decoded", path=self.path
            )
        self._check_logs(logs, demuxer)

    def _decode(
        self, stream: av.video.VideoStream, packet: av.Packet, logs: list[tuple[int, str, str]]
    ) -> Iterator[DecodedFrame]:
        if packet.pts is not None and self._in_window(packet.pts):
            heapq.heappush(self._slots, packet.pts)
        try:
            frames = stream.decode(packet)
        except av.error.FFmpegError as exc:
            if not self.skip_corrupt:
                raise self._corrupt(
                    f"corrupt video data ({_last_line(logs, exc)})", packet.pts
                ) from exc
            self._errors += 1
            frames = []
        for frame in frames:
            yield from self._emit(frame)

    def _in_window(self, pts: int) -> bool:
        return (self.start_pts is None or pts >= self.start_pts) and (
            self.end_pts is None or pts < self.end_pts
        )

    def _slots_missing(self, before: int | None) -> None:
        """After a decode error, frame slots passed without a frame are missing frames."""
        while self._slots and (before is None or self._slots[0] < before):
            pts = heapq.heappop(self._slots)
            if self._errors and pts not in self._missing:
                bisect.insort(self._missing, pts)

    def _take_slot(self, pts: int | None) -> int | None:
        """The frame's presentation time, matched against the demuxed packets' times."""
        if not self._slot_order and pts is not None:
            if self._last_src_pts is None or pts > self._last_src_pts or not self._slots:
                self._slots_missing(pts)
                if self._slots and self._slots[0] == pts:
                    heapq.heappop(self._slots)
                return pts
            if self._errors:
                # A second frame for a time already shown (a concealed frame from a damaged
                # packet): dropped, its slot was filled already or will be.
                return None
            self._slot_order = True
        if self._slots:
            return heapq.heappop(self._slots)
        return pts

    def _done(self) -> bool:
        if self._past_end:
            return True
        return self.max_frames is not None and self.stats.frames >= self.max_frames

    def _before_end(self, packet: av.Packet) -> bool:
        if self.end_time is None or packet.pts is None or packet.time_base is None:
            return False
        return float(packet.pts * packet.time_base) < self.end_time

    def _check_logs(self, logs: list[tuple[int, str, str]], demuxer: str) -> None:
        for level, name, message in logs:
            if level <= av.logging.ERROR and name == demuxer:
                lowered = message.lower()
                if any(h in lowered for h in _DAMAGE_HINTS):
                    self._damaged(message.strip().rstrip("."))
        logs.clear()

    def _damaged(self, what: str) -> None:
        if self.stats.damage is None:
            self.stats.damage = what
        if not self.skip_corrupt:
            raise CorruptInputError(
                f"is damaged or truncated: {what} (after frame {self.stats.frames})",
                path=self.path,
                hint="pass --skip-corrupt to keep what can be decoded",
                frame=self.stats.frames,
            )

    def _emit(self, frame: av.VideoFrame) -> Iterator[DecodedFrame]:
        if (frame.pts is not None and self._last_src_pts is not None) or self._slots:
            pts = self._take_slot(frame.pts)
            if pts is None and frame.pts is not None:
                return
        else:
            pts = frame.pts
        if pts is None:
            pts = (self._last_src_pts + self._step) if self._last_src_pts is not None else 0
        self._last_src_pts = pts
        if self._first_decoded:
            self._first_decoded = False
            seek = self.window.seek_pts if self.window is not None else None
            if seek is not None and pts > seek:
                raise SeekMissed(f"the seek to {seek} landed at {pts}")
        if self.start_pts is not None and pts < self.start_pts:
            # Decoded only to reach the window (leading frames of an open GOP).
            return
        if self.end_pts is not None and pts >= self.end_pts:
            yield from self._fill_missing(self.end_pts)
            self._past_end = True
            return
        if frame.is_corrupt:
            if not self.skip_corrupt:
                raise self._corrupt("corrupt video frame (decoder had to conceal errors)", pts)
            if self._last_good is not None:
                yield from self._fill_missing(pts)
                yield from self._feed(self._last_good, pts, repeated=True)
                return
            # Nothing to repeat yet: the decoder's concealed picture is the best there is.
        yield from self._fill_missing(pts, fill=frame)
        self._last_good = frame
        yield from self._feed(frame, pts, repeated=False)

    def _fill_missing(
        self, before: int | None, fill: av.VideoFrame | None = None
    ) -> Iterator[DecodedFrame]:
        """Stand-ins for frames that failed to decode, in presentation order.

        Each repeats the previous good frame; before the first good frame there is none, so
        they wait and repeat the next good frame (`fill`) instead. None is ever dropped.
        """
        while self._missing and (before is None or self._missing[0] < before):
            if self.start_pts is not None and self._missing[0] < self.start_pts:
                self._missing.pop(0)  # belongs to the previous segment
                continue
            if self._done():
                self._missing.pop(0)  # past the requested frames
                continue
            source = self._last_good or fill
            if source is None:
                return
            yield from self._feed(source, self._missing.pop(0), repeated=True)

    def _feed(self, frame: av.VideoFrame, pts: int, *, repeated: bool) -> Iterator[DecodedFrame]:
        """Through the restoration filters (if any), then to RGB."""
        if self._done():
            return
        # The filter graph takes its own reference when a frame is pushed, so pushing the same
        # frame again with another timestamp (a repeat) is safe.
        frame.pts = pts
        if repeated:
            self.stats.repeated += 1
        outputs = self.chain.push(frame) if self.chain is not None else [frame]
        for out in outputs:
            yield from self._convert(out, repeated=repeated)

    def _drain_chain(self) -> Iterator[DecodedFrame]:
        if self.chain is not None:
            for out in self.chain.flush():
                yield from self._convert(out, repeated=False)

    def _convert(self, frame: av.VideoFrame, *, repeated: bool) -> Iterator[DecodedFrame]:
        if self._done() or frame.pts is None:
            return
        window = self.window
        warmup = False
        if window is not None:
            pts = int(frame.pts)
            if window.stop_pts is not None and pts >= window.stop_pts:
                self._past_end = True
                return
            if window.keep_pts is not None and pts < window.keep_pts:
                if window.warmup_pts is None or pts < window.warmup_pts:
                    return
                warmup = True
        if self._arrays is not None:
            rgb, alpha = self._arrays(frame)
        else:
            rgb, alpha = frame_to_arrays(frame, self.out_info, self._fmt)
        if warmup:
            # Not counted: the pass's frame numbers and limits are about written frames.
            duration = int(frame.duration or 0)
            yield DecodedFrame(-1, int(frame.pts), rgb, alpha, duration=duration, warmup=True)
            return
        out = DecodedFrame(
            self.first_index + self.stats.frames,
            int(frame.pts),
            rgb,
            alpha,
            repeated=repeated,
            duration=int(frame.duration or 0),
        )
        self._last = out
        self.stats.frames += 1
        if self._done():
            step = float(self._out_step * self.out_info.time_base)
            self.end_time = float(out.pts * self.out_info.time_base) + step
        yield out


def _last_line(logs: list[tuple[int, str, str]], exc: Exception) -> str:
    for _level, _name, message in reversed(logs):
        if message.strip():
            return message.strip().rstrip(".")
    return str(getattr(exc, "strerror", None) or exc)


def packed_bframes_filter(
    stream: av.stream.Stream,
) -> av.bitstream.BitStreamFilterContext | None:
    """FFmpeg's `mpeg4_unpack_bframes` for an MPEG-4 Part 2 stream, else None.

    DivX and Xvid (AVI era) pack a B-frame into the packet of the P-frame before it and leave
    a "not coded" placeholder in its slot, which breaks timestamps and muxing downstream. The
    filter restores one frame per packet; a stream without packed B-frames (no "DivX...p" user
    data) passes through it unchanged, so it is applied to every MPEG-4 Part 2 stream.
    """
    cc = stream.codec_context
    if stream.type != "video" or cc is None or cc.name != "mpeg4":
        return None
    try:
        return av.bitstream.BitStreamFilterContext("mpeg4_unpack_bframes", stream)
    except (av.error.FFmpegError, ValueError):
        return None


@dataclass(frozen=True)
class LostTail:
    """Video the header promises but that could not be read (a truncated file)."""

    seconds: float
    frames: int

    def to_dict(self) -> dict[str, float | int]:
        return {"seconds": round(self.seconds, 3), "frames": self.frames}


def lost_tail(video: VideoInfo, end_time: float | None) -> LostTail | None:
    """How much shorter than its header says the decoded video is, if more than a frame.

    `end_time`: where the last decoded frame ends, in seconds. The header's duration is the
    video stream's own where the container has one (MP4), else the file's (Matroska), which
    may run a little past the video with the audio: hence the tolerance.
    """
    if end_time is None or not video.duration:
        return None
    expected = (video.start_time or 0.0) + video.duration
    gap = expected - end_time
    rate = float(video.frame_rate) if video.frame_rate else 25.0
    if gap <= max(2.0 / rate, 0.1):
        return None
    # Rounded down a little: a Matroska duration that runs on with the audio adds a part.
    return LostTail(gap, max(1, int(gap * rate + 0.3)))
