"""Properties of mention, hashtag and link extraction (terrascale.posts.text) over arbitrary
Unicode, and over posts assembled from tokens whose entities are known in advance.

Behaviour these properties pin down, as the module's docstrings state it: the FULLWIDTH
COMMERCIAL AT and NUMBER SIGN (U+FF20, U+FF03) are the same signs as ``@`` and ``#``; mentions
keep the first spelling of each username and compare case-insensitively; hashtags are
lower-cased after NFC; links are found first, so nothing inside one is a mention or a hashtag;
an address (``ada@example.com``) or a remote account (``@ada@host``) is not a mention. The
module reports no positions, so "where" is stated as "is a substring of the text". It sets no
count limits of its own: the 500-code-point limit on a post bounds them (a mention takes at
least 4 code points, a hashtag 2).

Also pinned, which the docstrings imply rather than say: a right-to-left mark or a zero-width
joiner next to a mention does not stop it (they are format characters, not word characters); an
emoji ends a hashtag or a link; a joiner is kept inside a hashtag only between two of its letters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hypothesis import example, given
from hypothesis import strategies as st

from terrascale.posts.text import (
    AT_SIGNS,
    HASH_SIGNS,
    MAX_USERNAME_LENGTH,
    MIN_USERNAME_LENGTH,
    extract,
    find_hashtags,
    find_mentions,
    find_urls,
    normalize,
    problem,
)

USERNAME = re.compile(rf"[A-Za-z0-9_]{{{MIN_USERNAME_LENGTH},{MAX_USERNAME_LENGTH}}}")
URL_START = re.compile(r"https?://", re.IGNORECASE)
TRAILING_PUNCTUATION = ".,:;!?'*"

# Every code point, lone surrogates included: JSON can carry them ("\ud800").
any_text = st.text(st.characters(exclude_categories=()), max_size=600)
# Text rich in what extraction looks at, so the signs and URL characters meet often.
interesting_text = st.lists(
    st.one_of(
        st.sampled_from(
            [*AT_SIGNS, *HASH_SIGNS, "http://", "https://", "HTTPS://", "&", "/", ".", " ", "_"]
        ),
        st.sampled_from(["\u200c", "\u200d", "\u200f", "\u0301", "\U0001f600", "\u05d0", "ß"]),
        st.characters(codec="ascii"),
        st.characters(),
    ),
    max_size=80,
).map("".join)


# --- posts built from tokens whose entities are known -----------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    mention: str | None = None
    hashtag: str | None = None
    url: str | None = None


usernames = st.from_regex(USERNAME, fullmatch=True)
# Before a sign: nothing, an opening bracket, an emoji or a right-to-left mark (not word chars).
sign_prefixes = st.sampled_from(["", "(", "\U0001f600", "\u200f", "\u00ab"])
mention_suffixes = st.sampled_from(["", ".", ",", "!", "?", ")", "'s", ":", "\u200d", "\u3002"])
hashtag_suffixes = st.sampled_from(["", ".", "!", ")", "\U0001f389", "\u3002", "\u200c"])
tag_letters = st.characters(categories=["Lu", "Ll", "Lo"])
tag_rest = st.one_of(
    st.characters(categories=["Lu", "Ll", "Lo", "Nd"]),
    st.just("_"),
    # A combining mark or a joiner between letters is part of the tag (Indic, Persian).
    st.builds(
        lambda mark, letter: mark + letter,
        st.sampled_from(["\u0301", "\u094d", "\u200c", "\u200d"]),
        tag_letters,
    ),
)


@st.composite
def mention_tokens(draw: st.DrawFn) -> Token:
    name = draw(usernames)
    sign = draw(st.sampled_from(sorted(AT_SIGNS)))
    return Token(draw(sign_prefixes) + sign + name + draw(mention_suffixes), mention=name)


@st.composite
def hashtag_tokens(draw: st.DrawFn) -> Token:
    tag = draw(tag_letters) + "".join(draw(st.lists(tag_rest, max_size=8)))
    sign = draw(st.sampled_from(sorted(HASH_SIGNS)))
    return Token(
        draw(sign_prefixes) + sign + tag + draw(hashtag_suffixes),
        hashtag=normalize(normalize(tag).lower()),
    )


@st.composite
def url_tokens(draw: st.DrawFn) -> Token:
    scheme = draw(st.sampled_from(["http://", "https://", "HTTPS://"]))
    host = draw(st.from_regex(r"[a-z0-9]{1,10}\.(com|org|social)", fullmatch=True))
    # Paths full of signs: "/@ada", "#top", "?q=#tag" are part of the link, never entities.
    path = draw(st.from_regex(r"(/([A-Za-z0-9@#?=&_~-]{0,12}[A-Za-z0-9])?){0,3}", fullmatch=True))
    url = scheme + host + path
    trail = draw(st.sampled_from(["", ".", ",", "!", ")", "\U0001f389"]))
    return Token(("(" if trail == ")" else "") + url + trail, url=url)


@st.composite
def email_tokens(draw: st.DrawFn) -> Token:
    local = draw(st.from_regex(r"[A-Za-z0-9._]{0,8}[A-Za-z0-9\u00e9\u05d0]", fullmatch=True))
    return Token(local + draw(st.sampled_from(sorted(AT_SIGNS))) + draw(usernames) + ".com")


@st.composite
def remote_account_tokens(draw: st.DrawFn) -> Token:
    return Token("@" + draw(usernames) + "@" + draw(usernames) + ".social")


# Words in several scripts, emoji and ZWJ sequences: no sign, no ":" (so no scheme).
word_pieces = st.one_of(
    st.characters(exclude_characters="@#:\uff20\uff03", exclude_categories=("Cs", "Zs", "Cc")),
    st.sampled_from(
        [
            "\u05e9\u05dc\u05d5\u05dd",  # Hebrew
            "\u0645\u0631\u062d\u0628\u0627",  # Arabic
            "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # a family: emoji and joiners
            "e\u0301",  # a combining accent
        ]
    ),
)
words = st.lists(word_pieces, min_size=1, max_size=6).map(lambda pieces: Token("".join(pieces)))
tokens = st.one_of(
    mention_tokens(), hashtag_tokens(), url_tokens(), email_tokens(), remote_account_tokens(), words
)
separators = st.sampled_from([" ", "\n", "\t", "\u3000", " \u200f ", "\r\n"])


@st.composite
def posts(draw: st.DrawFn) -> tuple[str, list[Token]]:
    parts = draw(st.lists(tokens, max_size=12))
    text = ""
    for token in parts:
        text += token.text + draw(separators)
    return normalize(text), parts


def _first_of_each(values: list[str], key: object = None) -> list[str]:
    seen: dict[str, str] = {}
    for value in values:
        seen.setdefault(value.lower() if key == "case-insensitive" else value, value)
    return list(seen.values())


EXAMPLE_POST = (
    "@ada https://mastodon.social/@ada ada@example.com #Top",
    [
        Token("@ada", mention="ada"),
        Token("https://mastodon.social/@ada", url="https://mastodon.social/@ada"),
        Token("ada@example.com"),
        Token("#Top", hashtag="top"),
    ],
)


@given(posts())
@example(EXAMPLE_POST)
def test_extraction_finds_exactly_the_entities_the_post_was_built_from(
    post: tuple[str, list[Token]],
) -> None:
    text, parts = post
    entities = extract(text)
    assert entities.mentions == _first_of_each(
        [t.mention for t in parts if t.mention], "case-insensitive"
    )
    assert entities.hashtags == _first_of_each([t.hashtag for t in parts if t.hashtag])
    assert entities.urls == _first_of_each([t.url for t in parts if t.url])


# --- any text -------------------------------------------------------------------------------


@given(st.one_of(any_text, interesting_text))
def test_any_text_is_checked_and_extracted_without_raising(raw: str) -> None:
    text = normalize(raw)
    reason = problem(text)
    assert reason is None or isinstance(reason, str)
    extract(text)


@given(st.one_of(any_text, interesting_text))
def test_every_entity_is_written_in_the_text(raw: str) -> None:
    text = normalize(raw)
    entities = extract(text)
    for name in entities.mentions:
        assert any(sign + name in text for sign in AT_SIGNS)
    lowered = normalize(text.lower())
    for tag in entities.hashtags:
        assert any(sign + tag in lowered for sign in HASH_SIGNS)
    for url in entities.urls:
        assert url in text


@given(st.one_of(any_text, interesting_text))
def test_entities_have_their_documented_shape(raw: str) -> None:
    text = normalize(raw)
    entities = extract(text)
    assert all(USERNAME.fullmatch(name) for name in entities.mentions)
    assert len({name.lower() for name in entities.mentions}) == len(entities.mentions)
    assert len(set(entities.hashtags)) == len(entities.hashtags)
    for tag in entities.hashtags:
        assert tag == normalize(tag.lower())
        assert any(char.isalpha() for char in tag)
        assert not set(tag) & (HASH_SIGNS | AT_SIGNS)
    assert len(set(entities.urls)) == len(entities.urls)
    for url in entities.urls:
        assert URL_START.match(url)
        assert url[-1] not in TRAILING_PUNCTUATION
    assert 4 * len(entities.mentions) <= len(text)
    assert 2 * len(entities.hashtags) <= len(text)


@given(st.one_of(any_text, interesting_text))
def test_extraction_is_idempotent(raw: str) -> None:
    """Writing the entities out again and extracting gives them back unchanged."""
    entities = extract(normalize(raw))
    assert find_mentions(" ".join("@" + name for name in entities.mentions)) == entities.mentions
    assert find_hashtags(" ".join("#" + tag for tag in entities.hashtags)) == entities.hashtags
    assert find_urls(" ".join(entities.urls)) == entities.urls


@given(st.one_of(any_text, interesting_text))
def test_nothing_inside_a_link_becomes_a_mention_or_hashtag(raw: str) -> None:
    """Links are masked before the other searches: they can only remove entities."""
    text = normalize(raw)
    entities = extract(text)
    assert {name.lower() for name in entities.mentions} <= {
        name.lower() for name in find_mentions(text)
    }
    assert set(entities.hashtags) <= set(find_hashtags(text))


@given(interesting_text)
def test_fullwidth_signs_are_the_ascii_signs(raw: str) -> None:
    text = normalize(raw)
    ascii_signs = text.replace("\uff20", "@").replace("\uff03", "#")
    # Only outside links: U+FF20 is not a URL character, so it ends a link where "@" would not.
    if not find_urls(text) and not find_urls(ascii_signs):
        assert extract(text) == extract(ascii_signs)


@given(st.lists(usernames, min_size=1, max_size=8))
def test_a_user_is_mentioned_once_as_first_written_whatever_the_case(names: list[str]) -> None:
    spellings = [name.swapcase() if index % 2 else name for index, name in enumerate(names * 2)]
    assert find_mentions(" ".join("@" + spelling for spelling in spellings)) == _first_of_each(
        spellings, "case-insensitive"
    )
