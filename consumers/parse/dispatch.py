"""Pick the parser for a document and make sure only ParseError ever leaves the stage.

Content-Type headers are often wrong (feeds served as text/html, pages as text/xml), so
the bytes decide first: a leading JSON object, a feed root element, or an HTML root; the
header only settles documents that do not start with markup.  A feed config may force the
shape (``format:``); a forced feed that turns out to be HTML is a bot wall or an error
page, which the operator needs to see as such ("not_a_feed") rather than as "no items".
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC
from typing import Final, Literal

from ingestor.models import NewsItem

from .charset import decode, sniff_bom
from .clean import clean_item
from .document import DEFAULT_MAX_BYTES, ParseError, ParseLimits, ParseReport, RawDocument
from .feed import parse_feed
from .html_page import parse_html_page
from .text_capture import parse_text_capture

Shape = Literal["feed", "html", "text", "binary"]

__all__ = ["DEFAULT_MAX_BYTES", "parse_document", "parse_report", "sniff"]

SNIFF_BYTES: Final = 4096

_MAGIC: Final = (
    b"\x1f\x8b",  # gzip
    b"%PDF",
    b"\x89PNG",
    b"GIF8",
    b"\xff\xd8\xff",  # JPEG
    b"PK\x03\x04",  # zip, docx, epub
    b"BZh",
    b"\xfd7zXZ",
    b"(\xb5/\xfd",  # zstd
    b"RIFF",
    b"\x00\x00\x01\x00",  # ico
    b"wOFF",
    b"OggS",
    b"ID3",
)
_PROLOG: Final = re.compile(
    r"""\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE(?:[^\[>"']|"[^"]*"|'[^']*')*(?:\[.*?\]\s*)?>)""",
    re.IGNORECASE | re.DOTALL,
)
_ROOT: Final = re.compile(r"\s*<([A-Za-z_][\w:.\-]*)")
_DOCTYPE_HTML: Final = re.compile(r"<!DOCTYPE\s+html\b", re.IGNORECASE)
_FEED_ROOTS: Final = frozenset({"rss", "feed", "rdf:rdf", "rdf", "channel", "redirect"})
_HTML_ROOTS: Final = frozenset(
    {
        "html",
        "head",
        "body",
        "meta",
        "title",
        "link",
        "script",
        "style",
        "div",
        "p",
        "table",
        "span",
        "a",
        "br",
        "h1",
        "h2",
        "h3",
        "form",
        "iframe",
        "noscript",
        "center",
        "pre",
        "img",
        "header",
        "main",
        "section",
        "article",
        "nav",
        "ul",
    }
)
#: A JSON object or array start, not prose that happens to open with a bracket.
_JSON_START: Final = re.compile(r'\{\s*(?:"|\}|$)|\[\s*(?:\{|\]|$)')
_FEED_MARKERS: Final = re.compile(r"<(?:rss|feed|rdf:RDF)\b")
_HTML_MARKERS: Final = re.compile(r"<(?:html|body|head)\b", re.IGNORECASE)


def _head_text(body: bytes) -> str:
    """The document's first bytes as text good enough for sniffing markup."""
    sniffed = sniff_bom(body)
    if sniffed is not None:
        codec, skip = sniffed
        return body[skip : skip + SNIFF_BYTES * 4].decode(codec, errors="ignore")
    return body[:SNIFF_BYTES].decode("latin-1")


def _by_content_type(content_type: str | None) -> Shape | None:
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if not mime:
        return None
    if "html" in mime and "xhtml" not in mime:
        return "html"
    if "xml" in mime or "rss" in mime or "atom" in mime or "json" in mime:
        return "feed"
    if mime.startswith("text/"):
        return "text"
    return None


def sniff(body: bytes, content_type: str | None = None) -> Shape:
    """What a document is, by its first bytes, then by its Content-Type."""
    raw = body[:16]
    if any(raw.startswith(magic) for magic in _MAGIC):
        return "binary"
    head = _head_text(body)
    if sniff_bom(body) is None and "\x00" in head[:1024]:
        return "binary"
    text = head.lstrip("\ufeff \t\r\n\x0b\x0c")
    if _JSON_START.match(text):
        return "feed"
    if text[:1] == "<":
        position = 0
        while (match := _PROLOG.match(text, position)) is not None and match.end() > position:
            position = match.end()
        root = _ROOT.match(text, position)
        if root is not None:
            name = root.group(1).lower()
            if name in _FEED_ROOTS or name.endswith((":rss", ":feed", ":rdf")):
                return "feed"
            if name in _HTML_ROOTS or _DOCTYPE_HTML.search(text, 0, position):
                return "html"
            return "feed"
        if _DOCTYPE_HTML.search(text, 0, 512):
            return "html"
    if _FEED_MARKERS.search(head):
        return "feed"
    by_type = _by_content_type(content_type)
    if by_type is not None:
        return by_type
    if _HTML_MARKERS.search(head):
        return "html"
    return "text"


def _is_blank(body: bytes) -> bool:
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    return not body or body.isspace()


def _dispatch(doc: RawDocument, max_bytes: int) -> list[NewsItem]:
    body = doc.body
    if _is_blank(body):
        raise ParseError("empty", "the document is empty")
    if len(body) > max_bytes:
        raise ParseError("too_large", f"{len(body)} bytes is over the {max_bytes}-byte cap")
    if doc.fetched_at.tzinfo is None:
        doc = dataclasses.replace(doc, fetched_at=doc.fetched_at.replace(tzinfo=UTC))

    shape = sniff(body, doc.content_type)
    if shape == "binary":
        raise ParseError("unsupported", "a binary document")
    if doc.format == "feed" and shape != "feed":
        kind = "an HTML page (bot wall or error page?)" if shape == "html" else "plain text"
        raise ParseError("not_a_feed", f"a feed was required, got {kind}")
    if doc.format in ("html", "text"):
        shape = doc.format

    if shape == "feed":
        return parse_feed(doc, body)
    text, _charset = decode(body, doc.content_type)
    if shape == "html":
        return parse_html_page(doc, text)
    return parse_text_capture(doc, text)


def _guarded(doc: RawDocument, max_bytes: int) -> list[NewsItem]:
    """The shape parser's items; only ParseError ever leaves."""
    try:
        return _dispatch(doc, max_bytes)
    except ParseError:
        raise
    except RecursionError:
        raise ParseError("malformed", "the document is nested too deeply") from None
    except MemoryError:
        raise ParseError("too_large", "the document needs too much memory to parse") from None
    except Exception as exc:
        raise ParseError("malformed", f"parser crashed: {type(exc).__name__}: {exc}"[:500]) from exc


#: Output allowed on top of ``max_output_ratio`` per input byte, so tiny documents with
#: fixed-size furniture (a title, a canonical URL) are never refused for it.
_OUTPUT_SLACK: Final = 64 * 1024


def _finish(doc: RawDocument, items: list[NewsItem], limits: ParseLimits) -> ParseReport:
    """Clean every field, keep one item per id, cap the count and the output size.

    One document must never yield two items with the same id (the later one would be
    silently lost downstream) nor more than ``max_items``; both are reported, not hidden.
    """
    dropped: dict[str, int] = {}
    kept: list[NewsItem] = []
    seen: set[str] = set()
    output_chars = 0
    budget = limits.max_output_ratio * len(doc.body) + _OUTPUT_SLACK
    for raw_item in items:
        item = clean_item(raw_item)
        if item.id in seen:
            dropped["duplicate_id"] = dropped.get("duplicate_id", 0) + 1
            continue
        if len(kept) >= limits.max_items:
            dropped["over_item_cap"] = dropped.get("over_item_cap", 0) + 1
            continue
        seen.add(item.id)
        output_chars += len(item.title) + len(item.body) + len(item.summary or "")
        if output_chars > budget:
            raise ParseError(
                "unsafe",
                f"items hold over {output_chars} characters from {len(doc.body)} input bytes "
                f"(cap {limits.max_output_ratio:g} per byte): something expanded",
            )
        kept.append(item)
    return ParseReport(kept, dropped)


def parse_report(doc: RawDocument, limits: ParseLimits | None = None) -> ParseReport:
    """Items in a fetched document, cleaned and bounded, with what was dropped on the way.

    Raises ParseError, and nothing else, when there are none."""
    limits = limits or ParseLimits()
    return _finish(doc, _guarded(doc, limits.max_bytes), limits)


def parse_document(doc: RawDocument, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[NewsItem]:
    """Items in a fetched document (see :func:`parse_report`, which also says what was dropped)."""
    return parse_report(doc, ParseLimits(max_bytes=max_bytes)).items
