"""A teaser entry and its linked page's article, merged into the item subscribers get.

The entry stays the item: its id, url, feed id and kind are the entry's, so the merged item
replaces the entry downstream (a fallback published earlier with the feed's text becomes
version 2 of the same id, never a second item).  The page lends what a teaser lacks:

* ``body``: the page article's (``body_source: page``);
* ``title``, ``authors``, ``published_at``, ``language``, ``categories``: the feed's, unless
  the feed has none (feeds state them deliberately; the page's are extracted);
* ``updated_at``: the later of both;
* ``image``: the feed's, else the page's;
* ``summary``: the entry's summary, else its teaser text (now that the body is the story,
  the teaser is what it is: a summary);
* ``fetched_at``: the later of both (the text is as of the page's fetch);
* ``content_hash``: recomputed over the merged fields, as every shape computes it.

A page whose article body is empty, or no longer than the teaser itself (a paywall stub, a
consent wall, an index page), is not the story: :func:`merge_full_text` returns ``None``
and the caller publishes the entry with the feed's text (``not_an_article``).
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ingestor.models import NewsItem, content_hash

__all__ = ["NOT_AN_ARTICLE", "article_of", "as_feed_entry", "merge_full_text", "teaser_text"]

#: The fallback reason when the page holds no article text longer than the teaser.
NOT_AN_ARTICLE = "not_an_article"


def teaser_text(entry: NewsItem) -> str:
    """What the feed said of the story: its body, else its summary."""
    return entry.body or entry.summary or ""


def article_of(items: Sequence[NewsItem]) -> NewsItem | None:
    """The page's own article item among a page parse's items (a live page may have none)."""
    return next((item for item in items if item.kind == "article" and item.parent_id is None), None)


def _later(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None or second is None:
        return first or second
    return max(first, second)


def as_feed_entry(entry: NewsItem) -> NewsItem:
    """The entry as it is published when its page is not had: the feed's text, marked so
    (an entry from a record written before ``body_source`` existed carries null)."""
    return entry if entry.body_source == "feed" else entry.model_copy(update={"body_source": "feed"})


def merge_full_text(entry: NewsItem, page: NewsItem) -> NewsItem | None:
    """The entry with the page article's text (see the module docstring); ``None`` when the
    page holds no more text than the teaser."""
    teaser = teaser_text(entry)
    if not page.body or len(page.body) <= len(teaser):
        return None
    title = entry.title or page.title
    authors = entry.authors or page.authors
    published = entry.published_at or page.published_at
    updated = _later(entry.updated_at, page.updated_at)
    if updated is not None and published is not None and updated <= published:
        updated = None
    summary = entry.summary or entry.body or None
    if summary == page.body:
        summary = None
    return entry.model_copy(
        update={
            "title": title,
            "body": page.body,
            "summary": summary,
            "authors": authors,
            "categories": entry.categories or page.categories,
            "language": entry.language or page.language,
            "published_at": published,
            "updated_at": updated,
            "fetched_at": max(entry.fetched_at, page.fetched_at),
            "image": entry.image or page.image,
            "body_source": "page",
            "parent_id": None,
            "content_hash": content_hash(
                title=title, body=page.body, authors=authors, url=entry.url, summary=summary
            ),
        }
    )
