"""Signing in: passwords to tokens, refresh-token rotation with reuse detection, sign-out."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from terrascale.common.auth import AccessTokenIssuer
from terrascale.common.cache import Cache
from terrascale.users.errors import (
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    TooManyLoginAttemptsError,
)
from terrascale.users.passwords import verify_password
from terrascale.users.repository import RefreshTokenRepository, UserRepository
from terrascale.users.schemas import MAX_PASSWORD_LENGTH, USERNAME_PATTERN, TokenPair
from terrascale.users.tokens import new_refresh_token, refresh_token_digest

_VALID_USERNAME = re.compile(USERNAME_PATTERN)


@dataclass(frozen=True, slots=True)
class LoginThrottle:
    """Failed sign-ins per username, counted in Redis in a window that starts with the first
    failure. Redis down means no throttling (the cache degrades), never a refused sign-in."""

    cache: Cache
    max_failures: int
    window_seconds: int

    def _key(self, username: str) -> str:
        return self.cache.key("login-failures", username.lower())

    async def check(self, username: str) -> None:
        count = await self.cache.get(self._key(username))
        if count is not None and int(count) >= self.max_failures:
            retry_after = await self.cache.ttl(self._key(username)) or self.window_seconds
            raise TooManyLoginAttemptsError(
                "Too many failed sign-ins for this account; try again later.",
                retry_after_seconds=retry_after,
            )

    async def record_failure(self, username: str) -> None:
        await self.cache.increment(self._key(username), ttl_seconds=self.window_seconds)

    async def reset(self, username: str) -> None:
        await self.cache.delete(self._key(username))


@dataclass(frozen=True, slots=True)
class TokenService:
    users: UserRepository
    refresh_tokens: RefreshTokenRepository
    issuer: AccessTokenIssuer
    refresh_ttl_seconds: int

    async def login(self, *, username: str, password: str, throttle: LoginThrottle) -> TokenPair:
        if not _VALID_USERNAME.match(username) or len(password) > MAX_PASSWORD_LENGTH:
            # No account can match; refuse without spending a hash or a Redis key on it.
            raise InvalidCredentialsError
        await throttle.check(username)
        user = await self.users.get_by_username(username)
        password_ok = await verify_password(user.password_hash if user else None, password)
        if user is None or not password_ok or user.locked_at is not None:
            await throttle.record_failure(username)
            raise InvalidCredentialsError
        await throttle.reset(username)
        return await self._issue(user.id, family_id=uuid.uuid4())

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate: the presented token is revoked and a new one issued in the same family.
        A token that was already revoked is being replayed, so its whole family is revoked."""
        stored = await self.refresh_tokens.get_for_update(refresh_token_digest(refresh_token))
        if stored is None:
            raise InvalidRefreshTokenError
        if stored.revoked_at is not None:
            await self.refresh_tokens.revoke_family(stored.family_id)
            raise InvalidRefreshTokenError
        if stored.expires_at <= datetime.now(UTC):
            raise InvalidRefreshTokenError
        user = await self.users.get(stored.user_id)
        if user is None or user.locked_at is not None:
            await self.refresh_tokens.revoke_family(stored.family_id)
            raise InvalidRefreshTokenError
        await self.refresh_tokens.revoke(stored.token_hash)
        return await self._issue(stored.user_id, family_id=stored.family_id)

    async def logout(self, refresh_token: str) -> None:
        """Revokes the token's whole family (this device's session); unknown tokens are ignored
        so the answer tells nothing about which tokens exist."""
        stored = await self.refresh_tokens.get_for_update(refresh_token_digest(refresh_token))
        if stored is not None:
            await self.refresh_tokens.revoke_family(stored.family_id)

    async def _issue(self, user_id: int, *, family_id: uuid.UUID) -> TokenPair:
        refresh_token = new_refresh_token()
        await self.refresh_tokens.add(
            digest=refresh_token_digest(refresh_token),
            user_id=user_id,
            family_id=family_id,
            expires_at=datetime.now(UTC) + timedelta(seconds=self.refresh_ttl_seconds),
        )
        return TokenPair(
            access_token=self.issuer.issue(user_id),
            expires_in=self.issuer.ttl_seconds,
            refresh_token=refresh_token,
        )
