"""Password hashing (Argon2id), JWT access tokens, WebSocket tickets, single-use opaque tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

JWT_ALGORITHM = "HS256"
JWT_ISSUER = "peerlearn"
# Distinct audiences: a WebSocket ticket is never accepted as an access token, nor the reverse.
ACCESS_AUDIENCE = "peerlearn:access"
TICKET_AUDIENCE = "peerlearn:ws-ticket"
TICKET_TTL = timedelta(seconds=30)

_hasher = PasswordHasher()
# Verifying against this keeps the timing of "no such user" close to "wrong password".
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    role: str
    expires_at: datetime
    #: the server-side login session this token belongs to (None: a token from before them)
    sid: str | None = None


@dataclass(frozen=True)
class TicketClaims:
    """A WebSocket ticket: single use (``nonce``), 30 s, bound to one login session."""

    user_id: int
    sid: str
    nonce: str


class TokenService:
    """Issues and checks signed access tokens; the secret comes from settings."""

    def __init__(self, secret: str, ttl: timedelta) -> None:
        self._secret = secret
        self.ttl = ttl

    def issue(
        self,
        user_id: int,
        role: str,
        *,
        sid: str | None = None,
        now: datetime | None = None,
        ttl: timedelta | None = None,
    ) -> str:
        now = now or datetime.now(UTC)
        payload: dict[str, object] = {
            "sub": str(user_id),
            "role": role,
            "iat": int(now.timestamp()),
            "exp": int((now + (ttl or self.ttl)).timestamp()),
            "iss": JWT_ISSUER,
            "aud": ACCESS_AUDIENCE,
        }
        if sid:
            payload["sid"] = sid
        return jwt.encode(payload, self._secret, algorithm=JWT_ALGORITHM)

    def issue_ticket(self, user_id: int, sid: str, *, now: datetime | None = None) -> str:
        """A WebSocket ticket for a browser-less client (see ``verify_ticket``)."""
        now = now or datetime.now(UTC)
        payload = {
            "sub": str(user_id),
            "sid": sid,
            "jti": secrets.token_urlsafe(12),
            "iat": int(now.timestamp()),
            "exp": int((now + TICKET_TTL).timestamp()),
            "iss": JWT_ISSUER,
            "aud": TICKET_AUDIENCE,
        }
        return jwt.encode(payload, self._secret, algorithm=JWT_ALGORITHM)

    def verify_ticket(self, ticket: str) -> TicketClaims | None:
        """Claims of an unexpired ticket (its single use is enforced by the caller)."""
        try:
            payload = jwt.decode(
                ticket,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                issuer=JWT_ISSUER,
                audience=TICKET_AUDIENCE,
                options={"require": ["sub", "exp", "iss", "aud", "sid", "jti"]},
            )
            return TicketClaims(
                user_id=int(payload["sub"]), sid=str(payload["sid"]), nonce=str(payload["jti"])
            )
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            return None

    def verify(self, token: str) -> TokenClaims | None:
        """Claims of a valid, unexpired token; None for anything else."""
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                issuer=JWT_ISSUER,
                audience=ACCESS_AUDIENCE,
                options={"require": ["sub", "exp", "iss", "aud"]},
            )
            sid = payload.get("sid")
            return TokenClaims(
                user_id=int(payload["sub"]),
                role=str(payload.get("role", "")),
                expires_at=datetime.fromtimestamp(payload["exp"], UTC),
                sid=str(sid) if sid else None,
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            return None


def new_opaque_token() -> tuple[str, str]:
    """A URL-safe token for e-mail links and the SHA-256 hash that is stored."""
    token = secrets.token_urlsafe(32)
    return token, hash_opaque_token(token)


def hash_opaque_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
