"""The parse stage's side of full text on the real embedded broker: a feed record with
``feed-full-text: auto`` sends its teasers to the requests topic and its full entries to
news.items; article records come back on news.raw and become the merged entry (a real page of
the article dev set, ``../shared/corpus/articles-dev``, read in place), the entry with the
feed's text (a fallback), or both a DLQ message and the entry (a page the parser refuses)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumers.parse import RawDocument, parse_document
from consumers.parse.fulltext import article_of
from consumers.parse.service import ParseStage
from ingestor import headers as hdr
from ingestor.kafka import KafkaConnection, ensure_topics
from ingestor.models import NewsItem, content_hash, item_from_json, item_to_json
from tests.conftest import make_settings
from tests.integration.kafka_helpers import produce, read_topic

ARTICLES = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "articles-dev"
LONG = " ".join(f"word{i}" for i in range(150)) + "."

pytestmark = pytest.mark.skipif(not ARTICLES.is_dir(), reason=f"no article dev set at {ARTICLES}")


def feed(page_url: str) -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>
<link>https://example.org/</link>
<item><guid>teaser</guid><title>The teaser</title><link>{page_url}</link>
<description>Only the start of the story...</description></item>
<item><guid>full</guid><title>The full entry</title><link>https://example.org/full</link>
<description>{LONG}</description></item>
</channel></rss>""".encode()


def first_article_page() -> tuple[str, bytes, NewsItem]:
    """A dev-set page the parser reads as one article with real text."""
    truth = json.loads((ARTICLES / "ground-truth.json").read_text(encoding="utf-8"))
    for key, expected in sorted(truth.items()):
        html = gzip.decompress((ARTICLES / "html" / f"{key}.html.gz").read_bytes())
        doc = RawDocument(
            body=html, url=expected["url"], feed_id="f", fetched_at=datetime.now(UTC), format="html"
        )
        page = article_of(parse_document(doc))
        if page is not None and len(page.body) > 2000:
            return expected["url"], html, page
    raise AssertionError("no usable page in the dev set")


def article_headers(entry: bytes, outcome: str, url: str) -> list[tuple[str, bytes]]:
    return hdr.build(
        [
            (hdr.URL, url),
            (hdr.FETCHED_AT, "2024-11-04T10:01:00Z"),
            (hdr.CONTENT_TYPE, "text/html; charset=utf-8"),
            (hdr.FEED_TIMEZONE, "Europe/Kyiv"),
            (hdr.VIA, "article"),
            (hdr.ARTICLE_ENTRY, entry.decode()),
            (hdr.ARTICLE_OUTCOME, outcome),
        ]
    )


async def test_teasers_requests_pages_and_fallbacks_on_the_broker(broker_address: str) -> None:
    settings = make_settings(broker_address)
    topics = settings.topics
    connection = KafkaConnection(broker_address, settings.kafka)
    await ensure_topics(connection, topics)
    page_url, html, page = first_article_page()
    parse = ParseStage(settings, connection)
    await parse.start()
    try:
        feed_headers = hdr.build(
            [
                (hdr.URL, "https://example.org/feed.xml"),
                (hdr.FETCHED_AT, "2024-11-04T10:00:00Z"),
                (hdr.FEED_TIMEZONE, "Europe/Kyiv"),
                (hdr.FEED_LANGUAGE, "en"),
                (hdr.FEED_FULL_TEXT, "auto"),
            ]
        )
        await produce(broker_address, topics.raw, [(b"feed-1", feed(page_url), feed_headers)])
        (request,) = await read_topic(broker_address, topics.article_requests, expect=1)
        (full,) = await read_topic(broker_address, topics.items, expect=1)
        assert item_from_json(full.value).title == "The full entry"
        entry = item_from_json(request.value)
        assert request.key == b"feed-1" and entry.title == "The teaser" and entry.body_source == "feed"
        assert hdr.as_dict(request.headers)[hdr.URL] == page_url == entry.url
        assert hdr.as_dict(request.headers)["source-feed"] == "feed-1"

        # what the fetcher answers: the page, a fallback, and a page the parser refuses
        other = entry.model_copy(
            update={
                "id": "other-entry",
                "url": "https://example.org/gone",
                "content_hash": content_hash(
                    title=entry.title, body=entry.body, authors=[], url="https://example.org/gone"
                ),
            }
        )
        hostile = entry.model_copy(update={"id": "hostile-entry"})
        nested = b"<html><body>" + b"<div>" * 100_000 + b"</body></html>"
        await produce(
            broker_address,
            topics.raw,
            [
                (b"feed-1", html, article_headers(request.value, "page", page_url)),
                (b"feed-1", None, article_headers(item_to_json(other), "http_404", other.url or "")),
                (b"feed-1", nested, article_headers(item_to_json(hostile), "page", page_url)),
            ],
        )
        items = await read_topic(broker_address, topics.items, expect=4, settle=1.0)
        by_id = {record.key.decode(): item_from_json(record.value) for record in items[1:]}
        assert set(by_id) == {entry.id, "other-entry", "hostile-entry"}
        merged = by_id[entry.id]
        assert merged.body_source == "page" and merged.body == page.body
        assert merged.title == "The teaser" and merged.summary == "Only the start of the story..."
        assert merged.url == page_url and merged.image == page.image
        assert by_id["other-entry"].body_source == "feed" and by_id["other-entry"].body == entry.body
        assert by_id["hostile-entry"].body_source == "feed"

        (dead,) = await read_topic(broker_address, topics.dlq, expect=1)
        dlq = hdr.as_dict(dead.headers)
        assert dlq[hdr.DLQ_ERROR_TYPE] == "malformed" and dlq[hdr.DLQ_STAGE] == "parse"
        assert dead.value == nested and hdr.ARTICLE_ENTRY in dlq  # replayable as it was
    finally:
        await parse.stop()
    assert parse.loop.stats.refused == 1
