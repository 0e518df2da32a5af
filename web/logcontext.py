"""Who a log line is about: the request id and room id of the request (or room) it was
written for, carried by context variables and stamped on every record by a logging filter.

The middleware (``web.middlewares.request_context_middleware``) sets both for the life of a
request, a room's WebSocket included, so every line the request causes, in ``web``,
``control`` or ``peerlearn_sfu``, names them; tasks started meanwhile inherit them (asyncio
copies the context). ``configure_logging`` installs the filter on the root handlers and picks
the text or JSON format (``[logging] format``).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from datetime import UTC, datetime

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
ROOM_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("room_id", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
#: an incoming id is kept only if it is this sane: short, printable, nothing to inject
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{8,64}$")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(room_id)s]: %(message)s"
NONE = "-"


def request_id_from(header: str | None) -> str:
    """The caller's ``X-Request-ID`` when sane (a proxy's or a client's), else a new one."""
    if header and SANE_REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``room_id`` to every record (``-`` outside a request); one a
    caller already set (the access log, written from another thread) is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get() or NONE
        if getattr(record, "room_id", None) is None:
            record.room_id = ROOM_ID.get() or NONE
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, room_id, exc."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", NONE),
            "room_id": getattr(record, "room_id", NONE),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(fmt: str = "text") -> None:
    """Stamp and format every root handler (``logging.basicConfig`` made them)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig()
    for handler in root.handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
        handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
