"""Outgoing mail: console (log), file (.eml files) and SMTP backends behind one ``send``."""

from __future__ import annotations

import asyncio
import logging
import secrets
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Protocol

from config.settings import EmailSettings, Settings
from control.errors import DomainError

log = logging.getLogger(__name__)


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None: ...


def build_message(from_address: str, to: str, subject: str, body: str) -> EmailMessage:
    """A plain-text message with the headers every backend needs."""
    msg = EmailMessage()
    msg["From"] = from_address
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="peerlearn")
    msg.set_content(body)
    return msg


class ConsoleMailer:
    """Development default: the message goes to the log (links included), nothing is sent."""

    def __init__(self, from_address: str) -> None:
        self.from_address = from_address

    async def send(self, to: str, subject: str, body: str) -> None:
        log.info("mail to %s: %s\n%s", to, subject, body)


class FileMailer:
    """Writes each message as an ``.eml`` file (inspectable by operators and tests)."""

    def __init__(self, from_address: str, directory: Path) -> None:
        self.from_address = from_address
        self.directory = directory

    async def send(self, to: str, subject: str, body: str) -> None:
        msg = build_message(self.from_address, to, subject, body)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.directory / f"{stamp}-{secrets.token_hex(4)}.eml"

        def write() -> None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path.write_bytes(msg.as_bytes())

        await asyncio.to_thread(write)
        log.info("mail to %s written to %s", to, path)


class SmtpMailer:
    """Real SMTP through smtplib in a worker thread (the event loop never blocks on it)."""

    def __init__(self, config: EmailSettings) -> None:
        self.config = config
        self.from_address = config.from_address

    def _send_sync(self, msg: EmailMessage) -> None:
        cfg = self.config
        with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.smtp_timeout_s) as smtp:
            smtp.ehlo()
            if cfg.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if cfg.smtp_username:
                smtp.login(cfg.smtp_username, cfg.smtp_password or "")
            smtp.send_message(msg)

    async def send(self, to: str, subject: str, body: str) -> None:
        msg = build_message(self.from_address, to, subject, body)
        await asyncio.to_thread(self._send_sync, msg)
        log.info("mail to %s sent via %s:%s", to, self.config.smtp_host, self.config.smtp_port)


def create_mailer(settings: Settings) -> Mailer:
    """The backend chosen by ``[email] backend``."""
    cfg = settings.email
    if cfg.backend == "smtp":
        return SmtpMailer(cfg)
    if cfg.backend == "file":
        return FileMailer(cfg.from_address, cfg.file_dir or settings.server.data_dir / "mail")
    return ConsoleMailer(cfg.from_address)


class MailFailed(DomainError):
    """The mail backend could not take the message (SMTP down, disk full...)."""

    code = "mail_failed"
    status = 503
