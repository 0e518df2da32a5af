"""Host-candidate policy for the SFU's own peer connections (aioice 0.13.x).

aioice binds each host candidate to an OS-chosen port on every interface and has no
notion of an announced (1:1 NAT) address. :func:`apply_ice_policy` replaces host
gathering on the aioice ``Connection`` objects of *one* ``RTCPeerConnection``:

* only addresses allowed by ``interfaces`` (names or IPs; empty = all, loopback included),
* every socket bound inside ``[port_min, port_max]``; none free -> :class:`PortRangeExhausted`,
* ``announced_ip`` advertised as an extra host candidate on the same port (same socket).

STUN server-reflexive candidates are not gathered for patched connections (the
announced IP replaces them); TURN relay candidates still are. Nothing global is
patched: other peer connections in the process keep aioice's behaviour.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from dataclasses import dataclass
from typing import Any

import aioice
import ifaddr
from aioice import ice as aioice_ice
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aiortc import RTCPeerConnection

from .config import SfuConfig
from .errors import PortRangeExhausted

logger = logging.getLogger(__name__)

AIOICE_PINNED = "0.13."
_PATCHED = "_peerlearn_ice_policy"
_SOCKET_BUFFER = 1024 * 1024


@dataclass(frozen=True)
class IcePolicy:
    """Where host candidates may be bound and what is advertised."""

    port_min: int
    port_max: int
    interfaces: tuple[str, ...] = ()
    announced_ip: str | None = None
    use_ipv6: bool = False

    @classmethod
    def from_config(cls, config: SfuConfig) -> IcePolicy:
        return cls(
            port_min=config.udp_port_min,
            port_max=config.udp_port_max,
            interfaces=config.interfaces,
            announced_ip=config.announced_ip,
            use_ipv6=config.use_ipv6,
        )


def check_aioice_version() -> None:
    """Fail loudly if aioice is not the version the gathering override was written for."""
    if not aioice.__version__.startswith(AIOICE_PINNED):
        raise RuntimeError(
            f"peerlearn_sfu.ice targets aioice {AIOICE_PINNED}x, found {aioice.__version__}: "
            "re-check Connection.get_component_candidates before upgrading"
        )
    for name in ("get_component_candidates", "gather_candidates"):
        if not hasattr(aioice_ice.Connection, name):
            raise RuntimeError(f"aioice.Connection.{name} is gone")


def host_addresses(policy: IcePolicy) -> list[str]:
    """Addresses of the local interfaces allowed by the policy."""
    wanted = set(policy.interfaces)
    addresses: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                address = ip.ip
            elif policy.use_ipv6 and ip.ip[2] == 0:
                address = ip.ip[0]
            else:
                continue
            if wanted and adapter.name not in wanted and address not in wanted:
                continue
            if address not in addresses:
                addresses.append(address)
    # An allow-listed IP that ifaddr does not report (e.g. a container quirk) is still tried.
    for item in policy.interfaces:
        try:
            ipaddress.ip_address(item)
        except ValueError:
            continue
        if item not in addresses:
            addresses.append(item)
    return addresses


class PortAllocator:
    """Binds UDP sockets inside a port range, scanning round-robin from the last port."""

    def __init__(self, port_min: int, port_max: int) -> None:
        self.port_min = port_min
        self.port_max = port_max
        self._next = port_min

    def bind(self, address: str) -> socket.socket:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        size = self.port_max - self.port_min + 1
        for _ in range(size):
            port = self._next
            self._next = self.port_min + (port - self.port_min + 1) % size
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((address, port))
            except OSError as exc:
                sock.close()
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                raise
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
            except OSError:
                pass
            return sock
        raise PortRangeExhausted(
            f"no free UDP port on {address} in {self.port_min}-{self.port_max}"
        )


_allocators: dict[tuple[int, int], PortAllocator] = {}


def allocator_for(policy: IcePolicy) -> PortAllocator:
    key = (policy.port_min, policy.port_max)
    if key not in _allocators:
        _allocators[key] = PortAllocator(*key)
    return _allocators[key]


def _patch_connection(connection: aioice_ice.Connection, policy: IcePolicy) -> None:
    original = connection.get_component_candidates
    allocator = allocator_for(policy)

    async def get_component_candidates(
        component: int, addresses: list[str], timeout: int = 5  # noqa: ASYNC109 - aioice API
    ) -> list[Candidate]:
        candidates: list[Candidate] = []
        # aioice passes no addresses under the "relay" policy: no host candidates then.
        if connection._transport_policy == aioice_ice.TransportPolicy.ALL:
            candidates += await _host_candidates(connection, component, policy, allocator)
        # STUN needs aioice's own host sockets, so only TURN is left to the original.
        candidates += await original(component=component, addresses=[], timeout=timeout)
        return candidates

    connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]
    setattr(connection, _PATCHED, policy)


async def _host_candidates(
    connection: aioice_ice.Connection,
    component: int,
    policy: IcePolicy,
    allocator: PortAllocator,
) -> list[Candidate]:
    loop = asyncio.get_running_loop()
    candidates: list[Candidate] = []
    for address in host_addresses(policy):
        sock = allocator.bind(address)
        _, protocol = await loop.create_datagram_endpoint(
            lambda: aioice_ice.StunProtocol(connection), sock=sock
        )
        host, port = protocol.transport.get_extra_info("sockname")[:2]
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", host),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=host,
            port=port,
            type="host",
        )
        connection._protocols.append(protocol)
        candidates.append(protocol.local_candidate)
        if policy.announced_ip and policy.announced_ip != host:
            # Same socket, public address: the NAT maps announced_ip:port to it.
            candidates.append(
                Candidate(
                    foundation=candidate_foundation("host", "udp", policy.announced_ip),
                    component=component,
                    transport="udp",
                    priority=candidate_priority(component, "host") + 1,
                    host=policy.announced_ip,
                    port=port,
                    type="host",
                )
            )
    return candidates


def apply_ice_policy(pc: RTCPeerConnection, policy: IcePolicy) -> None:
    """Patch every not-yet-gathered ICE connection of ``pc``.

    Call after transceivers / data channels exist and before ``setLocalDescription``
    (gathering happens there); calling it again only patches new transports.
    """
    transports: Any = pc._RTCPeerConnection__iceTransports  # type: ignore[attr-defined]
    for transport in transports:
        connection = transport.iceGatherer._connection
        if getattr(connection, _PATCHED, None) is None and not connection._local_candidates_start:
            _patch_connection(connection, policy)


check_aioice_version()
