"""The oracle: what the databases and the home timelines hold, compared with what the writers
were told. Pure functions over plain data; ``evidence`` gathers that data.

A post is *acknowledged* when the Post Service answered 201 (or 200, an Idempotency-Key replay)
with its id. The promises checked, per acknowledged post:

- it is stored exactly once (found by the unique marker in its text);
- it is in the home timeline of every follower of its author (within the newest
  TIMELINE_MAX_POSTS of that follower's timeline, the cap the service keeps), once;
- every user it mentions has exactly one mention notification for it.

And for every post sent, acknowledged or not: no text is stored twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class SentPost:
    """One post a writer tried to create, retried with one Idempotency-Key until acknowledged."""

    marker: str  # unique; the first word of the text
    phase: str  # the fault under way when it was first sent
    author: int  # user id
    mentioned: tuple[int, ...]  # user ids
    requests: int = 0  # attempts, the first included
    post_id: int | None = None  # from the acknowledgement
    acknowledged_at: float | None = None  # monotonic
    given_up: bool = False


@dataclass(frozen=True, slots=True)
class StoredPost:
    post_id: int
    author: int


@dataclass(slots=True)
class Verdict:
    """What the oracle found for the posts first sent during one phase."""

    posts: int = 0
    requests: int = 0
    acknowledged: int = 0
    given_up: int = 0
    lost_posts: int = 0  # acknowledged, not stored (or stored under another id)
    duplicated_posts: int = 0  # texts stored more than once (acknowledged or not)
    missing_timeline_entries: int = 0  # (acknowledged post, follower) pairs not in the timeline
    duplicated_timeline_entries: int = 0
    missing_notifications: int = 0  # (acknowledged post, mentioned user) without a notification
    duplicated_notifications: int = 0
    examples: list[str] = field(default_factory=list[str])  # a few of the failures, to look up

    @property
    def lost(self) -> int:
        return self.lost_posts + self.missing_timeline_entries + self.missing_notifications

    @property
    def duplicated(self) -> int:
        return (
            self.duplicated_posts + self.duplicated_timeline_entries + self.duplicated_notifications
        )

    def note(self, example: str) -> None:
        if len(self.examples) < 5:  # noqa: PLR2004 - enough to start looking
            self.examples.append(example)


def visible_window(candidates: Iterable[int], cap: int) -> set[int]:
    """The post ids a capped timeline keeps: the newest ``cap`` (ids grow with time)."""
    return set(sorted(candidates, reverse=True)[:cap])


def judge(
    sent: Sequence[SentPost],
    *,
    stored: Mapping[str, Sequence[StoredPost]],
    followers: Mapping[int, Sequence[int]],
    timelines: Mapping[int, Sequence[int]],
    mention_notifications: Mapping[tuple[int, int], int],
    timeline_cap: int,
) -> dict[str, Verdict]:
    """Per phase, in the order phases first appear in ``sent``.

    ``stored``: marker -> the posts stored with it; ``followers``: author -> follower ids;
    ``timelines``: follower -> the post ids of their home timeline, every page, in order;
    ``mention_notifications``: (recipient, post id) -> mention notifications stored.
    """
    verdicts: dict[str, Verdict] = {}
    for post in sent:
        verdicts.setdefault(post.phase, Verdict())

    # What each follower's timeline must hold: the newest posts of the people they follow.
    by_author: dict[int, list[int]] = {}
    for copies in stored.values():
        for copy in copies:
            by_author.setdefault(copy.author, []).append(copy.post_id)
    followees: dict[int, list[int]] = {}
    for author, fans in followers.items():
        for fan in fans:
            followees.setdefault(fan, []).append(author)
    windows = {
        fan: visible_window(
            (post_id for author in authors for post_id in by_author.get(author, ())),
            timeline_cap,
        )
        for fan, authors in followees.items()
    }
    timeline_sets = {fan: Counter(ids) for fan, ids in timelines.items()}

    for post in sent:
        verdict = verdicts[post.phase]
        verdict.posts += 1
        verdict.requests += post.requests
        verdict.given_up += post.given_up
        copies = stored.get(post.marker, ())
        if len(copies) > 1:
            verdict.duplicated_posts += len(copies) - 1
            verdict.note(f"{post.marker} stored {len(copies)} times")
        if post.post_id is None:
            continue
        verdict.acknowledged += 1
        if not any(copy.post_id == post.post_id for copy in copies):
            verdict.lost_posts += 1
            verdict.note(f"{post.marker} (post {post.post_id}) acknowledged but not stored")
            continue
        windowed = [fan for fan in followers.get(post.author, ()) if post.post_id in windows[fan]]
        _check_timelines(verdict, post.post_id, windowed, timeline_sets)
        _check_mentions(verdict, post.post_id, post.mentioned, mention_notifications)
    return verdicts


def _check_timelines(
    verdict: Verdict, post_id: int, fans: Iterable[int], timelines: Mapping[int, Counter[int]]
) -> None:
    """``post_id`` once in each of ``fans``' timelines (posts beyond the cap are left out)."""
    for fan in fans:
        seen = timelines.get(fan, Counter[int]())[post_id]
        if seen == 0:
            verdict.missing_timeline_entries += 1
            verdict.note(f"post {post_id} missing from the timeline of {fan}")
        elif seen > 1:
            verdict.duplicated_timeline_entries += seen - 1
            verdict.note(f"post {post_id} {seen} times in the timeline of {fan}")


def _check_mentions(
    verdict: Verdict,
    post_id: int,
    mentioned: Iterable[int],
    notifications: Mapping[tuple[int, int], int],
) -> None:
    for user in mentioned:
        count = notifications.get((user, post_id), 0)
        if count == 0:
            verdict.missing_notifications += 1
            verdict.note(f"no mention notification of post {post_id} for {user}")
        elif count > 1:
            verdict.duplicated_notifications += count - 1
            verdict.note(f"{count} mention notifications of post {post_id} for {user}")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One write request: when its answer (or failure) came, and whether it was acknowledged."""

    at: float  # monotonic
    acknowledged: bool


def first_acknowledgement_after(attempts: Iterable[Attempt], moment: float) -> float | None:
    """Seconds from ``moment`` to the first acknowledged write after it (None: there was none)."""
    times = [attempt.at for attempt in attempts if attempt.acknowledged and attempt.at >= moment]
    return min(times) - moment if times else None


def outage_seconds(attempts: Iterable[Attempt], start: float, end: float) -> float:
    """How long writes failed in [start, end]: from the first failed attempt to the first
    acknowledged one after the last failure (0 when none failed)."""
    window = sorted((a for a in attempts if start <= a.at), key=lambda a: a.at)
    failures = [a.at for a in window if not a.acknowledged and a.at <= end]
    if not failures:
        return 0.0
    recovered = [a.at for a in window if a.acknowledged and a.at > failures[-1]]
    last = recovered[0] if recovered else failures[-1]
    return last - failures[0]
