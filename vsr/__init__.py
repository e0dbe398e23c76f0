"""vsr: video super-resolution that keeps everything but the resolution as it was."""

from __future__ import annotations

__version__ = "0.1.0"
