"""HTML pages: live blogs split into one item per post, ordinary pages as one article.

The shapes are tried from the most explicit to the most inferred, and the first that finds
posts wins: JSON-LD ``LiveBlogPosting`` → microdata ``liveBlogUpdate`` → repeated post
blocks → an ordinary article.  JSON-LD often lists only the latest posts, so when the
markup also has post blocks with the same anchors, the blocks the JSON-LD left out are
added.  A live page also yields its own article item when it has text beyond the list (a
standfirst, a summary); that item is every fragment's parent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from selectolax.lexbor import LexborHTMLParser, LexborNode

from consumers.parse.article import declared_published, extract_article, intro_paragraphs, main_region
from consumers.parse.document import ParseError, RawDocument
from consumers.parse.fragments import Fragment, build_items, make_article
from consumers.parse.headline import (
    choose_title,
    clean_authors,
    host_names,
    jsonld_people,
    organisation_names,
    site_names,
)
from consumers.parse.live_blocks import block_fragments
from consumers.parse.live_jsonld import jsonld_fragments
from consumers.parse.live_microdata import microdata_fragments
from consumers.parse.page_meta import PageMeta, read_page_meta
from consumers.parse.safety import check_html_nesting
from consumers.parse.timeresolve import get_zone
from ingestor.models import NewsItem

__all__ = ["parse_html_page", "split_live_fragments"]

_MIN_INTRO_CHARS = 40
#: Repeated post blocks make a live page only when there are at least this many of them.
_MIN_UNDECLARED_POSTS: Final = 2
#: Undeclared post blocks with less than this share of the page's text are a teaser list.
_MIN_POSTS_SHARE: Final = 0.1


def _newest_first(frags: list[Fragment]) -> list[Fragment]:
    if all(f.published_at is not None for f in frags):
        return sorted(frags, key=lambda f: f.published_at, reverse=True)  # type: ignore[arg-type,return-value]
    return frags


def split_live_fragments(
    tree: LexborHTMLParser, doc: RawDocument, meta: PageMeta
) -> tuple[list[Fragment], list[LexborNode]]:
    """The live posts of a parsed page (newest first) and the nodes that hold them."""
    zone = get_zone(doc.timezone)
    frags = jsonld_fragments(meta.jsonld, meta.canonical, zone)
    if frags:
        block_frags, nodes = block_fragments(tree, zone, doc.fetched_at)
        anchors = {f.anchor for f in frags if f.anchor}
        if anchors & {f.anchor for f in block_frags if f.anchor}:
            frags = frags + [f for f in block_frags if f.anchor and f.anchor not in anchors]
        else:
            nodes = [n for a in anchors if '"' not in a and "\\" not in a for n in tree.css(f'[id="{a}"]')]
        return _newest_first(frags), nodes
    frags, nodes = microdata_fragments(tree, meta.canonical, zone, doc.fetched_at)
    if frags:
        return _newest_first(frags), nodes
    frags, nodes = block_fragments(tree, zone, doc.fetched_at)
    if len(frags) < _MIN_UNDECLARED_POSTS or _minor_share(frags, tree):
        # one dated block on a page that declares no live blog is an article's own block
        # (CMS ids such as Drupal's "block-…"), not a live page of one post; a few dated
        # teasers that are a sliver of the page's text are a "more stories" list beside an
        # article, which must stay one article item
        return [], []
    return _newest_first(frags), nodes


def _minor_share(frags: list[Fragment], tree: LexborHTMLParser) -> bool:
    """Whether undeclared posts hold under ``_MIN_POSTS_SHARE`` of the page's visible text
    (a live page is mostly its posts; a sidebar of teasers is not)."""
    body = tree.body
    if body is None:
        return False
    page_chars = sum(len(word) + 1 for word in body.text(deep=True).split())
    post_chars = sum(len(f.body) + len(f.title or "") for f in frags)
    return page_chars > 0 and post_chars < _MIN_POSTS_SHARE * page_chars


#: Earlier than this, a "published" date is a placeholder ("0001-01-01T00:00:00Z") or a typo.
_EARLIEST: Final = datetime(1991, 1, 1, tzinfo=UTC)


def _plausible(when: datetime | None, fetched_at: datetime) -> datetime | None:
    """``when`` unless it cannot be a publication time of a page fetched at ``fetched_at``."""
    if when is None or when < _EARLIEST or when > fetched_at + timedelta(days=2):
        return None
    return when


def _settle_meta(tree: LexborHTMLParser, doc: RawDocument, meta: PageMeta) -> tuple[set[str], set[str]]:
    """The page's headline, dates and authors settled in ``meta``; returns the keys of the
    names that are not people (site, organisations) and of the host names, which the authors
    read from the markup later are filtered with."""
    meta.title = choose_title(tree, meta, doc.base_url)
    meta.published_at = _plausible(meta.published_at, doc.fetched_at)
    meta.updated_at = _plausible(meta.updated_at, doc.fetched_at)
    hosts = host_names(meta, doc.base_url)
    not_people = site_names(tree, meta, doc.base_url, hosts=False) | organisation_names(meta)
    meta.authors = clean_authors(meta.authors or jsonld_people(meta), not_people, hosts)
    return not_people, hosts


def parse_html_page(doc: RawDocument, html: str) -> list[NewsItem]:
    """Items of an HTML page: ``[article?, live_update…]`` for a live page, ``[article]`` for
    an ordinary one.  Raises ``ParseError("no_items")`` when the page has no news text."""
    check_html_nesting(html)
    tree = LexborHTMLParser(html)
    zone = get_zone(doc.timezone)
    meta = read_page_meta(tree, doc.base_url, zone)
    not_people, hosts = _settle_meta(tree, doc, meta)
    frags, nodes = split_live_fragments(tree, doc, meta)
    if frags:
        for node in nodes:
            node.decompose()
        seen = {p for f in frags for p in f.body.split("\n\n")} | {f.title for f in frags}
        intro = intro_paragraphs(main_region(tree), meta.title, seen)
        article: NewsItem | None = None
        if sum(len(p) for p in intro) >= _MIN_INTRO_CHARS and meta.title:
            article = make_article(
                doc,
                meta.canonical,
                title=meta.title,
                body="\n\n".join(intro),
                authors=meta.authors,
                published_at=meta.published_at,
                updated_at=meta.updated_at,
                categories=meta.categories,
                default_language=meta.language,
                image=meta.image,
            )
        return build_items(doc, meta.canonical, frags, article=article, default_language=meta.language)

    text = extract_article(html, tree, meta, zone)
    if not text.body or not meta.title:
        raise ParseError("no_items", "no live posts and no article text in the page")
    published = (
        meta.published_at
        or _plausible(declared_published(tree, zone, meta.jsonld), doc.fetched_at)
        or _plausible(text.published_at, doc.fetched_at)
    )
    updated = meta.updated_at or _plausible(text.updated_at, doc.fetched_at)
    if updated is not None and published is not None and updated <= published:
        updated = None
    return [
        make_article(
            doc,
            meta.canonical,
            title=meta.title,
            body=text.body,
            authors=meta.authors or clean_authors(text.authors, not_people, hosts),
            published_at=published,
            updated_at=updated,
            categories=meta.categories,
            default_language=meta.language,
            image=meta.image,
        )
    ]
