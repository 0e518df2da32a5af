"""Validation of client messages (see docs/protocol.md)."""

from __future__ import annotations

import json
import re
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
#: Deepest JSON nesting accepted. Real messages nest 3 levels; CPython's parser recurses
#: per level and a 60 KB frame of brackets raised RecursionError (a 500 in the log).
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(r"[\[\]{}]")

#: A signaling message, either way (a JSON object); docs/protocol.md lists the types.
Message = dict[str, Any]


class BadJson(ProtocolError):
    """The frame is not a JSON object."""

    code = "bad_json"


def _too_deep(text: str, max_depth: int) -> bool:
    if text.count("[") + text.count("{") <= max_depth:
        return False  # the common case (an SDP has no brackets): no scan at all
    depth = 0
    for match in _BRACKET.finditer(_JSON_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def check_text(value: str, what: str = "text") -> str:
    """Refuse text that is not valid Unicode (a lone surrogate such as ``"\\ud800"`` in
    JSON): it cannot be stored, logged as UTF-8 or relayed to a browser."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(f"{what} is not valid Unicode (lone surrogate)") from None
    return value


def decode_utf8(data: str | bytes, what: str) -> str:
    """``data`` as text; bytes that are not UTF-8 are a :class:`ProtocolError`."""
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not valid UTF-8") from None


def parse_frame(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """Parse one client frame (WebSocket text or a data-channel message) safely.

    Raises :class:`BadJson` (not JSON, not an object) or :class:`ProtocolError`
    (``bad_request``: invalid UTF-8, nested deeper than ``max_depth``, lone surrogates).
    """
    text = decode_utf8(text, "the frame")
    if _too_deep(text, max_depth):
        raise ProtocolError(f"JSON nested deeper than {max_depth} levels")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise BadJson("not a JSON object") from None
    if not isinstance(message, dict):
        raise BadJson("not a JSON object")
    # One C-speed pass over every string, keys included.
    check_text(json.dumps(message, ensure_ascii=False), "the message")
    return message


def error(code: str, message: str) -> Message:
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


def field(
    message: Message, name: str, kind: type | tuple[type, ...], optional: bool = False
) -> Any:
    value = message.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"field {name!r} is missing or has the wrong type")
    return value


def sdp_field(message: Message, max_bytes: int) -> str:
    sdp: str = field(message, "sdp", str)
    if len(sdp) > max_bytes:
        raise SfuError(f"SDP larger than {max_bytes} bytes", code="invalid_sdp")
    if not sdp.startswith("v=0"):
        raise SfuError("not an SDP", code="invalid_sdp")
    return sdp


def pc_name(message: Message) -> str:
    """The ``pc`` field: ``publish`` or ``subscribe`` (``wrong_pc`` otherwise)."""
    pc = message.get("pc")
    if pc not in ("publish", "subscribe"):
        raise SfuError("'pc' must be 'publish' or 'subscribe'", code="wrong_pc")
    return str(pc)


def pc_field(message: Message, expected: str) -> str:
    pc = pc_name(message)
    if pc != expected:
        raise SfuError(f"{message['type']} is only accepted for pc={expected!r}", code="wrong_pc")
    return pc
