"""Pinned codecs for both legs: Opus for audio, VP8 (+ RTX) for video."""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.rtcrtpsender import RTCRtpSender


def preferred_codecs(kind: str) -> list[RTCRtpCodecCapability]:
    wanted = ("audio/opus",) if kind == "audio" else ("video/vp8", "video/rtx")
    caps = RTCRtpSender.getCapabilities(kind).codecs
    return [c for c in caps if c.mimeType.lower() in wanted]


def pin_codecs(transceiver: RTCRtpTransceiver) -> None:
    """Set before an offer is created or a remote offer applied (aiortc filters by it)."""
    transceiver.setCodecPreferences(preferred_codecs(transceiver.kind))


def new_peer_connection() -> RTCPeerConnection:
    """An SFU peer connection: no ICE servers (no network stalls), max-bundle (aiortc #1414)."""
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )
