"""The subscribe leg: one server-offered peer connection per participant.

Only the server offers on this connection, so there is no glare. Transceivers are
never removed (aiortc cannot drop m-lines): a departed publisher's slots go
``inactive`` and are recycled for the next publisher of the same media kind.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription

from . import taps
from .codecs import new_peer_connection, pin_codecs
from .downtrack import DownTrack
from .errors import SfuError
from .forwarder import RtpDownTrack
from .ice import IcePolicy, apply_ice_policy
from .nack import NackLimiter
from .outbox import Send
from .sdp_validation import check_subscribe_answer
from .tasks import TaskSet

if TYPE_CHECKING:
    from .publication import Publication

logger = logging.getLogger(__name__)


class Slot:
    """A sendonly transceiver of the subscribe leg and the down-track feeding it
    (an :class:`RtpDownTrack`, or a frame-level :class:`DownTrack`)."""

    def __init__(
        self,
        transceiver: RTCRtpTransceiver,
        track: DownTrack | RtpDownTrack,
        lean_loop: bool,
        nack_limiter: NackLimiter | None = None,
    ) -> None:
        self.transceiver = transceiver
        self.track = track
        self.publication: Publication | None = None
        rtp_level = isinstance(track, RtpDownTrack)
        self.packer = taps.install_sender_hooks(
            transceiver.sender,
            on_keyframe_request=self._on_subscriber_pli,
            on_remb=self._on_subscriber_remb,
            lean_loop=lean_loop and not rtp_level,
        )
        if isinstance(track, RtpDownTrack):
            # The down-track sends, and answers NACKs from its own history.
            taps.install_rtp_sender(transceiver.sender, track)
        else:
            self.packer.offset_source = track
        if nack_limiter is not None and not rtp_level:
            # A subscriber's NACKs are answered within the leg's budget (nack.py).
            taps.limit_retransmissions(transceiver.sender, nack_limiter.allow)
        self.keyframe_requests = 0

    def _on_subscriber_pli(self) -> None:
        # The subscriber's decoder lost the picture: only the publisher can fix it.
        self.keyframe_requests += 1
        if self.publication is not None:
            self.publication.request_keyframe()

    def _on_subscriber_remb(self, bitrate: int) -> None:
        if self.publication is not None and self.publication.media_kind == "video":
            self.publication.bitrate.set_subscriber(id(self), bitrate)

    def attach(self, publication: Publication) -> None:
        self.detach()
        self.publication = publication
        self.track.on_keyframe_needed = publication.request_keyframe
        self.track.reset_source()
        if isinstance(self.track, RtpDownTrack):
            publication.rtp_downtracks.add(self.track)
        else:
            publication.downtracks.add(self.track)
        taps.set_sender_msid(
            self.transceiver.sender,
            f"user-{publication.owner_id}",
            f"user-{publication.owner_id}-{publication.kind}-{id(self):x}",
        )
        self.transceiver.direction = "sendonly"

    def detach(self) -> None:
        if self.publication is not None:
            if isinstance(self.track, RtpDownTrack):
                self.publication.rtp_downtracks.discard(self.track)
            else:
                self.publication.downtracks.discard(self.track)
            self.publication.bitrate.remove_subscriber(id(self))
            self.publication = None
            self.track.on_keyframe_needed = None
            self.track.reset_source()
            self.transceiver.direction = "inactive"


class SubscribeLeg:
    """Server-offered, renegotiated peer connection carrying all other participants' media."""

    def __init__(
        self,
        send: Send,
        ice_policy: IcePolicy,
        tasks: TaskSet,
        *,
        lean_loop: bool,
        rtp_level: bool = True,
    ) -> None:
        self._send = send
        self._rtp_level = rtp_level
        self._ice_policy = ice_policy
        self._tasks = tasks
        self._lean_loop = lean_loop
        self.pc: RTCPeerConnection | None = None
        self.slots: list[Slot] = []
        self._lock = asyncio.Lock()
        self._dirty = False
        self._closed = False
        #: Retransmissions on this leg: bounded per packet, rate-limited for the leg.
        self.nack = NackLimiter()

    def _ensure_pc(self) -> RTCPeerConnection:
        if self.pc is None:
            self.pc = new_peer_connection()
        return self.pc

    def add(self, publication: Publication) -> None:
        """Start forwarding ``publication`` (renegotiation is scheduled)."""
        if self._closed or any(s.publication is publication for s in self.slots):
            return
        slot = next(
            (
                s
                for s in self.slots
                if s.publication is None and s.transceiver.kind == publication.media_kind
            ),
            None,
        )
        if slot is None:
            pc = self._ensure_pc()
            transceiver = pc.addTransceiver(publication.media_kind, direction="sendonly")
            pin_codecs(transceiver)
            track: DownTrack | RtpDownTrack
            if self._rtp_level:
                # No MediaStreamTrack on the sender: aiortc's RTP loop never runs.
                track = RtpDownTrack(publication.media_kind, allow_resend=self.nack.allow)
            else:
                track = DownTrack(publication.media_kind)
                transceiver.sender.replaceTrack(track)
            slot = Slot(transceiver, track, self._lean_loop, self.nack)
            self.slots.append(slot)
        slot.attach(publication)
        self.schedule_negotiation()

    def remove_owner(self, owner_id: int) -> None:
        """Stop forwarding everything published by ``owner_id``."""
        changed = False
        for slot in self.slots:
            if slot.publication is not None and slot.publication.owner_id == owner_id:
                slot.detach()
                changed = True
        if changed:
            self.schedule_negotiation()

    def schedule_negotiation(self) -> None:
        if not self._closed:
            self._tasks.spawn(self.negotiate(), name="subscribe-offer")

    def track_map(self) -> list[dict[str, Any]]:
        """What each active m-line carries, sent with every offer."""
        return [
            {
                "mid": s.transceiver.mid,
                "user_id": s.publication.owner_id,
                "kind": s.publication.kind,
                "stream_id": taps.sender_stream_id(s.transceiver.sender),
            }
            for s in self.slots
            if s.publication is not None and s.transceiver.mid is not None
        ]

    async def negotiate(self) -> None:
        """Send a new offer unless one is outstanding (then re-offer after its answer)."""
        try:
            await self._negotiate()
        except SfuError as exc:
            await self._send(exc.to_message())

    async def _negotiate(self) -> None:
        async with self._lock:
            pc = self.pc
            if self._closed or pc is None or not self.slots:
                return
            if pc.signalingState != "stable":
                self._dirty = True
                return
            self._dirty = False
            offer = await pc.createOffer()
            apply_ice_policy(pc, self._ice_policy)
            await pc.setLocalDescription(offer)
            if self._closed:
                return
            message = {
                "type": "offer",
                "pc": "subscribe",
                "sdp": pc.localDescription.sdp,
                "tracks": self.track_map(),
            }
        await self._send(message)

    async def apply_answer(self, sdp: str) -> None:
        """The client's answer to our last offer. Raises ``ValueError`` when out of turn."""
        async with self._lock:
            pc = self.pc
            if pc is None or pc.signalingState != "have-local-offer":
                raise ValueError("no subscribe offer is outstanding")
            # m-line for m-line, recvonly/inactive only: a sendrecv answer would start
            # untapped (decoding) receivers on this leg.
            check_subscribe_answer(sdp, pc.localDescription.sdp)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            dirty = self._dirty
        if dirty:
            self.schedule_negotiation()

    async def close(self) -> None:
        self._closed = True
        for slot in self.slots:
            slot.detach()
            slot.track.stop()
        if self.pc is not None:
            await self.pc.close()
