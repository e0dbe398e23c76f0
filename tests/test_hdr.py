"""HDR sources stay HDR: transfer, primaries, matrix, range, bit depth, mastering display and
content light levels reach MKV and MP4 outputs, both in the bitstream (HEVC SEI) and in the
container (Matroska Colour element, MP4 mdcv/clli boxes); Dolby Vision is never claimed.

Sources are made with FFmpeg's own libx265 (x265-params master-display / max-cll and the
colour tags). Outputs are read with PyAV and small readers of the container and bitstream
syntax below, never through vsr, like ffprobe would.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import clips
import pytest
from conftest import FAST, CliResult, check_one_error_line

from vsr.media import hdr as hdr_meta

Cli = Callable[..., CliResult]

# BT.2020 primaries, D65, 1000 / 0.005 cd/m2: x265's G B R WP L order, SEI units.
MASTER_DISPLAY = "G(8500,39850)B(6550,2300)R(35400,14600)WP(15635,16450)L(10000000,50)"
MASTERING = {
    "green": (8500, 39850),
    "blue": (6550, 2300),
    "red": (35400, 14600),
    "white": (15635, 16450),
    "max_luminance": 10000000,
    "min_luminance": 50,
}
MAX_CLL = (1000, 400)
PQ_TAGS = {"colorspace": 9, "color_primaries": 9, "color_trc": 16, "color_range": 1}
HLG_TAGS = {"colorspace": 9, "color_primaries": 9, "color_trc": 18, "color_range": 1}


def hdr10_clip(directory: Path, ext: str = "mkv", name: str = "hdr10") -> Path:
    params = f"log-level=error:master-display={MASTER_DISPLAY}:max-cll={MAX_CLL[0]},{MAX_CLL[1]}"
    return clips.write_video(
        directory / f"{name}.{ext}",
        frames=6,
        codec="libx265",
        pix_fmt="yuv420p10le",
        color=PQ_TAGS,
        options={"x265-params": params},
    ).path


def hlg_clip(directory: Path, ext: str = "mkv") -> Path:
    return clips.write_video(
        directory / f"hlg.{ext}",
        frames=6,
        codec="libx265",
        pix_fmt="yuv420p10le",
        color=HLG_TAGS,
    ).path


# -- readers (no vsr) -------------------------------------------------------------------------


def _sei_payloads(nal: bytes) -> dict[int, bytes]:
    """payload type -> payload of an HEVC prefix SEI NAL unit (emulation prevention removed)."""
    raw = bytearray()
    zeros = 0
    for b in nal[2:]:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        raw.append(b)
        zeros = zeros + 1 if b == 0 else 0
    out: dict[int, bytes] = {}
    pos = 0
    while pos < len(raw) and raw[pos] != 0x80:
        kind = size = 0
        while raw[pos] == 0xFF:
            kind += 255
            pos += 1
        kind += raw[pos]
        pos += 1
        while raw[pos] == 0xFF:
            size += 255
            pos += 1
        size += raw[pos]
        pos += 1
        out[kind] = bytes(raw[pos : pos + size])
        pos += size
    return out


def bitstream_hdr(path: Path) -> dict[str, Any]:
    """Mastering display (SEI 137) and content light level (SEI 144) of the first keyframe."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if not packet.size or not packet.is_keyframe:
                continue
            data, pos, found = bytes(packet), 0, {}
            while pos + 4 <= len(data):
                size = int.from_bytes(data[pos : pos + 4], "big")
                nal = data[pos + 4 : pos + 4 + size]
                pos += 4 + size
                if nal and (nal[0] >> 1) & 0x3F == 39:
                    found.update(_sei_payloads(nal))
            result: dict[str, Any] = {}
            if 137 in found:
                v = struct.unpack(">8HII", found[137])
                result["mastering"] = {
                    "green": (v[0], v[1]),
                    "blue": (v[2], v[3]),
                    "red": (v[4], v[5]),
                    "white": (v[6], v[7]),
                    "max_luminance": v[8],
                    "min_luminance": v[9],
                }
            if 144 in found:
                result["max_cll"] = struct.unpack(">HH", found[144])
            return result
    return {}


