"""Two real ``peerlearn serve`` nodes on one database and the real Redis: each background job
runs on one of them only, and moves to the other when its node is killed (issue 13)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REDIS_URL = os.environ.get("PEERLEARN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
JOBS = ("session-reminders", "payment-holds", "session-auto-end")
START_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Node:
    def __init__(self, tmp_path: Path, name: str) -> None:
        self.port = _free_port()
        self.log = tmp_path / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PEERLEARN_")}
        env.update(
            PEERLEARN_DATA_DIR=str(tmp_path / "data"),  # one database, one secret
            PEERLEARN_REDIS__URL=REDIS_URL,
            PEERLEARN_JOBS__LOCK_TTL_S="1",
            PEERLEARN_SFU__UDP_PORT="0",
            PYTHONPATH=str(Path(__file__).resolve().parents[3]),
        )
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "web", "serve", "--port", str(self.port)],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"node exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if _get(self.url("/healthz"))[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        pytest.fail(f"node did not answer within {START_TIMEOUT_S} s")

    def runs(self) -> set[str]:
        text = self.log.read_text()
        return {job for job in JOBS if f"job {job}: this node runs it" in text}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _until(predicate: object, what: str, seconds: float = 20.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.slow
def test_each_job_runs_on_one_node_and_moves_when_it_dies(tmp_path: Path) -> None:
    first = Node(tmp_path, "first")
    second: Node | None = None
    try:
        first.wait_healthy()  # alone: it migrates the database and takes every job
        _until(lambda: first.runs() == set(JOBS), "the first node to run every job")
        second = Node(tmp_path, "second")
        second.wait_healthy()
        time.sleep(2.0)  # two TTLs: the second node retried several times meanwhile
        assert second.runs() == set(), second.log.read_text()
        status, body = _get(second.url("/readyz"))
        assert status == 200 and json.loads(body)["checks"]["redis"] == "ok"

        first.proc.send_signal(signal.SIGKILL)  # no release: its locks must expire
        first.proc.wait()
        took = _until(lambda: second.runs() == set(JOBS), "the second node to take over")
        assert took < 5.0  # the TTL (1 s) plus a retry period (1/3 s), with room for a busy machine
    finally:
        first.stop()
        if second is not None:
            second.stop()
