"""Issuing tokens: short-lived EdDSA access tokens and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from terrascale.common.auth import ACCESS_TOKEN_TYPE, ALGORITHM


@dataclass(frozen=True, slots=True)
class AccessTokenIssuer:
    private_key: Ed25519PrivateKey
    issuer: str
    audience: str
    ttl_seconds: int

    def issue(self, user_id: int, *, now: datetime | None = None) -> str:
        issued_at = now or datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "iss": self.issuer,
            "aud": self.audience,
            "iat": issued_at,
            "exp": issued_at + timedelta(seconds=self.ttl_seconds),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            claims, self.private_key, algorithm=ALGORITHM, headers={"typ": ACCESS_TOKEN_TYPE}
        )


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def refresh_token_digest(token: str) -> bytes:
    """Refresh tokens are stored only as their SHA-256: a database leak yields no usable token.
    (They are 256-bit random values, so a fast hash is enough; passwords need Argon2.)"""
    return hashlib.sha256(token.encode()).digest()
