"""Feeds (RSS 0.9x/1.0/2.0, Atom 0.3/1.0, RDF, JSON Feed 1.0/1.1) to items.

feedparser reads the XML formats; JSON Feed, which feedparser 6 does not know, is read
here with :mod:`json`.  We decode the bytes ourselves (see :mod:`.charset`) so legacy
encodings come out right, and we turn off feedparser's HTML sanitizer and URI rewriting:
we reduce every HTML field to plain text anyway, and those two passes are most of
feedparser's time.
"""

from __future__ import annotations

import io
import json
import re
import warnings
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any, Final
from urllib.parse import urljoin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import feedparser
from dateutil import parser as dateparser

from ingestor.models import Enclosure, NewsItem, content_hash, stable_id

from .charset import as_utf8_xml, decode
from .clean import clean_url
from .document import ParseError, RawDocument
from .htmltext import html_to_text, normalize_text
from .images import feed_entry_image, json_feed_image
from .live_split import split_live_entry
from .safety import check_html_nesting, check_json_depth, check_xml_safety

_HTML_TYPES: Final = ("text/html", "application/xhtml+xml", "html", "xhtml")
_SPACES: Final = re.compile(r"\s+")
_HTML_ROOT: Final = re.compile(r"<(?:!doctype\s+html|html|head|body)\b", re.IGNORECASE)
#: Markup in a field declared plain text: a leak we strip rather than pass on.
_TAG_LIKE: Final = re.compile(r"<(?:[A-Za-z][\w:-]*[\s/>]|/[A-Za-z]|!--)")
_ISO_START: Final = re.compile(r"\d{4}-?\d\d")
_RFC822_UTC_UNKNOWN: Final = re.compile(r"[-+]0000\s*$")
#: A feed date longer than this is not a date, and is not read: dateutil's tokenizer is
#: quadratic on long junk (it pops its token list from the front; a ``<pubDate>`` of 256 KB
#: of "a." took 5.7 s).  The date falls back to feedparser's, as for any string we cannot read.
_MAX_DATE_TEXT: Final = 200

#: RFC 822 and common North-American zone names dateutil does not know by itself.
_TZINFOS: Final[dict[str, int]] = {
    "UT": 0,
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "EST": -5 * 3600,
    "EDT": -4 * 3600,
    "CST": -6 * 3600,
    "CDT": -5 * 3600,
    "MST": -7 * 3600,
    "MDT": -6 * 3600,
    "PST": -8 * 3600,
    "PDT": -7 * 3600,
    "AKST": -9 * 3600,
    "AKDT": -8 * 3600,
    "HST": -10 * 3600,
}
_DEFAULT_A: Final = datetime(2000, 1, 1)
_DEFAULT_B: Final = datetime(2001, 2, 2)


# --- dates ---------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def feed_zone(name: str | None) -> tzinfo:
    """The feed's time zone; an unknown name falls back to UTC rather than failing the feed."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _dateutil(text: str) -> datetime | None:
    """dateutil for the formats the stdlib misses, refusing strings that lack a date.

    dateutil fills missing fields from a default; parsing twice with different defaults
    shows whether the string itself named a full date.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first = dateparser.parse(text, default=_DEFAULT_A, tzinfos=_TZINFOS)
            second = dateparser.parse(text, default=_DEFAULT_B, tzinfos=_TZINFOS)
    except (ValueError, OverflowError, TypeError, LookupError):
        return None
    if (first.year, first.month, first.day) != (second.year, second.month, second.day):
        return None
    return first


