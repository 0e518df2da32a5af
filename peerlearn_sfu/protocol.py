"""Validation of client messages (see docs/protocol.md)."""

from __future__ import annotations

import json
from typing import Any

from .errors import ProtocolError, SfuError

CLIENT_TYPES = frozenset(
    {
        "join_session",
        "offer",
        "answer",
        "ice_candidate",
        "chat",
        "mute",
        "raise_hand",
        "moderate",
        "leave",
        "ping",
    }
)
MUTE_KINDS = ("audio", "video", "screen")
MODERATE_ACTIONS = ("mute", "remove", "clear_hands")
MAX_CANDIDATE_CHARS = 1024


def error(code: str, message: str) -> dict:
    return {"type": "error", "code": code, "message": message}


def message_size(message: Any) -> int:
    try:
        return len(json.dumps(message, separators=(",", ":")))
    except (TypeError, ValueError) as exc:
        raise ProtocolError("message is not JSON-serialisable") from exc


def check_message(message: Any, max_bytes: int) -> str:
    """Return the message type or raise :class:`SfuError` with the code to send."""
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    if message_size(message) > max_bytes:
        raise SfuError(f"message larger than {max_bytes} bytes", code="message_too_large")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("missing 'type'")
    if kind not in CLIENT_TYPES:
        raise SfuError(f"unknown message type {kind[:40]!r}", code="unknown_type")
    return kind


def field(message: dict, name: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
    value = message.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"field {name!r} is missing or has the wrong type")
    return value


def sdp_field(message: dict, max_bytes: int) -> str:
    sdp = field(message, "sdp", str)
    if len(sdp) > max_bytes:
        raise SfuError(f"SDP larger than {max_bytes} bytes", code="invalid_sdp")
    if not sdp.startswith("v=0"):
        raise SfuError("not an SDP", code="invalid_sdp")
    return sdp


def pc_field(message: dict, expected: str) -> str:
    pc = message.get("pc")
    if pc not in ("publish", "subscribe"):
        raise SfuError("'pc' must be 'publish' or 'subscribe'", code="wrong_pc")
    if pc != expected:
        raise SfuError(
            f"{message['type']} is only accepted for pc={expected!r}", code="wrong_pc"
        )
    return pc
