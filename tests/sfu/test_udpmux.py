"""Single-port mode (``[sfu] udp_port``): every peer connection of the node on one UDP port."""

from __future__ import annotations

import asyncio
import os
import socket

import aioice.ice
import pytest
from aioice import stun

from peerlearn_sfu import RoomHooks, SfuConfig, SfuServer, taps
from peerlearn_sfu.udpmux import MuxEndpoint
from tests.sfu.client import Client, host_candidates


def free_udp_port() -> int:
    """A port nothing on 127.0.0.1 holds right now (the server binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def single_port_config(port: int, **kw) -> SfuConfig:
    return SfuConfig(udp_port=port, interfaces=("127.0.0.1",), **kw)


def udp_sockets_of_this_process() -> int:
    """UDP sockets this process holds (inode match of /proc/self/fd against /proc/net/udp)."""
    inodes = set()
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        with open(name) as table:
            next(table)
            inodes |= {line.split()[9] for line in table}
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            count += 1
    return count


def endpoint_of(server: SfuServer) -> MuxEndpoint:
    mux = server.ice_policy.mux
    assert mux is not None
    (endpoint,) = mux._endpoints.values()
    return endpoint


async def wait_until(predicate, what: str, patience: float = 15.0) -> None:
    """Poll ``predicate``; fail only after ``patience`` seconds without it becoming true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_growing(count, what: str, target: int, patience: float = 15.0) -> None:
    """Wait until ``count()`` reaches ``target``; fail after ``patience`` s with no progress."""
    loop = asyncio.get_running_loop()
    last, since = count(), loop.time()
    while count() < target:
        await asyncio.sleep(0.05)
        now = count()
        if now > last:
            last, since = now, loop.time()
        elif loop.time() - since > patience:
            raise AssertionError(f"{what}: stuck at {now} (wanted {target})")


# -- pins ------------------------------------------------------------------------------


async def test_aioice_internals_used_by_the_mux_are_pinned():
    taps.check_aioice_version()
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    pc.addTransceiver("video")
    (connection,) = taps.ice_connections(pc)
    assert isinstance(connection, aioice.ice.Connection)
    for name in taps.AIOICE_CONNECTION_FIELDS:
        assert hasattr(connection, name), name
    assert not taps.ice_gathering_started(connection)
    assert taps.ice_gathers_host_candidates(connection)
    taps.ice_set_local_ufrag(connection, "abcdEFGH12345678")
    assert connection.local_username == "abcdEFGH12345678"
    await pc.close()


# -- rooms on one port -----------------------------------------------------------------


@pytest.mark.slow
async def test_ten_participants_in_three_rooms_share_one_port(clip):
    port = free_udp_port()
    server = SfuServer(single_port_config(port))
    rooms = {"a": [1, 2, 3, 4], "b": [5, 6, 7], "c": [8, 9, 10]}
    clients = {
        uid: Client(server.open_room(room, RoomHooks()), uid, clip)
        for room, uids in rooms.items()
        for uid in uids
    }
    room_of = {uid: room for room, uids in rooms.items() for uid in uids}
    try:
        for client in clients.values():
            await client.join()
        for client in clients.values():
            await client.publish()
        for uid, client in clients.items():
            peers = [p for p in rooms[room_of[uid]] if p != uid]
            for peer in peers:
                await wait_growing(
                    lambda c=client, p=peer: len(c.frames_from(p, "camera")),
                    f"user {uid} receiving {peer}",
                    5,
                    patience=20,
                )
        for uid, client in clients.items():
            # Only its own room's media: every subscribed track is a room-mate's.
            senders = {user for user, _ in client.track_map.values()}
            assert senders == set(rooms[room_of[uid]]) - {uid}, (uid, client.track_map)
            assert len(client.received) == 3 * len(senders)
            # Every SFU candidate it was given is the one port.
            answer = next(m for m in client.messages if m["type"] == "answer")
            offer = next(m for m in client.messages if m["type"] == "offer")
            for sdp in (answer["sdp"], offer["sdp"]):
                assert {p for _, p in host_candidates(sdp)} == {port}
        endpoint = endpoint_of(server)
        assert endpoint.connections == 20  # publish + subscribe per participant
        assert endpoint.stats.dropped_unknown == 0
    finally:
        await asyncio.gather(*(c.close() for c in clients.values()))
        await server.close()


