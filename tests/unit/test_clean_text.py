"""Clean text in every field, whatever its source (issue 11, item 6).

Entities, double escaping, NUL and C1 controls, ``javascript:`` links: first the pure
functions of :mod:`consumers.parse.clean`, then every source end to end through
``parse_document`` (feed title/summary/author, JSON Feed, JSON-LD, microdata, meta/og,
text capture), then a live blog whose JSON-LD updates are escaped while its markup is not.
"""

# ruff: noqa: E501  (inline documents read better unwrapped)

from __future__ import annotations

import html
import json
import re
import unicodedata
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.parse.clean import (
    MAX_URL_LENGTH,
    clean_item,
    clean_language,
    clean_text,
    clean_url,
    decode_entities,
)
from consumers.parse.dispatch import parse_document
from consumers.parse.document import RawDocument
from ingestor.models import Enclosure, NewsItem, content_hash

FETCHED = datetime(2024, 11, 5, tzinfo=UTC)
#: A NUL in a document's first kilobyte makes it binary (dispatch.sniff): NULs that reach
#: items sit further in.
PAD = "<!-- " + "padding " * 140 + "-->"
#: An entity html.unescape would decode (with its semicolon: see clean._ENTITY on why
#: semicolon-less legacy forms such as "&not" in "?a=1&not=2" are left alone).
_ENTITY_LIKE = re.compile(r"&(?:#[0-9]+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);")


def leftover_entities(text: str) -> list[str]:
    return [m.group() for m in _ENTITY_LIKE.finditer(text) if html.unescape(m.group()) != m.group()]


def is_bad_char(char: str, *, multiline: bool) -> bool:
    if multiline and char == "\n":
        return False
    code = ord(char)
    return (
        code < 0x20
        or 0x7F <= code <= 0x9F
        or 0xD800 <= code <= 0xDFFF
        or 0xFDD0 <= code <= 0xFDEF
        or (code & 0xFFFE) == 0xFFFE
    )


def item_texts(item: NewsItem) -> list[str]:
    return [
        item.title,
        item.body,
        item.summary or "",
        *item.authors,
        *item.categories,
        item.url or "",
        *(e.url for e in item.enclosures),
    ]


def assert_clean(items: list[NewsItem]) -> None:
    for item in items:
        for text in item_texts(item):
            assert not leftover_entities(text), (item.id, text)
            assert not any(is_bad_char(c, multiline=True) for c in text), (item.id, text)
        if item.url is not None:
            assert item.url.startswith(("http://", "https://")), item.url
        assert all(e.url.startswith(("http://", "https://")) for e in item.enclosures)
        assert item.content_hash == content_hash(
            title=item.title, body=item.body, authors=item.authors, url=item.url, summary=item.summary
        )


def parse(
    body: str | bytes, url: str = "https://news.test/page", content_type: str | None = None
) -> list[NewsItem]:
    raw = body.encode() if isinstance(body, str) else body
    doc = RawDocument(
        body=raw,
        url=url,
        feed_id="f",
        fetched_at=FETCHED,
        content_type=content_type,
        timezone="Europe/London",
    )
    items = parse_document(doc)
    assert_clean(items)
    return items


# --- clean_text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("Minister&#39;s plan", "Minister's plan"),
        ("Minister&#8217;s plan", "Minister\u2019s plan"),
        ("Minister&amp;#39;s plan", "Minister's plan"),
        ("Minister&amp;amp;#8217;s plan", "Minister\u2019s plan"),
        ("Fish &#38;#38; chips", "Fish & chips"),
        ("Fish &amp;amp; chips", "Fish & chips"),
        ("caf&eacute; &lt;b&gt;", "caf\u00e9 <b>"),
        ("a&nbsp;&nbsp;b", "a b"),
        ("Storm\x00 hits\x01 coast\x7f", "Storm hits coast"),
        ("C1\x85controls\x9b2J\x80 gone", "C1 controls2J gone"),
        ("lone\ud800 surrogate\ufffe\U0001ffff", "lone surrogate"),
        ("  spread\t over\r\nlines \u2028 ", "spread over lines"),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        # Not entities: no semicolon, or not a name at all; kept as written.
        ("AT&T, R&D, ?a=1&not=2, &copyright, & co", "AT&T, R&D, ?a=1&not=2, &copyright, & co"),
        ("&unknown; stays", "&unknown; stays"),
        (
            "Київ: обстріл \u2014 ok \U0001f1fa\U0001f1e6 \u0627\u200f",
            "Київ: обстріл \u2014 ok \U0001f1fa\U0001f1e6 \u0627\u200f",
        ),
    ],
)
def test_clean_text_one_line(raw: str, want: str) -> None:
    assert clean_text(raw) == want


def test_clean_text_body_keeps_paragraphs() -> None:
    raw = "  First&#39;s line \n second\tline\r\n\r\n\n\n Next\x00 para&amp;#8217;s\u2029Third \x0c"
    assert clean_text(raw, multiline=True) == "First's line\nsecond line\n\nNext para\u2019s\n\nThird"


def test_clean_input_is_returned_as_is() -> None:
    title = "Minister's plan: what's next"
    body = "First paragraph.\nSecond line.\n\nSecond paragraph."
    assert clean_text(title) is title
    assert clean_text(body, multiline=True) is body
    assert clean_text("") == ""


def test_entities_hidden_by_removed_characters_are_decoded() -> None:
    assert clean_text("&amp;\x00#39;s") == "'s"
    assert clean_text("&amp;&#8203;#39;s") == "'s"


def test_decoding_is_bounded_and_linear() -> None:
    deep = "&" + "amp;" * 50_000 + "#39;"
    assert decode_entities(deep) == "'"
    assert clean_text("&amp;" * 100_000) == "&" * 100_000


# Pieces that make entities, half entities, escapes of escapes, controls and spaces.
_PIECES = st.sampled_from(
    [
        "&",
        "amp;",
        "#",
        "#39;",
        "39",
        ";",
        "&#39;",
        "&amp;",
        "&#8217;",
        "&#x27;",
        "&#38;",
        "&lt;",
        "&nbsp;",
        "lt",
        "x",
        " ",
        "\n",
        "\n\n",
        "\t",
        "\r",
        "\x00",
        "\x1b",
        "\x85",
        "\x9b",
        "\u2028",
        "\u200b",
        "\ud800",
        "\ufffe",
        "é",
        "Київ",
    ]
)
_TEXTS = st.one_of(st.text(), st.lists(_PIECES, max_size=40).map("".join))


@settings(max_examples=300, deadline=None)
@given(_TEXTS, st.booleans())
def test_clean_text_is_idempotent_and_leaves_no_entity_or_control(raw: str, multiline: bool) -> None:
    once = clean_text(raw, multiline=multiline)
    assert clean_text(once, multiline=multiline) == once
    assert not leftover_entities(once)
    assert not any(is_bad_char(c, multiline=multiline) for c in once)
    if not multiline:
        assert "\n" not in once and once == once.strip() and "  " not in once
    else:
        assert "\n\n\n" not in once and once == once.strip()
    once.encode("utf-8")  # no lone surrogate left to fail an encoder


