"""web.metrics' SFU collector on a real room (aiortc clients publishing): the figures come
from ``SfuServer.stats()`` and the counters never go back when someone leaves."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from peerlearn_sfu import SfuServer
from web.keys import SFU
from web.metrics import SfuCollector


def _read(collector: SfuCollector) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in collector.collect():
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _one(figures: dict[str, Any], name: str, **labels: str) -> float:
    return figures[name].get(tuple(sorted(labels.items())), 0.0)


async def test_collector_reads_a_live_room(make_client: Any, server: SfuServer) -> None:
    app = web.Application()
    app[SFU] = server
    collector = SfuCollector(app)
    alice = await make_client(1).join()
    bob = await make_client(2).join()
    await alice.publish()
    await bob.publish()
    await alice.wait_for(lambda: len(alice.frames_from(2, "camera")) > 10, timeout=10)
    await bob.wait_for(lambda: len(bob.frames_from(1, "camera")) > 10, timeout=10)

    live = _read(collector)
    assert _one(live, "peerlearn_room_total") == 1
    assert _one(live, "peerlearn_participant_total") == 2
    assert _one(live, "peerlearn_track_published_total", kind="camera") == 2
    incoming = _one(live, "peerlearn_packet_total", direction="incoming", kind="camera")
    outgoing = _one(live, "peerlearn_packet_total", direction="outgoing", kind="camera")
    assert incoming > 20 and outgoing > 20
    assert _one(live, "peerlearn_packet_bytes_total", direction="outgoing", kind="camera") > 0
    assert _one(live, "peerlearn_packet_total", direction="incoming", kind="audio") > 0

    await server.rooms["room"].leave(server.rooms["room"].participants[2])
    after = _read(collector)
    assert _one(after, "peerlearn_participant_total") == 1
    for name, labels in (
        ("peerlearn_packet_total", {"direction": "incoming", "kind": "camera"}),
        ("peerlearn_packet_total", {"direction": "outgoing", "kind": "camera"}),
        ("peerlearn_packet_bytes_total", {"direction": "outgoing", "kind": "camera"}),
    ):
        assert _one(after, name, **labels) >= _one(live, name, **labels), name
