"""HTML live pages and articles: the shape detectors, ids, pinned copies, feed-entry splits."""

# ruff: noqa: E501  (inline HTML fixtures read better unwrapped)

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from consumers.parse.document import ParseError, RawDocument
from consumers.parse.html_page import parse_html_page
from consumers.parse.live_split import split_live_entry
from ingestor.models import NewsItem, content_hash

FETCHED = datetime(2024, 11, 4, 18, tzinfo=UTC)


def parse(html: str, tz: str = "Europe/London", url: str = "https://site.test/live/x") -> list[NewsItem]:
    doc = RawDocument(body=html.encode(), url=url, feed_id="f", fetched_at=FETCHED, timezone=tz)
    return parse_html_page(doc, html)


def test_jsonld_array_and_graph_forms_agree() -> None:
    live = {
        "@type": "LiveBlogPosting",
        "headline": "Storm live",
        "liveBlogUpdate": [
            {
                "@type": "BlogPosting",
                "headline": "Pier closed",
                "articleBody": "<p>The pier is closed to walkers.</p><p>Share</p>",
                "datePublished": "2024-11-04T16:00:00+00:00",
                "dateModified": "2024-11-04T16:00:00+00:00",
                "url": "https://site.test/live/x#p2",
            },
            {
                "@type": "BlogPosting",
                "articleBody": "Gusts of 70 mph were recorded on the coast.",
                "datePublished": "2024-11-04T15:00:00Z",
                "dateModified": "2024-11-04T15:20:00Z",
                "url": "https://site.test/live/x#p1",
            },
        ],
    }
    forms = [
        {"@context": "https://schema.org", **live},
        [{"@type": "Organization", "name": "Site"}, live],
        {"@context": "https://schema.org", "@graph": [{"@type": "WebPage"}, live]},
    ]
    results = []
    for form in forms:
        html = f'<html><head><script type="application/ld+json">{json.dumps(form)}</script></head><body></body></html>'
        results.append(parse(html))
    assert [[(i.id, i.content_hash) for i in r] for r in results[1:]] == [
        [(i.id, i.content_hash) for i in results[0]]
    ] * 2
    first, second = results[0]
    assert (first.title, first.body) == ("Pier closed", "The pier is closed to walkers.")
    assert first.updated_at is None  # dateModified equal to datePublished is no update
    assert first.url == "https://site.test/live/x#p2"
    assert second.title == ""  # headline-less
    assert second.updated_at == datetime(2024, 11, 4, 15, 20, tzinfo=UTC)


def test_block_ids_pinned_copy_and_updated_at() -> None:
    post = (
        '<article id="block-1" class="block"><time datetime="2024-11-04T12:00:00Z">12:00</time>'
        "<h2>Trains delayed</h2><p>Services are running up to 40 minutes late.</p></article>"
    )
    html = f"""<html><head><link rel="canonical" href="https://site.test/live/storm"></head><body>
    <div class="pinned-post">{post}</div>
    <div class="blocks">
    <article id="block-2" class="block"><time datetime="2024-11-04T14:00:00+00:00">14:00</time>
    <p>Roads in the valley are flooded.</p><p class="updated">Updated at 14.45 GMT</p></article>
    {post}
    </div></body></html>"""
    items = parse(html)
    assert [i.url for i in items] == [
        "https://site.test/live/storm#block-2",
        "https://site.test/live/storm#block-1",
    ]
    assert items[0].title == ""
    assert items[0].body == "Roads in the valley are flooded."
    assert items[0].updated_at == datetime(2024, 11, 4, 14, 45, tzinfo=UTC)
    assert all(i.parent_id == items[0].parent_id for i in items)


def test_explicit_offset_wins_over_feed_zone() -> None:
    html = """<html><body><div class="feed">
    <div class="upd" id="u2"><time datetime="2024-11-04T10:00:00-05:00">10:00</time><p>Polls open across the state today.</p></div>
    <div class="upd" id="u1"><time datetime="2024-11-04T09:00">09:00</time><p>Volunteers set up the first stations.</p></div>
    </div></body></html>"""
    items = parse(html, tz="Europe/Kyiv")
    assert items[0].published_at == datetime(2024, 11, 4, 15, tzinfo=UTC)
    assert items[1].published_at == datetime(2024, 11, 4, 7, tzinfo=UTC)  # no offset: Kyiv


def test_ordinary_article_is_one_item_with_dates_apart() -> None:
    body = "".join(
        f"<p>Paragraph {n} of the report explains what the council decided and why it matters.</p>"
        for n in range(1, 6)
    )
    html = f"""<html lang="en"><head><title>Council budget | Site</title>
    <meta property="og:title" content="Council approves budget">
    <meta property="article:published_time" content="2024-11-04T08:00:00+00:00">
    <meta property="article:modified_time" content="2024-11-04T09:30:00+00:00"></head>
    <body><nav>Home News</nav><article><h1>Council approves budget</h1>
    <p class="byline">By Ann Lee and Bo Chen</p>
    <p class="dates"><time datetime="2024-11-04T08:00:00Z">8:00</time> ·
    Updated <time datetime="2024-11-04T09:30:00Z">9:30</time></p>{body}</article>
    <aside class="most-read"><h2>Most read</h2><ul><li>Other story</li></ul></aside></body></html>"""
    items = parse(html)
    assert len(items) == 1
    art = items[0]
    assert art.kind == "article" and art.title == "Council approves budget"
    assert art.published_at == datetime(2024, 11, 4, 8, tzinfo=UTC)
    assert art.updated_at == datetime(2024, 11, 4, 9, 30, tzinfo=UTC)
    assert art.authors == ["Ann Lee", "Bo Chen"]
    assert art.body.startswith("Paragraph 1") and art.body.endswith("why it matters.")
    assert "Most read" not in art.body


