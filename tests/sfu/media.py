"""Pre-encoded test media: the package's clip (web/loadtest/media.py), shared with
``peerlearn loadtest``."""

from web.loadtest.media import (
    AUDIO_CLOCK,
    VIDEO_CLOCK,
    Clip,
    PacedAudioTrack,
    PacedVideoTrack,
    make_clip,
)

__all__ = ["AUDIO_CLOCK", "VIDEO_CLOCK", "Clip", "PacedAudioTrack", "PacedVideoTrack", "make_clip"]