# --- clean_url, clean_language ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "base", "want"),
    [
        ("https://news.test/a?b=1&amp;c=2", None, "https://news.test/a?b=1&c=2"),
        ("  \x00https://news.test/a\n", None, "https://news.test/a"),
        ("HTTPS://news.test/a", None, "https://news.test/a"),
        ("https://news.test/a b", None, "https://news.test/a%20b"),
        ("/story/1", "https://news.test/feed", "https://news.test/story/1"),
        ("//cdn.news.test/x.mp3", "https://news.test/feed", "https://cdn.news.test/x.mp3"),
        ("/story/1", None, None),
        ("//cdn.news.test/x.mp3", None, None),
        ("javascript:alert(1)", None, None),
        ("javascript:alert(1)", "https://news.test/", None),
        (" JaVaScRiPt:alert(1)", None, None),
        ("java\tscript:alert(1)", None, None),
        ("jav&#x09;ascript:alert(1)", None, None),
        ("data:text/html,<script>alert(1)</script>", None, None),
        ("vbscript:msgbox", None, None),
        ("file:///etc/passwd", None, None),
        ("https://news.test/a\x00b", None, None),
        ("https:///no-host", None, None),
        ("http://[::1", None, None),
        ("https://news.test/" + "a" * MAX_URL_LENGTH, None, None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_clean_url(raw: str | None, base: str | None, want: str | None) -> None:
    assert clean_url(raw, base) == want


def test_clean_url_keeps_a_clean_url_as_is() -> None:
    url = "https://news.test/live/x#post-1"
    assert clean_url(url) is url


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("en", "en"),
        ("pt-BR", "pt-BR"),
        ("en_GB", "en-GB"),
        (" uk ", "uk"),
        ("zh-Hant-TW", "zh-Hant-TW"),
        ("", None),
        ("e", None),
        ("en\x00", None),
        ("<script>", None),
        ("english language", None),
        (None, None),
    ],
)
def test_clean_language(raw: str | None, want: str | None) -> None:
    assert clean_language(raw) == want


# --- clean_item ----------------------------------------------------------------------------------


def make_item(**fields: object) -> NewsItem:
    base: dict[str, object] = {
        "id": "i1",
        "kind": "article",
        "source": "f",
        "url": "https://news.test/a",
        "title": "Title",
        "body": "Body.",
        "summary": None,
        "authors": ["Ann Lee"],
        "fetched_at": FETCHED,
    }
    base.update(fields)
    base.setdefault(
        "content_hash",
        content_hash(
            title=str(base["title"]),
            body=str(base["body"]),
            authors=list(base["authors"]),  # type: ignore[call-overload]
            url=base["url"],  # type: ignore[arg-type]
            summary=base["summary"],  # type: ignore[arg-type]
        ),
    )
    return NewsItem.model_validate(base)


def test_clean_item_returns_a_clean_item_unchanged() -> None:
    item = make_item(
        summary="A summary.",
        categories=["UK"],
        enclosures=[Enclosure(url="https://news.test/a.mp3")],
        language="en",
    )
    assert clean_item(item) is item


def test_clean_item_cleans_every_field_and_rehashes() -> None:
    item = make_item(
        title="Minister&amp;#39;s\x00 plan",
        body="Para&#8217;s one\x9b\n\n\n\nPara two",
        summary="Para&#8217;s one\n\nPara two",  # the same as the body once clean: dropped
        authors=["Ann&#39;s Desk", " ann&#39;s desk ", "", "\x00"],
        categories=["News &amp;amp; politics", "", "news &amp; politics"],
        url=" javascript:alert(1)",
        enclosures=[
            Enclosure(url="data:audio/mp3;base64,AAAA", type="audio/mpeg"),
            Enclosure(url="https://news.test/a.mp3", type="audio/mpeg\x00"),
        ],
        language="en\x00",
    )
    cleaned = clean_item(item)
    assert cleaned.title == "Minister's plan"
    assert cleaned.body == "Para\u2019s one\n\nPara two"
    assert cleaned.summary is None
    assert cleaned.authors == ["Ann's Desk"]
    assert cleaned.categories == ["News & politics"]
    assert cleaned.url is None
    assert cleaned.enclosures == [Enclosure(url="https://news.test/a.mp3", type="audio/mpeg")]
    assert cleaned.language is None
    assert_clean([cleaned])
    assert cleaned.content_hash != item.content_hash


