"""What the FFmpeg in use can do: its video encoders and pixel formats, by name.

Preset and job-file checks ask here, so that a typo is caught (with a did-you-mean from these
lists) before any file is opened.
"""

from __future__ import annotations

import av


def is_video_encoder(name: str) -> bool:
    """Whether ``name`` is a video encoder of this FFmpeg."""
    try:
        return bool(av.Codec(name, "w").type == "video")
    except (ValueError, av.FFmpegError):
        return False


def video_encoders() -> list[str]:
    """Every video encoder of this FFmpeg, sorted."""
    return sorted(name for name in av.codecs_available if is_video_encoder(name))


def is_pixel_format(name: str) -> bool:
    """Whether FFmpeg knows a pixel format of this name."""
    try:
        av.VideoFormat(name)
    except ValueError:
        return False
    return True


def pixel_formats() -> list[str]:
    """Every pixel format FFmpeg knows, sorted."""
    import av.video.format as video_format

    return sorted(getattr(video_format, "names", ()))
