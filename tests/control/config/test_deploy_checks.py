"""``peerlearn check --deploy`` and a production ``serve`` refuse unsafe settings, one line
naming the key; SQLite (and no Redis) only warn; a safe production configuration passes.

The checks are ``config.settings.deploy_checks``; the command is ``web.cli.main``, run in
this process (the same entry point ``tests/control/test_cli.py`` runs as a subprocess).
Nothing here starts a server: a refused ``serve`` stops before the database, and a safe one
stops at the unmigrated database.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config.settings import SHIPPED_DIR, deploy_checks, load_settings
from web.cli import main

SAFE_SECRET = "Vq3-rT8xLm2Zp9Kd4Wn7Yb6Hc1Fj5Gs0Ua"
#: what check --deploy accepts: a random secret, TLS cookies, an https public_url, real mail
SAFE = {
    "server": {
        "mode": "production",
        "secret_key": SAFE_SECRET,
        "cookie_secure": True,
        "public_url": "https://learn.example.org",
    },
    "email": {"backend": "smtp", "smtp_host": "smtp.example.org"},
}


def _toml(sections: dict[str, dict[str, Any]]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value(v)}" for key, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


def _config(tmp_path: Path, **changes: dict[str, Any]) -> Path:
    """SAFE with ``changes`` merged in (a value of None leaves the key out)."""
    sections = {name: dict(values) for name, values in SAFE.items()}
    for section, values in changes.items():
        sections.setdefault(section, {}).update(values)
    sections["server"]["data_dir"] = str(tmp_path / "data")
    path = tmp_path / "peerlearn.toml"
    path.write_text(_toml(sections))
    return path


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the file under test counts: no PEERLEARN_* variable of the caller's."""
    import os

    for name in list(os.environ):
        if name.startswith("PEERLEARN_"):
            monkeypatch.delenv(name)


