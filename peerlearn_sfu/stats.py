"""Per-room, per-participant forwarding statistics (also logged periodically)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import taps

if TYPE_CHECKING:
    from .participant import Participant


class RateMeter:
    """kb/s of a byte counter between two samples."""

    def __init__(self) -> None:
        self._last: tuple[int, float] | None = None
        self.kbps = 0.0

    def sample(self, total_bytes: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        if self._last is not None and now > self._last[1]:
            self.kbps = (total_bytes - self._last[0]) * 8 / 1000 / (now - self._last[1])
        self._last = (total_bytes, now)
        return self.kbps


class StatsSampler:
    """Keeps one RateMeter per counted object; sampled by the room ticker each second."""

    def __init__(self) -> None:
        self._meters: dict[int, RateMeter] = {}

    def meter(self, obj: object) -> RateMeter:
        key = id(obj)
        if key not in self._meters:
            self._meters[key] = RateMeter()
        return self._meters[key]

    def sample(self, participants: list[Participant]) -> None:
        live: set[int] = set()
        for p in participants:
            if p.publish is not None:
                for pub in p.publish.publications.values():
                    self.meter(pub).sample(pub.bytes_in)
                    live.add(id(pub))
            for slot in p.subscribe.slots:
                self.meter(slot.track).sample(slot.track.bytes_out)
                live.add(id(slot.track))
        for key in set(self._meters) - live:
            del self._meters[key]

    def participant_stats(self, p: Participant) -> dict[str, Any]:
        publish: dict[str, dict[str, Any]] = {}
        rtts: list[float] = []
        if p.publish is not None:
            for kind, pub in p.publish.publications.items():
                repair = pub.repair.tracker if pub.repair is not None else None
                publish[kind] = {
                    "frames_in": pub.frames_in,
                    # RTP packets (RTP-level path; the frame path counts frames only)
                    "packets_in": pub.packets_in,
                    "nacks_sent": repair.nacked + repair.renacked if repair else 0,
                    "bytes_in": pub.bytes_in,
                    "bitrate_in_kbps": round(self.meter(pub).kbps, 1),
                    "keyframes_in": pub.keyframes_in,
                    "keyframes_requested": pub.keyframes.requested,
                    "keyframes_sent": pub.keyframes.sent,
                    "packets_lost": taps.receiver_packets_lost(pub.receiver),
                    "remb_bps": pub.bitrate.last_sent,
                    "subscribers": len(pub.downtracks),
                }
        subscribe: list[dict[str, Any]] = []
        for slot in p.subscribe.slots:
            rtt = taps.sender_rtt(slot.transceiver.sender)
            if rtt is not None:
                rtts.append(rtt)
            source = slot.publication
            subscribe.append(
                {
                    "packets_out": taps.sender_counts(slot.transceiver.sender)[0],
                    "user_id": source.owner_id if source else None,
                    "kind": source.kind if source else None,
                    "frames_forwarded": slot.track.forwarded,
                    "frames_dropped": slot.track.dropped,
                    "bytes_out": slot.track.bytes_out,
                    "bitrate_out_kbps": round(self.meter(slot.track).kbps, 1),
                    "rtt_ms": round(rtt * 1000, 1) if rtt is not None else None,
                    "keyframe_requests_from_subscriber": slot.keyframe_requests,
                    "remb_from_subscriber_bps": slot.packer.target_bitrate or None,
                }
            )
        nack = p.subscribe.nack.counters
        return {
            "display_name": p.identity.display_name,
            # NACKed by this subscriber, and retransmissions sent to it (RTX)
            "nacks_received": nack.requested,
            "retransmissions_sent": nack.sent,
            "bitrate_in_kbps": round(sum(v["bitrate_in_kbps"] for v in publish.values()), 1),
            "bitrate_out_kbps": round(sum(s["bitrate_out_kbps"] for s in subscribe), 1),
            "packets_lost": sum(v["packets_lost"] for v in publish.values()),
            "rtt_ms": round(sum(rtts) / len(rtts) * 1000, 1) if rtts else None,
            "keyframes_requested": sum(v["keyframes_requested"] for v in publish.values()),
            "frames_forwarded": sum(s["frames_forwarded"] for s in subscribe),
            "frames_dropped": sum(s["frames_dropped"] for s in subscribe),
            "publish": publish,
            "subscribe": subscribe,
        }
