"""Port range, interface allow-list, announced IP, exhaustion."""

from __future__ import annotations

import socket

from peerlearn_sfu import RoomHooks, SfuConfig, SfuServer
from tests.sfu.client import Client, host_candidates


async def _publish_answer(config: SfuConfig, clip) -> tuple[SfuServer, Client, dict]:
    server = SfuServer(config)
    client = Client(server.open_room("r", RoomHooks()), 1, clip)
    await client.join()
    await client.publish()
    message = await client.wait_for(
        lambda: next((m for m in client.messages if m["type"] in ("answer", "error")), None)
    )
    return server, client, message


async def test_host_candidates_in_range_with_announced_ip(clip):
    config = SfuConfig(
        udp_port_min=40500, udp_port_max=40509, interfaces=("lo",), announced_ip="203.0.113.7"
    )
    server, client, answer = await _publish_answer(config, clip)
    try:
        candidates = host_candidates(answer["sdp"])
        assert candidates, answer["sdp"]
        assert all(40500 <= port <= 40509 for _, port in candidates)
        hosts = {host for host, _ in candidates}
        assert hosts == {"127.0.0.1", "203.0.113.7"}  # lo only, plus the announced address
        # Media flows over the range-bound socket.
        await client.wait_for(lambda: client.participant.publish.publications["camera"].frames_in)
    finally:
        await client.close()
        await server.close()


async def test_port_range_exhaustion_is_a_clear_error(clip):
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 40600))
    try:
        config = SfuConfig(udp_port_min=40600, udp_port_max=40600, interfaces=("127.0.0.1",))
        server, client, message = await _publish_answer(config, clip)
        assert message["type"] == "error"
        assert message["code"] == "port_range_exhausted"
        assert "40600" in message["message"]
        await client.close()
        await server.close()
    finally:
        blocker.close()
