"""iCalendar (RFC 5545) text for one event, from plain values: no web framework, no database."""

from __future__ import annotations

from datetime import UTC, datetime

STAMP = "%Y%m%dT%H%M%SZ"
#: RFC 5545 §3.1: a content line is at most 75 octets, continuations start with a space
LINE_OCTETS = 75


def escape(text: str) -> str:
    """A TEXT value (§3.3.11): backslash, semicolon and comma escaped, newlines as ``\\n``."""
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def fold(line: str) -> str:
    """Split ``line`` into lines of at most 75 octets, never inside a UTF-8 character."""
    out: list[str] = []
    current = b""
    for ch in line:
        enc = ch.encode()
        # a continuation line's leading space counts towards its 75 octets
        if len(current) + len(enc) > (LINE_OCTETS if not out else LINE_OCTETS - 1):
            out.append(current.decode())
            current = b""
        current += enc
    out.append(current.decode())
    return "\r\n ".join(out)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(STAMP)


def event(
    *,
    uid: str,
    start: datetime,
    end: datetime,
    title: str,
    description: str,
    url: str,
    cancelled: bool = False,
    stamp: datetime | None = None,
) -> str:
    """A VCALENDAR with one VEVENT (times in UTC), CRLF line ends, folded lines.

    ``stamp`` (DTSTAMP, when this text was made) defaults to now.
    """
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//PeerLearn//Sessions//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{_utc(stamp or datetime.now(UTC))}",
        f"DTSTART:{_utc(start)}",
        f"DTEND:{_utc(end)}",
        f"SUMMARY:{escape(title)}",
        f"DESCRIPTION:{escape(description)}",
        f"URL:{url}",
        f"STATUS:{'CANCELLED' if cancelled else 'CONFIRMED'}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "".join(fold(line) + "\r\n" for line in lines)


def uid_for(event_id: object, host: str) -> str:
    """A globally unique UID: the event's id at the site's host name (port dropped)."""
    return f"{event_id}@{host.split(':')[0] or 'peerlearn'}"
