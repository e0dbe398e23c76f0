"""HDR facts of a video stream (PQ, HLG, mastering display, light levels, HDR10+, Dolby Vision)
and how the static ones reach the output.

HDR metadata lives in two places, and players read either:

- **in the bitstream**: HEVC SEI messages (mastering display colour volume, content light
  level), AV1 metadata OBUs. Decoded frames carry them as side data. x265 and SVT-AV1 write
  them from their parameters (`master-display`, `max-cll`; `mastering-display`,
  `content-light`).
- **in the container**: the Matroska ``Colour`` element (``MasteringMetadata``, ``MaxCLL``,
  ``MaxFALL``) and the MP4 ``mdcv`` / ``clli`` boxes. FFmpeg's muxers write them from the
  stream's coded side data, which PyAV 18 can neither read nor set directly, but which it
  copies along with the rest of a stream's parameters in ``add_stream_from_template``.

So both directions go through Matroska, which FFmpeg reads and writes completely:
`container_metadata` copies a stream's parameters into an in-memory Matroska header and reads
the ``Colour`` and ``BlockAdditionMapping`` elements back (whatever the input container was),
and `metadata_carrier` rewrites the header of an encoded segment (a Matroska file) with the
source's ``Colour`` metadata, so that the final mux, templated on it, hands the values to
whichever muxer writes the output.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import av.error

TRC_PQ = 16  # SMPTE ST 2084
TRC_HLG = 18  # ARIB STD-B67

# Units of the HEVC SEI / x265 `master-display` / Matroska rounding: chromaticity in 1/50000,
# luminance in 1/10000 cd/m2.
CHROMA_UNIT = 50000
LUMA_UNIT = 10000

# Matroska element IDs (RFC 9559).
_EBML = 0x1A45DFA3
_SEGMENT = 0x18538067
_INFO = 0x1549A966
_TRACKS = 0x1654AE6B
_CLUSTER = 0x1F43B675
_TRACK_ENTRY = 0xAE
_TRACK_TYPE = 0x83
_VIDEO = 0xE0
_COLOUR = 0x55B0
_MAX_CLL = 0x55BC
_MAX_FALL = 0x55BD
_MASTERING = 0x55D0
# R x, R y, G x, G y, B x, B y, white x, white y, luminance max, luminance min
_MASTERING_IDS = (0x55D1, 0x55D2, 0x55D3, 0x55D4, 0x55D5, 0x55D6, 0x55D7, 0x55D8, 0x55D9, 0x55DA)
_CRC32 = 0xBF
_VOID = 0xEC
_BLOCK_ADDITION_MAPPING = 0x41E4
_BLOCK_ADD_ID_TYPE = 0x41E7
_BLOCK_ADD_ID_EXTRA = 0x41ED
_DOVI_TYPES = {int.from_bytes(t, "big") for t in (b"dvcC", b"dvvC", b"dvwC")}
_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"


@dataclass(frozen=True)
class MasteringDisplay:
    """SMPTE ST 2086 mastering display colour volume, in SEI units (see CHROMA/LUMA_UNIT)."""

    red: tuple[int, int]
    green: tuple[int, int]
    blue: tuple[int, int]
    white: tuple[int, int]
    max_luminance: int
    min_luminance: int

    def x265(self) -> str:
        """x265's `master-display` value (G, B, R order, SEI units)."""

        def xy(p: tuple[int, int]) -> str:
            return f"({p[0]},{p[1]})"

        return (
            f"G{xy(self.green)}B{xy(self.blue)}R{xy(self.red)}WP{xy(self.white)}"
            f"L({self.max_luminance},{self.min_luminance})"
        )

    def svtav1(self) -> str:
        """SVT-AV1's `mastering-display` value: the same layout in CIE xy and cd/m2."""

        def xy(p: tuple[int, int]) -> str:
            return f"({p[0] / CHROMA_UNIT:.5f},{p[1] / CHROMA_UNIT:.5f})"

        return (
            f"G{xy(self.green)}B{xy(self.blue)}R{xy(self.red)}WP{xy(self.white)}"
            f"L({self.max_luminance / LUMA_UNIT:.4f},{self.min_luminance / LUMA_UNIT:.4f})"
        )

    def to_dict(self) -> dict[str, Any]:
        def xy(p: tuple[int, int]) -> list[float]:
            return [p[0] / CHROMA_UNIT, p[1] / CHROMA_UNIT]

        return {
            "red": xy(self.red),
            "green": xy(self.green),
            "blue": xy(self.blue),
            "white_point": xy(self.white),
            "max_luminance": self.max_luminance / LUMA_UNIT,
            "min_luminance": self.min_luminance / LUMA_UNIT,
        }

    def describe(self) -> str:
        def xy(p: tuple[int, int]) -> str:
            return f"{p[0] / CHROMA_UNIT:.4f},{p[1] / CHROMA_UNIT:.4f}"

        return (
            f"R {xy(self.red)} G {xy(self.green)} B {xy(self.blue)} WP {xy(self.white)}, "
            f"{self.max_luminance / LUMA_UNIT:g}/{self.min_luminance / LUMA_UNIT:g} cd/m2"
        )

    @classmethod
    def from_floats(cls, values: list[float]) -> MasteringDisplay:
        """Matroska order: R x, R y, G x, G y, B x, B y, white x, y, max, min luminance."""
        c = [round(v * CHROMA_UNIT) for v in values[:8]]
        return cls(
            red=(c[0], c[1]),
            green=(c[2], c[3]),
            blue=(c[4], c[5]),
            white=(c[6], c[7]),
            max_luminance=round(values[8] * LUMA_UNIT),
            min_luminance=round(values[9] * LUMA_UNIT),
        )

    def floats(self) -> list[float]:
        c = [*self.red, *self.green, *self.blue, *self.white]
        return [v / CHROMA_UNIT for v in c] + [
            self.max_luminance / LUMA_UNIT,
            self.min_luminance / LUMA_UNIT,
        ]