def parse_date(text: str | None, zone: tzinfo, fallback: Any = None) -> datetime | None:
    """A feed date string as an aware datetime, keeping the offset the string states.

    A string without an offset is in the feed's zone.  When the string cannot be read we
    use feedparser's ``*_parsed`` tuple, which is UTC.
    """
    value: datetime | None = None
    if text and (text := text.strip()) and len(text) <= _MAX_DATE_TEXT:
        if _ISO_START.match(text):
            try:
                value = datetime.fromisoformat(text)
            except ValueError:
                value = None
        if value is None:
            try:
                value = parsedate_to_datetime(text)
                if value.tzinfo is None and _RFC822_UTC_UNKNOWN.search(text):
                    value = value.replace(tzinfo=UTC)
            except (ValueError, TypeError, IndexError, OverflowError):
                value = None
        if value is None:
            value = _dateutil(text)
    if value is None and fallback:
        try:
            year, month, day, hour, minute, second = tuple(fallback)[:6]
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except (TypeError, ValueError, OverflowError):
            return None
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    try:
        value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return value


# --- text fields ---------------------------------------------------------------------------


def _is_html(detail: Mapping[str, Any] | None) -> bool:
    return bool(detail) and str(detail.get("type", "")).lower() in _HTML_TYPES  # type: ignore[union-attr]


def _text(value: str | None, *, html: bool) -> str:
    if not value:
        return ""
    if not html:
        return normalize_text(value)
    # Every entry's HTML passes here before lexbor sees it (live splitting reuses it after);
    # nesting deep enough to stall lexbor is hostile, so it refuses the whole feed.
    check_html_nesting(value, "HTML in a feed entry")
    return html_to_text(value)


def _one_line(value: str) -> str:
    return _SPACES.sub(" ", value).strip()


def _unique(values: Iterable[str]) -> list[str]:
    kept: list[str] = []
    seen: set[str] = set()
    for value in values:
        value = _one_line(value)
        if value and value.casefold() not in seen:
            seen.add(value.casefold())
            kept.append(value)
    return kept


def _language(*candidates: Any) -> str | None:
    for candidate in candidates:
        if isinstance(candidate, str) and (tag := candidate.strip().replace("_", "-")):
            parts = tag.split("-")
            parts[0] = parts[0].lower()
            return "-".join([parts[0], *(p.upper() if len(p) == 2 else p for p in parts[1:])])
    return None


_EMAIL_THEN_NAME: Final = re.compile(r"^\s*[^\s@()<>]+@[^\s()<>]+\s*\((?P<name>[^()]+)\)\s*$")
_NAME_THEN_EMAIL: Final = re.compile(r"^\s*(?P<name>[^<>()]+?)\s*[<(][^\s@<>()]+@[^\s<>()]+[>)]\s*$")
_MAX_AUTHOR_TEXT: Final = 300


def author_name(raw: str) -> str:
    """The person in an RSS author string: "mail@host (Name)", "Name <mail@host>" or a name.

    Whitespace is collapsed and the text capped before matching: the name and the spaces
    around it can be split in several ways, which a long run of spaces makes quadratic."""
    text = " ".join(raw.split())[:_MAX_AUTHOR_TEXT]
    match = _EMAIL_THEN_NAME.match(text) or _NAME_THEN_EMAIL.match(text)
    return match.group("name") if match else text


def _authors(entry: Mapping[str, Any]) -> list[str]:
    authors = [a for a in entry.get("authors") or () if isinstance(a, Mapping)]
    raw = entry.get("author")
    if len(authors) <= 1 and isinstance(raw, str) and raw.strip():
        # feedparser's own e-mail split truncates long TLDs; read the raw string ourselves.
        return _unique([author_name(raw)])
    return _unique(str(a.get("name") or a.get("email") or "") for a in authors)


def _categories(tags: Any) -> list[str]:
    terms: list[str] = []
    for tag in tags or ():
        if isinstance(tag, Mapping):
            terms.append(str(tag.get("term") or tag.get("label") or ""))
        elif isinstance(tag, str):
            terms.append(tag)
    return _unique(terms)


