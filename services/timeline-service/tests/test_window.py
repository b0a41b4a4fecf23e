"""The cursor window: which ids a request's max_id / since_id / min_id / limit select."""

from __future__ import annotations

from terrascale.timelines.window import Window

IDS = list(range(1, 11))


def test_no_cursor_is_the_newest_page() -> None:
    assert Window.from_query(limit=3, max_id=None, since_id=None, min_id=None).select(IDS) == [
        10,
        9,
        8,
    ]


def test_max_id_pages_backwards_exclusively() -> None:
    window = Window.from_query(limit=3, max_id=8, since_id=None, min_id=None)
    assert window.select(IDS) == [7, 6, 5]


def test_since_id_is_the_newest_above_it() -> None:
    window = Window.from_query(limit=3, max_id=None, since_id=2, min_id=None)
    assert window.select(IDS) == [10, 9, 8]


def test_min_id_is_the_oldest_above_it_newest_first() -> None:
    window = Window.from_query(limit=3, max_id=None, since_id=None, min_id=2)
    assert window.select(IDS) == [5, 4, 3]


def test_min_id_wins_over_since_id_and_both_bounds_apply() -> None:
    window = Window.from_query(limit=10, max_id=6, since_id=1, min_id=3)
    assert window.from_oldest
    assert window.select(IDS) == [5, 4]


def test_select_removes_duplicates_and_sorts() -> None:
    assert Window(limit=5).select([3, 9, 3, 1, 9]) == [9, 3, 1]
