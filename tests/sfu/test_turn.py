"""TURN credentials and a real coturn relaying an aiortc client (relay candidates only)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from aiortc.rtcconfiguration import RTCIceServer

from peerlearn_sfu import RoomHooks, SfuConfig, SfuServer
from peerlearn_sfu.turn import ice_servers_for, turn_credentials
from tests.sfu.client import Client

SECRET = "test-secret-123"


def test_turn_credentials_follow_coturn_rest_scheme():
    username, credential = turn_credentials(SECRET, 42, 3600, now=1_000_000)
    assert username == "1003600:42"
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), b"1003600:42", hashlib.sha1).digest()
    ).decode()
    assert credential == expected


def test_ice_servers_for_browsers():
    config = SfuConfig(
        stun_urls=("stun:turn.example.org:3478",),
        turn_urls=("turn:turn.example.org:3478?transport=udp",),
        turn_secret=SECRET,
    )
    servers = ice_servers_for(config, 7)
    assert servers[0] == {"urls": ["stun:turn.example.org:3478"]}
    assert servers[1]["urls"] == ["turn:turn.example.org:3478?transport=udp"]
    assert servers[1]["username"].endswith(":7") and servers[1]["credential"]
    assert ice_servers_for(SfuConfig(), 7) == []


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def coturn(tmp_path: Path):
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.fail("coturn is not installed: `apt-get install coturn` (provides `turnserver`)")
    port = _free_udp_port()
    conf = tmp_path / "turnserver.conf"
    conf.write_text(
        "\n".join(
            [
                "listening-ip=127.0.0.1",
                "relay-ip=127.0.0.1",
                f"listening-port={port}",
                "min-port=49200",
                "max-port=49299",
                "use-auth-secret",
                f"static-auth-secret={SECRET}",
                "realm=peerlearn.test",
                "fingerprint",
                "no-tls",
                "no-dtls",
                "no-cli",
                "allow-loopback-peers",
                "no-multicast-peers",
                f"userdb={tmp_path / 'turndb'}",
                f"pidfile={tmp_path / 'turn.pid'}",
                f"log-file={tmp_path / 'turn.log'}",
                "simple-log",
            ]
        )
    )
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 5
    log = tmp_path / "turn.log"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"turnserver exited with {proc.returncode}")
        if log.exists() and "listener opened" in log.read_text(errors="replace").lower():
            break
        time.sleep(0.05)
    yield port
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def test_media_flows_through_coturn_relay(coturn, clip):
    server = SfuServer(SfuConfig(interfaces=("127.0.0.1",)))
    room = server.open_room("r", RoomHooks())
    username, credential = turn_credentials(SECRET, 1, 600)
    turn = RTCIceServer(
        urls=f"turn:127.0.0.1:{coturn}?transport=udp", username=username, credential=credential
    )
    alice = Client(room, 1, clip, ice_servers=[turn], relay_only=True)
    bob = Client(room, 2, clip)
    try:
        await alice.join()
        await bob.join()
        await alice.publish()
        offer_sdp = alice.publish_pc.localDescription.sdp
        candidates = [line for line in offer_sdp.splitlines() if line.startswith("a=candidate")]
        assert candidates and all(" typ relay" in c for c in candidates), candidates
        await bob.wait_for(lambda: len(bob.frames_from(1, "camera")) > 10, timeout=15)
    finally:
        await alice.close()
        await bob.close()
        await server.close()
