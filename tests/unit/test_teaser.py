"""Which feed entries want their linked page (consumers/parse/teaser.py): only feed entries with
an http(s) link; ``always`` takes them all, ``auto`` the teasers (few words, an ellipsis, a
"read more"), ``never`` none; live-blog entries and pages are left alone; linear time."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from consumers.parse import RawDocument, parse_document
from consumers.parse.teaser import ends_like_teaser, is_teaser, needs_page, read_mode, requests_among
from ingestor.models import NewsItem, content_hash

WORDS_150 = " ".join(f"word{i}" for i in range(150)) + "."


def entry(body: str = WORDS_150, **fields: object) -> NewsItem:
    values: dict[str, object] = {
        "id": "e1",
        "kind": "article",
        "source": "feed",
        "url": "https://example.org/story",
        "title": "Harbour reopens",
        "body": body,
        "fetched_at": datetime(2024, 11, 4, tzinfo=UTC),
        "body_source": "feed",
        "content_hash": content_hash(title="Harbour reopens", body=body, authors=[], url=None),
    }
    values.update(fields)
    return NewsItem.model_validate(values)


@pytest.mark.parametrize(
    "text",
    [
        "The harbour reopened on Monday after a week of repairs to the quay and the lock...",
        "The harbour reopened on Monday …",
        "The harbour reopened on Monday [&hellip;] is gone, but [\u2026]",
        "The harbour reopened on Monday [...]",
        "The harbour reopened on Monday. Read more",
        "The harbour reopened on Monday. Read more »",
        "The harbour reopened on Monday. Continue reading →",
        "The harbour reopened on Monday. Continue reading...",
        "The harbour reopened on Monday. Read the full story",
        "The harbour reopened on Monday. (more…)",
        "The harbour reopened on Monday. [Read More]",
        "Der Hafen ist wieder offen. Weiterlesen",
        "Le port a rouvert lundi. Lire la suite",
        "Гавань знову відкрита. Читати далі",
        "The harbour reopened on Monday …\n\nThe post Harbour reopens appeared first on Port News.",
    ],
)
def test_teaser_endings(text: str) -> None:
    assert ends_like_teaser(text)
    assert is_teaser(WORDS_150 + " " + text, 100)


@pytest.mark.parametrize(
    "text",
    [
        "Prices rose by five percent or more.",
        "The council will meet again, furthermore.",
        "The harbour reopened on Monday.",
        "He said: “we will read it again.”",
        "The harbour reopened.\n\nThe post Harbour reopens appeared first on Port News.",
    ],
)
def test_full_endings_are_not_teasers(text: str) -> None:
    assert not ends_like_teaser(text)
    assert not is_teaser(WORDS_150 + " " + text, 100)


def test_word_count_rule() -> None:
    assert is_teaser("one two three.", 100)
    assert is_teaser(" ".join(["w"] * 99) + ".", 100)
    assert not is_teaser(" ".join(["w"] * 100) + ".", 100)
    assert not is_teaser("one two three.", 0)  # teaser_words 0: only the endings count
    assert is_teaser("", 1)  # a title-only entry is a teaser


def test_modes_and_which_items_qualify() -> None:
    teaser, full = entry("Short teaser."), entry()
    assert needs_page(teaser, "auto", 100) and not needs_page(full, "auto", 100)
    assert needs_page(full, "always", 100) and not needs_page(teaser, "never", 100)
    assert needs_page(entry("", summary="Short summary."), "auto", 100)
    assert not needs_page(entry("", summary=WORDS_150), "auto", 100)
    for other in (
        entry("Short.", kind="live_update", parent_id="p"),
        entry("Short.", parent_id="p"),
        entry("Short.", body_source="page"),  # an article page, not a feed entry
        entry("Short.", body_source=None),  # written before body_source: not from this parse
        entry("Short.", url=None),
        entry("Short.", url="ftp://example.org/x"),
    ):
        assert not needs_page(other, "always", 100), other


def test_read_mode() -> None:
    assert read_mode(None) == "never"  # records without the header: as before
    assert [read_mode(v) for v in ("auto", "always", "never", " Auto ")] == [
        "auto",
        "always",
        "never",
        "auto",
    ]
    assert read_mode("sometimes") is None and read_mode("") is None


LIVE_ENTRY = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>https://x.org/</link>
<item><guid>live</guid><title>Live: storm</title><link>https://x.org/live</link><description><![CDATA[
<div class="post" id="p2"><time datetime="2024-11-04T10:05:00Z">10:05</time><p>Second update.</p></div>
<div class="post" id="p1"><time datetime="2024-11-04T10:00:00Z">10:00</time><p>First update.</p></div>
]]></description></item>
<item><guid>t1</guid><title>Teaser</title><link>https://x.org/t1</link>
<description>Short text...</description></item>
<item><guid isPermaLink="false">nolink</guid><title>No link</title><description>Short.</description></item>
</channel></rss>"""


def test_live_blog_entries_and_their_updates_are_never_requests() -> None:
    doc = RawDocument(body=LIVE_ENTRY, url="https://x.org/feed", feed_id="f", fetched_at=datetime.now(UTC))
    items = parse_document(doc)
    assert any(item.kind == "live_update" for item in items)
    by_title = {item.title: item.id for item in items if item.kind == "article"}
    assert requests_among(items, "always", 100) == {by_title["Teaser"]}
    assert requests_among(items, "auto", 100) == {by_title["Teaser"]}
    assert requests_among(items, "never", 100) == set()


def test_linear_time_on_hostile_text() -> None:
    for text in ("a" * 2_000_000, " " * 2_000_000, ". " * 1_000_000, "read more " * 200_000, "…" * 1_000_000):
        started = time.perf_counter()
        is_teaser(text, 100)
        assert time.perf_counter() - started < 0.5, text[:20]