def test_live_fragment_hash_leaves_summary_out_as_fragments_do() -> None:
    item = make_item(kind="live_update", title="It&#39;s on", parent_id="p")
    cleaned = clean_item(item)
    assert cleaned.summary is None
    assert cleaned.content_hash == content_hash(
        title="It's on", body="Body.", authors=["Ann Lee"], url="https://news.test/a"
    )


# --- every source, end to end ---------------------------------------------------------------------


def test_rss_fields_entities_nul_and_javascript_links() -> None:
    rss = """<?xml version="1.0" encoding="utf-8"?>
    <rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>t</title><link>https://news.test/</link>
    <item><guid isPermaLink="false">g1</guid><title>Minister&amp;amp;#39;s plan</title>
    <link>javascript:alert(1)</link>
    <description>Council&amp;amp;#8217;s vote &amp;#39;today&amp;#39;</description>
    <dc:creator>Ann O&amp;amp;#39;Neil</dc:creator><category>Politics &amp;amp;amp; law</category>
    <enclosure url="javascript:alert(2)" type="audio/mpeg" length="1"/>
    </item>
    <item><guid isPermaLink="false">g2</guid><title>Second &amp;#8217;one&amp;#8217;</title><link> HTTPS://news.test/2 </link>
    <description>Plain</description><enclosure url="/a.mp3" type="audio/mpeg" length="1"/></item>
    </channel></rss>"""
    first, second = parse(rss, url="https://news.test/feed.xml")
    assert first.title == "Minister's plan"
    assert first.body == "Council\u2019s vote 'today'"
    assert first.authors == ["Ann O'Neil"]
    assert first.categories == ["Politics & law"]
    # Decided: a javascript: link leaves the item without a URL (the feed's URL is not
    # where the entry lives); its id still follows its guid.
    assert first.url is None
    assert first.enclosures == []
    assert second.title == "Second \u2019one\u2019"
    assert second.url == "https://news.test/2"
    assert [e.url for e in second.enclosures] == ["https://news.test/a.mp3"]


def test_json_feed_fields() -> None:
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "t",
        "home_page_url": "https://news.test/",
        "items": [
            {
                "id": "1",
                "url": "javascript:alert(1)",
                "external_url": "https://other.test/story",
                "title": "Tom&#39;s \u0000story &amp;amp; more",
                "content_text": "Line&#8217;s one\u0000\u009b\n\nLine two",
                "summary": "Short&amp;#39;s",
                "authors": [{"name": "Ann&#39;s"}],
                "tags": ["A &amp; B"],
                "attachments": [
                    {"url": "data:audio/mpeg;base64,AA", "mime_type": "audio/mpeg"},
                    {"url": "/pod.mp3", "mime_type": "audio/mpeg"},
                ],
            }
        ],
    }
    (item,) = parse(json.dumps(feed), url="https://news.test/feed.json", content_type="application/json")
    assert item.title == "Tom's story & more"
    assert item.body == "Line\u2019s one\n\nLine two"
    assert item.summary == "Short's"
    assert item.authors == ["Ann's"]
    assert item.categories == ["A & B"]
    assert item.url == "https://other.test/story"
    assert [e.url for e in item.enclosures] == ["https://news.test/pod.mp3"]


def test_jsonld_and_meta_article_fields_and_javascript_canonical() -> None:
    ld = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": "Council&amp;#39;s budget &#8216;approved&#8217;",
        "author": [
            {"@type": "Person", "name": "Ann O&#39;Neil"},
            {"@type": "Person", "name": "Bo&nbsp;Chen\u0000"},
        ],
        "articleSection": ["Politics &amp;amp; law"],
        "datePublished": "2024-11-04T08:00:00Z",
    }
    paragraphs = "".join(
        f"<p>Paragraph {n} of the report explains what the council&#39;s vote decided and why it matters.</p>"
        for n in range(6)
    )
    page = f"""<html lang="en"><head><title>Council | Site</title>
    <link rel="canonical" href="javascript:alert(1)"><meta property="og:url" content="data:text/html,x">
    <script type="application/ld+json">{json.dumps(ld)}</script></head>
    <body><article><h1>Council's budget \u2018approved\u2019</h1>{paragraphs}</article></body></html>"""
    (item,) = parse(page, url="https://news.test/council")
    assert item.title == "Council's budget \u2018approved\u2019"
    assert item.url == "https://news.test/council"  # the document URL, not javascript:
    assert "Ann O'Neil" in item.authors and "Bo Chen" in item.authors
    assert item.categories == ["Politics & law"]