@dataclass(frozen=True)
class LightLevel:
    """CTA-861.3 content light level: brightest pixel and brightest frame average, cd/m2."""

    max_cll: int
    max_fall: int


@dataclass(frozen=True)
class DolbyVision:
    """What the stream's Dolby Vision configuration record (dvcC) says, where there is one."""

    profile: int | None = None
    level: int | None = None
    rpu: bool = True
    enhancement_layer: bool = False
    # 0: no compatible base layer (profile 5, IPTPQc2); 1: HDR10; 2: SDR; 4: HLG; 6: BT.2020
    base_compatibility: int | None = None

    @property
    def base_layer(self) -> str | None:
        """What a player that ignores the RPU shows, when the configuration says so."""
        return {0: None, 1: "HDR10", 2: "SDR", 4: "HLG", 6: "BT.2020 SDR"}.get(
            self.base_compatibility if self.base_compatibility is not None else -1, "unknown"
        )

    def describe(self) -> str:
        if self.profile is None:
            return "Dolby Vision"
        compat = f".{self.base_compatibility}" if self.base_compatibility else ""
        return f"Dolby Vision profile {self.profile}{compat}"


@dataclass(frozen=True)
class HdrInfo:
    """HDR facts of a video stream; an SDR stream has every field empty."""

    transfer: str | None = None  # "pq" or "hlg"
    mastering: MasteringDisplay | None = None
    light_level: LightLevel | None = None
    hdr10_plus: bool = False
    dolby_vision: DolbyVision | None = None

    @property
    def is_hdr(self) -> bool:
        return self.transfer is not None

    @property
    def has_static_metadata(self) -> bool:
        return self.mastering is not None or self.light_level is not None

    @property
    def format(self) -> str | None:
        """The name players and shops use: Dolby Vision, HDR10+, HDR10, HLG, PQ."""
        if self.dolby_vision is not None:
            return "Dolby Vision"
        if self.transfer == "pq":
            if self.hdr10_plus:
                return "HDR10+"
            return "HDR10" if self.has_static_metadata else "PQ"
        if self.transfer == "hlg":
            return "HLG"
        return None

    def to_dict(self) -> dict[str, Any] | None:
        if not self.is_hdr and self.dolby_vision is None:
            return None
        dv = self.dolby_vision
        return {
            "format": self.format,
            "transfer": self.transfer,
            "mastering_display": self.mastering.to_dict() if self.mastering else None,
            "max_cll": self.light_level.max_cll if self.light_level else None,
            "max_fall": self.light_level.max_fall if self.light_level else None,
            "hdr10_plus": self.hdr10_plus,
            "dolby_vision": None
            if dv is None
            else {
                "profile": dv.profile,
                "level": dv.level,
                "rpu": dv.rpu,
                "enhancement_layer": dv.enhancement_layer,
                "base_layer": dv.base_layer,
            },
        }

    def describe(self) -> str:
        """One line for `vsr probe`."""
        parts = [self.format or "SDR"]
        if self.dolby_vision is not None:
            parts[0] = self.dolby_vision.describe()
            if self.dolby_vision.base_layer:
                parts.append(f"base layer {self.dolby_vision.base_layer}")
        if self.hdr10_plus and self.dolby_vision is not None:
            parts.append("HDR10+")
        if self.mastering is not None:
            parts.append(f"mastering display {self.mastering.describe()}")
        if self.light_level is not None:
            parts.append(
                f"MaxCLL {self.light_level.max_cll} cd/m2, MaxFALL {self.light_level.max_fall}"
                " cd/m2"
            )
        return ", ".join(parts)


