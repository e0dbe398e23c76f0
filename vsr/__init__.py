"""vsr: video super-resolution that keeps everything but the resolution as it was.

The Python API mirrors the CLI: ``vsr.upscale("in.mkv", "out.mkv", model=..., scale=2)``
upscales a file and ``vsr.probe(path)`` tells what vsr sees in one (see vsr.api).
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
