"""The page's own article item: an ordinary article page, or the text of a live page
beyond its list of posts.

Ordinary pages go through trafilatura (a maintained main-content extractor) with
precision favoured over recall: a missing paragraph is better than a "Most read" list in
the body.  Live pages do not: trafilatura costs tens of milliseconds on a large page and
would happily return the posts as one article, so their intro is read from the page's main
region after the post list has been cut out.  Both end in the same paragraph filter.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any, Final

import trafilatura
from selectolax.lexbor import LexborHTMLParser, LexborNode

from consumers.parse.dates import find_human_date, parse_machine_datetime
from consumers.parse.furniture import has_byline_prefix, parse_byline, split_names
from consumers.parse.htmltext import html_to_text
from consumers.parse.live_blocks import clean_paragraphs, is_updated_marker, read_time
from consumers.parse.page_meta import PageMeta, jsonld_types

__all__ = ["ArticleText", "declared_published", "extract_article", "intro_paragraphs", "main_region"]

_REGION_SEL: Final = ('[itemprop~="articleBody"]', "article", "main", '[role="main"]')
_FURNITURE_SEL: Final = (
    "h1, time, header nav, [class*=byline], [rel~=author], [itemprop~=author], [class*=share], "
    "[class*=social], [class*=key-events], [class*=related], [class*=most-read], [class*=mostread], "
    "[class*=newsletter], [class*=subscribe], [class*=promo], [class*=caption], [class*=credit], "
    "[class*=breadcrumb], [class*=tags], [class*=comments]"
)
_MIN_INTRO: Final = 40
_MAX_TRAFILATURA_TAGS: Final = 60_000

# trafilatura's per-page warnings ("discarding data", "not enough text") are its own
# heuristics talking, not faults of ours: only its errors reach our logs.
logging.getLogger("trafilatura").setLevel(logging.ERROR)


class ArticleText:
    """Body and the dates/authors found in the markup next to it."""

    __slots__ = ("authors", "body", "published_at", "updated_at")

    def __init__(self) -> None:
        self.body = ""
        self.authors: list[str] = []
        self.published_at: datetime | None = None
        self.updated_at: datetime | None = None


def main_region(tree: LexborHTMLParser) -> LexborNode | None:
    for selector in _REGION_SEL:
        node = tree.css_first(selector)
        if node is not None and len(node.text(deep=True).strip()) > _MIN_INTRO:
            return node
    return tree.body


#: Where pages declare their publication time besides JSON-LD and ``article:published_time``:
#: microdata (``itemprop`` may list several properties) and the common ``<meta>`` names.
_PUBLISHED_SEL: Final = (
    '[itemprop~="datePublished"]',
    'meta[property="og:article:published_time"]',
    'meta[property="og:published_time"]',
    'meta[name="publishdate"]',
    'meta[name="publish-date"]',
    'meta[name="date"]',
    'meta[name="dc.date.issued"]',
    'meta[name="DC.date.issued"]',
    'meta[name="parsely-pub-date"]',
    'meta[name="sailthru.date"]',
    'meta[property="article:published"]',
)
#: JSON-LD types (by suffix) whose ``datePublished`` is the page's own: documents, not the
#: things listed on them (a ``Comment``, a ``ListItem``, a ``VideoObject``).
_DOCUMENT_TYPES: Final = ("Article", "Posting", "WebPage", "Review", "Report")
_MAX_DATE_TEXT: Final = 200
#: Bylines inside these are a commenter's or a form's ("Name (required)"), not the article's.
_NOT_BYLINE_ANCESTOR: Final = re.compile(
    r"(?<![a-z])(?:comments?|respond|reply|replies|related|footer)(?![a-z])", re.IGNORECASE
)
_MAX_ANCESTORS: Final = 12


def declared_published(
    tree: LexborHTMLParser, zone: tzinfo, jsonld: Sequence[dict[str, Any]] = ()
) -> datetime | None:
    """The publication time declared in microdata, a ``<meta>`` name, or a JSON-LD object
    other than the one read as the page's (a ``ClaimReview``, a ``MedicalWebPage``), for
    pages whose main JSON-LD/OpenGraph date is missing or a placeholder."""
    for obj in jsonld:
        if not any(kind.endswith(_DOCUMENT_TYPES) for kind in jsonld_types(obj)):
            continue
        value = obj.get("datePublished")
        when = parse_machine_datetime(value, zone) if isinstance(value, str) else None
        if when is not None:
            return when
    head = tree.head or tree.root
    for selector in _PUBLISHED_SEL:
        # microdata may sit anywhere; <meta> names only in the head (a cheap search)
        scope = head if selector.startswith("meta") else tree.root
        if scope is None:
            continue
        for node in scope.css(selector)[:3]:
            if _in_nested_item(node):
                continue
            value = node.attributes.get("content") or node.attributes.get("datetime")
            when = parse_machine_datetime(value, zone) if value else None
            if when is None and not value and node.tag != "meta":
                # microdata printed as text: <span itemprop="datePublished">Feb 16, 2018</span>
                printed = find_human_date(node.text(deep=True)[:_MAX_DATE_TEXT])
                when = printed.to_datetime(zone) if printed is not None else None
            if when is not None:
                return when
    return None


def _in_nested_item(node: LexborNode) -> bool:
    """Whether ``node`` belongs to an item inside the page's item (a comment, a review, a
    live post: an ``itemscope`` that is itself an ``itemprop``), whose dates are not the page's."""
    parent = node.parent
    for _ in range(_MAX_ANCESTORS * 2):
        if parent is None:
            return False
        if "itemscope" in parent.attributes:
            return "itemprop" in parent.attributes
        parent = parent.parent
    return False


