"""SFU settings, handed in by the web layer (which reads them from the app config)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SfuConfig:
    """Operator-facing knobs of the media plane.

    ``udp_port``: single-port mode, every peer connection's host candidate on this one
    port (demultiplexed by ``udpmux``); worker ``worker_index`` of a machine uses
    ``udp_port + worker_index``. 0 = range mode: ``udp_port_min``/``udp_port_max``, every
    host candidate bound inside this inclusive range, at most ``max_ports_per_room`` /
    ``max_ports_per_server`` sockets (0 = a full room's need / the whole range);
    exhaustion raises :class:`PortRangeExhausted` (``port_range_exhausted``,
    ``room_port_quota``, ``server_port_quota``).
    ``announced_ip``: public address of a 1:1 NAT, advertised as an extra host candidate.
    ``interfaces``: allow-list of interface names (``eth0``) or IPs for host candidates;
    empty means every interface including loopback.
    """

    udp_port_min: int = 40000
    udp_port_max: int = 40199
    udp_port: int = 0
    worker_index: int = 0
    max_ports_per_room: int = 0
    max_ports_per_server: int = 0
    announced_ip: str | None = None
    interfaces: tuple[str, ...] = ()
    max_room_size: int = 11
    keyframe_min_interval_ms: int = 500
    video_max_bitrate_kbps: int = 800
    chat_max_chars: int = 2000
    chat_rate_count: int = 5
    chat_rate_window_s: float = 5.0
    active_speaker_interval_ms: int = 300
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = None
    turn_ttl_s: int = 3600
    stats_log_interval_s: float = 30.0
    use_ipv6: bool = False
    # "rtp": packets forwarded as they arrive, rewritten per subscriber (forwarder.py);
    # "frame": aiortc re-assembles frames and re-packetises them per subscriber (the
    # previous path, kept one release for comparison: bench/sfu_forwarding.py --modes).
    forwarding: str = "rtp"
    # Forwarding senders use taps.forward_rtp instead of aiortc's RTP loop (same wire
    # behaviour, less CPU per packet); False only to compare the two in the benchmark.
    lean_send_loop: bool = True
    # Quotas and bounds against hostile clients (docs/sfu.md, "Limits").
    max_participants_per_server: int = 200
    max_rooms_per_user: int = 2
    outbox_max_bytes: int = 1024 * 1024
    outbox_max_stall_s: float = 10.0
    state_update_interval_ms: int = 250

    @property
    def media_port(self) -> int:
        """This worker's single media port (0 in range mode)."""
        return self.udp_port + self.worker_index if self.udp_port else 0

    @property
    def max_sdp_bytes(self) -> int:
        """Largest SDP accepted: it grows with the room.

        A subscribe SDP has 3 m-lines (audio, camera, screen) per other participant; with
        one host candidate aiortc writes ~1.2 KB per m-line and browsers a little less
        (36.6 KB for an 11-person room). 4 KiB per m-line leaves room for more candidates.
        """
        return 3 * max(1, self.max_room_size - 1) * 4096 + 16 * 1024

    @property
    def max_message_bytes(self) -> int:
        """Largest signaling message: an SDP plus its envelope."""
        return self.max_sdp_bytes + 4096

    def __post_init__(self) -> None:
        if self.udp_port and not (0 < self.media_port <= 65535):
            raise ValueError("udp_port + worker_index must be a valid UDP port")
        if self.max_ports_per_room < 0 or self.max_ports_per_server < 0:
            raise ValueError("port quotas must be >= 0")
        if not (0 < self.udp_port_min <= self.udp_port_max <= 65535):
            raise ValueError("udp_port_min..udp_port_max must be a valid, non-empty range")
        if self.max_room_size < 1:
            raise ValueError("max_room_size must be >= 1")
        if self.max_participants_per_server < 1 or self.max_rooms_per_user < 1:
            raise ValueError("max_participants_per_server and max_rooms_per_user must be >= 1")
        if self.outbox_max_bytes < 1024 or self.outbox_max_stall_s <= 0:
            raise ValueError("outbox_max_bytes must be >= 1024 and outbox_max_stall_s > 0")
        if self.forwarding not in ("rtp", "frame"):
            raise ValueError('forwarding must be "rtp" or "frame"')
        if self.state_update_interval_ms < 0:
            raise ValueError("state_update_interval_ms must be >= 0")
