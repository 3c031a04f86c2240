"""The text-capture shape: a saved page as plain text, article on top, live list below.

A capture is shaped like this: an optional capture date line ("date 2024-11-04 Skip to
content"), the headline, a byline with date and time, a photo caption, an audio note,
paragraphs, an "Authors:" line, then the site's newest-first list of items, each headed by a
clock-only stamp ("1:10 AM (Updated: )") followed by its headline and paragraphs.
``examples/live-page.txt`` in the repository is a capture of this shape (a fictional page).

Nothing here knows one publisher's words: lines are classified by shape (stamp, byline, caption,
audio note, author line, furniture) with the patterns in :mod:`consumers.parse.furniture`.
A headline-less list entry (a single paragraph under its stamp) gets an empty title.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from typing import Final

from consumers.parse.dates import clock_pattern, find_human_date, parse_clock
from consumers.parse.document import ParseError, RawDocument
from consumers.parse.fragments import Fragment, build_items, make_article
from consumers.parse.furniture import (
    is_audio_note,
    is_boilerplate_line,
    is_caption,
    parse_authors_line,
    parse_byline,
)
from consumers.parse.timeresolve import (
    capture_reference,
    earliest_not_before,
    get_zone,
    latest_not_after,
)
from ingestor.models import NewsItem

__all__ = ["looks_like_text_capture", "parse_text_capture", "stamped_fragments"]

_SPACES: Final = re.compile(r"[ \t\u00a0\u2007\u202f\u2009\u200a\u3000]+")
_INVISIBLE: Final = re.compile(r"[\u200b\u2060\ufeff\u00ad]")
# Runs of spaces are possessive (``\s*+``) wherever the next token cannot start with a
# space: one way to read any line, so a line that fails is given up after one pass.  Lines
# keep whitespace that _clean_line does not fold (form feeds, U+2028...), and a pattern with
# several ``\s*`` in a row would otherwise try every split of such a run (n**k steps).
_CAPTURE_LINE: Final = re.compile(
    r"^\s*+(?:date|captured|capture\s++date|saved|дата)\s*+:?\s*+(?P<d>\d{4}-\d{2}-\d{2})\b\s*+(?P<rest>.*)$",
    re.IGNORECASE,
)
_UPDATED_WORD: Final = (
    r"(?:last\s++updated|updated|upd\.?|edited|оновлено|обновлено|змінено|aktualisiert|actualizado|"
    r"mis\s++à\s++jour)"
)
_UPDATED_PART: Final = re.compile(
    rf"^[\s·|,–—-]*+[(\[]?\s*+{_UPDATED_WORD}\s*+(?:at|о|в|um|a\s++las|à)?\s*+:?\s*+(?:{clock_pattern('u')})?"
    r"\s*+[)\]]?\s*+$",
    re.IGNORECASE,
)
#: An "(Updated: 10:15 AM)" part is short; longer text is not one, and is never matched.
_MAX_UPDATED_PART: Final = 120
_STAMP_CLOCK: Final = re.compile(rf"^\s*+{clock_pattern()}(?P<rest>.*)$")
_SENTENCE_END: Final = frozenset(".!?:;\"'»”’)…")
_MAX_TITLE: Final = 220


@dataclass(slots=True)
class _Stamp:
    clock: time
    day: date | None
    updated: time | None


@dataclass(slots=True)
class _Entry:
    stamp: _Stamp
    lines: list[str] = field(default_factory=list)


def _clean_line(line: str) -> str:
    return _SPACES.sub(" ", _INVISIBLE.sub("", line)).strip()


def _updated_clock(rest: str) -> tuple[bool, time | None]:
    """Whether ``rest`` is an (optionally empty) "Updated" part, and its clock if any."""
    if not rest.strip():
        return True, None
    if len(rest) > _MAX_UPDATED_PART:
        return False, None
    m = _UPDATED_PART.match(rest)
    if m is None:
        return False, None
    if m.group("uh") is None:
        return True, None
    return True, parse_clock(m, "u")


def _parse_stamp(line: str) -> _Stamp | None:
    """A list entry's stamp line ("1:10 AM (Updated: )", "13:10", "4 листопада 2024, 13:10")."""
    if not line or len(line) > 90 or not any(ch.isdigit() for ch in line[:40]):
        return None
    m = _STAMP_CLOCK.match(line)
    if m is not None:
        ok, updated = _updated_clock(m.group("rest"))
        clock = parse_clock(m)
        if ok and clock is not None:
            return _Stamp(clock, None, updated)
    when = find_human_date(line)
    if when is not None and when.start == 0 and when.clock is not None:
        ok, updated = _updated_clock(line[when.end :])
        if ok:
            return _Stamp(when.clock, when.day, updated)
    return None


def _paragraphs(lines: list[str]) -> list[str]:
    """Lines to paragraphs: a blank line ends one, and so does a line that ends a sentence
    (captures usually put one paragraph per line; hard-wrapped text gets re-joined)."""
    out: list[str] = []
    current: list[str] = []
    for line in lines:
        if not line:
            if current:
                out.append(" ".join(current))
                current = []
            continue
        current.append(line)
        # The last non-space character, not a ``[.!?]\s*$`` search (which retries at every
        # punctuation mark of the line).
        if line.rstrip()[-1:] in _SENTENCE_END or len(line) < 60:
            out.append(" ".join(current))
            current = []
    if current:
        out.append(" ".join(current))
    return out


