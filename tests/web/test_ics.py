"""web.ics: RFC 5545 text from plain values (no app, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from web import ics

START = datetime(2031, 6, 1, 10, 30, tzinfo=timezone(timedelta(hours=2)))
STAMP = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)


def _event(*, title: str = "Intro", cancelled: bool = False) -> list[str]:
    raw = ics.event(
        uid="abc@learn.example.org",
        start=START,
        end=START + timedelta(minutes=90),
        title=title,
        description="",
        url="https://learn.example.org/sessions/abc/",
        cancelled=cancelled,
        stamp=STAMP,
    )
    assert raw.endswith("\r\n") and "\n" not in raw.replace("\r\n", "")
    return raw.split("\r\n")[:-1]


def test_one_event_in_utc() -> None:
    lines = _event()
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-1] == "END:VCALENDAR"
    assert lines.index("BEGIN:VEVENT") < lines.index("END:VEVENT")
    assert "UID:abc@learn.example.org" in lines
    assert "DTSTAMP:20310501T090000Z" in lines
    assert "DTSTART:20310601T083000Z" in lines and "DTEND:20310601T100000Z" in lines
    assert "URL:https://learn.example.org/sessions/abc/" in lines
    assert "STATUS:CONFIRMED" in lines


def test_a_cancelled_event_says_so() -> None:
    assert "STATUS:CANCELLED" in _event(cancelled=True)


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("Commas, semicolons; and\\slashes", "Commas\\, semicolons\\; and\\\\slashes"),
        ("line1\nline2", "line1\\nline2"),
        ("crlf\r\nand cr\r", "crlf\\nand cr\\n"),
        ("plain", "plain"),
    ],
)
def test_text_values_are_escaped(text: str, escaped: str) -> None:
    assert ics.escape(text) == escaped
    assert f"SUMMARY:{escaped}" in _event(title=text)


@pytest.mark.parametrize("title", ["x" * 300, "é" * 100, "日本語" * 40, "a" + "🎓" * 30])
def test_long_lines_fold_at_75_octets_without_splitting_a_character(title: str) -> None:
    folded = ics.fold(f"SUMMARY:{title}")
    parts = folded.split("\r\n")
    assert len(parts) > 1
    assert all(len(part.encode()) <= ics.LINE_OCTETS for part in parts)
    assert all(part.startswith(" ") for part in parts[1:])
    assert parts[0] + "".join(p[1:] for p in parts[1:]) == f"SUMMARY:{title}"  # unfolds back


def test_short_lines_are_left_alone() -> None:
    assert ics.fold("SUMMARY:short") == "SUMMARY:short"


@pytest.mark.parametrize(
    ("host", "uid"),
    [
        ("learn.example.org", "s1@learn.example.org"),
        ("127.0.0.1:8080", "s1@127.0.0.1"),
        ("", "s1@peerlearn"),
    ],
)
def test_uid_is_the_id_at_the_host_name(host: str, uid: str) -> None:
    assert ics.uid_for("s1", host) == uid
