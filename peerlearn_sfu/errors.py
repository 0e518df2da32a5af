"""Errors raised by the SFU; each carries the protocol ``code`` sent to clients."""

from __future__ import annotations

from typing import Any


class SfuError(Exception):
    """Base class: ``code`` is the machine-readable protocol error code."""

    code = "sfu_error"

    def __init__(self, message: str = "", code: str | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        if code is not None:
            self.code = code

    def to_message(self) -> dict[str, Any]:
        """The ``error`` message a client receives for this exception."""
        return {"type": "error", "code": self.code, "message": str(self)}


class RoomFull(SfuError):
    """The room has reached its participant cap."""

    code = "room_full"


class Banned(SfuError):
    """The mentor removed this user from the room; they cannot rejoin."""

    code = "removed"


class RoomClosed(SfuError):
    """The room is closed."""

    code = "room_closed"


class ProtocolError(SfuError):
    """A client message is malformed or not allowed now."""

    code = "bad_request"


class PortRangeExhausted(SfuError):
    """Every UDP port of the configured range is in use."""

    code = "port_range_exhausted"


class ServerFull(SfuError):
    """This server holds its configured maximum of participants."""

    code = "server_full"


class TooManyRooms(SfuError):
    """This user is already in as many rooms as one user may be at once."""

    code = "too_many_rooms"
