"""Request and response bodies of the User Service."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, WithJsonSchema

from terrascale.common.ids import Id

USERNAME_PATTERN = r"^[A-Za-z0-9_]{3,30}$"
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128
# Printable text: no control characters except, in a bio, line breaks.
DISPLAY_NAME_PATTERN = r"^[^\x00-\x1f\x7f]*$"
BIO_PATTERN = r"^[^\x00-\x09\x0b\x0c\x0e-\x1f\x7f]*$"

Username = Annotated[
    str,
    Field(
        pattern=USERNAME_PATTERN,
        min_length=3,
        max_length=30,
        description="3-30 ASCII letters, digits or underscores; unique regardless of case.",
        examples=["ada_lovelace"],
    ),
]


def _check_password_length(password: SecretStr) -> SecretStr:
    if not MIN_PASSWORD_LENGTH <= len(password.get_secret_value()) <= MAX_PASSWORD_LENGTH:
        raise ValueError(f"must be {MIN_PASSWORD_LENGTH}-{MAX_PASSWORD_LENGTH} characters long")
    return password


Password = Annotated[
    SecretStr,
    AfterValidator(_check_password_length),
    WithJsonSchema(
        {
            "type": "string",
            "format": "password",
            "writeOnly": True,
            "minLength": 8,
            "maxLength": 128,
            "description": "8-128 characters; never returned or logged.",
        }
    ),
]
DisplayName = Annotated[
    str, Field(min_length=1, max_length=50, pattern=DISPLAY_NAME_PATTERN, examples=["Ada"])
]
Bio = Annotated[str, Field(max_length=300, pattern=BIO_PATTERN, examples=["Analyst of engines."])]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    password: Password | None = Field(
        default=None, description="Optional; without one the account cannot sign in."
    )


class UserCreated(BaseModel):
    id: Id
    username: str


class UserPublic(BaseModel):
    id: Id
    username: str
    display_name: str | None = None
    bio: str | None = None


class UserRead(UserPublic):
    cached: bool = Field(description="True when this answer was served from the Redis cache.")


class CachedUser(BaseModel):
    """A cache entry: the public profile and the row version it was read at."""

    version: int
    user: UserPublic


class ProfileUpdate(BaseModel):
    """Fields left out stay as they are; ``null`` clears a field."""

    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName | None = None
    bio: Bio | None = None


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: Annotated[str, Field(min_length=1, max_length=200)]