# -- NAT rebinding ---------------------------------------------------------------------


class Nat:
    """A small NAT in front of one client, for rebinding mid-call.

    The client talks to ``port`` (its SDP shows the SFU there); the NAT reaches the SFU
    from one outside socket per client address. :meth:`rebind` gives every client address
    a new outside socket (a new source port, as a NAT whose mapping expired would) and
    drops whatever still reaches the old ones (``stale``).
    """

    def __init__(self, sfu: tuple[str, int]) -> None:
        self.sfu = sfu
        self.loop = asyncio.get_running_loop()
        self.public = self._socket(self._from_client)
        self.port = self.public.getsockname()[1]
        self.outside: dict[tuple[str, int], socket.socket] = {}
        self.old: list[socket.socket] = []
        self.stale = 0

    def _socket(self, reader) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        self.loop.add_reader(sock.fileno(), reader, sock)
        return sock

    def _from_client(self, sock: socket.socket) -> None:
        try:
            data, client = sock.recvfrom(65536)
        except BlockingIOError:
            return
        outside = self.outside.get(client)
        if outside is None:
            outside = self.outside[client] = self._socket(
                lambda s, client=client: self._from_sfu(s, client)
            )
        outside.sendto(data, self.sfu)

    def _from_sfu(self, sock: socket.socket, client: tuple[str, int]) -> None:
        try:
            data, _ = sock.recvfrom(65536)
        except BlockingIOError:
            return
        if self.outside.get(client) is not sock:
            self.stale += 1  # the old mapping is gone: dropped
            return
        self.public.sendto(data, client)

    def rebind(self) -> None:
        for client, sock in list(self.outside.items()):
            self.old.append(sock)
            self.outside[client] = self._socket(lambda s, client=client: self._from_sfu(s, client))

    def close(self) -> None:
        for sock in [self.public, *self.outside.values(), *self.old]:
            self.loop.remove_reader(sock.fileno())
            sock.close()


class NattedClient(Client):
    """A participant behind :class:`Nat`: it sees the SFU at the NAT's address, and the
    SFU learns the client's address from its checks (peer-reflexive), as behind a real NAT."""

    def __init__(self, *args, nat: Nat, sfu_port: int, **kw) -> None:
        super().__init__(*args, **kw)
        self._nat = nat
        self._sfu_port = sfu_port

    async def send(self, message: dict) -> None:
        if "sdp" in message:
            lines = message["sdp"].split("\r\n")
            kept = [x for x in lines if not x.startswith(("a=candidate:", "a=end-of-candidates"))]
            message = {**message, "sdp": "\r\n".join(kept)}
        await super().send(message)

    async def on_message(self, message: dict) -> None:
        if "sdp" in message:
            message = {
                **message,
                "sdp": message["sdp"].replace(
                    f" 127.0.0.1 {self._sfu_port} typ host", f" 127.0.0.1 {self._nat.port} typ host"
                ),
            }
        await super().on_message(message)


async def test_nat_rebinding_remaps_the_connection_and_media_follows(clip, monkeypatch):
    # Consent checks (RFC 7675) are what reveal the new address; every ~1 s instead of ~5.
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 1)
    port = free_udp_port()
    server = SfuServer(single_port_config(port))
    room = server.open_room("r", RoomHooks())
    nat = Nat(("127.0.0.1", port))
    alice = NattedClient(room, 1, clip, nat=nat, sfu_port=port)
    bob = Client(room, 2, clip)
    try:
        await alice.join()
        await bob.join()
        await alice.publish()
        await bob.publish()
        uplink = lambda: len(bob.frames_from(1, "camera"))  # noqa: E731 - alice -> SFU -> bob
        downlink = lambda: len(alice.frames_from(2, "camera"))  # noqa: E731 - bob -> SFU -> alice
        await wait_growing(uplink, "alice's video through the NAT", 10)
        await wait_growing(downlink, "bob's video to alice through the NAT", 10)
        assert len(nat.outside) == 2  # alice's publish and subscribe connections
        endpoint = endpoint_of(server)
        remaps = endpoint.stats.remaps

        nat.rebind()
        await wait_until(
            lambda: endpoint.stats.remaps >= remaps + 2,
            "the SFU re-mapping both of alice's connections",
        )
        up, down, feedback = uplink(), downlink(), len(alice.remb)
        await wait_growing(uplink, "alice's video after the rebinding", up + 20)
        await wait_growing(downlink, "bob's video to alice after the rebinding", down + 20)
        # RTCP of the publish leg (REMB every second) follows too: there the SFU is the
        # controlled side, so aioice keeps its old pair and only the mux's re-map helps.
        await wait_growing(
            lambda: len(alice.remb), "REMB to alice after the rebinding", feedback + 3
        )
        # The SFU now sends to the new mapping only: the old one hears (almost) nothing more.
        stale = nat.stale
        up, down = uplink(), downlink()
        await wait_growing(uplink, "more of alice's video", up + 20)
        await wait_growing(downlink, "more of bob's video", down + 20)
        assert nat.stale - stale <= 2, (stale, nat.stale)
        assert alice.participant.publish.pc.connectionState == "connected"
    finally:
        await alice.close()
        await bob.close()
        await server.close()
        nat.close()


