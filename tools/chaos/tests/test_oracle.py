"""The oracle's comparisons, on hand-made evidence."""

from __future__ import annotations

from terrascale.chaos.oracle import (
    Attempt,
    SentPost,
    StoredPost,
    first_acknowledgement_after,
    judge,
    outage_seconds,
    visible_window,
)

AUTHOR, FAN, OTHER_FAN, MENTIONED = 1, 2, 3, 4


def acknowledged(marker: str, post_id: int, phase: str = "fault") -> SentPost:
    return SentPost(
        marker=marker,
        phase=phase,
        author=AUTHOR,
        mentioned=(MENTIONED,),
        requests=1,
        post_id=post_id,
        acknowledged_at=1.0,
    )


def test_a_post_everywhere_it_should_be_is_neither_lost_nor_duplicated() -> None:
    verdicts = judge(
        [acknowledged("m1", 100)],
        stored={"m1": [StoredPost(100, AUTHOR)]},
        followers={AUTHOR: [FAN, OTHER_FAN]},
        timelines={FAN: [100], OTHER_FAN: [100]},
        mention_notifications={(MENTIONED, 100): 1},
        timeline_cap=800,
    )
    verdict = verdicts["fault"]
    assert (verdict.posts, verdict.acknowledged, verdict.lost, verdict.duplicated) == (1, 1, 0, 0)
    assert verdict.examples == []


def test_an_acknowledged_post_not_stored_is_lost_once() -> None:
    verdict = judge(
        [acknowledged("m1", 100)],
        stored={},
        followers={AUTHOR: [FAN]},
        timelines={FAN: []},
        mention_notifications={},
        timeline_cap=800,
    )["fault"]
    # Its timeline entries and notifications are not counted again on top.
    assert (verdict.lost_posts, verdict.lost) == (1, 1)
    assert "acknowledged but not stored" in verdict.examples[0]


def test_a_post_stored_under_another_id_than_acknowledged_is_lost() -> None:
    verdict = judge(
        [acknowledged("m1", 100)],
        stored={"m1": [StoredPost(101, AUTHOR)]},
        followers={},
        timelines={},
        mention_notifications={},
        timeline_cap=800,
    )["fault"]
    assert verdict.lost_posts == 1


def test_duplicates_count_for_posts_given_up_too() -> None:
    given_up = SentPost("m2", "fault", AUTHOR, (), requests=7, given_up=True)
    verdict = judge(
        [given_up],
        stored={"m2": [StoredPost(200, AUTHOR), StoredPost(201, AUTHOR)]},
        followers={},
        timelines={},
        mention_notifications={},
        timeline_cap=800,
    )["fault"]
    assert (verdict.duplicated_posts, verdict.acknowledged, verdict.given_up) == (1, 0, 1)
    assert verdict.requests == 7


def test_missing_and_repeated_timeline_entries_and_notifications_are_counted() -> None:
    verdict = judge(
        [acknowledged("m1", 100)],
        stored={"m1": [StoredPost(100, AUTHOR)]},
        followers={AUTHOR: [FAN, OTHER_FAN]},
        timelines={FAN: [100, 100], OTHER_FAN: []},
        mention_notifications={(MENTIONED, 100): 2},
        timeline_cap=800,
    )["fault"]
    assert verdict.missing_timeline_entries == 1
    assert verdict.duplicated_timeline_entries == 1
    assert verdict.duplicated_notifications == 1
    assert (verdict.lost, verdict.duplicated) == (1, 2)


def test_a_missing_mention_notification_is_lost() -> None:
    verdict = judge(
        [acknowledged("m1", 100)],
        stored={"m1": [StoredPost(100, AUTHOR)]},
        followers={},
        timelines={},
        mention_notifications={},
        timeline_cap=800,
    )["fault"]
    assert verdict.missing_notifications == 1


def test_posts_beyond_the_timeline_cap_are_not_expected() -> None:
    old, new = acknowledged("m1", 100), acknowledged("m2", 200)
    verdict = judge(
        [old, new],
        stored={"m1": [StoredPost(100, AUTHOR)], "m2": [StoredPost(200, AUTHOR)]},
        followers={AUTHOR: [FAN]},
        timelines={FAN: [200]},
        mention_notifications={(MENTIONED, 100): 1, (MENTIONED, 200): 1},
        timeline_cap=1,
    )["fault"]
    assert verdict.lost == 0


def test_verdicts_are_per_phase_in_order_of_appearance() -> None:
    sent = [acknowledged("m1", 100, phase="b"), acknowledged("m2", 200, phase="a")]
    verdicts = judge(
        sent,
        stored={"m1": [StoredPost(100, AUTHOR)]},
        followers={},
        timelines={},
        mention_notifications={(MENTIONED, 100): 1, (MENTIONED, 200): 1},
        timeline_cap=800,
    )
    assert list(verdicts) == ["b", "a"]
    assert (verdicts["b"].lost, verdicts["a"].lost) == (0, 1)


def test_only_a_few_examples_are_kept() -> None:
    sent = [acknowledged(f"m{n}", n) for n in range(20)]
    verdict = judge(
        sent,
        stored={},
        followers={},
        timelines={},
        mention_notifications={},
        timeline_cap=800,
    )["fault"]
    assert verdict.lost == 20
    assert len(verdict.examples) == 5


def test_visible_window_keeps_the_newest() -> None:
    assert visible_window([5, 1, 9, 3], 2) == {9, 5}


def test_recovery_is_the_first_acknowledgement_after_the_heal() -> None:
    attempts = [Attempt(9.0, True), Attempt(10.5, False), Attempt(11.0, True), Attempt(12, True)]
    assert first_acknowledgement_after(attempts, 10.0) == 1.0
    assert first_acknowledgement_after(attempts, 12.5) is None


def test_outage_runs_from_the_first_failure_to_the_first_success_after_the_last() -> None:
    attempts = [
        Attempt(1.0, True),
        Attempt(2.0, False),
        Attempt(3.0, True),  # a success between failures does not end the outage
        Attempt(4.0, False),
        Attempt(6.5, True),
        Attempt(9.0, False),  # after the phase
    ]
    assert outage_seconds(attempts, 1.5, 8.0) == 4.5
    assert outage_seconds(attempts, 6.6, 8.0) == 0.0


def test_an_outage_that_never_ended_lasts_until_the_last_failure() -> None:
    attempts = [Attempt(2.0, False), Attempt(5.0, False)]
    assert outage_seconds(attempts, 0.0, 10.0) == 3.0
