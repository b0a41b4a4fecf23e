"""Access tokens: issued by the User Service with its private key, verified locally in every
service with the public key.

Tokens are EdDSA (Ed25519) JWTs with ``typ: at+jwt`` (RFC 9068). Only that algorithm is
accepted, so unsigned (``alg: none``) and HMAC-confusion tokens fail like any bad signature.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from terrascale.common.errors import AppError
from terrascale.common.ids import MAX_ID

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
ALGORITHM = "EdDSA"


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


class AuthenticationError(AppError):
    status = 401
    title = "Unauthorized"
    slug = "unauthorized"

    def __init__(self, detail: str, *, error: str | None = "invalid_token") -> None:
        challenge = f'Bearer error="{error}"' if error else "Bearer"
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class ForbiddenError(AppError):
    status = 403
    title = "Forbidden"
    slug = "forbidden"


@dataclass(frozen=True, slots=True)
class AccessTokenVerifier:
    public_key: Ed25519PublicKey
    issuer: str
    audience: str
    leeway_seconds: int = 5

    def verify(self, token: str) -> int:
        """The user id the token was issued to; AuthenticationError for any invalid token."""
        try:
            decoded: dict[str, Any] = jwt.api_jwt.decode_complete(
                token,
                self.public_key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("The access token has expired.") from None
        except jwt.InvalidTokenError:
            raise AuthenticationError("The access token is invalid.") from None
        if decoded["header"].get("typ") != ACCESS_TOKEN_TYPE:
            raise AuthenticationError("The token is not an access token.")
        subject = decoded["payload"]["sub"]
        if not (isinstance(subject, str) and subject.isdecimal() and 0 < int(subject) <= MAX_ID):
            raise AuthenticationError("The access token is invalid.")
        return int(subject)


# Declares the OAuth2 password flow in OpenAPI, so /docs can log in; tokens are checked below.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


async def _current_user_id(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> int:
    if token is None:
        raise AuthenticationError(
            "Sign in and send the access token as a Bearer token.", error=None
        )
    verifier: AccessTokenVerifier | None = request.app.state.token_verifier
    if verifier is None:
        raise AppError("Access tokens cannot be verified: JWT_PUBLIC_KEY is not configured.")
    return verifier.verify(token)


CurrentUserId = Annotated[int, Depends(_current_user_id)]
"""The authenticated caller's user id; 401 problem when the token is missing or invalid."""
