"""HDR transfer functions (ITU-R BT.2100) on RGB tensors, and the "SDR-like" view of them.

Used to measure which domain an SDR-trained model should see HDR pictures in (see
``scripts/hdr_domain.py`` and the README's HDR section): the PQ or HLG code values as they are,
or the display light they stand for, relative to HDR reference white (203 cd/m2, ITU-R
BT.2408) and gamma-encoded like an SDR picture (BT.1886, gamma 2.4). Highlights above
reference white map above 1.0 in that view.
"""

from __future__ import annotations

import torch

REFERENCE_WHITE = 203.0  # cd/m2, ITU-R BT.2408
PQ_PEAK = 10000.0
HLG_PEAK = 1000.0  # nominal display peak for the HLG OOTF
SDR_GAMMA = 2.4

# SMPTE ST 2084
_M1, _M2 = 2610 / 16384, 2523 / 4096 * 128
_C1, _C2, _C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
# ARIB STD-B67 / BT.2100 HLG
_A, _B, _C = 0.17883277, 0.28466892, 0.55991073
# BT.2020 luminance weights (the HLG OOTF works on luminance)
_KR, _KG, _KB = 0.2627, 0.6780, 0.0593


def pq_to_nits(code: torch.Tensor) -> torch.Tensor:
    e = code.clamp(0, 1).pow(1 / _M2)
    return ((e - _C1).clamp(min=0) / (_C2 - _C3 * e)).pow(1 / _M1) * PQ_PEAK


def nits_to_pq(nits: torch.Tensor) -> torch.Tensor:
    y = (nits / PQ_PEAK).clamp(0, 1).pow(_M1)
    return ((_C1 + _C2 * y) / (1 + _C3 * y)).pow(_M2)


def hlg_to_scene(code: torch.Tensor) -> torch.Tensor:
    """Inverse OETF: HLG signal -> normalised scene light [0, 1]."""
    e = code.clamp(0, 1)
    low = e * e / 3
    high = (torch.exp((e - _C) / _A) + _B) / 12
    return torch.where(e <= 0.5, low, high)


def scene_to_hlg(scene: torch.Tensor) -> torch.Tensor:
    e = scene.clamp(0, 1)
    low = torch.sqrt(3 * e)
    high = _A * torch.log((12 * e - _B).clamp(min=1e-12)) + _C
    return torch.where(e <= 1 / 12, low, high)


def _luminance(rgb: torch.Tensor) -> torch.Tensor:
    r, g, b = rgb.unbind(-3)
    return (_KR * r + _KG * g + _KB * b).unsqueeze(-3)


def hlg_to_nits(code: torch.Tensor, peak: float = HLG_PEAK) -> torch.Tensor:
    """HLG signal (N, 3, H, W) -> display light through the OOTF (gamma 1.2 at 1000 cd/m2)."""
    scene = hlg_to_scene(code)
    gamma = 1.2 + 0.42 * torch.log10(torch.tensor(peak / 1000.0))
    ys = _luminance(scene).clamp(min=1e-12)
    return peak * ys.pow(gamma - 1) * scene


def nits_to_hlg(nits: torch.Tensor, peak: float = HLG_PEAK) -> torch.Tensor:
    gamma = 1.2 + 0.42 * torch.log10(torch.tensor(peak / 1000.0))
    display = (nits / peak).clamp(min=0)
    yd = _luminance(display).clamp(min=1e-12)
    scene = yd.pow((1 - gamma) / gamma) * display
    return scene_to_hlg(scene)


def to_nits(code: torch.Tensor, transfer: str) -> torch.Tensor:
    return pq_to_nits(code) if transfer == "pq" else hlg_to_nits(code)


def from_nits(nits: torch.Tensor, transfer: str) -> torch.Tensor:
    return nits_to_pq(nits) if transfer == "pq" else nits_to_hlg(nits)


def to_sdr_like(code: torch.Tensor, transfer: str) -> torch.Tensor:
    """PQ/HLG code values -> display light relative to reference white, gamma-encoded."""
    return (to_nits(code, transfer) / REFERENCE_WHITE).clamp(min=0).pow(1 / SDR_GAMMA)


def from_sdr_like(value: torch.Tensor, transfer: str) -> torch.Tensor:
    return from_nits(value.clamp(min=0).pow(SDR_GAMMA) * REFERENCE_WHITE, transfer)


# Above this, the SDR-like values (reference white = 1.0, PQ peak = 4.87) are compressed into
# [KNEE, 1) by a Reinhard curve: slope 1 at the knee (no visible joint), invertible, and still
# about 1% of luminance per 16-bit step at 10000 cd/m2, so highlights survive the round trip.
KNEE = 0.9


def compress_highlights(value: torch.Tensor) -> torch.Tensor:
    t = (value - KNEE).clamp(min=0) / (1 - KNEE)
    return torch.where(value <= KNEE, value, KNEE + (1 - KNEE) * t / (1 + t))


def expand_highlights(value: torch.Tensor) -> torch.Tensor:
    u = ((value - KNEE) / (1 - KNEE)).clamp(0, 1 - 1e-9)
    return torch.where(value <= KNEE, value, KNEE + (1 - KNEE) * u / (1 - u))


def to_model_domain(code: torch.Tensor, transfer: str) -> torch.Tensor:
    """PQ/HLG code values -> what an SDR-trained model should see, in [0, 1] (per channel)."""
    return compress_highlights(to_sdr_like_channels(code, transfer))


def from_model_domain(value: torch.Tensor, transfer: str) -> torch.Tensor:
    return from_sdr_like_channels(expand_highlights(value.clamp(0, 1)), transfer)


def to_sdr_like_channels(code: torch.Tensor, transfer: str) -> torch.Tensor:
    """`to_sdr_like` channel by channel: HLG's OOTF applied to each channel instead of to
    luminance (BT.2100's simplification), so that a lookup table per channel is exact."""
    nits = pq_to_nits(code) if transfer == "pq" else HLG_PEAK * hlg_to_scene(code).pow(1.2)
    return (nits / REFERENCE_WHITE).clamp(min=0).pow(1 / SDR_GAMMA)


def from_sdr_like_channels(value: torch.Tensor, transfer: str) -> torch.Tensor:
    nits = value.clamp(min=0).pow(SDR_GAMMA) * REFERENCE_WHITE
    if transfer == "pq":
        return nits_to_pq(nits)
    return scene_to_hlg((nits / HLG_PEAK).clamp(0, 1).pow(1 / 1.2))


def bt1886_to_nits(sdr: torch.Tensor) -> torch.Tensor:
    """An SDR picture (BT.709 gamma) as HDR display light, its white at reference white."""
    return sdr.clamp(0, 1).pow(SDR_GAMMA) * REFERENCE_WHITE


# Linear-light BT.709 -> BT.2020 primaries (ITU-R BT.2087).
BT709_TO_BT2020 = torch.tensor(
    [
        [0.6274, 0.3293, 0.0433],
        [0.0691, 0.9195, 0.0114],
        [0.0164, 0.0880, 0.8956],
    ]
)


def bt709_to_bt2020(linear: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,...jhw->...ihw", BT709_TO_BT2020.to(linear), linear)
