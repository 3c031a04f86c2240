"""Lead images (consumers/parse/images.py) and ``body_source`` on every item: real feed shapes
from the robustness corpus and real pages from the article dev set (both read in place under
``../shared/corpus``, skipped without them), plus small hand-written documents for the rules."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from consumers.parse import RawDocument, parse_document
from consumers.parse.images import MAX_CANDIDATES, feed_entry_image, jsonld_image, pick_image
from ingestor.models import NewsItem, content_hash

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
FEEDS = SHARED / "feeds"
ARTICLES = SHARED / "articles-dev"
NOW = datetime(2024, 11, 4, 12, tzinfo=UTC)


def parse(body: bytes, url: str = "https://example.org/feed", **fields: Any) -> list[NewsItem]:
    return parse_document(RawDocument(body=body, url=url, feed_id="f", fetched_at=NOW, **fields))


def corpus_feed(relative: str) -> list[NewsItem]:
    path = FEEDS / relative
    if not path.is_file():
        pytest.skip(f"feed corpus not found at {FEEDS}")
    return parse(path.read_bytes())


# ---- feeds: real shapes ---------------------------------------------------------------------------


def test_media_content_renditions_pick_the_largest_declared() -> None:
    """The Guardian lists each picture at 140 and 460 pixels, with neither type nor medium."""
    items = corpus_feed("rss-parser-inputs/test/input/guardian.rss")
    assert all(item.image and "w=460" in item.image for item in items[:5])
    assert all(item.body_source == "feed" for item in items)


def test_media_content_first_picture_beats_a_later_avatar() -> None:
    """TechCrunch: the story's picture, then the author's gravatar, both medium=image, no size."""
    (first, *_rest) = corpus_feed("feedjira-samples/spec/sample_feeds/TechCrunch.xml")
    assert first.image == "http://tctechcrunch2011.files.wordpress.com/2011/11/angies-list.jpeg?w=150"


def test_thumbnail_when_media_content_is_not_a_picture() -> None:
    """YouTube: media:content is the flash player; the thumbnail is the picture."""
    (video,) = corpus_feed("feed-rs-fixtures/feed-rs/fixture/atom/atom_mediarss_youtube_1.xml")
    assert video.image == "https://i1.ytimg.com/vi/0A1ouV7iD8o/hqdefault.jpg"


def test_image_typed_media_content_next_to_audio() -> None:
    """A podcast episode: audio media:content and an image/jpeg one."""
    (episode,) = corpus_feed("feed-rs-fixtures/feed-rs/fixture/rss2/rss_2.0_spiegel.xml")
    assert episode.image is not None and episode.image.startswith("https://www.omnycontent.com/")
    assert "image.jpg" in episode.image


def test_json_feed_image() -> None:
    items = corpus_feed("feedjira-samples/spec/sample_feeds/json_feed_with_escaped_uris.json")
    assert items[0].image == (
        "https://lukedorny.com/media/pages/updates/new-font/4d77b179bd-1736211467/asketch1-500x-crop.jpg"
    )


def test_entries_without_pictures_have_none() -> None:
    items = corpus_feed("feed-rs-fixtures/feed-rs/fixture/rss2/rss_2.0_bbc.xml")  # audio only
    assert items and all(item.image is None for item in items)


# ---- feeds: the rules, on hand-written entries ----------------------------------------------------


RSS = """<?xml version="1.0"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>t</title>
<link>https://example.org/</link>{items}</channel></rss>"""


