"""Host-candidate policy for the SFU's own peer connections (aioice 0.13.x).

aioice binds each host candidate to an OS-chosen port on every interface and has no
notion of an announced (1:1 NAT) address. :func:`apply_ice_policy` replaces host
gathering on the aioice ``Connection`` objects of *one* ``RTCPeerConnection``:

* only addresses allowed by ``interfaces`` (names or IPs; empty = all, loopback included),
* **single-port mode** (``udp_port`` set, the default of ``peerlearn serve``): every host
  candidate is the node's one ``address:udp_port``, shared through :mod:`.udpmux`;
* **range mode** (``udp_port = 0``): one socket per candidate inside
  ``[port_min, port_max]``, bounded per room and per server (:class:`PortBudget`);
  none free -> :class:`PortRangeExhausted`,
* ``announced_ip`` advertised as an extra host candidate on the same port (same socket).

STUN server-reflexive candidates are not gathered for patched connections (the
announced IP replaces them); TURN relay candidates still are. Nothing global is
patched: other peer connections in the process keep aioice's behaviour. Every aioice
private access goes through the pinned helpers of ``taps.py`` (aioice section).
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import functools
import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import ifaddr
from aioice import ice as aioice_ice
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aiortc import RTCPeerConnection

from . import consent, taps
from .config import SfuConfig
from .errors import PortRangeExhausted
from .udpmux import UdpMux

logger = logging.getLogger(__name__)

_PATCHED = "_peerlearn_ice_policy"
_SOCKET_BUFFER = 1024 * 1024


class PortBudget:
    """Range-mode ports in use, per room and for the whole server (one per SfuServer)."""

    def __init__(self, per_room: int, per_server: int) -> None:
        self.per_room = per_room  # 0 = unbounded
        self.per_server = per_server
        self.in_use = 0
        self.by_room: dict[str, int] = {}

    def acquire(self, room: str) -> None:
        """Count one more port for ``room``, or raise with the quota's error code."""
        if self.per_server and self.in_use >= self.per_server:
            raise PortRangeExhausted(
                f"the server already uses its {self.per_server} UDP ports "
                "([sfu] max_ports_per_server)",
                code="server_port_quota",
            )
        held = self.by_room.get(room, 0)
        if self.per_room and held >= self.per_room:
            raise PortRangeExhausted(
                f"this room already uses its {self.per_room} UDP ports ([sfu] max_ports_per_room)",
                code="room_port_quota",
            )
        self.in_use += 1
        self.by_room[room] = held + 1

    def release(self, room: str) -> None:
        self.in_use -= 1
        left = self.by_room.get(room, 1) - 1
        if left > 0:
            self.by_room[room] = left
        else:
            self.by_room.pop(room, None)


@dataclass(frozen=True)
class IcePolicy:
    """Where host candidates may be bound and what is advertised.

    ``mux`` (single-port mode) and ``budget`` (range-mode quotas) are the server's runtime
    objects, shared by every room's policy (:meth:`for_room`).
    """

    port_min: int
    port_max: int
    interfaces: tuple[str, ...] = ()
    announced_ip: str | None = None
    use_ipv6: bool = False
    udp_port: int = 0
    room: str = ""
    mux: UdpMux | None = field(default=None, compare=False, repr=False)
    budget: PortBudget | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_config(cls, config: SfuConfig) -> IcePolicy:
        policy = cls(
            port_min=config.udp_port_min,
            port_max=config.udp_port_max,
            interfaces=config.interfaces,
            announced_ip=config.announced_ip,
            use_ipv6=config.use_ipv6,
            udp_port=config.media_port,
        )
        if policy.udp_port:
            return dataclasses.replace(
                policy, mux=UdpMux(policy.udp_port, lambda: host_addresses(policy))
            )
        per_room = config.max_ports_per_room or (
            # a full room: two peer connections per participant, one port per address
            2 * config.max_room_size * max(1, len(host_addresses(policy)))
        )
        per_server = config.max_ports_per_server or (config.udp_port_max - config.udp_port_min + 1)
        return dataclasses.replace(policy, budget=PortBudget(per_room, per_server))

    def for_room(self, room: str) -> IcePolicy:
        """The same policy, counting range-mode ports against ``room``."""
        return dataclasses.replace(self, room=room)

    async def close(self) -> None:
        """Release the single-port sockets (range-mode sockets close with their PCs)."""
        if self.mux is not None:
            await self.mux.close()


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

    async def get_component_candidates(
        component: int,
        addresses: list[str],
        timeout: int = 5,  # noqa: ASYNC109 - aioice API
    ) -> list[Candidate]:
        candidates: list[Candidate] = []
        # aioice passes no addresses under the "relay" policy: no host candidates then.
        if taps.ice_gathers_host_candidates(connection):
            if policy.mux is not None:
                candidates += await _mux_host_candidates(connection, component, policy)
            else:
                candidates += await _host_candidates(connection, component, policy)
        # STUN needs aioice's own host sockets, so only TURN is left to the original.
        candidates += await original(component=component, addresses=[], timeout=timeout)
        return candidates

    taps.ice_replace_host_gathering(connection, get_component_candidates)
    consent.install(connection)  # RFC 7675 timing that survives a busy event loop
    setattr(connection, _PATCHED, policy)