SDR = HdrInfo()


# -- reading ----------------------------------------------------------------------------------


def transfer_name(trc: int) -> str | None:
    return {TRC_PQ: "pq", TRC_HLG: "hlg"}.get(trc)


def _rational(data: bytes, offset: int) -> float:
    num, den = struct.unpack_from("<ii", data, offset)
    return num / den if den else 0.0


def mastering_from_side_data(data: bytes) -> MasteringDisplay | None:
    """AVMasteringDisplayMetadata: primaries[3][2] (R, G, B), white[2], min, max luminance
    as AVRationals, then has_primaries and has_luminance."""
    if len(data) < 88:
        return None
    has_primaries, has_luminance = struct.unpack_from("<ii", data, 80)
    if not has_primaries or not has_luminance:
        return None
    values = [_rational(data, 8 * i) for i in range(10)]
    # FFmpeg stores min before max; Matroska order is max, min.
    return MasteringDisplay.from_floats([*values[:8], values[9], values[8]])


def light_level_from_side_data(data: bytes) -> LightLevel | None:
    if len(data) < 8:
        return None
    max_cll, max_fall = struct.unpack_from("<II", data, 0)
    return LightLevel(max_cll, max_fall)


def from_frame(frame: av.VideoFrame, trc: int, container: ContainerHdr | None = None) -> HdrInfo:
    """HDR facts from a decoded frame's side data, completed by the container's.

    The bitstream's values win where both exist, as in FFmpeg's decoders (they are what the
    picture was encoded with); the container's fill what the bitstream leaves out.
    """
    from av.sidedata.sidedata import Type

    mastering: MasteringDisplay | None = None
    light: LightLevel | None = None
    hdr10_plus = False
    dovi_rpu = False
    # Iterating gives the entries themselves (PyAV's stub types it as a str-keyed Mapping).
    side_data: Any = frame.side_data
    for sd in side_data:
        if sd.type == Type.MASTERING_DISPLAY_METADATA:
            mastering = mastering_from_side_data(bytes(sd))
        elif sd.type == Type.CONTENT_LIGHT_LEVEL:
            light = light_level_from_side_data(bytes(sd))
        elif sd.type == Type.DYNAMIC_HDR_PLUS:
            hdr10_plus = True
        elif sd.type in (Type.DOVI_RPU_BUFFER, Type.DOVI_METADATA):
            dovi_rpu = True
    container = container or ContainerHdr()
    dovi = container.dolby_vision
    if dovi is None and dovi_rpu:
        dovi = DolbyVision()
    return HdrInfo(
        transfer=transfer_name(trc),
        mastering=mastering or container.mastering,
        light_level=light or container.light_level,
        hdr10_plus=hdr10_plus,
        dolby_vision=dovi,
    )


@dataclass(frozen=True)
class ContainerHdr:
    """What a stream's parameters (container level) hold, as FFmpeg's Matroska muxer writes it."""

    mastering: MasteringDisplay | None = None
    light_level: LightLevel | None = None
    dolby_vision: DolbyVision | None = None


def container_metadata(stream: Any) -> ContainerHdr:
    """The stream-level HDR side data of any input stream (MP4 mdcv/clli/dvcC, Matroska
    Colour and BlockAdditionMapping, ...), read back from a Matroska header FFmpeg writes for
    a copy of the stream's parameters. Empty when the codec can't go into Matroska."""
    buffer = io.BytesIO()
    try:
        with av.open(buffer, mode="w", format="matroska") as out:
            out.add_stream_from_template(stream)
            out.start_encoding()
    except (av.error.FFmpegError, ValueError, TypeError):
        return ContainerHdr()
    return parse_matroska_header(buffer.getvalue())