def _ebml(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out, pos = [], start
    while pos < end:
        n = 1
        while not data[pos] & (0x80 >> (n - 1)):
            n += 1
        eid = int.from_bytes(data[pos : pos + n], "big")
        m = 1
        while not data[pos + n] & (0x80 >> (m - 1)):
            m += 1
        size = int.from_bytes(data[pos + n : pos + n + m], "big") & ((1 << (7 * m)) - 1)
        body = pos + n + m
        if size == (1 << (7 * m)) - 1:
            size = end - body
        out.append((eid, body, min(body + size, end)))
        pos = body + size
    return out


def mkv_container_hdr(path: Path) -> dict[str, Any]:
    """The video track's Colour element (and whether a Dolby Vision mapping is there)."""
    data = path.read_bytes()
    result: dict[str, Any] = {"dolby_vision": False}
    for eid, s, e in _ebml(data, 0, len(data)):
        if eid != 0x18538067:
            continue
        for sid, ss, se in _ebml(data, s, e):
            if sid == 0x1F43B675:
                break
            if sid != 0x1654AE6B:
                continue
            for tid, ts, te in _ebml(data, ss, se):
                if tid != 0xAE:
                    continue
                for cid, cs, ce in _ebml(data, ts, te):
                    if cid == 0x41E4:
                        result["dolby_vision"] = True
                    if cid != 0xE0:
                        continue
                    for vid, vs, ve in _ebml(data, cs, ce):
                        if vid == 0x55B0:
                            result.update(_colour(data, vs, ve))
    return result


def _colour(data: bytes, start: int, end: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fields = {eid: data[s:e] for eid, s, e in _ebml(data, start, end)}
    if 0x55BC in fields:
        out["max_cll"] = (
            int.from_bytes(fields[0x55BC], "big"),
            int.from_bytes(fields.get(0x55BD, b""), "big"),
        )
    if 0x55D0 in fields:
        start, end = data.find(fields[0x55D0], start), 0
        end = start + len(fields[0x55D0])
        floats = {}
        for eid, s, e in _ebml(data, start, end):
            fmt = ">d" if e - s == 8 else ">f"
            floats[eid] = struct.unpack(fmt, data[s:e])[0]

        def xy(i: int) -> tuple[int, int]:
            return round(floats[i] * 50000), round(floats[i + 1] * 50000)

        out["mastering"] = {
            "red": xy(0x55D1),
            "green": xy(0x55D3),
            "blue": xy(0x55D5),
            "white": xy(0x55D7),
            "max_luminance": round(floats[0x55D9] * 10000),
            "min_luminance": round(floats[0x55DA] * 10000),
        }
    return out


def mp4_container_hdr(path: Path) -> dict[str, Any]:
    """The mdcv and clli boxes of the moov box (ISO/IEC 14496-12; ST 2086 / CTA-861.3)."""
    data = path.read_bytes()
    pos, moov = 0, b""
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == b"moov":
            moov = data[pos : pos + size]
        pos += size if size else len(data)
    result: dict[str, Any] = {"dolby_vision": b"dvcC" in moov or b"dvvC" in moov}
    i = moov.find(b"mdcv")
    if i > 0:
        v = struct.unpack(">8HII", moov[i + 4 : i + 28])
        result["mastering"] = {
            "green": (v[0], v[1]),
            "blue": (v[2], v[3]),
            "red": (v[4], v[5]),
            "white": (v[6], v[7]),
            "max_luminance": v[8],
            "min_luminance": v[9],
        }
    i = moov.find(b"clli")
    if i > 0:
        result["max_cll"] = struct.unpack(">HH", moov[i + 4 : i + 8])
    return result


def container_hdr(path: Path) -> dict[str, Any]:
    matroska = path.suffix in (".mkv", ".webm")
    return mkv_container_hdr(path) if matroska else mp4_container_hdr(path)


def signal(path: Path) -> dict[str, Any]:
    """Transfer, primaries, matrix, range, pixel format and bit depth of the decoded frames."""
    read = clips.read_video(path, pixels=False)
    depth = max(c.bits for c in av.VideoFormat(read.pix_fmt).components)
    return {**read.color, "pix_fmt": read.pix_fmt, "bit_depth": depth}


# -- tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("src_ext", "out_ext"), [("mkv", "mkv"), ("mkv", "mp4"), ("mp4", "mkv")])
def test_hdr10_output_keeps_signal_and_metadata(
    cli: Cli, tmp_path: Path, src_ext: str, out_ext: str
) -> None:
    src = hdr10_clip(tmp_path, src_ext)
    out = tmp_path / f"out.{out_ext}"
    result = cli("upscale", src, "-o", out, *FAST, "--json")
    assert result.code == 0, result.err
    # The source: SEI only (PyAV's muxer gets no side data from libx265).
    assert bitstream_hdr(src) == {"mastering": MASTERING, "max_cll": MAX_CLL}
    assert signal(out) == signal(src) == {**PQ_TAGS, "pix_fmt": "yuv420p10le", "bit_depth": 10}
    assert bitstream_hdr(out) == {"mastering": MASTERING, "max_cll": MAX_CLL}
    assert container_hdr(out) == {
        "mastering": MASTERING,
        "max_cll": MAX_CLL,
        "dolby_vision": False,
    }
    assert clips.read_video(out, pixels=False).width == 192
    assert not result.json["notices"]


def test_hdr10_to_webm_is_10_bit_av1_with_metadata(cli: Cli, tmp_path: Path) -> None:
    src = hdr10_clip(tmp_path)
    out = tmp_path / "out.webm"
    result = cli("upscale", src, "-o", out, *FAST, "--json")
    assert result.code == 0, result.err
    # This build's libvpx-vp9 is 8-bit only; WebM's other codec, AV1, keeps 10 bits.
    assert result.json["encoder"]["codec"] == "libsvtav1"
    assert "mastering-display=" in result.json["encoder"]["options"]["svtav1-params"]
    assert signal(out) == signal(src)
    assert container_hdr(out) == {
        "mastering": MASTERING,
        "max_cll": MAX_CLL,
        "dolby_vision": False,
    }


@pytest.mark.parametrize("out_ext", ["mkv", "mp4"])
def test_hlg_stays_hlg_and_10_bit(cli: Cli, tmp_path: Path, out_ext: str) -> None:
    src = hlg_clip(tmp_path)
    out = tmp_path / f"out.{out_ext}"
    result = cli("upscale", src, "-o", out, *FAST)
    assert result.code == 0, result.err
    assert signal(out) == signal(src) == {**HLG_TAGS, "pix_fmt": "yuv420p10le", "bit_depth": 10}
    # Nothing invented: HLG has no mastering metadata here, and none appears.
    assert bitstream_hdr(out) == {}
    assert container_hdr(out) == {"dolby_vision": False}


def test_probe_reports_hdr10_and_hlg(cli: Cli, tmp_path: Path) -> None:
    result = cli("probe", hdr10_clip(tmp_path, "mp4"), "--json")
    assert result.code == 0, result.err
    hdr = result.json["streams"][0]["hdr"]
    assert hdr["format"] == "HDR10"
    assert hdr["transfer"] == "pq"
    assert (hdr["max_cll"], hdr["max_fall"]) == MAX_CLL
    assert hdr["mastering_display"] == {
        "red": [0.708, 0.292],
        "green": [0.17, 0.797],
        "blue": [0.131, 0.046],
        "white_point": [0.3127, 0.329],
        "max_luminance": 1000.0,
        "min_luminance": 0.005,
    }
    assert hdr["dolby_vision"] is None
    text = cli("probe", hdr10_clip(tmp_path, "mkv")).out
    assert "HDR: HDR10, mastering display R 0.7080,0.2920 G 0.1700,0.7970" in text
    assert "1000/0.005 cd/m2, MaxCLL 1000 cd/m2, MaxFALL 400 cd/m2" in text
    hlg = cli("probe", hlg_clip(tmp_path), "--json").json["streams"][0]["hdr"]
    assert hlg["format"] == "HLG"
    assert hlg["mastering_display"] is None and hlg["max_cll"] is None
    sdr = cli("probe", clips.hevc_10bit(tmp_path).path, "--json").json["streams"][0]
    assert sdr["hdr"] is None


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--pix-fmt", "yuv420p"], ["yuv420p is 8-bit", "HDR10", "tone-map"]),
        (["--codec", "mpeg4"], ["mpeg4 encodes only 8-bit video", "libx265"]),
    ],
)
def test_hdr_never_falls_back_to_8_bit(
    cli: Cli, tmp_path: Path, args: list[str], words: list[str]
) -> None:
    out = tmp_path / "out.mkv"
    result = cli("upscale", hdr10_clip(tmp_path), "-o", out, *FAST, *args)
    check_one_error_line(result, 2, *words)
    assert not out.exists()


