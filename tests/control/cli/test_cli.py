"""The installed ``peerlearn`` command, run as a subprocess the way an operator runs it.

Start-up problems (bad settings, an unmigrated production database, an unreachable database)
must stop ``peerlearn serve`` with exit status 2 and one line on stderr naming the problem;
a good configuration must serve ``/`` and ``/healthz``.
"""

from __future__ import annotations

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

PEERLEARN = Path(sys.executable).with_name("peerlearn")
START_TIMEOUT_S = 90.0


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The caller's environment minus any PEERLEARN_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEERLEARN_")}
    env["PEERLEARN_DATA_DIR"] = str(tmp_path / "data")
    env.update(extra)
    return env


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command that must finish by itself (a refusal, migrate, create-admin)."""
    assert PEERLEARN.exists(), f"{PEERLEARN} missing: install the project (pip install -e .)"
    return subprocess.run(
        [str(PEERLEARN), *args],
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("toml", "env", "key"),
    [
        ("[server]\nbogus = 1\n", {}, "server.bogus"),
        ("", {"PEERLEARN_SERVER__BOGUS": "1"}, "PEERLEARN_SERVER__BOGUS"),
        ("", {"PEERLEARN_SERVER_PORT": "9000"}, "PEERLEARN_SERVER_PORT"),
        ("[server]\nport = 70000\n", {}, "server.port"),
        ("", {"PEERLEARN_SERVER__PORT": "0"}, "server.port"),
        ('[database]\nurl = "postgresql+asyncpg//db"\n', {}, "database.url"),
        ("", {"PEERLEARN_REDIS__URL": "localhost:6379"}, "redis.url"),
        ("[sessions]\nmax_participants = 11\n", {}, "sessions.max_participants"),
        ('[server]\nmode = "production"\n', {}, "server.secret_key"),
    ],
)
def test_serve_refuses_bad_settings_with_one_line(
    tmp_path: Path, toml: str, env: dict[str, str], key: str
) -> None:
    # --port would override the port under test; elsewhere it keeps a stray server off 8080.
    args = ["serve"] if key == "server.port" else ["serve", "--port", str(_free_port())]
    if toml:
        (tmp_path / "peerlearn.toml").write_text(toml)
        args = ["--config", str(tmp_path / "peerlearn.toml"), *args]
    result = _run(tmp_path, *args, **env)
    assert result.returncode == 2, result
    lines = _stderr_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("peerlearn: config error: ") and key in lines[0], lines
    assert "Traceback" not in result.stderr and result.stdout == ""


# What `peerlearn check --deploy` accepts (a real secret, TLS cookies, an https public_url,
# real mail); SQLite and no Redis only warn.
PRODUCTION = {
    "PEERLEARN_SERVER__MODE": "production",
    "PEERLEARN_SERVER__SECRET_KEY": "Vq3-rT8xLm2Zp9Kd4Wn7Yb6Hc1Fj5Gs0",
    "PEERLEARN_SERVER__COOKIE_SECURE": "true",
    "PEERLEARN_SERVER__PUBLIC_URL": "https://learn.example.org",
    "PEERLEARN_EMAIL__BACKEND": "smtp",
}


def test_serve_refuses_an_unmigrated_production_database(tmp_path: Path) -> None:
    production = PRODUCTION
    result = _run(tmp_path, "serve", "--port", str(_free_port()), **production)
    assert result.returncode == 2, result
    line = _stderr_lines(result)[-1]  # after the deploy warnings (SQLite, no Redis)
    assert "peerlearn migrate" in line and "revision none" in line, line


def test_serve_names_an_unreachable_database(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    result = _run(
        tmp_path,
        "serve",
        "--port",
        str(_free_port()),
        PEERLEARN_DATABASE__URL=f"postgresql://nobody:hunter2-pw@127.0.0.1:{port}/peerlearn",
    )
    assert result.returncode == 2, result
    [line] = _stderr_lines(result)
    assert line.startswith("peerlearn: cannot use the postgresql+asyncpg database"), line
    assert "hunter2-pw" not in result.stderr


def test_serve_names_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(tmp_path, "serve", "--port", str(port))
    assert result.returncode == 2, result
    # (The development start-up logs its migration before trying to listen.)
    [line] = [line for line in _stderr_lines(result) if line.startswith("peerlearn: ")]
    assert line.startswith(f"peerlearn: cannot listen on 127.0.0.1:{port}"), line
    assert "Traceback" not in result.stderr
    assert result.stdout == ""  # never claimed to be serving


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _serve_until_healthy(tmp_path: Path, port: int, **env: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [str(PEERLEARN), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"peerlearn serve exited with {proc.returncode}:\n{proc.stdout.read()}")  # type: ignore[union-attr]
        try:
            if _get(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.3)
    proc.kill()
    pytest.fail(f"peerlearn serve did not answer within {START_TIMEOUT_S} s")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        output, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"peerlearn serve did not stop on SIGINT:\n{output}")
    return output


def test_serve_development_defaults(tmp_path: Path) -> None:
    """No config at all: SQLite in the data folder, migrated, a generated secret kept there."""
    port = _free_port()
    proc = _serve_until_healthy(tmp_path, port)
    try:
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and b'"database": "ok"' in body
        status, body = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and b"PeerLearn" in body
        status, body = _get(f"http://127.0.0.1:{port}/api/openapi.json")
        assert status == 200 and b'"openapi"' in body
    finally:
        output = _stop(proc)
    assert f"on http://127.0.0.1:{port}/" in output
    data = tmp_path / "data"
    assert (data / "peerlearn.db").exists()
    secret = (data / "secret_key").read_text()
    assert len(secret.strip()) >= 32


def test_production_serves_after_migrate_and_create_admin(tmp_path: Path) -> None:
    production = PRODUCTION
    migrated = _run(tmp_path, "migrate", **production)
    assert migrated.returncode == 0 and "database at revision" in migrated.stdout, migrated
    admin = _run(
        tmp_path,
        "create-admin",
        "root",
        "root@example.org",
        PEERLEARN_ADMIN_PASSWORD="s3cret-pass!",
        **production,
    )
    assert admin.returncode == 0 and "admin 'root' created" in admin.stdout, admin
    port = _free_port()
    proc = _serve_until_healthy(tmp_path, port, **production)
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/auth/login/",
            data=b'{"username": "root@example.org", "password": "s3cret-pass!"}',
            # Production serves only public_url's host name.
            headers={"Content-Type": "application/json", "Host": "learn.example.org"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
            assert b'"role":"admin"' in resp.read().replace(b" ", b"")
    finally:
        _stop(proc)
    assert not (tmp_path / "data" / "secret_key").exists()  # production never writes one
