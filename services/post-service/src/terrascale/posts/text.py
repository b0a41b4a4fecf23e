"""What a post's text contains: its length in code points, and its @mentions, #hashtags and
links. Pure functions, no I/O, so every rule is unit-tested on its own.

Callers normalise to NFC first (``normalize``): the same visible text then has one length and
one spelling, whichever keyboard or platform produced it. Links are found first and masked, so
a ``#fragment`` or an ``/@user`` path inside a URL is neither a hashtag nor a mention.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_LENGTH = 500
MIN_USERNAME_LENGTH = 3
MAX_USERNAME_LENGTH = 30

HASH_SIGNS = frozenset("#\uff03")  # and FULLWIDTH NUMBER SIGN, typed on CJK keyboards
AT_SIGNS = frozenset("@\uff20")  # and FULLWIDTH COMMERCIAL AT
# Zero-width (non-)joiners are part of words in Persian and Indic scripts.
JOINERS = frozenset("\u200c\u200d")
ALLOWED_CONTROLS = frozenset("\t\n\r")
_LETTERS_AND_DIGITS = frozenset(("Lu", "Ll", "Lt", "Lm", "Lo", "Nd"))
USERNAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")

# An http(s) link: the scheme, then only the characters RFC 3986 allows (ASCII), so a link ends
# where text in another script or an emoji starts even without a space.
_URL = re.compile(
    r"(?<![A-Za-z0-9])https?://[A-Za-z0-9\[][A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*",
    re.IGNORECASE,
)
# Punctuation that ends a sentence ends the link: "see https://example.com." links the site.
_TRAILING_PUNCTUATION = frozenset(".,:;!?'*")
_OPENING = {")": "(", "]": "["}


@dataclass(frozen=True, slots=True)
class Entities:
    mentions: list[str]  # usernames as written, first occurrence of each, case-insensitively
    hashtags: list[str]  # lower-cased, first occurrence of each
    urls: list[str]  # as written, first occurrence of each


def normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def problem(text: str) -> str | None:
    """Why ``text`` (already NFC) cannot be a post, or None. Length is counted in code points."""
    if any(_is_surrogate(char) for char in text):
        return "Text must be valid Unicode (it contains an unpaired surrogate)."
    if any(unicodedata.category(char) == "Cc" and char not in ALLOWED_CONTROLS for char in text):
        return "Text must not contain control characters other than tab and line breaks."
    if not text:
        return "Text must not be empty."
    if len(text) > MAX_LENGTH:
        return f"Text must be at most {MAX_LENGTH} characters (it has {len(text)})."
    if not any(_is_visible(char) for char in text):
        return "Text must contain something other than whitespace."
    return None


def extract(text: str) -> Entities:
    urls = find_urls(text)
    masked = _mask_urls(text)
    return Entities(mentions=find_mentions(masked), hashtags=find_hashtags(masked), urls=urls)


def find_urls(text: str) -> list[str]:
    found = (_trim_url(match.group()) for match in _URL.finditer(text))
    return list(dict.fromkeys(found))


def find_mentions(text: str) -> list[str]:
    """``@name`` where name is a possible username (3-30 ASCII letters, digits, underscores).
    Not a mention: the ``@`` of an address (``ada@example.com``: a word character before it),
    a name that runs on into other letters (``@adà``), or a remote account (``@ada@host``)."""
    names: dict[str, str] = {}
    for start, char in enumerate(text):
        if char not in AT_SIGNS or (start > 0 and _blocks_mention(text[start - 1])):
            continue
        end = start + 1
        while end < len(text) and text[end] in USERNAME_CHARS:
            end += 1
        name = text[start + 1 : end]
        if not MIN_USERNAME_LENGTH <= len(name) <= MAX_USERNAME_LENGTH:
            continue
        if end < len(text) and (text[end] in AT_SIGNS or _is_word_char(text[end])):
            continue
        names.setdefault(name.lower(), name)
    return list(names.values())


def find_hashtags(text: str) -> list[str]:
    """``#tag`` where tag is Unicode letters, combining marks, decimal digits and underscores,
    with at least one letter (``#2024`` is a number, not a tag). Stored lower-cased."""
    tags: list[str] = []
    for start, char in enumerate(text):
        if char not in HASH_SIGNS or (start > 0 and _blocks_hashtag(text[start - 1])):
            continue
        end = start + 1
        if end == len(text) or not _starts_tag(text[end]):
            continue
        while end < len(text) and _continues_tag(text, end):
            end += 1
        tag = text[start + 1 : end]
        if any(unicodedata.category(c).startswith("L") for c in tag):
            tags.append(normalize(tag.lower()))  # lower() can leave a decomposed letter
    return list(dict.fromkeys(tags))


def _trim_url(url: str) -> str:
    # Never trims to nothing: the match starts "http://" and a letter, digit or "[".
    while url[-1] in _TRAILING_PUNCTUATION or _unbalanced_closing(url):
        url = url[:-1]
    return url


def _unbalanced_closing(url: str) -> bool:
    # "(see https://example.com)" ends before the ")"; a Wikipedia "(topic)" does not.
    last = url[-1]
    return last in _OPENING and url.count(last) > url.count(_OPENING[last])


def _mask_urls(text: str) -> str:
    def blank(match: re.Match[str]) -> str:
        url = _trim_url(match.group())
        return " " * len(url) + match.group()[len(url) :]

    return _URL.sub(blank, text)


def _is_surrogate(char: str) -> bool:
    return "\ud800" <= char <= "\udfff"


def _is_visible(char: str) -> bool:
    # Whitespace, and format characters such as U+200B ZERO WIDTH SPACE, show nothing.
    return not char.isspace() and unicodedata.category(char) not in ("Cc", "Cf")


def _is_word_char(char: str) -> bool:
    return char == "_" or unicodedata.category(char)[0] in "LMN"


def _blocks_mention(previous: str) -> bool:
    return _is_word_char(previous) or previous in AT_SIGNS or previous in "#$%&*/+"


def _blocks_hashtag(previous: str) -> bool:
    # "&#39;" is an HTML entity, "a#b" a word, "##tag" a typo we do not guess at.
    return _is_word_char(previous) or previous in HASH_SIGNS or previous == "&"


def _starts_tag(char: str) -> bool:
    return char == "_" or unicodedata.category(char) in _LETTERS_AND_DIGITS


def _continues_tag(text: str, index: int) -> bool:
    char = text[index]
    if char in JOINERS:
        return index + 1 < len(text) and _starts_tag_or_mark(text[index + 1])
    return _starts_tag_or_mark(char)


def _starts_tag_or_mark(char: str) -> bool:
    return _starts_tag(char) or unicodedata.category(char).startswith("M")
