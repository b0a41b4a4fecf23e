"""All SQL of the Notification Service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from terrascale.notifications.models import Notification, NotificationState
from terrascale.notifications.rules import Draft


@dataclass(frozen=True, slots=True)
class StoredNotification:
    recipient_id: int
    seq: int
    kind: str
    actor_id: int
    subject_id: int
    created_at: datetime
    read: bool


@dataclass(frozen=True, slots=True)
class ReadState:
    last_seq: int
    last_read_seq: int

    @property
    def unread(self) -> int:
        return self.last_seq - self.last_read_seq


NO_STATE = ReadState(last_seq=0, last_read_seq=0)

# recipient_id, seq, kind, actor_id, subject_id, created_at, read
NotificationRow = tuple[int, int, str, int, int, datetime, bool]


class NotificationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, draft: Draft) -> int | None:
        """Store ``draft`` as the recipient's next seq; None (nothing written) when the same
        fact is already stored. Holds the recipient's state row lock until the commit, so one
        recipient's seqs are assigned and committed one after another, never out of order."""
        await self.session.execute(
            pg_insert(NotificationState)
            .values(recipient_id=draft.recipient_id, last_seq=0, last_read_seq=0)
            .on_conflict_do_nothing(index_elements=["recipient_id"])
        )
        last_seq = await self.session.scalar(
            select(NotificationState.last_seq)
            .where(NotificationState.recipient_id == draft.recipient_id)
            .with_for_update()
        )
        assert last_seq is not None  # noqa: S101 - inserted or already there, and locked
        # The lock makes last_seq + 1 free; only the fact can conflict (a duplicate event), and
        # then nothing is written and last_seq stays: no gap.
        seq = await self.session.scalar(
            pg_insert(Notification)
            .values(
                recipient_id=draft.recipient_id,
                seq=last_seq + 1,
                kind=draft.kind.value,
                actor_id=draft.actor_id,
                subject_id=draft.subject_id,
                created_at=draft.created_at,
            )
            .on_conflict_do_nothing(constraint="uq_notification_fact")
            .returning(Notification.seq)
        )
        if seq is None:
            return None
        await self.session.execute(
            update(NotificationState)
            .where(NotificationState.recipient_id == draft.recipient_id)
            .values(last_seq=seq)
        )
        return seq

    async def state(self, recipient_id: int) -> ReadState:
        row = (
            await self.session.execute(
                select(NotificationState.last_seq, NotificationState.last_read_seq).where(
                    NotificationState.recipient_id == recipient_id
                )
            )
        ).one_or_none()
        return NO_STATE if row is None else ReadState(row.last_seq, row.last_read_seq)

    async def mark_read(self, recipient_id: int, *, up_to: int | None) -> ReadState:
        """Move the read mark forward to ``up_to`` (never back, never past the last seq), or
        to the last seq when ``up_to`` is None; one statement, so a notification committed
        meanwhile is either counted as read or left unread, never lost from the count."""
        target = NotificationState.last_seq
        if up_to is not None:
            target = func.least(up_to, NotificationState.last_seq)
        row = (
            await self.session.execute(
                update(NotificationState)
                .where(NotificationState.recipient_id == recipient_id)
                .values(last_read_seq=func.greatest(NotificationState.last_read_seq, target))
                .returning(NotificationState.last_seq, NotificationState.last_read_seq)
            )
        ).one_or_none()
        return NO_STATE if row is None else ReadState(row.last_seq, row.last_read_seq)

    async def newest_first(
        self,
        recipient_id: int,
        *,
        limit: int,
        kinds: Sequence[str] | None = None,
        max_id: int | None = None,
        since_id: int | None = None,
        min_id: int | None = None,
    ) -> list[StoredNotification]:
        """A page, newest first: older than ``max_id``, and either the newest ones above
        ``since_id`` or the ones just above ``min_id``. A range scan of the primary key."""
        statement = self._select(recipient_id, kinds)
        if max_id is not None:
            statement = statement.where(Notification.seq < max_id)
        if min_id is not None:
            ascending = statement.where(Notification.seq > min_id).order_by(Notification.seq)
            return list(reversed(await self._rows(ascending.limit(limit))))
        if since_id is not None:
            statement = statement.where(Notification.seq > since_id)
        return await self._rows(statement.order_by(Notification.seq.desc()).limit(limit))

    async def after(self, recipient_id: int, *, seq: int, limit: int) -> list[StoredNotification]:
        """The notifications stored after ``seq``, oldest first (what a stream sends next)."""
        statement = (
            self._select(recipient_id, None)
            .where(Notification.seq > seq)
            .order_by(Notification.seq)
            .limit(limit)
        )
        return await self._rows(statement)

    def _select(self, recipient_id: int, kinds: Sequence[str] | None) -> Select[NotificationRow]:
        read_mark = (
            select(NotificationState.last_read_seq)
            .where(NotificationState.recipient_id == recipient_id)
            .scalar_subquery()
        )
        statement = select(
            Notification.recipient_id,
            Notification.seq,
            Notification.kind,
            Notification.actor_id,
            Notification.subject_id,
            Notification.created_at,
            (Notification.seq <= func.coalesce(read_mark, 0)).label("read"),
        ).where(Notification.recipient_id == recipient_id)
        if kinds:
            statement = statement.where(Notification.kind.in_(kinds))
        return statement

    async def _rows(self, statement: Select[NotificationRow]) -> list[StoredNotification]:
        result = await self.session.execute(statement)
        return [StoredNotification(*row) for row in result.tuples()]
