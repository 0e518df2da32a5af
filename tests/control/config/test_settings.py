"""Typed settings: one-line errors naming the key, dev secret handling, env overrides."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from config.settings import ConfigError, load_settings
from control.limits import CHAT_MAX_CHARS, MAX_PARTICIPANTS


def _load(tmp_path: Path, toml: str = "", env: dict[str, str] | None = None, **overrides):
    path = None
    if toml:
        path = tmp_path / "conf.toml"
        path.write_text(toml)
    environ = {"PEERLEARN_DATA_DIR": str(tmp_path / "data"), **(env or {})}
    return load_settings(path, environ=environ, overrides=overrides or None)


def _error(tmp_path: Path, **kwargs) -> str:
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, **kwargs)
    message = str(exc.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"toml": "[server]\nprot = 80\n"}, "server.prot"),
        ({"toml": "[nonsense]\nx = 1\n"}, "nonsense"),
        ({"env": {"PEERLEARN_SERVER__PROT": "80"}}, "PEERLEARN_SERVER__PROT"),
        ({"env": {"PEERLEARN_NOPE__PORT": "80"}}, "PEERLEARN_NOPE__PORT"),
        ({"toml": "[server]\nport = 70000\n"}, "server.port"),
        ({"env": {"PEERLEARN_SERVER__PORT": "0"}}, "server.port"),
        ({"toml": '[database]\nurl = "mysql://x/y"\n'}, "database.url"),
        ({"toml": '[database]\nurl = "sqlite+aiosqlite:relative.db"\n'}, "database.url"),
        ({"toml": '[database]\nurl = "postgresql+asyncpg://"\n'}, "database.url"),
        ({"toml": '[redis]\nurl = "http://localhost:6379"\n'}, "redis.url"),
        ({"toml": '[server]\npublic_url = "learn.example.org"\n'}, "server.public_url"),
        ({"env": {"PEERLEARN_SERVER__PUBLIC_URL": "ftp://x"}}, "server.public_url"),
        ({"toml": "[sessions]\nmax_participants = 11\n"}, "sessions.max_participants"),
        ({"toml": "[sessions]\nauto_end_grace_minutes = -5\n"}, "sessions.auto_end_grace_minutes"),
        (
            {"env": {"PEERLEARN_SESSIONS__AUTO_END_GRACE_MINUTES": "soon"}},
            "sessions.auto_end_grace_minutes",
        ),
        ({"toml": '[server]\nmode = "production"\n'}, "server.secret_key"),
        ({"toml": '[server]\nsecret_key = "short"\n'}, "server.secret_key"),
        ({"toml": "[server\nport = 1"}, "conf.toml"),
        ({"env": {"PEERLEARN_SERVER_PORT": "9000"}}, "PEERLEARN_SERVER__PORT"),
        ({"env": {"PEERLEARN_SFU__UDP_PORT_MIN": "50000"}}, "udp_port_min"),
        (
            {"toml": '[server]\nsecret_key = "CHANGE-ME-to-64-random-characters-please-x"\n'},
            "server.secret_key",
        ),
        (
            {"toml": '[ice]\nturn_urls = ["turn:t.example:3478"]\nturn_secret = "CHANGE-ME"\n'},
            "ice.turn_secret",
        ),
        ({"toml": '[ice]\nturn_urls = ["turn:t.example:3478"]\n'}, "turn_secret"),
        ({"toml": '[sfu]\nannounced_ip = "not-an-ip"\n'}, "sfu.announced_ip"),
        ({"toml": f"[sfu]\nchat_max_chars = {CHAT_MAX_CHARS + 1}\n"}, "sfu.chat_max_chars"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, kwargs: dict, key: str):
    message = _error(tmp_path, **kwargs)
    assert key in message, message
    assert message.startswith("config error:")


@pytest.mark.parametrize(
    ("setting", "limit"),
    [
        (lambda s: s.sessions.max_participants, MAX_PARTICIPANTS),
        (lambda s: s.sfu.chat_max_chars, CHAT_MAX_CHARS),
    ],
    ids=["sessions.max_participants", "sfu.chat_max_chars"],
)
def test_defaults_are_the_fixed_limits(tmp_path: Path, setting: Any, limit: int) -> None:
    """Where the database fixes a bound, the setting defaults to it and may only lower it."""
    assert setting(_load(tmp_path)) == limit


def test_missing_config_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "absent.toml", environ={})


def test_dev_secret_generated_once_private_and_reused(tmp_path: Path):
    first = _load(tmp_path)
    secret_file = tmp_path / "data" / "secret_key"
    assert secret_file.exists()
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
    assert len(first.secret_key) >= 32
    second = _load(tmp_path)
    assert second.secret_key == first.secret_key
    assert secret_file.read_text().strip() == first.secret_key


def test_production_with_secret_does_not_write_file(tmp_path: Path):
    secret = "p" * 40
    settings = _load(
        tmp_path,
        env={"PEERLEARN_SERVER__MODE": "production", "PEERLEARN_SERVER__SECRET_KEY": secret},
    )
    assert settings.is_production and settings.secret_key == secret
    assert not (tmp_path / "data" / "secret_key").exists()


def test_env_overrides(tmp_path: Path):
    settings = _load(
        tmp_path,
        toml="[server]\nport = 9000\n",
        env={
            "PEERLEARN_SERVER__PORT": "9100",
            "PEERLEARN_SERVER__ALLOWED_ORIGINS": "https://a.example, https://b.example/",
            "PEERLEARN_ICE__STUN_URLS": '["stun:stun.example:3478"]',
            "PEERLEARN_AUTH__MIN_PASSWORD_LENGTH": "12",
            "PEERLEARN_DATABASE__URL": "postgresql://u:pw@db.example/peer",
        },
    )
    assert settings.server.port == 9100  # env beats the file
    assert settings.server.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.ice.stun_urls == ("stun:stun.example:3478",)
    assert settings.auth.min_password_length == 12
    assert settings.database_url == "postgresql+asyncpg://u:pw@db.example/peer"
    assert settings.server.data_dir == tmp_path / "data"
    summary = settings.public_summary()
    assert "pw@" not in summary["database"]["url"] and summary["server"]["secret_key"] == "********"


def test_defaults(tmp_path: Path):
    settings = _load(tmp_path)
    assert settings.server.port == 8080 and settings.server.host == "127.0.0.1"
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.redis.url is None and settings.email.backend == "console"


def test_auto_end_grace_is_read_from_the_shipped_files_and_overridable(tmp_path: Path):
    assert _load(tmp_path).sessions.auto_end_grace_minutes == 30  # config/default.toml
    env = {"PEERLEARN_SESSIONS__AUTO_END_GRACE_MINUTES": "0"}
    assert _load(tmp_path, env=env).sessions.auto_end_grace_minutes == 0
    from config.settings import SHIPPED_DIR

    example = (SHIPPED_DIR / "production.toml.example").read_text()
    assert "\nauto_end_grace_minutes = 30 " in example  # under [sessions], commented
    settings = _load(
        tmp_path,
        toml=example.replace("auto_end_grace_minutes = 30", "auto_end_grace_minutes = 45"),
        env={
            "PEERLEARN_SERVER__SECRET_KEY": "s" * 64,
            "PEERLEARN_ICE__TURN_SECRET": "t" * 32,
            "PEERLEARN_EMAIL__SMTP_PASSWORD": "p" * 16,
        },
    )
    assert settings.sessions.auto_end_grace_minutes == 45


def test_errors_never_echo_secrets(tmp_path: Path):
    message = _error(tmp_path, toml='[server]\nsecret_key = "tooshort-secret"\n')
    assert "tooshort-secret" not in message and "server.secret_key" in message
    message = _error(tmp_path, env={"PEERLEARN_DATABASE__URL": "mysql://bob:pw-123@db/x"})
    assert "pw-123" not in message and "database.url" in message


def test_shipped_production_example_is_refused_until_edited(tmp_path: Path):
    """Copying production.toml.example verbatim must not run with its published secret."""
    from config.settings import SHIPPED_DIR

    with pytest.raises(ConfigError, match=r"server\.secret_key: still the example placeholder"):
        load_settings(SHIPPED_DIR / "production.toml.example", environ={})


def test_unrelated_prefixed_variables_are_left_alone(tmp_path: Path):
    settings = _load(
        tmp_path,
        env={"PEERLEARN_TEST_POSTGRES_URL": "postgresql://x", "PEERLEARN_ADMIN_PASSWORD": "pw"},
    )
    assert settings.server.port == 8080
