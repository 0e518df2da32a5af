"""The publish leg: one client-offered peer connection per participant.

Three receive transceivers are pre-allocated — audio, camera, screen — so starting or
stopping a screen share is ``replaceTrack`` plus a ``mute`` message on the client,
never a renegotiation. The client's data channel labelled ``chat`` rides on it too.
"""

from __future__ import annotations

from collections.abc import Callable

from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from .codecs import new_peer_connection, pin_codecs
from .config import SfuConfig
from .ice import IcePolicy, apply_ice_policy
from .publication import TRACK_KINDS, Publication
from .sdp_validation import PublishLayout, check_publish_offer
from .tasks import TaskSet


class PublishLeg:
    """Owns the publish peer connection and the participant's three publications."""

    def __init__(
        self,
        owner_id: int,
        config: SfuConfig,
        ice_policy: IcePolicy,
        tasks: TaskSet,
        on_datachannel: Callable[[RTCDataChannel], None],
        on_state: Callable[[str], None],
    ) -> None:
        self.owner_id = owner_id
        self.pc: RTCPeerConnection = new_peer_connection()
        self.publications: dict[str, Publication] = {}
        self._ice_policy = ice_policy
        # Order matters: aiortc matches a remote offer's m-lines to free transceivers of
        # the same kind in creation order (audio, then camera, then screen).
        for kind in TRACK_KINDS:
            media_kind = "audio" if kind == "audio" else "video"
            transceiver = self.pc.addTransceiver(media_kind, direction="recvonly")
            pin_codecs(transceiver)
            self.publications[kind] = Publication(
                owner_id,
                kind,
                transceiver.receiver,
                keyframe_interval_s=config.keyframe_min_interval_ms / 1000,
                max_bitrate_bps=config.video_max_bitrate_kbps * 1000,
                tasks=tasks,
                rtp_level=config.forwarding == "rtp",
            )
        self.pc.on("datachannel", on_datachannel)
        #: The mids of the last accepted offer: a renegotiation must keep them.
        self.layout: PublishLayout | None = None
        self.closing = False
        self.pc.on("connectionstatechange", self._on_state_change)
        self._on_state = on_state

    async def answer(self, sdp: str) -> str:
        """Apply the client's offer, return our answer SDP (candidates included).

        The offer is checked first (:func:`check_publish_offer`): aiortc would turn any
        extra m-line into an untapped, decoding receiver.
        """
        if self.pc.signalingState != "stable":
            raise ValueError("publish connection is not ready for an offer")
        layout = check_publish_offer(sdp, self.layout)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        apply_ice_policy(self.pc, self._ice_policy)
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        self.layout = layout
        return self.pc.localDescription.sdp

    def _on_state_change(self) -> None:
        # Our own close() is not the client vanishing.
        if not self.closing:
            self._on_state(self.pc.connectionState)

    async def close(self) -> None:
        self.closing = True
        for publication in self.publications.values():
            publication.close()
        await self.pc.close()
