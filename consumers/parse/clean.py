"""Text hygiene for every field of an item, whatever shape or source it came from.

The shape modules read text from many places (feedparser, JSON Feed, JSON-LD, microdata,
``<meta content>``, attributes, plain-text captures), and several of them hand over text
that is still HTML-escaped, sometimes twice (``&amp;#39;``: a CMS escaped an already
escaped headline), or that carries NUL bytes and other control characters, or links
with schemes no subscriber may follow (``javascript:``).  :func:`clean_item` is the last
step of every parse (see :mod:`.dispatch`), so whatever a shape missed never reaches a
subscriber; the readers that match text across sources (a JSON-LD update against the
same post in the markup) also call :func:`clean_text` at the source, because the match
happens before this last step.

Everything here is pure and cheap on clean input: each function first checks, in C, that
there is nothing to do and then returns its argument unchanged, so an item that was clean
already keeps its fields and its content hash byte for byte.
"""

from __future__ import annotations

import re
from html import unescape
from typing import Final
from urllib.parse import urljoin, urlsplit

from ingestor.models import Enclosure, NewsItem, content_hash

__all__ = [
    "MAX_URL_LENGTH",
    "clean_item",
    "clean_language",
    "clean_names",
    "clean_text",
    "clean_url",
    "decode_entities",
]

#: Longer "URLs" are data smuggled into a link, not addresses; browsers and servers
#: commonly stop at a few kilobytes too.
MAX_URL_LENGTH: Final = 4096
#: Decoding rounds for text escaped over and over.  One round already undoes any depth of
#: ``&amp;amp;…`` in front of an entity (see ``_ENTITY``); further rounds only matter for
#: entities spelled with entities (``&amp;&#35;39;``), which nobody writes by accident.
_MAX_ROUNDS: Final = 4

#: An entity with its semicolon, after any number of escaped ampersands (``&amp;``,
#: ``&#38;``, ``&#x26;``) that a double (or triple...) escaping put in front of it.
#: Entities without a semicolon are left alone on purpose: in text they are far more often
#: a query string or a name ("?a=1&not=2", "&copy" in "&copyright") than an escape.
_ENTITY: Final = re.compile(
    r"&(?:(?:amp|AMP|#0*38|#[xX]0*26);)*"
    r"(#[0-9]{1,8};|#[xX][0-9A-Fa-f]{1,7};|[A-Za-z][A-Za-z0-9]{1,31};)"
)

#: Removed outright: C0 controls other than the whitespace ones, DEL, C1 controls other
#: than NEL (a line break), lone surrogates (no encoder accepts them), noncharacters,
#: the information separators (which :func:`ingestor.models.content_hash` uses as field
#: separators) and the invisible characters the HTML reader drops too (zero-width space,
#: word joiner, byte order mark).  The noncharacters above the BMP have a pattern of their
#: own: a character class listing them is ~10x slower on every text than this one.
_REMOVED: Final = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u200b\u2060\ud800-\udfff\ufdd0-\ufdef\ufeff\ufffe\uffff]+"
)
_ASTRAL_NONCHARACTER: Final = re.compile(
    "[" + "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(1, 17)) + "]+"
)
#: Where astral noncharacters could be: above U+1FFFD (emoji and most scripts are below).
_HIGH_ASTRAL: Final = re.compile("[\U0001fffe-\U0010ffff]")
#: A character a body may not keep as it is: one to remove (see ``_REMOVED``; C0 and C1
#: controls cover the tab, carriage return, NEL...), whitespace other than the space and
#: the newline, to normalise, or an astral character that may be a noncharacter.
_BODY_ODD_CHAR: Final = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\xa0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u2060"
    "\u3000\ud800-\udfff\ufdd0-\ufdef\ufeff\ufffe\uffff\U0001fffe-\U0010ffff]"
)
#: An http(s) URL with nothing to clean: ASCII, a host, no space, control or ``&``.
_PLAIN_URL: Final = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][!-%'-~]*)?")
_BLANK_LINE_RUN: Final = re.compile(r"\n\s*\n")
_LANGUAGE_TAG: Final = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8}){0,7}")
_URL_INNER_WHITESPACE: Final = re.compile(r"[\t\n\r]+")
#: What a browser strips from both ends of an href (C0 controls and space), and the
#: invisible spaces a CMS pastes around a link.
_URL_EDGES: Final = "".join(map(chr, range(0x21))) + "\x7f\xa0\u200b\ufeff"
_URL_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")


