"""Password hashing with Argon2id, off the event loop (each hash takes tens of milliseconds)."""

from __future__ import annotations

import asyncio
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # Argon2id with the library's RFC 9106 defaults


@cache
def _decoy_hash() -> str:
    return _hasher.hash("decoy password, never a real one")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """False for a wrong password or a missing hash. Accounts without a hash are checked
    against a decoy, so the answer takes as long whether or not the account exists."""

    def check() -> bool:
        try:
            _hasher.verify(password_hash or _decoy_hash(), password)
        except (VerificationError, InvalidHashError):
            return False
        return password_hash is not None

    return await asyncio.to_thread(check)
