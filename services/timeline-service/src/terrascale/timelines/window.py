"""Which slice of a newest-first list of post ids a request asks for (Mastodon's cursors)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Window:
    """Posts with ``newer_than < id < older_than``; ``limit`` of them, the newest ones, or with
    ``from_oldest`` the ones just above ``newer_than`` (``min_id``: page forward without a gap).
    ``None`` bounds are open."""

    limit: int
    older_than: int | None = None
    newer_than: int | None = None
    from_oldest: bool = False

    @classmethod
    def from_query(
        cls, *, limit: int, max_id: int | None, since_id: int | None, min_id: int | None
    ) -> Window:
        """``min_id`` wins over ``since_id`` when both are given, as in Mastodon."""
        return cls(
            limit=limit,
            older_than=max_id,
            newer_than=min_id if min_id is not None else since_id,
            from_oldest=min_id is not None,
        )

    def contains(self, post_id: int) -> bool:
        return (self.older_than is None or post_id < self.older_than) and (
            self.newer_than is None or post_id > self.newer_than
        )

    def select(self, post_ids: Iterable[int]) -> list[int]:
        """The page these ids give: each once, inside the bounds, cut to ``limit`` from the
        right end, newest first."""
        inside = sorted({post_id for post_id in post_ids if self.contains(post_id)}, reverse=True)
        return inside[-self.limit :] if self.from_oldest else inside[: self.limit]
