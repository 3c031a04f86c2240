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
from datetime import datetime, tzinfo
from types import ModuleType
from typing import Final

from selectolax.lexbor import LexborHTMLParser, LexborNode

from consumers.parse.furniture import has_byline_prefix, parse_byline, split_names
from consumers.parse.htmltext import html_to_text
from consumers.parse.live_blocks import clean_paragraphs, is_updated_marker, read_time
from consumers.parse.page_meta import PageMeta

__all__ = ["ArticleText", "extract_article", "intro_paragraphs", "main_region"]

_REGION_SEL: Final = ('[itemprop~="articleBody"]', "article", "main", '[role="main"]')
_FURNITURE_SEL: Final = (
    "h1, time, header nav, [class*=byline], [rel~=author], [itemprop~=author], [class*=share], "
    "[class*=social], [class*=key-events], [class*=related], [class*=most-read], [class*=mostread], "
    "[class*=newsletter], [class*=subscribe], [class*=promo], [class*=caption], [class*=credit], "
    "[class*=breadcrumb], [class*=tags], [class*=comments]"
)
_MIN_INTRO: Final = 40
_MAX_TRAFILATURA_TAGS: Final = 60_000

_trafilatura: ModuleType | None
try:  # trafilatura is a declared dependency; the fallback keeps parsing alive without it.
    import trafilatura as _trafilatura_module

    _trafilatura = _trafilatura_module
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
except ImportError:  # pragma: no cover
    _trafilatura = None


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


def _markup_facts(region: LexborNode, zone: tzinfo, out: ArticleText) -> None:
    """Dates and bylines from visible markup, for pages without structured data."""
    for tnode in region.css("time"):
        when, _clock = read_time(tnode, zone)
        if when is None:
            continue
        if is_updated_marker(tnode):
            out.updated_at = out.updated_at or when
        else:
            out.published_at = out.published_at or when
    for anode in region.css('[rel~=author], [itemprop~=author], [class*=byline], [class*="author"]'):
        text = " ".join(anode.text(deep=True).split())
        if not text or len(text) > 200:
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
    body_lines: list[str] = []
    # trafilatura walks every element in Python (a million tiny elements: ~35 s); a page with
    # that many tags is not an ordinary article, and the main-region reader copes with it.
    if _trafilatura is not None and html.count("<") <= _MAX_TRAFILATURA_TAGS:
        try:
            text = _trafilatura.extract(
                html,
                url=meta.canonical,
                include_comments=False,
                include_tables=False,
                include_images=False,
                favor_precision=True,
                deduplicate=False,
            )
        except Exception:  # a third-party extractor must not take the stage down
            text = None
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
