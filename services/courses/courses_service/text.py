"""User text made safe to store and show: sanitised HTML, plain text, slugs."""

from __future__ import annotations

import html
import re
import unicodedata

import nh3

#: Markup a course description or lesson body may keep; everything else is removed
#: (scripts, styles, event handlers, iframes, images from anywhere).
RICH_TAGS = frozenset(
    {
        "p", "br", "b", "strong", "i", "em", "u", "s", "code", "pre", "blockquote",
        "ul", "ol", "li", "h2", "h3", "h4", "a",
    }
)  # fmt: skip
#: Markup a review comment may keep.
LIGHT_TAGS = frozenset({"p", "br", "b", "strong", "i", "em"})

_SLUG_JUNK = re.compile(r"[^a-z0-9]+")
SLUG_MAX = 80


def rich_text(value: str) -> str:
    """HTML reduced to :data:`RICH_TAGS`; links keep ``href`` only, with safe schemes."""
    return nh3.clean(
        value,
        tags=set(RICH_TAGS),
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    ).strip()


def light_text(value: str) -> str:
    """HTML reduced to :data:`LIGHT_TAGS` (no attributes, no links)."""
    return nh3.clean(value, tags=set(LIGHT_TAGS), attributes={}).strip()


def plain_text(value: str) -> str:
    """Text without any markup, entities decoded (``"Tom &amp; Jerry"`` → ``"Tom & Jerry"``).

    Stripping and decoding repeat until nothing changes, so decoding can never bring a
    tag back (``"&lt;script&gt;"`` is removed, not turned into ``"<script>"``).
    """
    text = value
    for _ in range(5):
        cleaned = html.unescape(nh3.clean(text, tags=set()))
        if cleaned == text:
            break
        text = cleaned
    return text.strip()


def slugify(value: str, *, fallback: str = "course") -> str:
    """``"Intro to Python 3!"`` → ``"intro-to-python-3"`` (ASCII, at most 80 characters)."""
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    slug = _SLUG_JUNK.sub("-", ascii_text.lower()).strip("-")[:SLUG_MAX].strip("-")
    return slug or fallback