def rss_item(extra: str, guid: str = "a") -> str:
    return (
        f"<item><guid>{guid}</guid><title>T {guid}</title><link>https://example.org/{guid}</link>"
        f"<description>Text.</description>{extra}</item>"
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('<enclosure url="/img/pic.png" type="image/png" length="10"/>', "https://example.org/img/pic.png"),
        ('<enclosure url="https://cdn.example/ep.mp3" type="audio/mpeg" length="10"/>', None),
        ('<media:thumbnail url="javascript:alert(1)"/>', None),
        ('<media:thumbnail url="data:image/png;base64,AAAA"/>', None),
        (
            '<media:content url="https://cdn.example/small.jpg" medium="image" width="300"/>'
            '<media:content url="https://cdn.example/big.jpg" medium="image" width="1200"/>'
            '<media:thumbnail url="https://cdn.example/thumb.jpg" width="5000"/>',
            "https://cdn.example/big.jpg",
        ),
        (
            '<media:content url="https://cdn.example/a.jpg" medium="image" width="huge"/>'
            '<media:content url="https://cdn.example/b.jpg" medium="image" width="99999999"/>',
            "https://cdn.example/a.jpg",
        ),
        ('<media:content url="https://cdn.example/clip.mp4" medium="video"/>', None),
    ],
)
def test_feed_image_rules(extra: str, expected: str | None) -> None:
    (item,) = parse(RSS.format(items=rss_item(extra)).encode())
    assert item.image == expected


def test_many_candidates_are_capped() -> None:
    entry = {
        "media_content": [
            {"url": f"https://cdn.example/{i}.jpg", "medium": "image", "width": str(i)} for i in range(10_000)
        ]
    }
    assert feed_entry_image(entry, "https://example.org/") == f"https://cdn.example/{MAX_CANDIDATES - 1}.jpg"


def test_the_image_is_not_part_of_the_content_hash() -> None:
    with_image = parse(
        RSS.format(items=rss_item('<media:thumbnail url="https://cdn.example/t.jpg"/>')).encode()
    )
    without = parse(RSS.format(items=rss_item("")).encode())
    assert with_image[0].image and without[0].image is None
    assert with_image[0].content_hash == without[0].content_hash
    item = without[0]
    assert item.content_hash == content_hash(
        title=item.title, body=item.body, authors=item.authors, url=item.url, summary=item.summary
    )


def test_pick_and_jsonld_shapes() -> None:
    assert (
        pick_image([("https://a.example/1.jpg", 0), ("https://a.example/2.jpg", 0)])
        == "https://a.example/1.jpg"
    )
    assert pick_image([("/x.jpg", 0)], "https://a.example/p/") == "https://a.example/x.jpg"
    assert pick_image([(None, 0), (42, 5), ("https://a.example/ok.jpg", 0)]) == "https://a.example/ok.jpg"
    crops = [
        {"@type": "ImageObject", "url": "https://a.example/1x1.jpg", "width": 500, "height": 500},
        {"@type": "ImageObject", "url": "https://a.example/16x9.jpg", "width": {"value": 1600}},
        "https://a.example/plain.jpg",
    ]
    assert jsonld_image(crops, None) == "https://a.example/16x9.jpg"
    assert jsonld_image({"contentUrl": ["https://a.example/c.jpg"]}, None) == "https://a.example/c.jpg"
    graph = {
        "https://a.example/#primary": {"@id": "https://a.example/#primary", "url": "https://a.example/p.jpg"}
    }
    assert jsonld_image({"@id": "https://a.example/#primary"}, None, graph) == "https://a.example/p.jpg"
    assert jsonld_image({"@id": "https://a.example/#missing"}, None, graph) is None
    nested: object = "https://a.example/deep.jpg"
    for _ in range(50):
        nested = [nested]
    assert jsonld_image(nested, None) is None  # bounded depth


# ---- pages ------------------------------------------------------------------------------------