# -- no port starvation, clear errors, cleanup -------------------------------------------


def sockets_on_port(port: int) -> int:
    count = 0
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        with open(name) as table:
            next(table)
            count += sum(int(line.split()[1].rsplit(":", 1)[1], 16) == port for line in table)
    return count


async def test_many_rooms_never_starve_ports_in_single_port_mode(clip):
    port = free_udp_port()
    # A one-port range: range mode would refuse the second connection.
    server = SfuServer(single_port_config(port, udp_port_min=40890, udp_port_max=40890))
    clients = [
        Client(server.open_room(f"room{i // 2}", RoomHooks()), i + 1, clip) for i in range(20)
    ]
    before = udp_sockets_of_this_process()
    try:
        for client in clients:
            await client.join()
            await client.publish()
        for client in clients:
            await client.wait_message("answer", pc="publish", timeout=20)
            await client.wait_message("offer", pc="subscribe", timeout=20)
        connected = ("connected", "completed")
        await wait_growing(
            lambda: sum(
                pc is not None and pc.iceConnectionState in connected
                for c in clients
                for pc in (c.publish_pc, c.subscribe_pc)
            ),
            "connections through the one port",
            40,
            patience=20,
        )
        assert not [m for c in clients for m in c.of_type("error")]
        endpoint = endpoint_of(server)
        assert endpoint.connections == 40  # 10 rooms x 2 participants x 2 connections
        assert sockets_on_port(port) == 1
        client_sockets = sum(
            len(pc._RTCPeerConnection__iceTransports)  # one host socket each (127.0.0.1)
            for c in clients
            for pc in (c.publish_pc, c.subscribe_pc)
        )
        # The server's 40 connections hold one socket between them.
        assert udp_sockets_of_this_process() - before == 1 + client_sockets
        assert server.udp_stats()["mode"] == "single"
        for client in clients:
            await client.room.leave(client.participant)
        assert endpoint.connections == 0 and endpoint.addresses == 0  # unmapped on close
    finally:
        await asyncio.gather(*(c.close() for c in clients))
        await server.close()
    assert sockets_on_port(port) == 0


async def test_media_port_in_use_is_a_clear_error(clip):
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 0))
    port = blocker.getsockname()[1]
    server = SfuServer(single_port_config(port))
    client = Client(server.open_room("r", RoomHooks()), 1, clip)
    try:
        await client.join()
        await client.publish()
        error = await client.wait_message("error")
        assert error["code"] == "udp_port_unavailable"
        assert f"127.0.0.1:{port}" in error["message"]
    finally:
        blocker.close()
        await client.close()
        await server.close()


def test_worker_i_uses_port_plus_i():
    assert SfuConfig(udp_port=40000, worker_index=3).media_port == 40003
    assert SfuConfig(udp_port=0, worker_index=3).media_port == 0  # range mode
    with pytest.raises(ValueError):
        SfuConfig(udp_port=65535, worker_index=1)


# -- the demultiplexer on its own -------------------------------------------------------


class Recorder(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, tuple]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.lost = False

    def connection_made(self, transport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr) -> None:
        self.datagrams.append((data, addr))

    def connection_lost(self, exc) -> None:
        self.lost = True


UFRAG, PASSWORD, REMOTE_PASSWORD = "Ufrag0123456789x", "p" * 22, "r" * 22