def enclosures_of(links: Iterable[Mapping[str, Any]], base: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for link in links:
        href = link.get("href") or link.get("url")
        if not href:
            continue
        size = link.get("length") or link.get("size_in_bytes")
        try:
            length = int(size) if size not in (None, "") else None
        except (TypeError, ValueError):
            length = None
        if length is not None and length < 0:
            length = None
        url = clean_url(str(href), base)
        if url is None:  # a javascript:/data: "enclosure" is no media file a subscriber can fetch
            continue
        found.append({"url": url, "type": link.get("type") or None, "length": length})
    return found


def _absolute(base: str, href: Any) -> str | None:
    if not isinstance(href, str) or not href.strip():
        return None
    try:
        return urljoin(base, href.strip())
    except ValueError:
        return href.strip()


# --- item building -------------------------------------------------------------------------


class _Ids:
    """Deterministic ids for a feed's entries, telling repeated guids apart by content."""

    def __init__(self, feed_id: str, keys: list[tuple[str, ...]]) -> None:
        self.feed_id = feed_id
        self.counts: dict[tuple[str, ...], int] = {}
        for key in keys:
            self.counts[key[:1]] = self.counts.get(key[:1], 0) + 1
        self.used: set[str] = set()

    def __call__(self, key: tuple[str, ...]) -> str:
        parts = key[:1] if self.counts.get(key[:1], 0) <= 1 else key
        item_id = stable_id(self.feed_id, *parts)
        occurrence = 1
        while item_id in self.used:
            occurrence += 1
            item_id = stable_id(self.feed_id, *parts, f"#{occurrence}")
        self.used.add(item_id)
        return item_id


def _identity(guid: str | None, link: str | None, title: str, date: str) -> tuple[str, ...] | None:
    """An entry's identity key: guid, else link, else title + date (docs/architecture.md).

    The trailing fields only separate entries that share the first one.
    """
    if guid:
        return (f"guid:{guid}", link or "", title, date)
    if link:
        return (f"link:{link}", title, date)
    if title or date:
        return (f"title:{title}|{date}",)
    return None


def _build(
    doc: RawDocument,
    *,
    item_id: str,
    url: str | None,
    title: str,
    body: str,
    summary: str,
    authors: list[str],
    categories: list[str],
    language: str | None,
    published: datetime | None,
    updated: datetime | None,
    enclosures: list[dict[str, Any]],
    image: str | None = None,
) -> NewsItem:
    summary_value = summary if summary and summary != body else None
    return NewsItem(
        id=item_id,
        kind="article",
        source=doc.feed_id,
        url=url,
        title=title,
        body=body,
        summary=summary_value,
        authors=authors,
        categories=categories,
        language=language,
        published_at=published,
        updated_at=updated if updated != published else None,
        fetched_at=doc.fetched_at,
        content_hash=content_hash(title=title, body=body, authors=authors, url=url, summary=summary_value),
        enclosures=[Enclosure(**enclosure) for enclosure in enclosures],
        image=image,
        body_source="feed",
    )


def _split_live(doc: RawDocument, item: NewsItem, html: str | None) -> list[NewsItem]:
    """An entry whose content is a live blog becomes the entry plus one item per update.

    The entry itself is always kept: the updates name it as their parent, so a subscriber
    must be able to find it.
    """
    if not html:
        return [item]
    updates = split_live_entry(doc, item, html)
    if not updates:
        return [item]
    if any(update.id == item.id for update in updates):
        return updates
    return [item, *updates]


# --- RSS / Atom / RDF through feedparser ---------------------------------------------------


def _xml_entry(doc: RawDocument, entry: Any, feed_lang: str | None, zone: tzinfo) -> dict[str, Any]:
    base = doc.base_url
    contents = entry.get("content") or []
    chosen = next((c for c in contents if _is_html(c)), contents[0] if contents else None)
    content_html = chosen.get("value") if chosen and _is_html(chosen) else None
    body = _text(chosen.get("value"), html=_is_html(chosen)) if chosen else ""
    raw_summary = entry.get("summary")
    detail = entry.get("summary_detail")
    summary_is_html = _is_html(detail) or (detail is None and "<" in (raw_summary or ""))
    summary = _text(raw_summary, html=summary_is_html)
    if not body:
        body, summary = summary, ""
        if summary_is_html:
            content_html = raw_summary
    raw_title = entry.get("title") or ""
    title_is_html = _is_html(entry.get("title_detail")) or _TAG_LIKE.search(raw_title) is not None
    title = _one_line(_text(raw_title, html=title_is_html))
    # dict.get: FeedParserDict.get maps a missing "updated" to "published", with a warning.
    raw = dict.get
    published_raw = raw(entry, "published") or raw(entry, "created")
    updated_raw = raw(entry, "updated")
    published = parse_date(
        published_raw, zone, raw(entry, "published_parsed") or raw(entry, "created_parsed")
    )
    updated = parse_date(updated_raw, zone, raw(entry, "updated_parsed"))
    if published is None:
        published = updated
    guid = entry.get("id")
    link = _absolute(base, entry.get("link"))
    if link is None and entry.get("guidislink") and guid:
        link = _absolute(base, guid)
    lang = (chosen or {}).get("language") or (detail or {}).get("language")
    links = [lnk for lnk in entry.get("links") or () if lnk.get("rel") == "enclosure"]
    return {
        "key": _identity(
            guid if isinstance(guid, str) else None, link, title, published_raw or updated_raw or ""
        ),
        "fields": {
            # The raw link still keys the entry (ids stay as they were); only http(s) is
            # published: a ``javascript:`` link leaves the item without a URL rather than
            # lending it the feed's, which is not where the entry lives.
            "url": clean_url(link),
            "title": title,
            "body": body,
            "summary": summary,
            "authors": _authors(entry),
            "categories": _categories(entry.get("tags")),
            "language": _language(lang, (entry.get("title_detail") or {}).get("language"), feed_lang),
            "published": published,
            "updated": updated,
            "enclosures": enclosures_of(links, base),
            "image": feed_entry_image(entry, base),
        },
        "html": content_html,
        "fallback": body,
    }


def _looks_like_html(text: str) -> bool:
    return _HTML_ROOT.search(text, 0, 4096) is not None


def _parse_xml(doc: RawDocument, body: bytes) -> list[NewsItem]:
    text, _charset = decode(body, doc.content_type)
    data = as_utf8_xml(text)
    # Screen the very bytes feedparser reads, so no encoding trick shows it another document.
    check_xml_safety(data)
    parsed = feedparser.parse(
        io.BytesIO(data),
        # No content-location: feedparser would urljoin every URL it meets; we resolve only links.
        response_headers={"content-type": "application/xml; charset=utf-8"},
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    entries = parsed.get("entries") or []
    feed = parsed.get("feed") or {}
    if not entries:
        if _looks_like_html(text) and not parsed.get("version"):
            raise ParseError("not_a_feed", "an HTML page, not a feed")
        if parsed.get("bozo") and not feed:
            exc = parsed.get("bozo_exception")
            raise ParseError("malformed", f"not a readable feed: {type(exc).__name__}: {exc}"[:500])
        if not parsed.get("version") and not feed:
            raise ParseError("not_a_feed", "XML that is not RSS, Atom or RDF")
        raise ParseError("no_items", "the feed has no entries")
    zone = feed_zone(doc.timezone)
    feed_lang = _language(
        feed.get("language"), (feed.get("title_detail") or {}).get("language"), doc.language
    )
    return _items(doc, [_xml_entry(doc, entry, feed_lang, zone) for entry in entries])


def _items(doc: RawDocument, rows: list[dict[str, Any]]) -> list[NewsItem]:
    rows = [row for row in rows if row["key"] is not None or row["fallback"]]
    if not rows:
        raise ParseError("no_items", "no entry has an id, link, title, date or text")
    for row in rows:
        if row["key"] is None:
            row["key"] = (f"text:{row['fallback']}",)
    ids = _Ids(doc.feed_id, [row["key"] for row in rows])
    items: list[NewsItem] = []
    for row in rows:
        item = _build(doc, item_id=ids(row["key"]), **row["fields"])
        items.extend(_split_live(doc, item, row["html"]))
    return items


# --- JSON Feed -----------------------------------------------------------------------------


def _json_authors(*holders: Mapping[str, Any]) -> list[str]:
    for holder in holders:
        authors = holder.get("authors")
        if not isinstance(authors, list):
            single = holder.get("author")
            authors = [single] if single else []
        names = [str(a.get("name") or a.get("url") or "") for a in authors if isinstance(a, Mapping)]
        if names := _unique(names):
            return names
    return []


def _json_entry(
    doc: RawDocument, entry: Mapping[str, Any], feed: Mapping[str, Any], zone: tzinfo
) -> dict[str, Any]:
    base = _absolute(doc.base_url, feed.get("home_page_url")) or doc.base_url
    content_html = entry.get("content_html") if isinstance(entry.get("content_html"), str) else None
    body = _text(content_html, html=True) or _text(_str(entry.get("content_text")), html=False)
    summary = _text(_str(entry.get("summary")), html=False)
    if not body:
        body, summary = summary, ""
    title = _one_line(_str(entry.get("title")) or "")
    published_raw = _str(entry.get("date_published"))
    updated_raw = _str(entry.get("date_modified"))
    published = parse_date(published_raw, zone)
    updated = parse_date(updated_raw, zone)
    guid = entry.get("id")
    guid_text = str(guid) if isinstance(guid, str | int | float) and str(guid).strip() else None
    link = _absolute(base, entry.get("url")) or _absolute(base, entry.get("external_url"))
    attachments = [a for a in entry.get("attachments") or () if isinstance(a, Mapping)]
    return {
        "key": _identity(guid_text, link, title, published_raw or updated_raw or ""),
        "fields": {
            "url": clean_url(link) or clean_url(_absolute(base, entry.get("external_url"))),
            "title": title,
            "body": body,
            "summary": summary,
            "authors": _json_authors(entry, feed),
            "categories": _categories([t for t in entry.get("tags") or () if isinstance(t, str)]),
            "language": _language(entry.get("language"), feed.get("language"), doc.language),
            "published": published or updated,
            "updated": updated,
            "enclosures": enclosures_of(attachments, base),
            "image": json_feed_image(entry, base),
        },
        "html": content_html,
        "fallback": body,
    }


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def is_json_feed(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    version = data.get("version")
    if isinstance(version, str) and "jsonfeed.org" in version:
        return True
    return isinstance(data.get("items"), list) and ("title" in data or "feed_url" in data)


def _parse_json(doc: RawDocument, body: bytes) -> list[NewsItem]:
    text, _charset = decode(body, doc.content_type)
    check_json_depth(text, "the JSON Feed")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ParseError("malformed", f"invalid JSON: {exc}"[:500]) from None
    if not is_json_feed(data):
        raise ParseError("not_a_feed", "JSON that is not a JSON Feed")
    entries = [e for e in data.get("items") or () if isinstance(e, Mapping)]
    if not entries:
        raise ParseError("no_items", "the feed has no items")
    zone = feed_zone(doc.timezone)
    return _items(doc, [_json_entry(doc, entry, data, zone) for entry in entries])


# --- entry point ---------------------------------------------------------------------------


_JSON_START: Final = re.compile(rb'\{\s*(?:"|\}|$)|\[\s*(?:\{|\]|$)')


def looks_like_json(body: bytes) -> bool:
    """A JSON object or array start (after a BOM and whitespace), not a bracketed headline."""
    head = body[:256].lstrip(b" \t\r\n")
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:].lstrip(b" \t\r\n")
    return _JSON_START.match(head) is not None


def parse_feed(doc: RawDocument, body: bytes) -> list[NewsItem]:
    """Items of a feed document; ParseError when it yields none."""
    if looks_like_json(body):
        return _parse_json(doc, body)
    return _parse_xml(doc, body)