def _is_furniture(line: str) -> bool:
    return is_boilerplate_line(line) or is_audio_note(line) or is_caption(line)


@dataclass(slots=True)
class _Article:
    title: str = ""
    authors: list[str] = field(default_factory=list)
    published_at: datetime | None = None
    paragraphs: list[str] = field(default_factory=list)


def _parse_article(lines: list[str], zone: tzinfo) -> _Article:
    art = _Article()
    body_lines: list[str] = []
    head_zone = True  # between headline and first paragraph: bylines and captions live here
    for line in lines:
        if not line:
            body_lines.append("")
            continue
        if not art.title:
            if not _is_furniture(line) and parse_byline(line, zone) is None:
                art.title = line
            continue
        if head_zone:
            byline = parse_byline(line, zone)
            if byline is not None:
                art.authors = art.authors or byline.authors
                art.published_at = art.published_at or byline.published_at
                continue
        names = parse_authors_line(line)
        if names is not None:
            art.authors = art.authors or names
            if head_zone:
                continue
            break  # the "Authors:" line closes the article; what follows is site furniture
        if _is_furniture(line):
            continue
        head_zone = False
        body_lines.append(line)
    art.paragraphs = _paragraphs(body_lines)
    return art


def _entry_fragment(entry: _Entry, zone: tzinfo, bound: datetime) -> tuple[Fragment, datetime]:
    stamp = entry.stamp
    if stamp.day is not None:
        published = datetime.combine(stamp.day, stamp.clock).replace(tzinfo=zone).astimezone(bound.tzinfo)
    else:
        published = latest_not_after(stamp.clock, zone, bound)
    updated_clock = stamp.updated
    authors: list[str] = []
    content: list[str] = []
    for line in entry.lines:
        if line and not content:
            ok, clock = _updated_clock(line)
            if ok and clock is not None:
                updated_clock = updated_clock or clock
                continue
        if line:
            names = parse_authors_line(line)
            if names is not None:
                authors = authors or names
                continue
            if _is_furniture(line):
                continue
        content.append(line)
    paragraphs = _paragraphs(content)
    title = ""
    if len(paragraphs) >= 2 and len(paragraphs[0]) <= _MAX_TITLE:
        title, paragraphs = paragraphs[0], paragraphs[1:]
    updated = earliest_not_before(updated_clock, zone, published) if updated_clock is not None else None
    frag = Fragment(
        title=title,
        body="\n\n".join(paragraphs),
        published_at=published,
        updated_at=updated,
        authors=authors,
    )
    return frag, published


def looks_like_text_capture(text: str) -> bool:
    """Cheap sniff for the dispatcher: a capture line on top, or at least one stamp line."""
    lines = text.lstrip()[:20000].splitlines()
    if lines and _CAPTURE_LINE.match(_clean_line(lines[0])):
        return True
    return any(_parse_stamp(_clean_line(line)) is not None for line in lines[:400])


def parse_text_capture(doc: RawDocument, text: str) -> list[NewsItem]:
    """The article (when the capture has one) followed by one ``live_update`` per list entry,
    newest first.  Raises ``ParseError("no_items")`` when nothing in the text is a news item."""
    zone = get_zone(doc.timezone)
    raw_lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = [_clean_line(line) for line in raw_lines]

    reference = doc.fetched_at
    first = next((i for i, line in enumerate(lines) if line), None)
    if first is not None:
        m = _CAPTURE_LINE.match(lines[first])
        if m is not None:
            with contextlib.suppress(ValueError):
                reference = capture_reference(date.fromisoformat(m.group("d")))
            rest = m.group("rest").strip()
            lines[first] = "" if not rest or is_boilerplate_line(rest) else rest

    head, entries = _split_entries(lines)

    art = _parse_article(head, zone)
    canonical = doc.base_url
    article: NewsItem | None = None
    if art.title and art.paragraphs:
        article = make_article(
            doc,
            canonical,
            title=art.title,
            body="\n\n".join(art.paragraphs),
            authors=art.authors,
            published_at=art.published_at,
            updated_at=None,
        )

    items = build_items(doc, canonical, _entries_to_fragments(entries, zone, reference), article=article)
    if not items:
        raise ParseError("no_items", "no article text and no time-stamped entries in the text")
    return items


def _split_entries(lines: list[str]) -> tuple[list[str], list[_Entry]]:
    head: list[str] = []
    entries: list[_Entry] = []
    for line in lines:
        stamp = _parse_stamp(line)
        if stamp is not None:
            entries.append(_Entry(stamp))
        elif entries:
            entries[-1].lines.append(line)
        else:
            head.append(line)
    return head, entries


def _entries_to_fragments(entries: list[_Entry], zone: tzinfo, reference: datetime) -> list[Fragment]:
    fragments: list[Fragment] = []
    bound = reference
    for entry in entries:
        frag, bound = _entry_fragment(entry, zone, bound)
        if frag.title or frag.body:
            fragments.append(frag)
    return fragments


def stamped_fragments(text: str, zone: tzinfo, reference: datetime) -> tuple[list[str], list[Fragment]]:
    """Plain text split at stamp lines: the lines before the first stamp, and one fragment
    per stamped entry (newest first, times resolved against ``reference``)."""
    lines = [_clean_line(line) for line in text.split("\n")]
    head, entries = _split_entries(lines)
    return head, _entries_to_fragments(entries, zone, reference)