def test_og_meta_title_double_escaped() -> None:
    paragraphs = "".join(
        f"<p>Paragraph {n} tells the story of the storm and of the town that weathered it.</p>"
        for n in range(6)
    )
    page = f"""<html lang="en"><head><meta property="og:title" content="Storm&amp;amp;#39;s toll &amp;#8216;rises&amp;#8217;">
    <meta name="author" content="Ann O&amp;#39;Neil"><meta property="og:url" content="https://news.test/storm?a=1&amp;amp;b=2"></head>
    <body><article><h1>Storm's toll \u2018rises\u2019</h1>{paragraphs}</article></body></html>"""
    (item,) = parse(page, url="https://news.test/storm")
    assert item.title == "Storm's toll \u2018rises\u2019"
    assert item.url == "https://news.test/storm?a=1&b=2"


def test_microdata_live_posts() -> None:
    posts = "".join(
        f"""<div itemprop="liveBlogUpdate" itemscope itemtype="https://schema.org/BlogPosting" id="p{n}">
        <h2 itemprop="headline">Post&amp;#39;s number {n}</h2>
        <time itemprop="datePublished" datetime="2024-11-04T1{n}:00:00Z">1{n}:00</time>
        <a itemprop="url" href="javascript:alert({n})"></a>
        <div itemprop="articleBody"><p>Body of post {n} says it&amp;#8217;s\x00 fine and more text follows here.</p></div></div>"""
        for n in range(3)
    )
    page = f"""<html lang="en"><head>{PAD}<link rel="canonical" href="https://news.test/live"></head><body>
    <div itemscope itemtype="https://schema.org/LiveBlogPosting">{posts}</div></body></html>"""
    items = [i for i in parse(page, url="https://news.test/live") if i.kind == "live_update"]
    assert [i.title for i in items] == [f"Post's number {n}" for n in (2, 1, 0)]
    assert [i.url for i in items] == [f"https://news.test/live#p{n}" for n in (2, 1, 0)]
    assert items[0].body == "Body of post 2 says it\u2019s fine and more text follows here."


def test_text_capture_entities_and_nul() -> None:
    text = (
        "Kyiv&#39;s live updates\n\n" + "The city&#39;s day, hour by hour, as it happened. " * 25 + "\n\n"
        "Nov 4, 2024, 10:05 AM\nFirst update&amp;#8217;s text\x00 about the city and its people.\n\n"
        "Nov 4, 2024, 9:00 AM\nSecond update\x9b text about the region &amp; its roads.\n"
    )
    items = parse(text, url="https://news.test/capture.txt", content_type="text/plain; charset=utf-8")
    joined = " ".join(t for i in items for t in item_texts(i))
    assert "&#" not in joined and "&amp;" not in joined


# --- a live blog whose JSON-LD is escaped and whose markup is not --------------------------------

_ESCAPES = ("&#39;", "&#8217;", "&amp;#39;")
_DECODED = ("'", "\u2019", "'")