def _in_comments(node: LexborNode, marked: dict[int, bool]) -> bool:
    """Whether one of ``node``'s nearest ancestors holds comments or a form.

    ``marked`` keeps each ancestor's answer for the caller's walk over candidates, which
    may share their ancestors: reading one ancestor's class and id again for each of them
    cost the size of that class per candidate (1,600 bylines under an ancestor with a
    400 KB class took 12 s, and a 1 MB page of that shape 40 s)."""
    parent = node.parent
    for _ in range(_MAX_ANCESTORS):
        if parent is None:
            return False
        key = parent.mem_id
        found = marked.get(key)
        if found is None:
            if parent.tag in ("form", "footer", "aside"):
                found = True
            else:
                marks = f"{parent.attributes.get('class') or ''} {parent.attributes.get('id') or ''}"
                found = _NOT_BYLINE_ANCESTOR.search(marks) is not None
            marked[key] = found
        if found:
            return True
        parent = parent.parent
    return False


def _markup_facts(region: LexborNode, zone: tzinfo, out: ArticleText) -> None:
    """Dates and bylines from visible markup, for pages without structured data."""
    contexts: dict[int, str] = {}  # what was read of each stamp's parent (they share them)
    for tnode in region.css("time"):
        when, _clock = read_time(tnode, zone)
        if when is None:
            continue
        if is_updated_marker(tnode, contexts):
            out.updated_at = out.updated_at or when
        else:
            out.published_at = out.published_at or when
    _markup_byline(region, zone, out)


def _markup_byline(region: LexborNode, zone: tzinfo, out: ArticleText) -> None:
    """The first byline in ``region`` that is not in comments or a form."""
    marked: dict[int, bool] = {}
    for anode in region.css('[rel~=author], [itemprop~=author], [class*=byline], [class*="author"]'):
        # an author item's own name when it has one (a byline block also holds dates, links)
        named = anode.css_first('[itemprop~="name"]')
        text = " ".join((named if named is not None else anode).text(deep=True).split())
        if (
            not text
            or len(text) > 200
            or anode.tag in ("input", "label", "textarea")
            or _in_comments(anode, marked)
        ):
            continue
        # "Автори: А, Б" already has its prefix; a bare "А, Б" is read as if "by" preceded it.
        byline = parse_byline(text if has_byline_prefix(text) else f"by {text}", zone)
        if byline is not None and byline.authors:
            out.authors = byline.authors
            out.published_at = out.published_at or byline.published_at
            break
        names = split_names(text)
        if names:
            out.authors = names
            break


def intro_paragraphs(region: LexborNode | None, title: str, exclude: set[str]) -> list[str]:
    """Clean paragraphs of ``region`` (already cut of its post list), minus ``exclude``."""
    if region is None:
        return []
    for node in region.css(_FURNITURE_SEL):
        node.decompose()
    paragraphs = clean_paragraphs(html_to_text(region.html or ""), title)
    return [p for p in paragraphs if p not in exclude]


def extract_article(html: str, tree: LexborHTMLParser, meta: PageMeta, zone: tzinfo) -> ArticleText:
    """An ordinary page's body, plus the authors and dates visible in its markup."""
    out = ArticleText()
    region = main_region(tree)
    facts_region = tree.css_first("article") or tree.css_first("main") or tree.body
    if facts_region is not None:
        _markup_facts(facts_region, zone, out)
    if not out.authors and tree.body is not None and facts_region is not tree.body:
        # the byline often sits in the page header above <article>; dates there stay unread
        # (a header's clock is rarely the article's)
        outer = ArticleText()
        _markup_byline(tree.body, zone, outer)
        out.authors = outer.authors
    body_lines: list[str] = []
    # trafilatura walks every element in Python (a million tiny elements: ~35 s); a page with
    # that many tags is not an ordinary article, and the main-region reader copes with it.
    # No catch-all around it: an extractor crash on one page propagates to parse_document,
    # which refuses that document as ParseError("malformed") naming the exception, so the
    # fault is counted and dead-lettered instead of becoming a quieter, worse body.
    if html.count("<") <= _MAX_TRAFILATURA_TAGS:
        text = trafilatura.extract(
            html,
            url=meta.canonical,
            include_comments=False,
            # an article's tables (results, figures, schedules) are its text: with them the
            # dev set's body F1 goes 0.961 -> 0.966, precision unchanged (bench/articles.py)
            include_tables=True,
            include_images=False,
            favor_precision=True,
            deduplicate=False,
        )
        if text:
            body_lines = clean_paragraphs(text.replace("\n", "\n\n"), meta.title)
    if not body_lines:
        body_lines = intro_paragraphs(region, meta.title, set())
    out.body = "\n\n".join(_drop_dateline(body_lines, zone, out))
    return out


def _drop_dateline(lines: list[str], zone: tzinfo, out: ArticleText) -> list[str]:
    """A date printed on its own line near the top ("4 листопада 2024, 08:36") is the
    article's dateline, not its text: drop it, and keep its time when the markup gave none."""
    for i, line in enumerate(lines[:3]):
        if len(line) > 60 or has_byline_prefix(line):
            continue
        byline = parse_byline(line, zone)
        if byline is not None and byline.published_at is not None and not byline.authors:
            out.published_at = out.published_at or byline.published_at
            return lines[:i] + lines[i + 1 :]
    return lines