def binding_request(username: str, key: str, tid: bytes | None = None) -> bytes:
    message = stun.Message(
        stun.Method.BINDING, stun.Class.REQUEST, transaction_id=tid or os.urandom(12)
    )
    message.attributes["USERNAME"] = username
    message.add_message_integrity(key.encode())
    message.add_fingerprint()
    return bytes(message)


@pytest.fixture
async def mux_endpoint():
    from peerlearn_sfu.udpmux import UdpMux

    mux = UdpMux(free_udp_port(), lambda: ["127.0.0.1"])
    (endpoint,) = await mux.endpoints()
    yield endpoint
    await mux.close()


@pytest.fixture
def peers():
    socks = []

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        socks.append(sock)
        return sock

    yield make
    for sock in socks:
        sock.close()


async def test_only_authenticated_stun_maps_an_address(mux_endpoint, peers):
    endpoint = mux_endpoint
    protocol = Recorder()
    endpoint.register(UFRAG, PASSWORD, lambda: REMOTE_PASSWORD, protocol)
    target = ("127.0.0.1", endpoint.port)
    peer = peers()
    here = peer.getsockname()

    async def settle(check) -> None:
        await wait_until(check, "the mux to count the datagram", patience=5)

    peer.sendto(b"\x80" + b"\x00" * 40, target)  # RTP-looking, from nobody we know
    await settle(lambda: endpoint.stats.dropped_unknown == 1)
    peer.sendto(binding_request(f"{UFRAG}:them", "wrong-password-xxxxxxxxx"), target)
    await settle(lambda: endpoint.stats.dropped_unauthenticated == 1)
    peer.sendto(binding_request("Nobody0123456789:them", PASSWORD), target)
    await settle(lambda: endpoint.stats.dropped_unauthenticated == 2)
    assert protocol.datagrams == [] and endpoint.addresses == 0

    request = binding_request(f"{UFRAG}:them", PASSWORD)
    peer.sendto(request, target)
    await settle(lambda: len(protocol.datagrams) == 1)
    assert protocol.datagrams[0] == (request, here) and endpoint.addresses == 1
    peer.sendto(b"\x16\xfe\xfd" + b"\x00" * 30, target)  # DTLS, now from a known address
    await settle(lambda: len(protocol.datagrams) == 2)

    # A client cannot spread over unbounded addresses.
    from peerlearn_sfu.udpmux import MAX_ADDRESSES

    for _ in range(MAX_ADDRESSES + 4):
        peers().sendto(binding_request(f"{UFRAG}:them", PASSWORD), target)
    await settle(lambda: len(protocol.datagrams) == 2 + MAX_ADDRESSES + 4)
    assert endpoint.addresses == MAX_ADDRESSES

    assert protocol.transport is not None
    protocol.transport.close()  # aioice closing its protocol: everything unmapped
    await settle(lambda: protocol.lost)
    assert endpoint.connections == 0 and endpoint.addresses == 0
    peer.sendto(b"\x16\xfe\xfd" + b"\x00" * 30, target)
    await settle(lambda: endpoint.stats.dropped_unknown == 2)


async def test_responses_are_routed_by_our_transaction_id(mux_endpoint, peers):
    endpoint = mux_endpoint
    protocol = Recorder()
    endpoint.register(UFRAG, PASSWORD, lambda: REMOTE_PASSWORD, protocol)
    remote = peers()
    assert protocol.transport is not None
    tid = os.urandom(12)
    protocol.transport.sendto(
        binding_request(f"them:{UFRAG}", REMOTE_PASSWORD, tid), remote.getsockname()
    )
    data, sfu = await asyncio.to_thread(remote.recvfrom, 2048)
    assert stun.parse_message(data).transaction_id == tid and sfu[1] == endpoint.port

    def response(transaction_id: bytes) -> bytes:
        message = stun.Message(
            stun.Method.BINDING, stun.Class.RESPONSE, transaction_id=transaction_id
        )
        message.attributes["XOR-MAPPED-ADDRESS"] = ("127.0.0.1", 1)
        message.add_message_integrity(REMOTE_PASSWORD.encode())
        return bytes(message)

    remote.sendto(response(os.urandom(12)), sfu)  # not ours, unmapped sender: dropped
    remote.sendto(response(tid), sfu)
    await wait_until(lambda: len(protocol.datagrams) == 1, "the response", patience=5)
    assert stun.parse_message(protocol.datagrams[0][0]).transaction_id == tid
    assert endpoint.addresses == 1  # an authenticated response proves the address too
