"""``peerlearn serve --workers N``: N worker processes, each a node, one HTTP port."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import redis.asyncio as redis

from control.cluster import PREFIX
from tests.cluster.support import REDIS_URL, ROOT, Api, Participant, node_env
from tests.cluster.support import free_port as _free
from tests.cluster.test_two_nodes import receives_video
from tests.sfu.media import Clip


def test_more_than_one_worker_without_redis_is_refused_in_one_line(tmp_path: Path) -> None:
    env = node_env(tmp_path, "solo", "")
    del env["PEERLEARN_REDIS__URL"]
    del env["PEERLEARN_DATABASE__URL"]
    result = subprocess.run(
        [sys.executable, "-m", "web.cli", "serve", "--port", str(_free()), "--workers", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "peerlearn: 2 workers need [redis] url (PEERLEARN_REDIS__URL): "
        "nodes share rooms through Redis"
    ], lines
    assert result.stdout == ""


def _supervisor(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``peerlearn serve --workers 2`` (it returns at once; the workers start after it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "web.cli", "serve", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _registry() -> list[dict[str, object]]:
    client = redis.from_url(REDIS_URL)
    try:
        ids = [m.decode() for m in await client.smembers(PREFIX + "nodes")]
        values = await client.mget([PREFIX + f"node:{i}" for i in ids]) if ids else []
        return [json.loads(v) for v in values if v]
    finally:
        await client.aclose()


async def test_two_workers_share_the_http_port_and_each_has_its_own_media_port(
    tmp_path: Path,
    postgres_database: str,
    clean_redis: None,
    clip: Clip,
) -> None:
    port, udp = _free(), _free(socket.SOCK_DGRAM)
    env = node_env(tmp_path, "workers", postgres_database, PEERLEARN_SFU__UDP_PORT=str(udp))
    proc = _supervisor(port, env)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                entries = await _registry()
                if len(entries) == 2:
                    break
                await asyncio.sleep(0.2)
            assert sorted(str(e["media"]).rsplit(":", 1)[1] for e in entries) == [
                str(udp),
                str(udp + 1),
            ], entries
            for _ in range(100):  # both listen by now; the first may still be binding
                try:
                    async with http.get(base + "/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
            # A room used through the shared port: sockets land on either worker.
            api = Api(http, base)
            mentor, learner = await api.user("mentor"), await api.user("learner")
            sid = await api.live_session(mentor, [learner])
            m = Participant(base, sid, mentor["token"], mentor["id"], clip)
            ell = Participant(base, sid, learner["token"], learner["id"], clip)
            try:
                await m.join()
                await ell.join()
                await m.publish()
                await ell.publish()
                await asyncio.gather(
                    receives_video(m, learner["id"]), receives_video(ell, mentor["id"])
                )
            finally:
                await m.close()
                await ell.close()
            # A worker that dies is restarted by the supervisor, as a new node.
            victim = entries[0]
            os.kill(int(str(victim["pid"])), signal.SIGKILL)
            for _ in range(300):
                now = await _registry()
                ids = {str(e["node_id"]) for e in now}
                if len(now) == 2 and victim["node_id"] not in ids:
                    break
                await asyncio.sleep(0.2)
            assert len(now) == 2 and victim["node_id"] not in ids, now
            assert sorted(str(e["media"]).rsplit(":", 1)[1] for e in now) == [
                str(udp),
                str(udp + 1),
            ], now
    finally:
        proc.terminate()  # the supervisor passes SIGTERM on; each worker drains
        assert proc.wait(timeout=60) == 0
    assert await _registry() == []  # each worker left the registry on its way out
