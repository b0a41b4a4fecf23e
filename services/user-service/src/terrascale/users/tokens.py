"""Refresh tokens: opaque, rotated, stored only as digests. (Access tokens are issued by
``terrascale.common.auth.AccessTokenIssuer``.)"""

from __future__ import annotations

import hashlib
import secrets


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def refresh_token_digest(token: str) -> bytes:
    """Refresh tokens are stored only as their SHA-256: a database leak yields no usable token.
    (They are 256-bit random values, so a fast hash is enough; passwords need Argon2.)"""
    return hashlib.sha256(token.encode()).digest()
