"""Ids and item construction shared by every live-page shape.

The id scheme (docs/architecture.md, "Identity, versions and time") lives here so the text,
JSON-LD, microdata and block shapes give a fragment the same id whichever of them read it:

* page (article) item: ``stable_id("page", canonical_url)``;
* fragment with its own anchor/id: ``stable_id("live", canonical_url, anchor)``;
* fragment without one: ``stable_id("live", canonical_url, first-published UTC, normalised
  headline)``.  The headline is normalised with its digits removed, so that an edit of a
  number ("14 injured" -> "17 injured") keeps the id.  Distinct posts can therefore share
  (time, normalised headline): "Bulletin 8: ..." and "Bulletin 9: ..." in one minute, or
  two headline-less posts.  The oldest of such a group keeps the plain id; each later
  *distinct* post adds its position in the group, counted from the oldest (insertions
  arrive on top, so positions do not move).  A verbatim repeat (same headline and text,
  e.g. a pinned copy of a post) shares its original's position, and with it its id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urldefrag

from consumers.parse.document import RawDocument
from consumers.parse.furniture import detect_language, normalize_headline
from ingestor.models import BodySource, NewsItem, content_hash, format_utc, stable_id

__all__ = ["Fragment", "build_items", "fragment_url", "make_article", "page_id"]


def page_id(canonical_url: str) -> str:
    return stable_id("page", urldefrag(canonical_url)[0])


def fragment_url(canonical_url: str, anchor: str | None) -> str:
    base = urldefrag(canonical_url)[0]
    return f"{base}#{anchor}" if anchor else base


@dataclass(slots=True)
class Fragment:
    """One live update as a shape module found it, before it becomes a NewsItem."""

    title: str
    body: str
    published_at: datetime | None
    updated_at: datetime | None = None
    anchor: str | None = None
    url: str | None = None
    authors: list[str] = field(default_factory=list)
    #: Identity when the fragment has no anchor on the page but a URL or id of its own.
    key: str | None = None
    #: The post's own image, when its shape names one (JSON-LD ``image``); never the page's.
    image: str | None = None


def _utc_text(value: datetime | None) -> str:
    """``format_utc``, without strftime (3 µs a call, twice per fragment on a 500-post page)."""
    if value is None:
        return ""
    utc = value.astimezone(UTC)
    if utc.year < 1000:  # isoformat pads the year, strftime("%Y") does not: keep ids as they were
        return format_utc(utc)
    return utc.replace(tzinfo=None).isoformat() + "Z"


def _fragment_key(base: str, frag: Fragment, when: str, headline: str, ordinal: int) -> str:
    """The fragment's id; ``base`` is the canonical URL without its fragment."""
    if frag.anchor:
        return stable_id("live", base, frag.anchor)
    if frag.key:
        return stable_id("live", base, "key", frag.key)
    if not headline:
        return stable_id("live", base, when, f"#{ordinal}")
    if ordinal == 0:
        return stable_id("live", base, when, headline)
    return stable_id("live", base, when, headline, f"#{ordinal}")


def _ordinals(fragments: list[Fragment]) -> list[tuple[str, str, int]]:
    """(UTC time text, normalised headline, ordinal) per fragment, in the page's order.

    The ordinal is the fragment's position among the *distinct* posts that share its time
    and normalised headline, counted from the oldest; a verbatim repeat takes the position
    of the post it repeats."""
    counts: dict[tuple[str, str], int] = {}
    positions: dict[tuple[str, str, str, str], int] = {}
    keyed: list[tuple[str, str, int]] = []
    for frag in reversed(fragments):
        when, headline = _utc_text(frag.published_at), normalize_headline(frag.title)
        content = (when, headline, frag.title, frag.body)
        ordinal = positions.get(content)
        if ordinal is None:
            ordinal = counts.get((when, headline), 0)
            counts[(when, headline)] = ordinal + 1
            positions[content] = ordinal
        keyed.append((when, headline, ordinal))
    keyed.reverse()
    return keyed


def build_items(
    doc: RawDocument,
    canonical: str,
    fragments: list[Fragment],
    *,
    article: NewsItem | None = None,
    default_language: str | None = None,
    parent_id: str | None = None,
    body_source: BodySource = "page",
) -> list[NewsItem]:
    """Fragments (newest first, as the page lists them) as ``live_update`` items.

    Every fragment becomes an item, even one whose id repeats another's (a pinned copy
    of an anchored post shown again in the stream): the parse's finishing pass keeps the
    first of each id and counts the rest, so no drop is silent.  The article item, when
    given, comes first and is every fragment's parent; without one the parent is still the
    page id, so fragments of the same page group together downstream.  ``body_source`` is
    ``feed`` for the updates split out of a feed entry.
    """
    parent = parent_id or (article.id if article is not None else page_id(canonical))
    keyed = [(frag, *key) for frag, key in zip(fragments, _ordinals(fragments), strict=True)]
    base = urldefrag(canonical)[0]

    # One page-level guess first, so a short fragment without telltale letters follows
    # the page rather than guessing on its own.
    sample = " ".join(f"{f.title} {f.body[:300]}" for f in fragments[:12])
    if article is not None:
        sample = f"{article.title} {article.body[:1000]} {sample}"
    page_language = detect_language(sample, default_language or doc.language)
    out: list[NewsItem] = [article] if article is not None else []
    for frag, when, headline, ordinal in keyed:
        item_id = _fragment_key(base, frag, when, headline, ordinal)
        url = frag.url or (f"{base}#{frag.anchor}" if frag.anchor else base)
        language = detect_language(f"{frag.title}\n{frag.body}", page_language)
        out.append(
            NewsItem(
                id=item_id,
                kind="live_update",
                source=doc.feed_id,
                url=url,
                title=frag.title,
                body=frag.body,
                authors=frag.authors,
                language=language,
                published_at=frag.published_at,
                updated_at=frag.updated_at,
                fetched_at=doc.fetched_at,
                parent_id=parent,
                image=frag.image,
                body_source=body_source,
                content_hash=content_hash(title=frag.title, body=frag.body, authors=frag.authors, url=url),
            )
        )
    return out


def make_article(
    doc: RawDocument,
    canonical: str,
    *,
    title: str,
    body: str,
    authors: list[str],
    published_at: datetime | None,
    updated_at: datetime | None,
    summary: str | None = None,
    categories: list[str] | None = None,
    default_language: str | None = None,
    image: str | None = None,
) -> NewsItem:
    """The page's own item (kind ``article``, its body from the page)."""
    url = urldefrag(canonical)[0]
    return NewsItem(
        id=page_id(canonical),
        kind="article",
        source=doc.feed_id,
        url=url,
        title=title,
        body=body,
        summary=summary,
        authors=authors,
        categories=categories or [],
        language=detect_language(f"{title}\n{body}", default_language or doc.language),
        published_at=published_at,
        updated_at=updated_at,
        fetched_at=doc.fetched_at,
        image=image,
        body_source="page",
        content_hash=content_hash(title=title, body=body, authors=authors, url=url, summary=summary),
    )