def test_hlg_refuses_8_bit_too(cli: Cli, tmp_path: Path) -> None:
    result = cli(
        "upscale", hlg_clip(tmp_path), "-o", tmp_path / "o.mp4", *FAST, "--pix-fmt", "yuv420p"
    )
    check_one_error_line(result, 2, "HLG", "8-bit")


# -- Dolby Vision -----------------------------------------------------------------------------


def dovi_record(profile: int, compatibility: int) -> bytes:
    """DOVIDecoderConfigurationRecord v1.0: level 1, RPU and base layer present."""
    bits = profile << 17 | 1 << 11 | 1 << 10 | 1 << 8 | compatibility << 4
    return bytes([1, 0]) + bits.to_bytes(3, "big") + bytes(19)


def with_dovi_mapping(src: Path, dst: Path, record: bytes) -> Path:
    """The MKV with a Dolby Vision configuration (BlockAdditionMapping dvcC) on its video track,
    as mkvmerge writes it for a DV profile 8 file; header and clusters are otherwise kept."""
    element = hdr_meta._element
    data = src.read_bytes()
    top = list(hdr_meta._children(data, 0, len(data)))
    ebml_end = top[0][2]
    _, seg_start, seg_end = next(t for t in top if t[0] == 0x18538067)
    mapping = element(0x41E4, element(0x41E7, b"dvcC") + element(0x41ED, record))
    body = b""
    for eid, s, e in hdr_meta._children(data, seg_start, seg_end):
        if eid == 0x1654AE6B:
            tracks = b"".join(
                element(tid, data[ts:te] + (mapping if tid == 0xAE else b""))
                for tid, ts, te in hdr_meta._children(data, s, e)
                if tid != 0xBF
            )
            body += element(eid, tracks)
        elif eid in (0x1549A966, 0x1F43B675):
            body += element(eid, data[s:e])
    unknown_size = b"\x01\xff\xff\xff\xff\xff\xff\xff"
    dst.write_bytes(data[:ebml_end] + bytes.fromhex("18538067") + unknown_size + body)
    return dst


