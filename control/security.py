"""Password hashing (Argon2id), JWT access tokens and single-use opaque tokens."""

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


class TokenService:
    """Issues and checks signed access tokens; the secret comes from settings."""

    def __init__(self, secret: str, ttl: timedelta) -> None:
        self._secret = secret
        self.ttl = ttl

    def issue(self, user_id: int, role: str, *, now: datetime | None = None) -> str:
        now = now or datetime.now(UTC)
        payload = {
            "sub": str(user_id),
            "role": role,
            "iat": int(now.timestamp()),
            "exp": int((now + self.ttl).timestamp()),
            "iss": JWT_ISSUER,
        }
        return jwt.encode(payload, self._secret, algorithm=JWT_ALGORITHM)

    def verify(self, token: str) -> TokenClaims | None:
        """Claims of a valid, unexpired token; None for anything else."""
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                issuer=JWT_ISSUER,
                options={"require": ["sub", "exp", "iss"]},
            )
            return TokenClaims(
                user_id=int(payload["sub"]),
                role=str(payload.get("role", "")),
                expires_at=datetime.fromtimestamp(payload["exp"], UTC),
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            return None


def new_opaque_token() -> tuple[str, str]:
    """A URL-safe token for e-mail links and the SHA-256 hash that is stored."""
    token = secrets.token_urlsafe(32)
    return token, hash_opaque_token(token)


def hash_opaque_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
