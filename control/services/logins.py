"""Server-side login sessions: one row per sign-in, revocable at once, cheap to check.

Every access token (the cookie's and a Bearer JWT) names its session in the ``sid`` claim; a
token is only as good as its session. The check runs on every authenticated request, so live
sessions are cached in memory for ``CACHE_TTL_S`` and revocations are pushed over the bus on
the user's channel (``control.events.user_channel``) as
``{"type": "sessions_revoked", "user_id", "reason", "sid"}`` (``sid`` None: all of them),
which every node's cache (and socket) follows. A lost bus message is honoured within
``CACHE_TTL_S`` anyway: the cache re-reads the row then. ``last_seen_at`` is written at most
once a minute per session and node.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, select, update

from config.settings import AuthSettings
from control.db import Database, rows_changed
from control.events import EventBus, user_channel
from control.models import AuthSession, User, utcnow
from control.ratelimit import RateLimiter
from control.security import TokenService

log = logging.getLogger(__name__)

RevokeReason = Literal[
    "logout", "logout_everywhere", "password_changed", "password_reset", "deactivated", "device"
]
SESSIONS_REVOKED = "sessions_revoked"
USER_AGENT_MAX = 255
#: expired or revoked rows are deleted this long after the fact (the devices list is history)
KEEP_DEAD_ROWS = timedelta(days=30)


@dataclass
class _Live:
    user_id: int
    expires_at: datetime
    cached_until: float  # monotonic
    seen_at: datetime  # the last_seen_at last written


def revoked_event(user_id: int, reason: str, sid: str | None) -> dict[str, Any]:
    """The one bus message a revocation publishes on ``user:<id>``."""
    return {"type": SESSIONS_REVOKED, "user_id": user_id, "reason": reason, "sid": sid}


def revocation_applies(message: dict[str, Any], sid: str | None) -> bool:
    """Whether a bus message on a user's channel ends the session ``sid``."""
    if message.get("type") != SESSIONS_REVOKED:
        return False
    target = message.get("sid")
    return target is None or target == sid