def to_mp4(src: Path, dst: Path) -> Path:
    # MP4 has no standard box for it: FFmpeg writes dvcC at "unofficial" strictness.
    with av.open(str(src)) as i, av.open(str(dst), "w", options={"strict": "unofficial"}) as o:
        stream = o.add_stream_from_template(i.streams.video[0])
        for packet in i.demux(i.streams.video[0]):
            if packet.size:
                packet.stream = stream
                o.mux(packet)
    return dst


@pytest.mark.parametrize(("src_ext", "out_ext"), [("mkv", "mkv"), ("mp4", "mp4")])
def test_dolby_vision_is_said_and_never_claimed(
    cli: Cli, tmp_path: Path, src_ext: str, out_ext: str
) -> None:
    src = with_dovi_mapping(hdr10_clip(tmp_path), tmp_path / "dv.mkv", dovi_record(8, 1))
    if src_ext == "mp4":
        src = to_mp4(src, tmp_path / "dv.mp4")
    assert container_hdr(src)["dolby_vision"]
    probed = cli("probe", src, "--json").json["streams"][0]["hdr"]
    assert probed["format"] == "Dolby Vision"
    assert probed["dolby_vision"]["profile"] == 8
    assert probed["dolby_vision"]["base_layer"] == "HDR10"
    assert probed["max_cll"] == MAX_CLL[0]
    assert "Dolby Vision profile 8.1, base layer HDR10" in cli("probe", src).out

    out = tmp_path / f"out.{out_ext}"
    result = cli("upscale", src, "-o", out, *FAST, "--json")
    assert result.code == 0, result.err
    notices = [n for n in result.json["notices"] if "Dolby Vision" in n]
    assert len(notices) == 1 and "RPU" in notices[0] and "HDR10 base layer" in notices[0]
    plain = cli("upscale", src, "-o", tmp_path / f"plain.{out_ext}", *FAST)
    assert "Dolby Vision" in plain.err and "RPU" in plain.err
    assert container_hdr(out) == {
        "mastering": MASTERING,
        "max_cll": MAX_CLL,
        "dolby_vision": False,
    }
    assert bitstream_hdr(out) == {"mastering": MASTERING, "max_cll": MAX_CLL}
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.codec_tag not in ("dvh1", "dvhe")
    assert cli("probe", out, "--json").json["streams"][0]["hdr"]["format"] == "HDR10"