def live_blog(*, anchored: bool, jsonld: bool = True) -> str:
    """A LiveBlogPosting declaring 9 updates whose headlines and bodies are HTML-escaped
    (once, as a curly quote, and twice), while the markup shows the same posts decoded."""
    updates, posts = [], []
    for n in range(9):
        esc, real = _ESCAPES[n % 3], _DECODED[n % 3]
        update: dict[str, str] = {
            "@type": "BlogPosting",
            "headline": f"Minister{esc}s update {n} on the council{esc}s plan",
            "articleBody": f"<p>Update {n}: the council{esc}s spokesperson said it{esc}s under review.</p>",
            "datePublished": f"2024-11-04T1{n}:00:00+00:00",
        }
        if anchored:
            update["url"] = f"https://news.test/live/storm#post-{n}"
        updates.append(update)
        anchor = f' id="post-{n}"' if anchored else ""
        posts.append(
            f'<article{anchor} class="post"><time datetime="2024-11-04T1{n}:00:00Z">1{n}:00</time>'
            f"<h2>Minister{real}s update {n} on the council{real}s plan</h2>"
            f"<p>Update {n}: the council{real}s spokesperson said it{real}s under review.</p></article>"
        )
    ld = {
        "@context": "https://schema.org",
        "@type": "LiveBlogPosting",
        "headline": "Council&#39;s storm live",
        "liveBlogUpdate": updates[::-1],
    }
    script = f'<script type="application/ld+json">{json.dumps(ld)}</script>' if jsonld else ""
    return (
        f'<html lang="en"><head><link rel="canonical" href="https://news.test/live/storm">{script}</head>'
        f"<body><main><h1>Council's storm live</h1>"
        f"<p>Our intro paragraph about the council's storm response is long enough to be kept.</p>"
        f'<div class="stream">{"".join(posts[::-1])}</div></main></body></html>'
    )


@pytest.mark.parametrize("anchored", [True, False])
def test_every_escaped_jsonld_update_is_its_own_item_matching_the_markup(anchored: bool) -> None:
    items = parse(live_blog(anchored=anchored), url="https://news.test/live/storm")
    updates = [i for i in items if i.kind == "live_update"]
    want = [
        f"Minister{_DECODED[n % 3]}s update {n} on the council{_DECODED[n % 3]}s plan"
        for n in range(8, -1, -1)
    ]
    assert [u.title for u in updates] == want
    assert len({u.id for u in updates}) == 9
    assert [u.body for u in updates] == [
        f"Update {n}: the council{_DECODED[n % 3]}s spokesperson said it{_DECODED[n % 3]}s under review."
        for n in range(8, -1, -1)
    ]
    # The posts' text is recognised in the markup, so none of it leaks into the page's item.
    for article in (i for i in items if i.kind == "article"):
        assert "Update" not in article.body and "Minister" not in article.body
    # The same posts read from the markup alone get the same ids: the JSON-LD and block
    # readers agree on who is who.
    from_markup = [
        i
        for i in parse(live_blog(anchored=anchored, jsonld=False), url="https://news.test/live/storm")
        if i.kind == "live_update"
    ]
    assert [(u.id, u.title) for u in from_markup] == [(u.id, u.title) for u in updates]


def test_normalised_forms_are_left_alone() -> None:
    # Decoding must not normalise Unicode: a decomposed é stays decomposed.
    decomposed = unicodedata.normalize("NFD", "caf\u00e9 &amp; bar")
    assert clean_text(decomposed) == unicodedata.normalize("NFD", "caf\u00e9 & bar")


def test_microdata_headline_given_only_as_meta_content() -> None:
    posts = "".join(
        f"""<div itemprop="liveBlogUpdate" itemscope itemtype="https://schema.org/BlogPosting" id="m{n}">
        <meta itemprop="headline" content="It&amp;amp;#39;s update {n}">
        <time itemprop="datePublished" datetime="2024-11-04T1{n}:00:00Z">1{n}:00</time>
        <div itemprop="articleBody"><p>Body of update {n}, with enough words to be a post.</p></div></div>"""
        for n in range(2)
    )
    page = f"""<html lang="en"><head><link rel="canonical" href="https://news.test/live"></head><body>
    <div itemscope itemtype="https://schema.org/LiveBlogPosting">{posts}</div></body></html>"""
    items = [i for i in parse(page, url="https://news.test/live") if i.kind == "live_update"]
    assert [i.title for i in items] == ["It's update 1", "It's update 0"]