Run = Callable[..., tuple[int, list[str], list[str]]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def call(config: Path, *args: str) -> tuple[int, list[str], list[str]]:
        code = main(["--config", str(config), *args])
        out, err = capsys.readouterr()
        lines = lambda text: [line for line in text.splitlines() if line.strip()]  # noqa: E731
        return code, lines(out), lines(err)

    return call


# Each unsafe setting, alone in an otherwise safe production file: (changes, key).
UNSAFE = {
    "repeated secret": ({"server": {"secret_key": "a" * 32}}, "server.secret_key"),
    "typed-in secret": ({"server": {"secret_key": "password" * 4}}, "server.secret_key"),
    "cookie_secure off": ({"server": {"cookie_secure": False}}, "server.cookie_secure"),
    "no public_url": ({"server": {"public_url": None}}, "server.public_url"),
    "plain-http public_url": (
        {"server": {"public_url": "http://learn.example.org"}},
        "server.public_url",
    ),
    "console mail": ({"email": {"backend": "console"}}, "email.backend"),
}


@pytest.mark.parametrize(("changes", "key"), UNSAFE.values(), ids=UNSAFE.keys())
def test_check_deploy_refuses_each_unsafe_setting_in_one_line(
    tmp_path: Path, run: Run, changes: dict[str, Any], key: str
) -> None:
    code, out, err = run(_config(tmp_path, **changes), "check", "--deploy")
    assert code == 1, (out, err)
    errors = [line for line in out if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {key}: "), out
    assert out[-1].startswith("1 error(s)")
    assert err == []


@pytest.mark.parametrize(("changes", "key"), UNSAFE.values(), ids=UNSAFE.keys())
def test_production_serve_refuses_each_unsafe_setting_in_one_line(
    tmp_path: Path, run: Run, changes: dict[str, Any], key: str
) -> None:
    code, out, err = run(_config(tmp_path, **changes), "serve", "--port", "1")
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith(f"peerlearn: refusing to serve in production: error: {key}: ")
    assert out == []
    assert not (tmp_path / "data" / "peerlearn.db").exists()  # stopped before the database


EXAMPLE_SECRET = "CHANGE-ME-to-64-random-characters-e.g.-python3"


@pytest.mark.parametrize("secret", [EXAMPLE_SECRET, None], ids=["placeholder", "missing"])
@pytest.mark.parametrize("args", [("check", "--deploy"), ("serve", "--port", "1")])
def test_placeholder_and_missing_secrets_are_refused_naming_the_key(
    tmp_path: Path, run: Run, secret: str | None, args: tuple[str, ...]
) -> None:
    config = _config(tmp_path, server={"secret_key": secret})
    code, out, err = run(config, *args)
    assert code == 2 and out == [], (secret, args, out)
    assert len(err) == 1 and err[0].startswith("peerlearn: config error: server.secret_key:")
    assert SAFE_SECRET not in err[0] and EXAMPLE_SECRET not in err[0]  # never echoed


def test_the_environment_counts_like_the_file(
    tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEERLEARN_SERVER__COOKIE_SECURE", "false")
    code, _, err = run(_config(tmp_path), "serve", "--port", "1")
    assert code == 2 and len(err) == 1 and "server.cookie_secure" in err[0]


def test_every_unsafe_setting_is_reported_errors_first(tmp_path: Path, run: Run) -> None:
    config = _config(
        tmp_path,
        server={"secret_key": "b" * 40, "cookie_secure": False, "public_url": None},
        email={"backend": "console"},
    )
    code, out, _ = run(config, "check", "--deploy")
    keys = [line.split(": ")[1] for line in out if line.startswith("error:")]
    assert code == 1
    assert sorted(keys) == sorted(
        ["server.secret_key", "server.cookie_secure", "server.public_url", "email.backend"]
    )
    levels = [line.split(":")[0] for line in out[:-1]]
    assert levels == sorted(levels)  # "error" before "warning"
    code, _, err = run(config, "serve", "--port", "1")
    assert code == 2 and err[0].startswith("peerlearn: refusing to serve in production: error:")
    assert all(line.startswith("peerlearn:   also error: ") for line in err[1:]) and len(err) == 4


def test_a_safe_production_config_passes_and_sqlite_only_warns(tmp_path: Path, run: Run) -> None:
    config = _config(tmp_path)
    code, out, err = run(config, "check", "--deploy")
    assert code == 0, out
    assert not any(line.startswith("error:") for line in out)
    assert any(line.startswith("warning: database.url: SQLite") for line in out), out
    assert any(line.startswith("warning: redis.url: ") for line in out), out
    assert out[-1] == "0 error(s), 2 warning(s)"
    # serve passes the checks, prints the warnings, then stops at the unmigrated database.
    code, out, err = run(config, "serve", "--port", "1")
    assert code == 2
    assert "peerlearn: warning: database.url: SQLite in production: one process only, " in (
        " ".join(err)
    )
    assert "peerlearn migrate" in err[-1]
    assert not any("refusing" in line for line in err)


def test_an_explicit_sqlite_url_warns_too(tmp_path: Path, run: Run) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'explicit.db'}"
    code, out, _ = run(_config(tmp_path, database={"url": url}), "check", "--deploy")
    assert code == 0
    assert any(line.startswith("warning: database.url:") for line in out), out


def test_postgres_and_redis_silence_the_warnings(make_settings: Callable[..., Any]) -> None:
    settings = make_settings(
        server=SAFE["server"],
        email=SAFE["email"],
        database={"url": "postgresql://peerlearn:pw@db.example.org/peerlearn"},
        redis={"url": "redis://cache.example.org:6379/0"},
    )
    assert deploy_checks(settings) == []


def test_development_mode_is_reported_as_such(make_settings: Callable[..., Any]) -> None:
    checks = {c.key: c.level for c in deploy_checks(make_settings())}
    assert checks["server.mode"] == "warning"
    assert checks["server.cookie_secure"] == "error"  # what production would refuse


def test_the_production_example_needs_only_its_placeholders_replaced(tmp_path: Path) -> None:
    """config/production.toml.example with a real secret and SMTP password passes."""
    settings = load_settings(
        SHIPPED_DIR / "production.toml.example",
        environ={},
        overrides={
            "server": {"secret_key": SAFE_SECRET, "data_dir": str(tmp_path / "data")},
            "email": {"smtp_password": "a-real-smtp-password"},
            "ice": {"turn_secret": "a-real-coturn-secret"},
        },
    )
    assert [c for c in deploy_checks(settings) if c.level == "error"] == []


def test_the_examples_smtp_placeholder_is_refused(tmp_path: Path) -> None:
    settings = load_settings(
        SHIPPED_DIR / "production.toml.example",
        environ={},
        overrides={
            "server": {"secret_key": SAFE_SECRET, "data_dir": str(tmp_path / "data")},
            "ice": {"turn_secret": "a-real-coturn-secret"},
        },
    )
    assert "email.smtp_password" in [c.key for c in deploy_checks(settings)]