def decode_entities(text: str) -> str:
    """``text`` with HTML entities decoded, escaped ones too (``&amp;#39;`` is ``'``), and
    without the characters ``_REMOVED`` lists.

    Removal and decoding alternate because each can make the other's work: a NUL or a
    zero-width space between ``&`` and ``#39;`` hides an entity until it is removed, and
    ``&#8203;`` decodes to one.  Each round is one linear regex pass; rounds stop as soon
    as one changes nothing, and after ``_MAX_ROUNDS`` at most, so hostile input costs a
    bounded multiple of its length.
    """
    text = _remove(text)
    for _ in range(_MAX_ROUNDS):
        if "&" not in text:
            break
        decoded = _ENTITY.sub(_decode_match, text)
        if decoded == text:
            break
        text = _remove(decoded)
    return text


def _remove(text: str) -> str:
    text = _REMOVED.sub("", text)
    if _HIGH_ASTRAL.search(text) is not None:
        text = _ASTRAL_NONCHARACTER.sub("", text)
    return text


def _decode_match(match: re.Match[str]) -> str:
    return unescape("&" + match.group(1))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _paragraphs(text: str) -> str:
    """The body convention: lines of single-spaced text, paragraphs apart by one blank line."""
    text = _BLANK_LINE_RUN.sub("\n\n", text.replace("\u2029", "\n\n"))
    paragraphs: list[str] = []
    lines: list[str] = []
    for line in text.splitlines():
        line = _one_line(line)
        if line:
            lines.append(line)
        elif lines:
            paragraphs.append("\n".join(lines))
            lines = []
    if lines:
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def clean_text(text: str, *, multiline: bool = False) -> str:
    """``text`` fit for a field: entities decoded, control characters gone, whitespace tidy.

    One-line fields (titles, names, categories) come out on a single line with single
    spaces; ``multiline`` fields (body, summary) keep line breaks and blank-line paragraph
    breaks.  Clean input comes back as the very same string.
    """
    if not multiline:
        if (
            text.isprintable()
            and "&" not in text
            and (not text or (text[0] != " " and text[-1] != " " and "  " not in text))
        ):
            return text
    elif (
        "  " not in text
        and " \n" not in text
        and "\n " not in text
        and "\n\n\n" not in text
        and text[:1] not in (" ", "\n")
        and text[-1:] not in (" ", "\n")
        # isprintable() is a C loop over the text; only text it refuses (an emoji with a
        # zero-width joiner, a bidi mark...) pays for the exact, slower, regex.
        and (text.replace("\n", " ").isprintable() or _BODY_ODD_CHAR.search(text) is None)
        and ("&" not in text or _ENTITY.search(text) is None)
    ):
        return text
    text = decode_entities(text)
    return _paragraphs(text) if multiline else _one_line(text)


def clean_names(names: list[str]) -> list[str]:
    """One-line names, without empty ones or repeats (case-insensitive), in their order."""
    kept: list[str] = []
    seen: set[str] = set()
    for name in names:
        name = clean_text(name)
        key = name.casefold()
        if name and key not in seen:
            seen.add(key)
            kept.append(name)
    return kept if kept != names else names


