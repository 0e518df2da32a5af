"""Ids from user input: a malformed id is a 404, the same answer as an unknown one."""

from __future__ import annotations

import uuid

from control.errors import NotFound

#: the largest BIGINT key; a bigger number from a URL is "not found", never a database error
MAX_DB_ID = 2**63 - 1


def is_db_id(value: int) -> bool:
    """Whether ``value`` can be a row's BIGINT key."""
    return 0 < value <= MAX_DB_ID


def parse_session_id(value: uuid.UUID | str) -> uuid.UUID:
    """A session UUID from user input; anything else is a 404 (ids are never guessed at)."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (ValueError, AttributeError, TypeError):
        raise NotFound("no such session") from None


def parse_booking_id(value: int | str) -> int:
    """A booking id from user input; anything else is a 404."""
    try:
        booking_id = int(value)
    except (TypeError, ValueError):
        raise NotFound("no such booking") from None
    if not is_db_id(booking_id):
        raise NotFound("no such booking")
    return booking_id