PAGE = """<!doctype html><html lang="en"><head><title>Harbour reopens</title>{head}</head>
<body><article><h1>Harbour reopens</h1>
<p>The harbour reopened on Monday after a week of repairs to the quay and the lock gates.</p>
<p>Ferries to the islands run to the summer timetable again, the port authority said.</p>
<p>Fishing boats that had moored in the next town are expected back by the weekend.</p>
</article></body></html>"""


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (
            '<meta property="og:image" content="/img/og.jpg"><meta name="twitter:image" content="/tw.jpg">',
            "https://news.example/img/og.jpg",
        ),
        ('<meta name="twitter:image" content="https://cdn.example/tw.jpg">', "https://cdn.example/tw.jpg"),
        ('<meta property="og:image" content="javascript:alert(1)">', None),
        (
            '<script type="application/ld+json">{"@context":"https://schema.org","@type":"NewsArticle",'
            '"headline":"Harbour reopens","image":[{"@type":"ImageObject","url":"https://cdn.example/s.jpg",'
            '"width":300},{"@type":"ImageObject","url":"https://cdn.example/l.jpg","width":1200}]}</script>'
            '<meta name="twitter:image" content="https://cdn.example/tw.jpg">',
            "https://cdn.example/l.jpg",
        ),
        (
            '<script type="application/ld+json">{"@context":"https://schema.org","@graph":['
            '{"@type":"Article","headline":"Harbour reopens","image":{"@id":"https://news.example/a#primaryimage"}},'
            '{"@type":"ImageObject","@id":"https://news.example/a#primaryimage","contentUrl":"https://cdn.example/y.jpg"}'
            "]}</script>",
            "https://cdn.example/y.jpg",
        ),
        ("", None),
    ],
)
def test_page_image(head: str, expected: str | None) -> None:
    (article,) = parse(PAGE.format(head=head).encode(), url="https://news.example/a", format="html")
    assert article.image == expected and article.body_source == "page"


LIVE = """<!doctype html><html><head><title>Live: storm</title>
<meta property="og:image" content="https://cdn.example/page.jpg">
<script type="application/ld+json">{"@context":"https://schema.org","@type":"LiveBlogPosting",
"headline":"Live: storm","url":"https://news.example/live","liveBlogUpdate":[
{"@type":"BlogPosting","headline":"Trees down","url":"https://news.example/live#p2",
 "datePublished":"2024-11-04T10:05:00Z","articleBody":"Trees are down on the coast road.",
 "image":{"@type":"ImageObject","url":"https://cdn.example/trees.jpg"}},
{"@type":"BlogPosting","headline":"Storm arrives","url":"https://news.example/live#p1",
 "datePublished":"2024-11-04T10:00:00Z","articleBody":"The storm reached the coast at ten."}]}</script>
</head><body><h1>Live: storm</h1></body></html>"""


def test_live_fragments_carry_their_own_image_only() -> None:
    items = parse(LIVE.encode(), url="https://news.example/live", format="html")
    updates = {item.title: item for item in items if item.kind == "live_update"}
    assert updates["Trees down"].image == "https://cdn.example/trees.jpg"
    assert updates["Storm arrives"].image is None  # not the page's
    assert {item.body_source for item in items} == {"page"}


def test_text_captures_and_live_feed_entries_say_where_their_text_came_from() -> None:
    capture = parse(
        b"Harbour reopens\n\nThe harbour reopened on Monday after a week of repairs.\n",
        url="https://news.example/a",
        format="text",
    )
    assert {item.body_source for item in capture} == {"page"}
    live_entry = RSS.format(
        items=rss_item(
            "<content:encoded xmlns:content='http://purl.org/rss/1.0/modules/content/'><![CDATA["
            '<div class="post" id="p2"><time datetime="2024-11-04T10:05:00Z">10:05</time><p>Second.</p></div>'
            '<div class="post" id="p1"><time datetime="2024-11-04T10:00:00Z">10:00</time><p>First.</p></div>'
            "]]></content:encoded>"
        )
    )
    items = parse(live_entry.encode())
    assert any(item.kind == "live_update" for item in items)
    assert {item.body_source for item in items} == {"feed"}


def test_og_image_on_real_article_pages() -> None:
    """The dev set's pages: nearly all declare a lead image; every one found is clean."""
    truth_file = ARTICLES / "ground-truth.json"
    if not truth_file.is_file():
        pytest.skip(f"article dev set not found at {ARTICLES}")
    truth = json.loads(truth_file.read_text(encoding="utf-8"))
    found = 0
    for key, expected in sorted(truth.items())[:40]:
        html = gzip.decompress((ARTICLES / "html" / f"{key}.html.gz").read_bytes())
        items = parse(html, url=expected["url"], format="html", content_type="text/html")
        article = next(item for item in items if item.kind == "article" and item.parent_id is None)
        assert article.body_source == "page"
        if article.image is not None:
            assert article.image.startswith(("http://", "https://")) and " " not in article.image
            found += 1
    assert found >= 36, found  # 173 of the 181 pages have one (og:image, JSON-LD or twitter:image)