def clean_url(url: str | None, base: str | None = None) -> str | None:
    """``url`` as an absolute ``http``/``https`` URL, or ``None``.

    Surrounding whitespace and control characters go, as do tabs and line breaks inside (a
    browser ignores those too, which is how ``java\\tscript:`` gets past naive filters);
    any other control character inside, another scheme (``javascript:``, ``data:``,
    ``vbscript:``, ``file:``...), a missing host, or more than ``MAX_URL_LENGTH``
    characters is a refusal.  A relative or protocol-relative URL is resolved against
    ``base`` when one is given (and refused without one).
    """
    if not url:
        return None
    if len(url) <= MAX_URL_LENGTH and _PLAIN_URL.fullmatch(url) is not None:
        return url
    cleaned = url.strip(_URL_EDGES)
    if "&" in cleaned:
        cleaned = decode_entities(cleaned)
    cleaned = _URL_INNER_WHITESPACE.sub("", cleaned)
    if not cleaned or len(cleaned) > MAX_URL_LENGTH or _URL_CONTROL.search(cleaned) is not None:
        return None
    if " " in cleaned:
        cleaned = cleaned.replace(" ", "%20")
    try:
        parts = urlsplit(cleaned)
        if not parts.scheme and base:
            cleaned = urljoin(base, cleaned)
            parts = urlsplit(cleaned)
        scheme = parts.scheme.lower()
        host = parts.hostname
    except ValueError:  # an invalid IPv6 host, a bad port
        return None
    if scheme not in ("http", "https") or not host or len(cleaned) > MAX_URL_LENGTH:
        return None
    if not cleaned.startswith(scheme):  # urlsplit lowercases the scheme it reports
        cleaned = scheme + cleaned[len(scheme) :]
    return cleaned if cleaned != url else url


def clean_language(tag: str | None) -> str | None:
    """A BCP 47-shaped language tag (``en``, ``pt-BR``, ``zh-Hant-TW``), else ``None``."""
    if tag is None:
        return None
    stripped = tag.strip().replace("_", "-")
    if not stripped or len(stripped) > 35 or _LANGUAGE_TAG.fullmatch(stripped) is None:
        return None
    return stripped if stripped != tag else tag


def _clean_enclosures(enclosures: list[Enclosure]) -> list[Enclosure]:
    kept: list[Enclosure] = []
    changed = False
    for enclosure in enclosures:
        url = clean_url(enclosure.url)
        if url is None:
            changed = True
            continue
        kind = clean_text(enclosure.type) if enclosure.type else enclosure.type
        if url != enclosure.url or kind != enclosure.type:
            enclosure = enclosure.model_copy(update={"url": url, "type": kind or None})
            changed = True
        kept.append(enclosure)
    return kept if changed else enclosures


def clean_item(item: NewsItem) -> NewsItem:
    """The item with every text field cleaned; its content hash follows the cleaned text.

    Fields that were clean stay the same objects, and an item with nothing to clean is
    returned as is, so its hash is byte-identical to the one its shape module computed.
    When something changed, the hash is recomputed over the same fields every shape
    passes to :func:`ingestor.models.content_hash` (title, body, authors, url, and the
    item's own summary, which live fragments leave as ``None``).
    """
    title = clean_text(item.title)
    body = clean_text(item.body, multiline=True)
    summary = item.summary
    if summary is not None:
        summary = clean_text(summary, multiline=True) or None
        if summary is not None and summary == body:
            summary = None
    authors = clean_names(item.authors)
    url = clean_url(item.url)
    updates: dict[str, object] = {}
    if (title, body, summary, authors, url) != (item.title, item.body, item.summary, item.authors, item.url):
        updates = {
            "title": title,
            "body": body,
            "summary": summary,
            "authors": authors,
            "url": url,
            "content_hash": content_hash(title=title, body=body, authors=authors, url=url, summary=summary),
        }
    categories = clean_names(item.categories)
    if categories is not item.categories:
        updates["categories"] = categories
    enclosures = _clean_enclosures(item.enclosures)
    if enclosures is not item.enclosures:
        updates["enclosures"] = enclosures
    language = clean_language(item.language)
    if language != item.language:
        updates["language"] = language
    image = clean_url(item.image)  # not hashed: a changed rendition is no edit
    if image != item.image:
        updates["image"] = image
    return item.model_copy(update=updates) if updates else item
