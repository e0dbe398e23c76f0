"""vsr: video super-resolution that keeps everything but the resolution as it was.

    import vsr
    result = vsr.upscale("in.mkv", "out.mkv", model="realesrgan-x4plus", scale=2)
    info = vsr.probe("in.mkv")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "build_options", "probe", "run", "upscale"]


def __getattr__(name: str) -> Any:
    # Lazy: `import vsr` (and the CLI's startup) shouldn't pay for importing torch.
    if name in ("upscale", "probe", "run", "build_options"):
        from vsr import api

        return getattr(api, name)
    raise AttributeError(f"module 'vsr' has no attribute {name!r}")
