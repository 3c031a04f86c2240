"""Merging a teaser entry with its page's article (consumers/parse/fulltext.py): the entry's
identity and the feed's declarations stay, the page lends its text (and what the feed lacks),
and a page no longer than the teaser is no article."""

from __future__ import annotations

from datetime import UTC, datetime

from consumers.parse.fulltext import article_of, as_feed_entry, merge_full_text
from ingestor.models import NewsItem, content_hash

T0 = datetime(2024, 11, 4, 8, tzinfo=UTC)
T1 = datetime(2024, 11, 4, 9, tzinfo=UTC)
T2 = datetime(2024, 11, 4, 10, tzinfo=UTC)
PAGE_BODY = "The harbour reopened on Monday.\n\nRepairs to the quay took a week.\n\nFerries run again."


def item(**fields: object) -> NewsItem:
    values: dict[str, object] = {
        "id": "x",
        "kind": "article",
        "source": "feed",
        "fetched_at": T0,
        "content_hash": "sha256:0",
    }
    values.update(fields)
    return NewsItem.model_validate(values)


ENTRY = item(
    id="entry-1",
    url="https://example.org/story?utm=feed",
    title="Harbour reopens",
    body="The harbour reopened…",
    authors=["Ann Feed"],
    published_at=T0,
    image="https://example.org/feed.jpg",
    body_source="feed",
    language="en",
)
PAGE = item(
    id="page-1",
    url="https://example.org/story",
    title="Harbour reopens after a week | Port News",
    body=PAGE_BODY,
    authors=["Page Author"],
    published_at=T1,
    updated_at=T2,
    fetched_at=T2,
    image="https://example.org/og.jpg",
    body_source="page",
    categories=["Local"],
)


def test_merge_keeps_the_entry_and_takes_the_pages_text() -> None:
    merged = merge_full_text(ENTRY, PAGE)
    assert merged is not None
    assert (merged.id, merged.url, merged.source, merged.kind) == (ENTRY.id, ENTRY.url, "feed", "article")
    assert merged.body == PAGE_BODY and merged.body_source == "page"
    assert merged.title == "Harbour reopens" and merged.authors == ["Ann Feed"]
    assert merged.published_at == T0 and merged.updated_at == T2
    assert merged.image == "https://example.org/feed.jpg"
    assert merged.summary == "The harbour reopened…"  # the teaser, now a summary
    assert merged.categories == ["Local"] and merged.language == "en"
    assert merged.fetched_at == T2 and merged.parent_id is None
    assert merged.content_hash == content_hash(
        title="Harbour reopens",
        body=PAGE_BODY,
        authors=["Ann Feed"],
        url=ENTRY.url,
        summary="The harbour reopened…",
    )
    assert merged.content_hash != ENTRY.content_hash


def test_the_page_fills_in_what_the_feed_lacks() -> None:
    bare = ENTRY.model_copy(update={"title": "", "authors": [], "published_at": None, "image": None})
    merged = merge_full_text(bare, PAGE)
    assert merged is not None
    assert merged.title == PAGE.title and merged.authors == ["Page Author"]
    assert merged.published_at == T1 and merged.image == "https://example.org/og.jpg"


def test_summary_is_the_entrys_own_when_it_has_one() -> None:
    with_summary = ENTRY.model_copy(update={"summary": "A standfirst."})
    merged = merge_full_text(with_summary, PAGE)
    assert merged is not None and merged.summary == "A standfirst."
    title_only = ENTRY.model_copy(update={"body": ""})
    merged = merge_full_text(title_only, PAGE)
    assert merged is not None and merged.summary is None


def test_updated_is_the_later_and_never_before_published() -> None:
    entry = ENTRY.model_copy(update={"updated_at": T2.replace(hour=11)})
    merged = merge_full_text(entry, PAGE)
    assert merged is not None and merged.updated_at == T2.replace(hour=11)
    page = PAGE.model_copy(update={"updated_at": None})
    merged = merge_full_text(ENTRY, page)
    assert merged is not None and merged.updated_at is None


def test_a_page_no_longer_than_the_teaser_is_not_the_article() -> None:
    assert merge_full_text(ENTRY, PAGE.model_copy(update={"body": ""})) is None
    assert merge_full_text(ENTRY, PAGE.model_copy(update={"body": "Subscribe."})) is None
    assert merge_full_text(ENTRY, PAGE.model_copy(update={"body": ENTRY.body})) is None


def test_article_of_and_feed_entry() -> None:
    live = item(id="u1", kind="live_update", parent_id="page-1")
    assert article_of([live, PAGE]) is PAGE and article_of([live]) is None
    old = ENTRY.model_copy(update={"body_source": None})
    assert as_feed_entry(old).body_source == "feed" and as_feed_entry(ENTRY) is ENTRY
