"""One UDP port for all media of a node (single-port mode, ``[sfu] udp_port``).

mediasoup's WebRtcServer and LiveKit's ``rtc.udp_port`` do the same: every peer connection's
host candidate is the node's one ``address:port`` (one socket per allowed address), and each
incoming datagram is handed to the right ICE connection:

* a STUN **request** by the local-ufrag part of its USERNAME, and only once its
  MESSAGE-INTEGRITY checks out with that connection's local password; its source address
  is then mapped to the connection (a NAT rebinding re-maps it);
* a STUN **response** by the transaction id of the request we sent (so a client cannot
  claim an address by listing it as a candidate), else by address;
* everything else (DTLS, SRTP/SRTCP) by source address; unknown addresses are dropped.

Each aioice ``Connection`` keeps its own ``StunProtocol`` per host candidate; the mux gives
it a :class:`MuxedTransport` instead of a socket. When a connection's address changes after
media flowed (NAT rebinding) and the old address has gone silent, what aioice still sends
to the old address goes to the new one, so media follows the client (aioice itself only
moves its nominated pair when it is the controlling side).

Every table is bounded: connections per socket, addresses per connection, outstanding
transactions; unauthenticated traffic creates no state at all.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import socket
import string
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aioice import stun

from .errors import SfuError

logger = logging.getLogger(__name__)

Address = tuple[str, int]

MAX_CONNECTIONS = 16384  # per socket: registrations beyond this get media_port_full
MAX_ADDRESSES = 8  # remote addresses remembered per connection (oldest forgotten first)
MAX_TRANSACTIONS = 65536  # STUN requests awaiting a response, per socket
UFRAG_LENGTH = 16  # aioice's 4-character ufrags collide too often for a shared port
_STUN_COOKIE = b"\x21\x12\xa4\x42"
_SOCKET_BUFFER = 4 * 1024 * 1024
_UFRAG_CHARS = string.ascii_letters + string.digits


def is_stun(data: bytes) -> bool:
    """RFC 7983 demultiplexing: first byte 0-3 and the magic cookie."""
    return len(data) >= 20 and data[0] < 4 and data[4:8] == _STUN_COOKIE


def _stun_class(data: bytes) -> int:
    kind = int.from_bytes(data[0:2], "big")
    return kind & 0x0110


@dataclass
class MuxStats:
    """Counters of one socket (tests and ``SfuServer.stats``)."""

    received: int = 0
    dropped_unknown: int = 0  # non-STUN from an address no connection owns
    dropped_unauthenticated: int = 0  # STUN request with unknown ufrag or bad integrity
    remaps: int = 0  # a connection learned a new address after media flowed
    redirected: int = 0  # datagrams aioice sent to a superseded address


class MuxRegistration:
    """One ICE connection's host candidate on one shared socket."""

    def __init__(
        self,
        endpoint: MuxEndpoint,
        ufrag: str,
        password: str,
        remote_password: Callable[[], str | None],
        protocol: asyncio.DatagramProtocol,
    ) -> None:
        self.endpoint = endpoint
        self.ufrag = ufrag
        self.password = password.encode("utf8")
        self.remote_password = remote_password
        self.protocol = protocol
        # remote address -> value of ``ticks`` when it last sent us something
        self.addresses: OrderedDict[Address, int] = OrderedDict()
        self.ticks = 0
        self.established = False  # non-STUN (DTLS/SRTP) has arrived
        self.current: Address | None = None  # newest address learned after establishment
        self.current_since = 0
        self.closed = False

    def touch(self, addr: Address) -> None:
        self.ticks += 1
        if addr in self.addresses:
            self.addresses[addr] = self.ticks

    def destination(self, addr: Address) -> Address:
        """Where a datagram aioice addresses to ``addr`` really goes.

        An address is superseded once a newer one was authenticated after media flowed and
        nothing arrived from the old one since: a NAT rebinding. Two live paths (a browser
        pinging a backup pair) keep their own addresses.
        """
        current = self.current
        if current is None or addr == current:
            return addr
        last = self.addresses.get(addr)
        if last is not None and last <= self.current_since:
            return current
        return addr


