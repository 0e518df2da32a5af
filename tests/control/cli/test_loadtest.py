"""``peerlearn loadtest`` against a real ``peerlearn serve`` process: one room of three
headless participants for five seconds; everyone must get everyone else's video."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 90.0


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEERLEARN_")}
    env.update(
        PYTHONPATH=str(ROOT),
        PEERLEARN_DATA_DIR=str(tmp_path / "data"),
        PEERLEARN_EMAIL__BACKEND="file",
        PEERLEARN_SFU__INTERFACES="127.0.0.1",
        PEERLEARN_SFU__UDP_PORT=str(_free_port(socket.SOCK_DGRAM)),
    )
    return env


@pytest.fixture
def server(tmp_path: Path) -> object:
    port = _free_port()
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "web.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=_env(tmp_path),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
                if resp.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass
        assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
        time.sleep(0.2)
    yield url, proc.pid
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _table(stdout: str) -> dict[str, str]:
    """The table's rows (``│ metric │ value │``), metric → value."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 2 and cells[0] and cells[0] != "metric":
            rows[cells[0]] = cells[1]
    return rows


def test_loadtest_one_room_of_three(tmp_path: Path, server: tuple[str, int]) -> None:
    url, pid = server
    args = ["loadtest", url, "-r", "1", "-n", "3", "-s", "5", "--interface", "127.0.0.1"]
    result = subprocess.run(
        [sys.executable, "-m", "web.cli", *args, "--server-pid", str(pid)],
        cwd=ROOT,
        env={**_env(tmp_path), "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = _table(result.stdout)
    assert table["rooms × participants"] == "1 × 3", table
    assert table["failures"] == "0", result.stdout
    received, expected = map(int, table["video frames received / expected"].split(" / "))
    # 3 participants, each receiving 2 cameras at 20 fps for 5 s: about 600 frames.
    assert expected >= 2 * 3 * 20 * 5 * 0.8, table
    # Frames are counted by index (exact); loopback loses next to nothing.
    assert expected * 0.98 <= received <= expected, table
    for row in ("join → all video p50", "join → all video p95"):
        assert re.fullmatch(r"\d+ ms", table[row]), table
    assert re.fullmatch(r"\d+ % of a core", table["server CPU"]), table
    assert "publishing" in result.stdout  # the progress bar


def test_loadtest_names_a_refused_login_in_one_line(
    tmp_path: Path, server: tuple[str, int]
) -> None:
    url, _pid = server
    args = ["loadtest", url, "--mentor", "nobody:wrong-password-1", "--learner", "x:y"]
    result = subprocess.run(
        [sys.executable, "-m", "web.cli", *args, "-n", "2", "--no-progress"],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result
    [line] = [x for x in result.stderr.splitlines() if x.strip()]
    assert line.startswith("peerlearn: loadtest: POST /api/auth/login/: HTTP 401"), line
    assert "wrong-password-1" not in result.stderr


def test_percentile_and_accounts() -> None:
    from web.loadtest.participant import MARKER, TRAILER, frame_index
    from web.loadtest.runner import Account, parse_account, percentile

    assert percentile([], 95) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 21)], 95) == 19.0
    assert parse_account("ann:pa:ss") == Account("ann", "pa:ss")
    with pytest.raises(ValueError, match="USERNAME:PASSWORD"):
        parse_account("ann")
    assert frame_index(b"\x10\x02" + TRAILER.pack(41, MARKER)) == 41
    assert frame_index(b"\x10\x02" + TRAILER.pack(41, MARKER + 1)) is None
