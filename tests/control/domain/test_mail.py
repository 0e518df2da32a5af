"""Mail backends: console, file and a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import email
import logging
import socket
from email import policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from config.settings import load_settings
from control.services.mail import ConsoleMailer, FileMailer, SmtpMailer, create_mailer


def _settings(tmp_path: Path, **email_cfg: Any) -> Any:
    return load_settings(
        environ={}, overrides={"server": {"data_dir": str(tmp_path / "d")}, "email": email_cfg}
    )


async def test_console_backend_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    mailer = create_mailer(_settings(tmp_path))
    assert isinstance(mailer, ConsoleMailer)
    with caplog.at_level(logging.INFO, logger="control.services.mail"):
        await mailer.send("a@example.org", "Hi", "link: http://x/?token=abc")
    assert "token=abc" in caplog.text


async def test_file_backend_default_and_configured_dir(tmp_path: Path):
    mailer = create_mailer(_settings(tmp_path, backend="file"))
    assert isinstance(mailer, FileMailer) and mailer.directory == tmp_path / "d" / "mail"
    await mailer.send("a@example.org", "Subject ü", "Body ✓")
    [path] = list((tmp_path / "d" / "mail").glob("*.eml"))
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["To"] == "a@example.org" and message["Subject"] == "Subject ü"
    assert message.get_content().strip() == "Body ✓"  # type: ignore[attr-defined]
    other = create_mailer(_settings(tmp_path, backend="file", file_dir=str(tmp_path / "out")))
    assert isinstance(other, FileMailer) and other.directory == tmp_path / "out"


class _Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


async def test_smtp_backend_delivers(tmp_path: Path):
    inbox = _Inbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        mailer = create_mailer(
            _settings(
                tmp_path,
                backend="smtp",
                smtp_host="127.0.0.1",
                smtp_port=port,
                from_address="PL <pl@localhost>",
            )
        )
        assert isinstance(mailer, SmtpMailer)
        await mailer.send("bob@example.org", "Hello", "see http://x/?token=t1")
    finally:
        controller.stop()
    [envelope] = inbox.envelopes
    assert envelope.rcpt_tos == ["bob@example.org"] and envelope.mail_from == "pl@localhost"
    message = email.message_from_bytes(envelope.content, policy=policy.default)
    assert "token=t1" in message.get_content()  # type: ignore[attr-defined]


async def test_smtp_backend_unreachable_raises(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mailer = create_mailer(_settings(tmp_path, backend="smtp", smtp_port=port, smtp_timeout_s=2))
    with pytest.raises(OSError):
        await mailer.send("bob@example.org", "Hello", "body")