class MuxedTransport(asyncio.DatagramTransport):
    """What one aioice ``StunProtocol`` sees instead of its own socket."""

    def __init__(self, registration: MuxRegistration) -> None:
        super().__init__()
        self._registration = registration
        self._closing = False

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        if self._closing or addr is None:
            return
        self._registration.endpoint.send(self._registration, bytes(data), (addr[0], addr[1]))

    def send_media(self, data: bytes, addr: Address) -> None:
        """``sendto`` for SRTP from the RTP-level forwarder: never a STUN request, so no
        transaction to remember; the NAT-rebinding redirect still applies."""
        registration = self._registration
        transport = registration.endpoint.transport
        if self._closing or registration.closed or transport is None:
            return
        transport.sendto(data, registration.destination(addr))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return (self._registration.endpoint.address, self._registration.endpoint.port)
        return default

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._registration.endpoint.unregister(self._registration)
        asyncio.get_running_loop().call_soon(self._registration.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_write_buffer_size(self) -> int:
        return 0


class MuxEndpoint(asyncio.DatagramProtocol):
    """The shared socket on one local address and its routing tables."""

    def __init__(self, address: str, port: int, ufrags: dict[str, int] | None = None) -> None:
        self.address = address
        self.port = port
        self._ufrags = ufrags if ufrags is not None else {}  # shared by a node's endpoints
        self.transport: asyncio.DatagramTransport | None = None
        self.stats = MuxStats()
        self._by_ufrag: dict[str, MuxRegistration] = {}
        self._by_address: dict[Address, MuxRegistration] = {}
        self._by_transaction: OrderedDict[bytes, MuxRegistration] = OrderedDict()

    # -- registrations ----------------------------------------------------------------

    @property
    def connections(self) -> int:
        return len(self._by_ufrag)

    @property
    def addresses(self) -> int:
        return len(self._by_address)

    def register(
        self,
        ufrag: str,
        password: str,
        remote_password: Callable[[], str | None],
        protocol: asyncio.DatagramProtocol,
    ) -> MuxRegistration:
        """Route ``ufrag``'s traffic to ``protocol`` and give it its transport."""
        if ufrag in self._by_ufrag:
            raise SfuError(f"ICE ufrag {ufrag} is already registered", code="media_port_full")
        if len(self._by_ufrag) >= MAX_CONNECTIONS:
            raise SfuError(
                f"UDP port {self.address}:{self.port} serves {MAX_CONNECTIONS} connections",
                code="media_port_full",
            )
        registration = MuxRegistration(self, ufrag, password, remote_password, protocol)
        self._by_ufrag[ufrag] = registration
        self._ufrags[ufrag] = self._ufrags.get(ufrag, 0) + 1
        protocol.connection_made(MuxedTransport(registration))
        return registration

    def unregister(self, registration: MuxRegistration) -> None:
        registration.closed = True
        if self._by_ufrag.get(registration.ufrag) is registration:
            del self._by_ufrag[registration.ufrag]
            count = self._ufrags.pop(registration.ufrag, 1) - 1
            if count > 0:
                self._ufrags[registration.ufrag] = count
        for addr in registration.addresses:
            if self._by_address.get(addr) is registration:
                del self._by_address[addr]
        registration.addresses.clear()
        # Transactions pointing at it are skipped on lookup and age out of the LRU.

    def _map(self, registration: MuxRegistration, addr: Address) -> None:
        """``addr`` is proven to belong to ``registration`` (authenticated STUN)."""
        owner = self._by_address.get(addr)
        if owner is not registration:
            if owner is not None:
                owner.addresses.pop(addr, None)
            self._by_address[addr] = registration
        is_new = addr not in registration.addresses
        registration.addresses[addr] = registration.ticks
        registration.addresses.move_to_end(addr)
        if not is_new:
            return
        if registration.established:
            registration.current = addr
            registration.current_since = registration.ticks
            self.stats.remaps += 1
            logger.info(
                "udp mux %s:%d: connection %s moved to %s",
                self.address,
                self.port,
                registration.ufrag,
                addr,
            )
        while len(registration.addresses) > MAX_ADDRESSES:
            old, _ = registration.addresses.popitem(last=False)
            if self._by_address.get(old) is registration:
                del self._by_address[old]

    # -- datagrams --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_datagram_endpoint hands a datagram protocol a datagram transport
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        addr = (addr[0], addr[1])
        self.stats.received += 1
        if is_stun(data):
            registration = self._route_stun(data, addr)
        else:
            registration = self._by_address.get(addr)
            if registration is None:
                self.stats.dropped_unknown += 1
                return
            registration.established = True
        if registration is None:
            return
        registration.touch(addr)
        try:
            registration.protocol.datagram_received(data, addr)
        except Exception:  # one connection's failure must not reach the shared socket
            logger.exception("udp mux: connection %s failed on a datagram", registration.ufrag)

    def _route_stun(self, data: bytes, addr: Address) -> MuxRegistration | None:
        try:
            message = stun.parse_message(data)
        except ValueError:
            self.stats.dropped_unauthenticated += 1
            return None
        if message.message_class == stun.Class.REQUEST:
            username = message.attributes.get("USERNAME")
            registration = (
                self._by_ufrag.get(username.partition(":")[0])
                if isinstance(username, str)
                else None
            )
            if registration is None or not message.check_message_integrity(registration.password):
                self.stats.dropped_unauthenticated += 1
                return None
            registration.ticks += 1
            self._map(registration, addr)
            return registration
        if message.message_class in (stun.Class.RESPONSE, stun.Class.ERROR):
            registration = self._by_transaction.pop(message.transaction_id, None)
            if registration is None or registration.closed:
                registration = self._by_address.get(addr)
            elif message.message_class == stun.Class.RESPONSE:
                remote = registration.remote_password()
                if remote and message.check_message_integrity(remote.encode("utf8")):
                    registration.ticks += 1
                    self._map(registration, addr)
            return registration
        return self._by_address.get(addr)  # indications (keep-alives)

    def send(self, registration: MuxRegistration, data: bytes, addr: Address) -> None:
        if self.transport is None or registration.closed:
            return
        destination = registration.destination(addr)
        if destination != addr:
            self.stats.redirected += 1
        if is_stun(data) and _stun_class(data) == 0:  # a request: remember who asked
            transactions = self._by_transaction
            transactions[data[8:20]] = registration
            transactions.move_to_end(data[8:20])
            while len(transactions) > MAX_TRANSACTIONS:
                transactions.popitem(last=False)
        self.transport.sendto(data, destination)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors of some remote (a closed port, an old NAT mapping): not fatal here.
        logger.debug("udp mux %s:%d: %s", self.address, self.port, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        for registration in list(self._by_ufrag.values()):
            self.unregister(registration)
            registration.protocol.connection_lost(exc)


class UdpMux:
    """The node's single media port: one :class:`MuxEndpoint` per allowed local address."""

    def __init__(self, port: int, addresses: Callable[[], list[str]]) -> None:
        self.port = port
        self._addresses = addresses
        self._endpoints: dict[str, MuxEndpoint] = {}
        self._lock = asyncio.Lock()
        self._ufrags: dict[str, int] = {}

    async def endpoints(self) -> list[MuxEndpoint]:
        """The bound sockets (bound on first use); :class:`SfuError` when the port is taken."""
        async with self._lock:
            if not self._endpoints:
                await self._bind()
            return list(self._endpoints.values())

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        addresses = self._addresses()
        if not addresses:
            raise SfuError(
                "no allowed interface address for the media port", code="udp_port_unavailable"
            )
        endpoints: dict[str, MuxEndpoint] = {}
        try:
            for address in addresses:
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    sock.bind((address, self.port))
                except OSError as exc:
                    sock.close()
                    raise SfuError(
                        f"cannot bind the media port {address}:{self.port}: {exc.strerror}",
                        code="udp_port_unavailable",
                    ) from exc
                sock.setblocking(False)
                for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
                    except OSError:
                        pass
                _, endpoint = await loop.create_datagram_endpoint(
                    functools.partial(MuxEndpoint, address, self.port, self._ufrags), sock=sock
                )
                endpoints[address] = endpoint
        except BaseException:
            for endpoint in endpoints.values():
                if endpoint.transport is not None:
                    endpoint.transport.close()
            raise
        self._endpoints = endpoints
        logger.info("media on one UDP port: %s", ", ".join(f"{a}:{self.port}" for a in endpoints))

    def new_ufrag(self) -> str:
        """A fresh ufrag no connection of this node uses (registering it reserves it)."""
        while True:
            ufrag = "".join(secrets.choice(_UFRAG_CHARS) for _ in range(UFRAG_LENGTH))
            if ufrag not in self._ufrags:
                return ufrag

    @property
    def connections(self) -> int:
        """ICE connections registered on the node's port."""
        return len(self._ufrags)

    def stats(self) -> dict[str, Any]:
        """Per bound address: connections, mapped addresses and counters."""
        return {
            f"{e.address}:{e.port}": {
                "connections": e.connections,
                "addresses": e.addresses,
                **vars(e.stats),
            }
            for e in self._endpoints.values()
        }

    async def close(self) -> None:
        endpoints, self._endpoints = self._endpoints, {}
        for endpoint in endpoints.values():
            if endpoint.transport is not None:
                endpoint.transport.close()
        await asyncio.sleep(0)  # let connection_lost run