def _host_candidate(component: int, host: str, port: int, bonus: int = 0) -> Candidate:
    return Candidate(
        foundation=candidate_foundation("host", "udp", host),
        component=component,
        transport="udp",
        priority=candidate_priority(component, "host") + bonus,
        host=host,
        port=port,
        type="host",
    )


def _announced(policy: IcePolicy, component: int, host: str, port: int) -> list[Candidate]:
    # Same socket, public address: the NAT maps announced_ip:port to it.
    if policy.announced_ip and policy.announced_ip != host:
        return [_host_candidate(component, policy.announced_ip, port, bonus=1)]
    return []


class _BudgetedStunProtocol(aioice_ice.StunProtocol):
    """aioice's host protocol that gives its port back to the budget when closed."""

    def __init__(self, connection: aioice_ice.Connection, release: Callable[[], None]) -> None:
        super().__init__(connection)
        self._release: Callable[[], None] | None = release

    def connection_lost(self, exc: Exception | None) -> None:
        if self._release is not None:
            release, self._release = self._release, None
            release()
        super().connection_lost(exc)


async def _host_candidates(
    connection: aioice_ice.Connection, component: int, policy: IcePolicy
) -> list[Candidate]:
    """Range mode: one socket per allowed address, counted against the quotas."""
    loop = asyncio.get_running_loop()
    allocator = allocator_for(policy)
    budget = policy.budget
    candidates: list[Candidate] = []
    for address in host_addresses(policy):
        if budget is not None:
            budget.acquire(policy.room)
        try:
            sock = allocator.bind(address)
        except BaseException:
            if budget is not None:
                budget.release(policy.room)
            raise
        room = policy.room

        def release(budget: PortBudget | None = budget, room: str = room) -> None:
            if budget is not None:
                budget.release(room)

        _, protocol = await loop.create_datagram_endpoint(
            functools.partial(_BudgetedStunProtocol, connection, release), sock=sock
        )
        host, port = protocol.transport.get_extra_info("sockname")[:2]
        protocol.local_candidate = _host_candidate(component, host, port)
        taps.ice_add_host_protocol(connection, protocol)
        candidates.append(protocol.local_candidate)
        candidates += _announced(policy, component, host, port)
    return candidates


async def _mux_host_candidates(
    connection: aioice_ice.Connection, component: int, policy: IcePolicy
) -> list[Candidate]:
    """Single-port mode: a virtual host protocol on the node's port per allowed address."""
    mux = policy.mux
    assert mux is not None
    endpoints = await mux.endpoints()
    # A node-unique ufrag routes this connection's STUN; the local SDP is written after
    # gathering, so the remote side learns this one.
    taps.ice_set_local_ufrag(connection, mux.new_ufrag())
    candidates: list[Candidate] = []
    for endpoint in endpoints:
        protocol = aioice_ice.StunProtocol(connection)
        protocol.local_candidate = _host_candidate(component, endpoint.address, endpoint.port)
        endpoint.register(
            connection.local_username,
            connection.local_password,
            lambda: connection.remote_password,
            protocol,
        )
        taps.ice_add_host_protocol(connection, protocol)
        candidates.append(protocol.local_candidate)
        candidates += _announced(policy, component, endpoint.address, endpoint.port)
    return candidates


def apply_ice_policy(pc: RTCPeerConnection, policy: IcePolicy) -> None:
    """Patch every not-yet-gathered ICE connection of ``pc``.

    Call after transceivers / data channels exist and before ``setLocalDescription``
    (gathering happens there); calling it again only patches new transports.
    """
    for connection in taps.ice_connections(pc):
        if getattr(connection, _PATCHED, None) is None and not taps.ice_gathering_started(
            connection
        ):
            _patch_connection(connection, policy)