def test_comment_list_is_not_a_live_blog() -> None:
    comments = "".join(
        f'<li class="comment" id="c{n}"><time datetime="2024-11-04T1{n}:00Z">1{n}:00</time>'
        f"<p>Reader comment number {n} with enough words to look like text.</p></li>"
        for n in range(4)
    )
    article = "".join(
        f"<p>Article paragraph {n} about the harbour strike and the talks.</p>" for n in range(5)
    )
    html = (
        f"<html><head><title>Harbour</title></head><body><article><h1>Harbour</h1>{article}</article>"
        f'<section class="comments"><ol>{comments}</ol></section></body></html>'
    )
    items = parse(html)
    assert [i.kind for i in items] == ["article"]


@pytest.mark.timeout(10)
def test_commenters_bylines_under_one_huge_class_cost_one_read_of_it() -> None:
    """Each byline candidate looks at its ancestors' class and id for "comments"; 1,600
    candidates under one ancestor with a 400 KB class read that class 1,600 times (12.6 s
    for this page) until the answer was kept per ancestor."""
    readers = '<span class="byline">Reader</span>' * 1_600
    body = "<p>Dockworkers at the northern terminal left their cranes idle for a second day.</p>" * 5
    html = (
        "<html><head><title>Harbour cranes idle</title></head><body><article><h1>Harbour cranes idle</h1>"
        f'<div class="comments"><div class="{"x" * 400_000}">{readers}</div></div>'
        f'<p class="byline">By Olena Hrytsenko</p>{body}</article></body></html>'
    )
    started = time.perf_counter()
    [art] = parse(html)
    assert art.authors == ["Olena Hrytsenko"]
    assert time.perf_counter() - started < 1.0


def test_no_text_raises_no_items() -> None:
    with pytest.raises(ParseError) as err:
        parse("<html><body><nav>Home</nav></body></html>")
    assert err.value.reason == "no_items"


def test_hostile_jsonld_nesting_is_bounded() -> None:
    deep = '{"@graph":[' * 400 + '{"@type":"WebPage"}' + "]}" * 400
    html = (
        f'<html><head><script type="application/ld+json">{deep}</script></head><body><p>x</p></body></html>'
    )
    with pytest.raises(ParseError):
        parse(html)


def _entry(html: str) -> NewsItem:
    return NewsItem(
        id="entry-1",
        kind="article",
        source="f",
        url="https://site.test/live/feed-entry",
        title="Election night live",
        body="whole",
        updated_at=datetime(2024, 11, 6, 7, 30, tzinfo=UTC),
        fetched_at=FETCHED,
        content_hash=content_hash(title="Election night live", body="whole", authors=[], url=None),
    )


def test_split_live_entry_stamped_paragraphs() -> None:
    html = (
        "<p>Follow the count with us through the night.</p>"
        "<p><strong>2:20 AM</strong></p><p>Turnout passes 60 percent.</p><p>Officials expect a record.</p>"
        "<p><strong>11:50 PM</strong></p><p>The first ward declares.</p>"
    )
    fetched = datetime(2024, 11, 6, 8, tzinfo=UTC)
    doc = RawDocument(b"", "https://site.test/feed", "f", fetched, timezone="America/New_York")
    items = split_live_entry(doc, _entry(html), html)
    assert [i.kind for i in items] == ["article", "live_update", "live_update"]
    assert items[0].body == "Follow the count with us through the night."
    assert items[1].title == "Turnout passes 60 percent."
    assert items[1].published_at == datetime(2024, 11, 6, 7, 20, tzinfo=UTC)
    assert items[2].published_at == datetime(2024, 11, 6, 4, 50, tzinfo=UTC)
    assert {i.parent_id for i in items[1:]} == {"entry-1"}


def test_split_live_entry_plain_entry_is_not_split() -> None:
    html = "<p>One ordinary story with a single paragraph.</p>"
    doc = RawDocument(b"", "https://site.test/feed", "f", FETCHED)
    assert split_live_entry(doc, _entry(html), html) == []


def test_five_hundred_fragments_each_become_an_item() -> None:
    """How fast is measured by bench/parse.py (500-fragment pages in every shape), not here."""
    base = datetime(2024, 11, 4, 17, tzinfo=UTC)
    blocks = "".join(
        f'<article id="block-{i}" class="block"><time datetime="{(base - timedelta(minutes=5 * i)).isoformat()}">'
        f"x</time><h2>Headline number {i}</h2><p>Body text of post {i} with a sentence or two.</p>"
        f"<p>Second paragraph of post {i}.</p></article>"
        for i in range(500)
    )
    html = f'<html><body><div class="blocks">{blocks}</div></body></html>'
    items = parse(html)
    assert len(items) == 500
    assert len({item.id for item in items}) == 500
    assert {item.published_at for item in items} == {base - timedelta(minutes=5 * i) for i in range(500)}
