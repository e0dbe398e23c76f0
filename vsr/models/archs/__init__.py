"""Network architectures vsr reads natively, in the BasicSR / Real-ESRGAN state-dict layout.

`ARCHS` is the one list of them, in the order a checkpoint's state dict is tried against
them; each entry is an `Arch` (see `vsr.models.archs.arch`). Adding an architecture is a
module here that ends with its `ARCH`, and one entry in `ARCHS`.
"""

from __future__ import annotations

from vsr.models.archs import rrdbnet, srvgg
from vsr.models.archs.arch import Arch

ARCHS: tuple[Arch, ...] = (rrdbnet.ARCH, srvgg.ARCH)


def find_arch(name: str) -> Arch | None:
    """The architecture called `name` (as a zoo entry or ncnn conversion names it), or None."""
    return next((arch for arch in ARCHS if arch.name == name), None)


def arch_names() -> str:
    """How messages name what vsr reads without spandrel ("RRDBNet or SRVGGNetCompact")."""
    return " or ".join(arch.name for arch in ARCHS)