def test_dolby_vision_profile_5_is_refused(cli: Cli, tmp_path: Path) -> None:
    src = with_dovi_mapping(hdr10_clip(tmp_path), tmp_path / "p5.mkv", dovi_record(5, 0))
    out = tmp_path / "out.mkv"
    result = cli("upscale", src, "-o", out, *FAST)
    check_one_error_line(result, 3, "Dolby Vision profile 5", "RPU")
    assert not out.exists()


# -- units ------------------------------------------------------------------------------------


def test_encoder_parameter_strings() -> None:
    md = hdr_meta.MasteringDisplay(
        red=(35400, 14600),
        green=(8500, 39850),
        blue=(6550, 2300),
        white=(15635, 16450),
        max_luminance=10000000,
        min_luminance=50,
    )
    assert md.x265() == MASTER_DISPLAY
    assert md.svtav1() == (
        "G(0.17000,0.79700)B(0.13100,0.04600)R(0.70800,0.29200)WP(0.31270,0.32900)"
        "L(1000.0000,0.0050)"
    )
    assert hdr_meta.MasteringDisplay.from_floats(md.floats()) == md
    assert hdr_meta.dovi_from_record(dovi_record(8, 4)) == hdr_meta.DolbyVision(
        profile=8, level=1, rpu=True, enhancement_layer=False, base_compatibility=4
    )


def test_dynamic_metadata_and_container_only_codecs_are_announced(tmp_path: Path) -> None:
    import dataclasses

    from vsr.media.encode import hdr_notices
    from vsr.media.probe import probe

    video = probe(hdr10_clip(tmp_path)).video
    assert video.hdr.format == "HDR10"
    plus = dataclasses.replace(video, hdr=dataclasses.replace(video.hdr, hdr10_plus=True))
    assert plus.hdr.format == "HDR10+"
    (notice,) = hdr_notices(plus, "libx265")
    assert "HDR10+ dynamic metadata" in notice and "HDR10 static metadata" in notice
    (notice,) = hdr_notices(video, "libx264")
    assert "container only" in notice
    assert hdr_notices(video, "libx265") == [] and hdr_notices(video, "libsvtav1") == []


@pytest.mark.parametrize(("trc", "worst"), [(16, 1), (18, 0)])
def test_model_domain_round_trip_keeps_10_bit_codes(trc: int, worst: int) -> None:
    """to_rgb's SDR-like mapping and from_rgb's inverse give back every 10-bit code (PQ: within
    one code above ~7000 cd/m2, where the highlight knee is steepest)."""
    import numpy as np

    from vsr.media.color import model_domain_table

    forward = model_domain_table(trc, 16, False)
    inverse = model_domain_table(trc, 16, True)
    codes = np.arange(1024)
    back = np.round(inverse[forward[codes * 65535 // 1023]] / 65535 * 1023)
    assert np.abs(back - codes).max() <= worst
    assert np.all(np.diff(forward.astype(np.int64)) >= 0)  # monotonic: no order flips
    # What the model sees: HDR reference white (203 cd/m2) where SDR pictures have white.
    white = {16: 0.5807, 18: 0.75}[trc]
    assert forward[round(white * 65535)] / 65535 == pytest.approx(0.95, abs=0.01)
