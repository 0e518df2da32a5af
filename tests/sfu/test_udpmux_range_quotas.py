"""Range mode (``[sfu] udp_port = 0``): UDP ports in use are bounded per room and per server."""

from __future__ import annotations

from peerlearn_sfu import RoomHooks, SfuConfig, SfuServer
from tests.sfu.client import Client, host_candidates


def range_config(**kw) -> SfuConfig:
    return SfuConfig(udp_port_min=40800, udp_port_max=40889, interfaces=("127.0.0.1",), **kw)


async def publish(server: SfuServer, room: str, user_id: int, clip) -> tuple[Client, dict]:
    client = Client(server.open_room(room, RoomHooks()), user_id, clip)
    await client.join()
    await client.publish()
    reply = await client.wait_for(
        lambda: next((m for m in client.messages if m["type"] in ("answer", "error")), None)
    )
    return client, reply


async def test_a_room_cannot_hold_more_than_its_ports(clip):
    server = SfuServer(range_config(max_ports_per_room=1))
    clients = []
    try:
        alice, answer = await publish(server, "r1", 1, clip)
        clients.append(alice)
        assert answer["type"] == "answer"
        assert all(40800 <= port <= 40889 for _, port in host_candidates(answer["sdp"]))
        bob, error = await publish(server, "r1", 2, clip)
        clients.append(bob)
        assert error["type"] == "error" and error["code"] == "room_port_quota"
        assert "max_ports_per_room" in error["message"]
        carol, answer = await publish(server, "r2", 3, clip)  # another room has its own
        clients.append(carol)
        assert answer["type"] == "answer"
        assert server.udp_stats()["by_room"] == {"r1": 1, "r2": 1}
    finally:
        for client in clients:
            await client.close()
        await server.close()


async def test_the_server_cannot_hold_more_than_its_ports_and_leaving_frees_them(clip):
    server = SfuServer(range_config(max_ports_per_server=2))
    clients = []
    try:
        for user_id, room in ((1, "r1"), (2, "r2")):
            client, answer = await publish(server, room, user_id, clip)
            clients.append(client)
            assert answer["type"] == "answer"
        dave, error = await publish(server, "r3", 4, clip)
        clients.append(dave)
        assert error["type"] == "error" and error["code"] == "server_port_quota"
        assert server.udp_stats()["in_use"] == 2
        first = clients[0]
        await first.room.leave(first.participant)  # its connection closes, its port is free
        assert server.udp_stats()["in_use"] == 1
        erin, answer = await publish(server, "r3", 5, clip)
        clients.append(erin)
        assert answer["type"] == "answer"
    finally:
        for client in clients:
            await client.close()
        await server.close()
    assert server.ice_policy.budget is not None and server.ice_policy.budget.in_use == 0


def test_default_room_quota_fits_a_full_room():
    server = SfuServer(range_config())
    budget = server.ice_policy.budget
    assert budget is not None
    # 11 participants x (publish + subscribe) x one allowed address
    assert budget.per_room == 22 and budget.per_server == 90