def parse_matroska_header(data: bytes) -> ContainerHdr:
    """The first video track's Colour and Dolby Vision mapping in a Matroska file's header."""
    entry = _first_video_entry(data)
    if entry is None:
        return ContainerHdr()
    mastering = light = dovi = None
    cll = fall = None
    for eid, start, end in _children(data, *entry):
        if eid == _VIDEO:
            for vid, vstart, vend in _children(data, start, end):
                if vid != _COLOUR:
                    continue
                for cid, cstart, cend in _children(data, vstart, vend):
                    if cid == _MAX_CLL:
                        cll = _read_uint(data[cstart:cend])
                    elif cid == _MAX_FALL:
                        fall = _read_uint(data[cstart:cend])
                    elif cid == _MASTERING:
                        values = {
                            mid: _read_float(data[ms:me])
                            for mid, ms, me in _children(data, cstart, cend)
                        }
                        if all(m in values for m in _MASTERING_IDS):
                            mastering = MasteringDisplay.from_floats(
                                [values[m] for m in _MASTERING_IDS]
                            )
        elif eid == _BLOCK_ADDITION_MAPPING:
            fields = {fid: data[fs:fe] for fid, fs, fe in _children(data, start, end)}
            kind = _read_uint(fields.get(_BLOCK_ADD_ID_TYPE, b""))
            if kind in _DOVI_TYPES:
                dovi = dovi_from_record(fields.get(_BLOCK_ADD_ID_EXTRA, b""))
    if cll is not None or fall is not None:
        light = LightLevel(cll or 0, fall or 0)
    return ContainerHdr(mastering, light, dovi)


def dovi_from_record(record: bytes) -> DolbyVision:
    """ETSI/Dolby DOVIDecoderConfigurationRecord: version (2 bytes), then 7 bits profile,
    6 bits level, rpu, el, bl present flags, 4 bits base-layer compatibility id."""
    if len(record) < 5:
        return DolbyVision()
    bits = int.from_bytes(record[2:5], "big")
    return DolbyVision(
        profile=bits >> 17,
        level=(bits >> 11) & 0x3F,
        rpu=bool(bits >> 10 & 1),
        enhancement_layer=bool(bits >> 9 & 1),
        base_compatibility=(bits >> 4) & 0x0F,
    )


# -- writing ----------------------------------------------------------------------------------


def metadata_carrier(segment: Path, hdr: HdrInfo) -> av.container.InputContainer:
    """A Matroska file in memory: the segment's header and first cluster, with the source's
    mastering display and light levels in the video track's Colour element.

    Opened by FFmpeg, its video stream has the segment's parameters (codec, extradata, size,
    pixel format, colour tags: its first cluster is decoded to find them, as for the segment)
    plus the HDR side data; `add_stream_from_template` on it gives the output stream both.
    """
    with open(segment, "rb") as fh:
        data = fh.read(64 * 1024)
        header = _read_header(data, 0)
        if header is None or header[0] != _EBML:
            raise ValueError(f"{segment} is not a Matroska file")
        ebml_end = header[2]
        seg = _read_header(data, ebml_end)
        if seg is None or seg[0] != _SEGMENT:
            raise ValueError(f"{segment} has no Matroska segment")
        parts: list[bytes] = [data[:ebml_end]]
        body: list[bytes] = []
        pos = seg[1]
        while True:
            if len(data) < pos + 16:
                data += fh.read(pos + 64 * 1024 - len(data))
            element = _read_header(data, pos)
            if element is None:
                break
            eid, start, end = element
            if end > len(data):
                data += fh.read(end - len(data))
            if eid == _INFO:
                body.append(data[pos:end])
            elif eid == _TRACKS:
                body.append(_element(_TRACKS, _patch_tracks(data, start, end, hdr)))
            elif eid == _CLUSTER:
                body.append(data[pos:end])
                break
            pos = end
    parts.append(_id_bytes(_SEGMENT) + _UNKNOWN_SIZE + b"".join(body))
    return av.open(io.BytesIO(b"".join(parts)), mode="r", format="matroska")


def _patch_tracks(data: bytes, start: int, end: int, hdr: HdrInfo) -> bytes:
    out: list[bytes] = []
    for eid, s, e in _children(data, start, end):
        if eid in (_CRC32, _VOID):
            continue  # the checksum no longer matches; both are optional
        if eid == _TRACK_ENTRY and _is_video_entry(data, s, e):
            out.append(_element(_TRACK_ENTRY, _patch_entry(data, s, e, hdr)))
        else:
            out.append(_raw(data, eid, s, e))
    return b"".join(out)


