"""Extraction of mentions, hashtags and links, and the text rules: pure functions, Unicode edge
cases included."""

from __future__ import annotations

import pytest

from terrascale.posts.text import (
    MAX_LENGTH,
    extract,
    find_hashtags,
    find_mentions,
    find_urls,
    normalize,
    problem,
)

PERSIAN = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # "I want", with a ZWNJ


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("@ada hello", ["ada"]),
        ("hi @ada_lovelace!", ["ada_lovelace"]),
        ("(@ada) and [@bob], @carol.", ["ada", "bob", "carol"]),
        ("@Ada @ADA @ada", ["Ada"]),  # one per user, spelled as first written
        ("mail ada@example.com", []),  # an address, not a mention
        ("caf\u00e9@ada", []),  # a letter of any script before the @ makes it an address
        ("@ada@mastodon.social", []),  # a remote account is not ours
        ("@ab", []),  # shorter than any username
        ("@" + "a" * 30, ["a" * 30]),
        ("@" + "a" * 31, []),  # longer than any username: not cut short
        ("@ad\u00e0", []),  # runs on into a non-ASCII letter: not the user "ad"
        ("\U0001f600@ada", ["ada"]),  # an emoji is not a word character
        ("@@ada #@ada", []),
        ("\uff20dave", ["dave"]),  # FULLWIDTH COMMERCIAL AT
        ("@ada's post", ["ada"]),
        ("line\n@ada", ["ada"]),
    ],
)
def test_mentions(text: str, mentions: list[str]) -> None:
    assert find_mentions(normalize(text)) == mentions


@pytest.mark.parametrize(
    ("text", "hashtags"),
    [
        ("#Python and #python, #PYTHON!", ["python"]),
        ("#python.", ["python"]),  # trailing punctuation is not part of the tag
        ("#snake_case_tag_", ["snake_case_tag_"]),
        ("#2024", []),  # numbers are not tags
        ("#1st #_", ["1st"]),
        ("#日本語 と #東京タワー。", ["日本語", "東京タワー"]),  # CJK, ended by CJK punctuation
        ("\uff03\u6771\u4eac", ["東京"]),  # FULLWIDTH NUMBER SIGN
        ("#café", ["café"]),
        ("#cafe\u0301", ["café"]),  # decomposed input: NFC makes it the same tag
        ("#हिन्दी", ["हिन्दी"]),  # combining vowel signs and virama are part of the word
        (f"#{PERSIAN}", [PERSIAN]),  # a zero-width non-joiner inside a Persian word
        ("#tag\u200c", ["tag"]),  # a joiner at the end is not kept
        ("#party\U0001f389", ["party"]),  # an emoji ends the tag
        ("#\U0001f389", []),
        ("#\ufe0f\u20e3", []),  # the keycap emoji sequence
        ("a#b &#39; ##c", []),  # inside a word, an HTML entity, a doubled sign
        ("#ÄRGER", ["ärger"]),
        ("#Straße", ["straße"]),  # lower-cased, not case-folded
        ("#one#two", ["one"]),
        ("x\n#tag", ["tag"]),
    ],
)
def test_hashtags(text: str, hashtags: list[str]) -> None:
    assert find_hashtags(normalize(text)) == hashtags


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("see https://example.com.", ["https://example.com"]),
        ("see http://example.com/a?b=c&d=e#frag!", ["http://example.com/a?b=c&d=e#frag"]),
        ("(https://example.com/x)", ["https://example.com/x"]),
        (
            "https://en.wikipedia.org/wiki/Python_(programming_language)",
            ["https://en.wikipedia.org/wiki/Python_(programming_language)"],
        ),
        ("HTTPS://EXAMPLE.COM/Path", ["HTTPS://EXAMPLE.COM/Path"]),
        ("https://example.com\U0001f389", ["https://example.com"]),  # an emoji ends the link
        ("見て https://example.jp/ページ", ["https://example.jp/"]),
        ("https://example.com/a, https://example.com/a;", ["https://example.com/a"]),
        ("ftp://example.com mailto:ada@example.com", []),
        ("https:// nothing", []),
        ("xhttps://example.com", []),
        ("'https://example.com/it's'", ["https://example.com/it's"]),
        ("<https://example.com/>", ["https://example.com/"]),
        ("http://[::1]:8080/x", ["http://[::1]:8080/x"]),
    ],
)
def test_urls(text: str, urls: list[str]) -> None:
    assert find_urls(normalize(text)) == urls


def test_nothing_inside_a_link_is_a_mention_or_a_hashtag() -> None:
    entities = extract("https://mastodon.social/@ada https://example.com/#top @bob #real")
    assert entities.urls == ["https://mastodon.social/@ada", "https://example.com/#top"]
    assert entities.mentions == ["bob"]
    assert entities.hashtags == ["real"]


def test_a_hashtag_right_after_a_link_is_part_of_the_link() -> None:
    # "#" is a URL character (the fragment), so only a space or punctuation separates them.
    assert extract("https://example.com/#tag").hashtags == []
    entities = extract("(https://example.com), #tag")
    assert entities.urls == ["https://example.com"]
    assert entities.hashtags == ["tag"]


def test_extract_on_plain_text() -> None:
    entities = extract("no entities here, just 100% text & an email ada@example.com")
    assert (entities.mentions, entities.hashtags, entities.urls) == ([], [], [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", None),
        ("\U0001f600" * MAX_LENGTH, None),  # 500 code points, 2,000 UTF-8 bytes
        ("字" * MAX_LENGTH, None),
        ("tab\tand\r\nbreaks", None),
        ("\u0301", None),  # a lone combining mark shows (on a dotted circle)
        ("\U0001f600" * (MAX_LENGTH + 1), "at most 500"),
        ("", "empty"),
        ("   \n\t", "whitespace"),
        ("\u3000\u00a0\u2003", "whitespace"),  # ideographic, no-break and em spaces
        ("\u200b\u2060\ufeff", "whitespace"),  # zero-width characters show nothing
        ("nul\x00", "control"),
        ("esc\x1b[31m", "control"),
        ("del\x7f", "control"),
        ("\ud83d", "surrogate"),
    ],
)
def test_problem(text: str, expected: str | None) -> None:
    found = problem(normalize(text))
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert expected in found


def test_length_counts_code_points_after_nfc() -> None:
    decomposed = "e\u0301" * MAX_LENGTH
    assert len(decomposed) == 2 * MAX_LENGTH
    assert problem(normalize(decomposed)) is None
    # A family emoji is one picture but five code points (three people, two joiners).
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert len(normalize(family)) == 5
    assert problem(family * 100) is None
    assert problem(family * 101) is not None
