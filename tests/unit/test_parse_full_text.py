"""The parse side of full text, without a broker: the article job on real pages of the article
dev set (``../shared/corpus/articles-dev``, read in place, skipped without it), and the stage's
handler on a worker pool routing teasers to the requests topic, merging pages, and falling back
to the feed's text without ever losing an entry."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiokafka import ConsumerRecord
from structlog.testing import capture_logs

from consumers.parse import ParseLimits, RawDocument, parse_document, service
from consumers.parse.fulltext import article_of
from consumers.parse.service import ParseStage, fallback_label
from consumers.parse.workers import Fallback, Parsed, Unparsable, article_job, parse_job
from ingestor import headers as hdr
from ingestor.config import load_settings
from ingestor.consumer_loop import Output, Refused
from ingestor.models import NewsItem, content_hash, item_from_json, item_to_json, stable_id
from ingestor.ops import metrics

ARTICLES = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "articles-dev"
FETCHED = datetime(2024, 11, 4, 10, tzinfo=UTC)
LONG = " ".join(f"word{i}" for i in range(150)) + "."

FEED = f"""<?xml version="1.0"?><rss version="2.0"><channel><title>Port</title><link>https://x.org/</link>
<item><guid>teaser</guid><title>Harbour reopens</title><link>https://x.org/harbour</link>
<description>The harbour reopened on Monday [&#8230;]</description></item>
<item><guid>full</guid><title>Budget passed</title><link>https://x.org/budget</link>
<description>{LONG}</description></item>
</channel></rss>""".encode()


def real_pages(count: int) -> list[tuple[str, bytes, str]]:
    """``(url, html, expected body start)`` of the first dev-set pages read as one article."""
    truth_file = ARTICLES / "ground-truth.json"
    if not truth_file.is_file():
        pytest.skip(f"article dev set not found at {ARTICLES}")
    truth = json.loads(truth_file.read_text(encoding="utf-8"))
    pages = []
    for key, expected in sorted(truth.items()):
        html = gzip.decompress((ARTICLES / "html" / f"{key}.html.gz").read_bytes())
        pages.append((expected["url"], html, expected["articleBody"]))
        if len(pages) == count:
            break
    return pages


def teaser_entry(url: str, *, body: str = "The story, in short…", **fields: Any) -> NewsItem:
    values: dict[str, Any] = {
        "id": stable_id("feed-1", url),
        "kind": "article",
        "source": "feed-1",
        "url": url,
        "title": "Feed headline",
        "body": body,
        "published_at": datetime(2024, 11, 4, 8, tzinfo=UTC),
        "fetched_at": datetime(2024, 11, 4, 9, tzinfo=UTC),
        "body_source": "feed",
        "content_hash": content_hash(title="Feed headline", body=body, authors=[], url=url),
    }
    values.update(fields)
    return NewsItem.model_validate(values)


def page_doc(url: str, html: bytes) -> RawDocument:
    return RawDocument(
        body=html, url=url, feed_id="feed-1", fetched_at=FETCHED, content_type="text/html", format="html"
    )


# ---- the article job on real pages ------------------------------------------------------------


def test_the_article_job_merges_real_pages() -> None:
    for url, html, truth in real_pages(12):
        entry = teaser_entry(url)
        outcome = article_job(page_doc(url, html), item_to_json(entry).decode(), ParseLimits())
        assert isinstance(outcome, Parsed), (url, outcome)
        ((item_id, value),) = outcome.items
        merged = item_from_json(value)
        page = article_of(parse_document(page_doc(url, html)))
        assert page is not None
        assert item_id == entry.id == merged.id and merged.url == url and merged.source == "feed-1"
        assert merged.body_source == "page" and merged.body == page.body
        assert merged.title == "Feed headline" and merged.summary == "The story, in short…"
        assert merged.image == page.image and merged.fetched_at == FETCHED
        assert merged.content_hash == content_hash(
            title=merged.title, body=merged.body, authors=merged.authors, url=url, summary=merged.summary
        )
        # the extractor's text is the benchmark's story (its first words at least)
        assert " ".join(truth.split()[:4]).lower()[:20] in merged.body.lower(), url


def test_a_page_no_longer_than_the_teaser_falls_back() -> None:
    ((url, html, _truth),) = real_pages(1)
    page = article_of(parse_document(page_doc(url, html)))
    assert page is not None
    entry = teaser_entry(url, body=page.body + " And more from the feed.")
    outcome = article_job(page_doc(url, html), item_to_json(entry).decode(), ParseLimits())
    assert isinstance(outcome, Fallback) and outcome.reason == "not_an_article"


def test_pages_without_an_article_fall_back_and_hostile_ones_are_refused() -> None:
    entry = item_to_json(teaser_entry("https://x.org/a")).decode()
    menu = b"<html><head><title>Index</title></head><body><nav><a href='/a'>A</a></nav></body></html>"
    outcome = article_job(page_doc("https://x.org/a", menu), entry, ParseLimits())
    assert isinstance(outcome, Fallback) and outcome.reason == "not_an_article"
    nested = b"<html><body>" + b"<div>" * 100_000 + b"</body></html>"
    outcome = article_job(page_doc("https://x.org/a", nested), entry, ParseLimits())
    assert isinstance(outcome, Unparsable) and outcome.reason == "malformed"


def test_the_parse_job_splits_teasers_from_full_entries() -> None:
    doc = RawDocument(body=FEED, url="https://x.org/feed", feed_id="feed-1", fetched_at=FETCHED)
    never = parse_job(doc, ParseLimits())
    assert isinstance(never, Parsed) and len(never.items) == 2 and never.requests == []
    auto = parse_job(doc, ParseLimits(), "auto", 100)
    assert isinstance(auto, Parsed)
    assert [item_from_json(v).title for _, v in auto.items] == ["Budget passed"]
    ((entry_id, value, url),) = auto.requests
    entry = item_from_json(value)
    assert (entry.id, entry.url, url, entry.body_source) == (entry_id, "https://x.org/harbour", url, "feed")
    assert value == dict(never.items)[entry_id]  # exactly what news.items would have had
    always = parse_job(doc, ParseLimits(), "always", 100)
    assert isinstance(always, Parsed) and not always.items and len(always.requests) == 2


def test_fallback_labels_stay_few(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "_fallback_labels", set())
    assert fallback_label("http_404") == "http_404" and fallback_label("Deadline") == "deadline"
    assert fallback_label("no spaces!") == "other" and fallback_label("") == "other"
    for i in range(200):
        fallback_label(f"reason_{i}")
    assert fallback_label("reason_199") == "other"  # past the cap


# ---- the stage's handler on a worker pool ------------------------------------------------------


RAW_TIMESTAMP = 1_730_714_400_123  # the news.raw record's, ms since the epoch


def record(
    body: bytes | None, headers: list[tuple[str, str]], *, offset: int = 0, key: bytes | None = b"feed-1"
) -> ConsumerRecord[bytes, bytes]:
    encoded = [(name, value.encode()) for name, value in headers]
    size = len(body or b"")
    return ConsumerRecord("news.raw", 2, offset, RAW_TIMESTAMP, 0, key, body, None, 6, size, encoded)


FEED_HEADERS = [
    (hdr.URL, "https://x.org/feed"),
    (hdr.FETCHED_AT, "2024-11-04T10:00:00Z"),
    (hdr.FEED_TIMEZONE, "Europe/Kyiv"),
    (hdr.FEED_LANGUAGE, "en"),
]


def article_headers(entry: NewsItem, outcome: str, url: str | None = None) -> list[tuple[str, str]]:
    return [
        (hdr.URL, url or entry.url or ""),
        (hdr.FETCHED_AT, "2024-11-04T10:00:05Z"),
        (hdr.CONTENT_TYPE, "text/html; charset=utf-8"),
        (hdr.VIA, "article"),
        (hdr.ARTICLE_ENTRY, item_to_json(entry).decode()),
        (hdr.ARTICLE_OUTCOME, outcome),
    ]


def counter(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def stage() -> Iterator[ParseStage]:
    settings = load_settings(None, overrides={"parse": {"workers": 1, "deadline": "2s"}})
    stage = ParseStage(settings, connection=None)  # type: ignore[arg-type]  # no broker needed
    asyncio.run(stage.pool.start())
    try:
        yield stage
    finally:
        asyncio.run(stage.pool.close())


def handle(stage: ParseStage, rec: ConsumerRecord[bytes, bytes]) -> list[Output]:
    return asyncio.run(stage.handle(rec))


def test_without_the_header_a_feed_is_parsed_as_before(stage: ParseStage) -> None:
    outputs = handle(stage, record(FEED, FEED_HEADERS))
    assert [o.topic for o in outputs] == ["news.items", "news.items"]
    never = handle(stage, record(FEED, [*FEED_HEADERS, (hdr.FEED_FULL_TEXT, "never")]))
    assert [(o.key, o.value) for o in never] == [(o.key, o.value) for o in outputs]


def test_teasers_go_to_the_requests_topic(stage: ParseStage, monkeypatch: pytest.MonkeyPatch) -> None:
    before = counter("ingestor_parse_article_requests_total")
    with capture_logs() as logs:
        monkeypatch.setattr(service, "log", structlog.get_logger("consumers.parse"))
        outputs = handle(stage, record(FEED, [*FEED_HEADERS, (hdr.FEED_FULL_TEXT, "auto")], offset=7))
    items = [o for o in outputs if o.topic == "news.items"]
    (request,) = [o for o in outputs if o.topic == "news.article-requests"]
    assert [item_from_json(o.value or b"").title for o in items] == ["Budget passed"]
    assert [hdr.as_dict(o.headers) for o in items] == [
        {"source-feed": "feed-1", "raw-partition": "2", "raw-offset": "7", "raw-timestamp": "1730714400123"}
    ]
    assert request.key == b"feed-1"
    entry = item_from_json(request.value or b"")
    assert entry.title == "Harbour reopens" and entry.body_source == "feed"
    assert hdr.as_dict(request.headers) == {
        "source-feed": "feed-1",
        "raw-partition": "2",
        "raw-offset": "7",
        hdr.FEED_TIMEZONE: "Europe/Kyiv",
        hdr.FEED_LANGUAGE: "en",
        hdr.URL: "https://x.org/harbour",
    }
    assert counter("ingestor_parse_article_requests_total") == before + 1
    (parsed,) = [e for e in logs if e["event"] == "raw_parsed"]
    assert (parsed["items"], parsed["requests"]) == (1, 1)


def test_an_unknown_mode_is_never_and_warned_once_per_feed(
    stage: ParseStage, monkeypatch: pytest.MonkeyPatch
) -> None:
    with capture_logs() as logs:
        monkeypatch.setattr(service, "log", structlog.get_logger("consumers.parse"))
        for offset in range(3):
            outputs = handle(
                stage, record(FEED, [*FEED_HEADERS, (hdr.FEED_FULL_TEXT, "sometimes")], offset=offset)
            )
            assert [o.topic for o in outputs] == ["news.items", "news.items"]
    warned = [e for e in logs if e["event"] == "full_text_mode_unknown"]
    assert [(e["feed"], e["value"]) for e in warned] == [("feed-1", "sometimes")]


def test_an_article_record_with_a_real_page_is_merged(stage: ParseStage) -> None:
    ((url, html, _truth),) = real_pages(1)
    entry = teaser_entry(url)
    before = counter("ingestor_parse_full_text_items_total", body_source="page")
    (output,) = handle(stage, record(html, article_headers(entry, "page"), offset=3))
    merged = item_from_json(output.value or b"")
    assert output.topic == "news.items" and output.key == entry.id.encode()
    assert merged.id == entry.id and merged.body_source == "page" and len(merged.body) > len(entry.body)
    assert hdr.as_dict(output.headers)["raw-offset"] == "3"
    assert hdr.as_dict(output.headers)["raw-timestamp"] == str(RAW_TIMESTAMP)
    assert counter("ingestor_parse_full_text_items_total", body_source="page") == before + 1


@pytest.mark.parametrize("outcome", ["deadline", "http_404", "robots_disallowed", ""])
def test_a_fallback_record_publishes_the_entry_with_the_feeds_text(stage: ParseStage, outcome: str) -> None:
    entry = teaser_entry("https://x.org/harbour", body_source=None)  # written before body_source
    label = outcome or "no_outcome"
    before = counter("ingestor_parse_full_text_fallbacks_total", reason=label)
    (output,) = handle(stage, record(None, article_headers(entry, outcome)))
    published = item_from_json(output.value or b"")
    assert output.topic == "news.items" and output.key == entry.id.encode()
    assert published.body_source == "feed" and published.body == entry.body
    assert published.content_hash == entry.content_hash
    assert hdr.as_dict(output.headers)["raw-timestamp"] == str(RAW_TIMESTAMP)  # the article record's
    assert counter("ingestor_parse_full_text_fallbacks_total", reason=label) == before + 1


def test_a_refused_page_goes_to_the_dlq_and_the_entry_is_still_published(stage: ParseStage) -> None:
    entry = teaser_entry("https://x.org/harbour")
    nested = b"<html><body>" + b"<div>" * 100_000 + b"</body></html>"
    with pytest.raises(Refused) as refused:
        handle(stage, record(nested, article_headers(entry, "page")))
    assert refused.value.error_type == "malformed"
    (output,) = refused.value.outputs
    published = item_from_json(output.value or b"")
    assert output.topic == "news.items" and published.id == entry.id and published.body_source == "feed"


def test_a_page_past_the_deadline_costs_its_worker_not_the_entry() -> None:
    settings = load_settings(None, overrides={"parse": {"workers": 1, "deadline": "300ms"}})
    stage = ParseStage(settings, connection=None)  # type: ignore[arg-type]
    posts = "".join(
        f'<div class="post" id="p{i}"><time datetime="2024-11-04T{i % 24:02d}:{i % 60:02d}:00Z">'
        f"{i % 24}:{i % 60:02d}</time><h3>Post {i}</h3><p>Body of post {i}, a few words of news.</p></div>"
        for i in range(30_000)
    )
    slow = f"<html><head><title>Live</title></head><body><main>{posts}</main></body></html>".encode()
    entry = teaser_entry("https://x.org/live")

    async def scenario() -> None:
        await stage.pool.start()
        try:
            with pytest.raises(Refused) as refused:
                await stage.handle(record(slow, article_headers(entry, "page")))
            assert refused.value.error_type == "parse_timeout"
            (output,) = refused.value.outputs
            assert item_from_json(output.value or b"").body_source == "feed"
        finally:
            await stage.stop()

    asyncio.run(scenario())


def test_an_unreadable_entry_is_bad_metadata(stage: ParseStage) -> None:
    headers = [(hdr.ARTICLE_ENTRY, '{"id": "x"}'), (hdr.ARTICLE_OUTCOME, "deadline")]
    with pytest.raises(Refused) as refused:
        handle(stage, record(None, headers))
    assert refused.value.error_type == "bad_metadata" and not refused.value.outputs
