"""TURN REST credentials (coturn ``use-auth-secret``) and browser ICE server lists."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from .config import SfuConfig


def turn_credentials(
    secret: str, user_id: int | str, ttl_s: int, now: float | None = None
) -> tuple[str, str]:
    """Return ``(username, credential)`` for coturn's ``static-auth-secret`` scheme.

    username = ``"<unix expiry>:<user_id>"``; credential = base64(HMAC-SHA1(secret, username)).
    """
    expiry = int(now if now is not None else time.time()) + int(ttl_s)
    username = f"{expiry}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers_for(config: SfuConfig, user_id: int | str) -> list[dict[str, Any]]:
    """RTCIceServer dicts for a browser: STUN as is, TURN with fresh credentials."""
    servers: list[dict[str, Any]] = []
    if config.stun_urls:
        servers.append({"urls": list(config.stun_urls)})
    if config.turn_urls:
        entry: dict[str, Any] = {"urls": list(config.turn_urls)}
        if config.turn_secret:
            username, credential = turn_credentials(config.turn_secret, user_id, config.turn_ttl_s)
            entry["username"] = username
            entry["credential"] = credential
        servers.append(entry)
    return servers