def _patch_entry(data: bytes, start: int, end: int, hdr: HdrInfo) -> bytes:
    out: list[bytes] = []
    had_video = False
    for eid, s, e in _children(data, start, end):
        if eid == _BLOCK_ADDITION_MAPPING:
            continue  # never carry a Dolby Vision mapping into a re-encoded stream
        if eid == _VIDEO:
            had_video = True
            out.append(_element(_VIDEO, _patch_video(data, s, e, hdr)))
        else:
            out.append(_raw(data, eid, s, e))
    if not had_video:
        out.append(_element(_VIDEO, _colour(b"", hdr)))
    return b"".join(out)


def _patch_video(data: bytes, start: int, end: int, hdr: HdrInfo) -> bytes:
    out: list[bytes] = []
    had_colour = False
    for eid, s, e in _children(data, start, end):
        if eid == _COLOUR:
            had_colour = True
            kept = b"".join(
                _raw(data, cid, cs, ce)
                for cid, cs, ce in _children(data, s, e)
                if cid not in (_MAX_CLL, _MAX_FALL, _MASTERING)
            )
            out.append(_colour(kept, hdr))
        else:
            out.append(_raw(data, eid, s, e))
    if not had_colour:
        out.append(_colour(b"", hdr))
    return b"".join(out)


def _colour(kept: bytes, hdr: HdrInfo) -> bytes:
    extra = b""
    if hdr.light_level is not None:
        extra += _element(_MAX_CLL, _uint(hdr.light_level.max_cll))
        extra += _element(_MAX_FALL, _uint(hdr.light_level.max_fall))
    if hdr.mastering is not None:
        extra += _element(
            _MASTERING,
            b"".join(
                _element(mid, struct.pack(">d", value))
                for mid, value in zip(_MASTERING_IDS, hdr.mastering.floats(), strict=True)
            ),
        )
    return _element(_COLOUR, kept + extra)


# -- EBML -------------------------------------------------------------------------------------


def _read_vint(data: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int, bool] | None:
    if pos >= len(data):
        return None
    first = data[pos]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8 or pos + length > len(data):
        return None
    value = first if keep_marker else first & ((0x80 >> (length - 1)) - 1)
    for i in range(1, length):
        value = (value << 8) | data[pos + i]
    unknown = not keep_marker and value == (1 << (7 * length)) - 1
    return value, length, unknown


def _read_header(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(id, payload start, payload end); an unknown size runs to the end of the data."""
    eid = _read_vint(data, pos, keep_marker=True)
    if eid is None:
        return None
    size = _read_vint(data, pos + eid[1], keep_marker=False)
    if size is None:
        return None
    start = pos + eid[1] + size[1]
    end = len(data) if size[2] else start + size[0]
    return eid[0], start, end


def _children(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    pos = start
    while pos < end:
        header = _read_header(data, pos)
        if header is None:
            return
        eid, s, e = header
        yield eid, s, min(e, end)
        pos = e


def _first_video_entry(data: bytes) -> tuple[int, int] | None:
    for eid, start, end in _children(data, 0, len(data)):
        if eid != _SEGMENT:
            continue
        for sid, s, e in _children(data, start, end):
            if sid == _CLUSTER:
                return None
            if sid != _TRACKS:
                continue
            for tid, ts, te in _children(data, s, e):
                if tid == _TRACK_ENTRY and _is_video_entry(data, ts, te):
                    return ts, te
    return None


def _is_video_entry(data: bytes, start: int, end: int) -> bool:
    return any(
        eid == _TRACK_TYPE and _read_uint(data[s:e]) == 1
        for eid, s, e in _children(data, start, end)
    )


def _read_uint(payload: bytes) -> int:
    return int.from_bytes(payload, "big") if payload else 0


def _read_float(payload: bytes) -> float:
    if len(payload) == 4:
        return float(struct.unpack(">f", payload)[0])
    if len(payload) == 8:
        return float(struct.unpack(">d", payload)[0])
    return 0.0


def _uint(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _id_bytes(eid: int) -> bytes:
    return eid.to_bytes((eid.bit_length() + 7) // 8, "big")


def _element(eid: int, payload: bytes) -> bytes:
    # An 8-byte size field fits any payload and is valid EBML; the carrier is never stored.
    return _id_bytes(eid) + (0x01 << 56 | len(payload)).to_bytes(8, "big") + payload


def _raw(data: bytes, eid: int, start: int, end: int) -> bytes:
    return _element(eid, data[start:end])
