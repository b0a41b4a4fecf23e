"""Tables owned by the User Service."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, LargeBinary, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from terrascale.common.db import new_metadata
from terrascale.common.events import define_outbox_tables


class Base(DeclarativeBase):
    """The declarative base of this service's tables."""

    metadata = new_metadata()


class UserAccount(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    username: Mapped[str] = mapped_column(String(30))
    display_name: Mapped[str | None] = mapped_column(String(50))
    bio: Mapped[str | None] = mapped_column(String(300))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    # Set by an operator to stop an account from signing in; it answers like a wrong password.
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Bumped by every profile update; the cache refuses to replace a newer version with an older.
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        # Usernames are unique regardless of case; the stored spelling is the user's own.
        Index("uq_user_account_username_lower", func.lower(username), unique=True),
    )


# The transactional outbox (events this service emits) and the inbox of processed events.
define_outbox_tables(Base.metadata)


class RefreshToken(Base):
    """A refresh token, stored only as its SHA-256. Rotation keeps a family: presenting a token
    that was already rotated away means it was stolen, and the whole family is revoked."""

    __tablename__ = "refresh_token"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