class LoginService:
    """``platform.accounts.logins``: sign-ins, the liveness check, revocation, tickets."""

    CACHE_TTL_S = 30.0
    SEEN_INTERVAL_S = 60.0
    MAX_CACHED = 100_000

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        limiter: RateLimiter,
        tokens: TokenService,
        settings: AuthSettings,
    ) -> None:
        self.db = db
        self.bus = bus
        self.limiter = limiter
        self.tokens = tokens
        self.settings = settings
        self._live: dict[str, _Live] = {}
        self._by_user: dict[int, set[str]] = {}
        self._unsubscribe: dict[int, Callable[[], None]] = {}
        self.clock: Callable[[], float] = time.monotonic
        #: statements this service ran for the liveness check (tests assert it stays cheap)
        self.lookups = 0

    @property
    def ttl(self) -> timedelta:
        return timedelta(minutes=self.settings.token_ttl_minutes)

    # ------------------------------------------------------------------ sign-in

    async def start(
        self, user: User, *, ip: str = "", user_agent: str = ""
    ) -> tuple[AuthSession, str]:
        """A new session for ``user`` and the access token that names it."""
        now = utcnow()
        row = AuthSession(
            id=secrets.token_urlsafe(32),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.ttl,
            ip=ip[:64],
            user_agent=user_agent[:USER_AGENT_MAX],
        )
        async with self.db.transaction() as s:
            await s.execute(
                delete(AuthSession).where(
                    AuthSession.user_id == user.id,
                    AuthSession.expires_at < now - KEEP_DEAD_ROWS,
                )
            )
            s.add(row)
        token = self.tokens.issue(user.id, user.role, sid=row.id, now=now)
        return row, token

    # ------------------------------------------------------------------ the check

    async def is_live(self, sid: str | None, user_id: int) -> bool:
        """Whether ``sid`` is an unrevoked, unexpired session of ``user_id`` (cached)."""
        if not sid or len(sid) > 64:
            return False
        now_m = self.clock()
        entry = self._live.get(sid)
        if entry is None or entry.cached_until <= now_m:
            entry = await self._load(sid, now_m)
            if entry is None:
                return False
        now = utcnow()
        if entry.user_id != user_id or entry.expires_at <= now:
            return False
        if (now - entry.seen_at).total_seconds() >= self.SEEN_INTERVAL_S:
            entry.seen_at = now
            try:
                async with self.db.transaction() as s:
                    await s.execute(
                        update(AuthSession).where(AuthSession.id == sid).values(last_seen_at=now)
                    )
            except Exception:  # last-seen is informative; never fail a request over it
                log.warning("could not record last-seen of a session", exc_info=True)
        return True

    async def _load(self, sid: str, now_m: float) -> _Live | None:
        self.lookups += 1
        async with self.db.session() as s:
            row = await s.get(AuthSession, sid)
        self._forget(sid)
        if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
            return None
        entry = _Live(row.user_id, row.expires_at, now_m + self.CACHE_TTL_S, row.last_seen_at)
        if len(self._live) >= self.MAX_CACHED:
            self._clear()
        self._live[sid] = entry
        self._by_user.setdefault(row.user_id, set()).add(sid)
        if row.user_id not in self._unsubscribe:
            self._unsubscribe[row.user_id] = self.bus.subscribe(
                user_channel(row.user_id), self._on_user_event
            )
        return entry

    async def _on_user_event(self, message: dict[str, Any]) -> None:
        if message.get("type") != SESSIONS_REVOKED:
            return
        raw = message.get("user_id")
        # The bus is another node's word, not a user's, but still a message from outside.
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            return
        try:
            user_id = int(raw)
        except ValueError:
            return
        self._drop(user_id, message.get("sid"))

    def _drop(self, user_id: int, sid: str | None) -> None:
        if sid is None:
            for each in list(self._by_user.get(user_id, ())):
                self._forget(each)
        else:
            self._forget(str(sid))

    def _forget(self, sid: str) -> None:
        entry = self._live.pop(sid, None)
        if entry is None:
            return
        sids = self._by_user.get(entry.user_id)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                self._by_user.pop(entry.user_id, None)
                unsubscribe = self._unsubscribe.pop(entry.user_id, None)
                if unsubscribe:
                    unsubscribe()

    def _clear(self) -> None:
        for unsubscribe in self._unsubscribe.values():
            unsubscribe()
        self._live.clear()
        self._by_user.clear()
        self._unsubscribe.clear()

    # ------------------------------------------------------------------ revocation

    async def revoke(self, user_id: int, sid: str, reason: RevokeReason = "logout") -> bool:
        """End one session of ``user_id`` (logout, or a device removed from the list)."""
        now = utcnow()
        async with self.db.transaction() as s:
            result = await s.execute(
                update(AuthSession)
                .where(
                    AuthSession.id == sid,
                    AuthSession.user_id == user_id,
                    AuthSession.revoked_at.is_(None),
                )
                .values(revoked_at=now, revoked_reason=reason)
            )
        ended = bool(rows_changed(result))
        self._forget(sid)
        if ended:
            await self._announce(user_id, reason, sid)
        return ended

    async def revoke_all(self, user_id: int, reason: RevokeReason) -> int:
        """End every session of ``user_id``; one bus event with ``sid`` None."""
        now = utcnow()
        async with self.db.transaction() as s:
            result = await s.execute(
                update(AuthSession)
                .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason=reason)
            )
        self._drop(user_id, None)
        await self._announce(user_id, reason, None)
        return rows_changed(result)

    async def _announce(self, user_id: int, reason: str, sid: str | None) -> None:
        try:
            await self.bus.publish(user_channel(user_id), revoked_event(user_id, reason, sid))
        except Exception:  # the row is revoked; other nodes see it within CACHE_TTL_S
            log.exception("could not publish a session revocation")

    # ------------------------------------------------------------------ devices

    async def for_user(self, user_id: int) -> list[AuthSession]:
        """The user's live sessions, most recently seen first (the "Your devices" list)."""
        async with self.db.session() as s:
            rows = await s.scalars(
                select(AuthSession)
                .where(
                    AuthSession.user_id == user_id,
                    AuthSession.revoked_at.is_(None),
                    AuthSession.expires_at > utcnow(),
                )
                .order_by(AuthSession.last_seen_at.desc(), AuthSession.created_at.desc())
            )
            return list(rows.all())

    # ------------------------------------------------------------------ WebSocket tickets

    def issue_ticket(self, user_id: int, sid: str) -> str:
        """A 30 s single-use ticket for a WebSocket of this session."""
        return self.tokens.issue_ticket(user_id, sid)

    async def redeem_ticket(self, ticket: str) -> tuple[int, str] | None:
        """``(user_id, sid)`` for a fresh, unused ticket of a live session; else None.

        Single use across nodes: the nonce is counted in the shared rate limiter (Redis
        ``INCR`` when configured), so only the first redemption finds it at 1.
        """
        claims = self.tokens.verify_ticket(ticket)
        if claims is None:
            return None
        if await self.limiter.hit(f"ws-ticket:{claims.nonce}", 1, 120):
            return None
        if not await self.is_live(claims.sid, claims.user_id):
            return None
        return claims.user_id, claims.sid
