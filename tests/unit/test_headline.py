"""Headline choice and author filtering on article pages written for these tests.

Each page is a small, made-up article with the kind of disagreement real pages have between
``og:title``, JSON-LD ``headline``, ``<h1>`` and ``<title>``, or the kind of non-person
values real bylines carry.  The rules must hold without knowing the site.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from selectolax.lexbor import LexborHTMLParser

import consumers.parse.article as article
from consumers.parse import ParseError, RawDocument, parse_document
from consumers.parse.headline import choose_title, clean_authors
from consumers.parse.live_blocks import block_fragments
from consumers.parse.page_meta import read_page_meta

URL = "https://www.riverside-courier.example/news/2024/11/04/bridge-reopens"
STORY = "".join(
    f"<p>Paragraph {i}: the old bridge reopened to traffic on Monday after two years of repairs "
    "that cost the county more than it had planned and closed the road to the market.</p>"
    for i in range(1, 6)
)


def page(
    *,
    title: str | None = None,
    og_title: str | None = None,
    h1: str | None = None,
    jsonld: dict[str, Any] | list[dict[str, Any]] | None = None,
    site_name: str | None = None,
    author_meta: str | None = None,
    byline: str = "",
) -> str:
    head = []
    if title is not None:
        head.append(f"<title>{title}</title>")
    if og_title is not None:
        head.append(f'<meta property="og:title" content="{og_title}">')
    if site_name is not None:
        head.append(f'<meta property="og:site_name" content="{site_name}">')
    if author_meta is not None:
        head.append(f'<meta name="author" content="{author_meta}">')
    if jsonld is not None:
        head.append(f'<script type="application/ld+json">{json.dumps(jsonld)}</script>')
    heading = f"<h1>{h1}</h1>" if h1 is not None else ""
    return (
        f"<!DOCTYPE html><html lang='en'><head>{''.join(head)}</head><body>"
        f"<header><a class='logo' href='/'>Riverside Courier</a></header>"
        f"<article>{heading}{byline}{STORY}</article></body></html>"
    )


def title_of(html: str) -> str:
    tree = LexborHTMLParser(html)
    meta = read_page_meta(tree, URL, UTC)
    return choose_title(tree, meta, URL)


def parse(html: str) -> Any:
    doc = RawDocument(
        body=html.encode(),
        url=URL,
        feed_id="t",
        fetched_at=datetime(2024, 11, 5, tzinfo=UTC),
        format="html",
    )
    items = parse_document(doc)
    assert [i.kind for i in items] == ["article"]
    return items[0]


# --- title -----------------------------------------------------------------------------------


def test_site_name_suffix_is_removed_from_title_tag() -> None:
    html = page(title="Bridge reopens after two years | Riverside Courier", site_name="Riverside Courier")
    assert title_of(html) == "Bridge reopens after two years"


def test_site_name_known_only_from_host_is_removed() -> None:
    html = page(title="Bridge reopens after two years - RiversideCourier")
    assert title_of(html) == "Bridge reopens after two years"


def test_site_name_prefix_and_publisher_from_jsonld() -> None:
    html = page(
        title="The Courier Group :: Bridge reopens after two years",
        jsonld={"@type": "WebPage", "publisher": {"@type": "Organization", "name": "The Courier Group"}},
    )
    assert title_of(html) == "Bridge reopens after two years"


def test_agreement_beats_a_teaser_in_og_title() -> None:
    html = page(
        title="Bridge reopens after two years | Riverside Courier",
        og_title="You won't believe what happened on the old bridge",
        h1="Bridge reopens after two years",
        site_name="Riverside Courier",
    )
    assert title_of(html) == "Bridge reopens after two years"


def test_agreement_beats_an_seo_headline_in_jsonld() -> None:
    html = page(
        title="County bridge open again after repairs",
        og_title="County bridge open again after repairs",
        h1="County bridge open again after repairs",
        jsonld={"@type": "NewsArticle", "headline": "bridge reopens county repairs traffic market road"},
    )
    assert title_of(html) == "County bridge open again after repairs"


def test_section_prefix_dropped_when_h1_has_the_headline() -> None:
    html = page(title="Opinion | Why the bridge took two years", h1="Why the bridge took two years")
    assert title_of(html) == "Why the bridge took two years"


def test_headline_with_a_section_suffix_is_not_cut_to_the_section() -> None:
    # "| Editorial" is the affix; the one-word candidate must not win.
    html = page(
        title="The Courier view on the bridge: two years too long | Editorial",
        og_title="The Courier view on the bridge: two years too long | Editorial",
        h1="Editorial",
    )
    assert title_of(html) == "The Courier view on the bridge: two years too long | Editorial"


def test_a_dash_inside_the_headline_is_kept() -> None:
    html = page(
        title="Bridge review - a fine repair, a long wait - Riverside Courier",
        h1="Bridge review - a fine repair, a long wait",
        site_name="Riverside Courier",
    )
    assert title_of(html) == "Bridge review - a fine repair, a long wait"


def test_site_logo_h1_loses_to_the_declared_headline() -> None:
    html = page(
        title="Bridge reopens after two years | Riverside Courier",
        og_title="Bridge reopens after two years",
        h1="Riverside Courier",
        site_name="Riverside Courier",
    )
    assert title_of(html) == "Bridge reopens after two years"


def test_entities_in_declared_titles_are_decoded() -> None:
    html = page(og_title="Bridge &amp;amp; road reopen", title="Bridge &amp; road reopen")
    assert title_of(html) == "Bridge & road reopen"


def test_article_item_carries_the_chosen_title() -> None:
    item = parse(
        page(
            title="Bridge reopens after two years | Riverside Courier",
            h1="Bridge reopens after two years",
            site_name="Riverside Courier",
        )
    )
    assert item.title == "Bridge reopens after two years"


# --- authors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["By Jane Roe"], ["Jane Roe"]),
        (["By JANE ROE and JOHN DOE, Associated Press"], ["Jane Roe", "John Doe"]),
        (["Jane Roe, Staff Writer"], ["Jane Roe"]),
        (["Jane Roe, Courierwire"], ["Jane Roe"]),
        (["Jane Roe", "Catherine"], ["Jane Roe", "Catherine"]),
        (["Jane Roe @janeroe"], ["Jane Roe"]),
        (["Jane Roe5 min read"], ["Jane Roe"]),
        (["Jane Roe Published 11:34 PM EST"], ["Jane Roe"]),
        (["Posted by Jane Roe"], ["Jane Roe"]),
        (["Jane Roe | Riverside Courier"], ["Jane Roe"]),
        (["Jane Roe Riverside Courier"], ["Jane Roe"]),
        (["Jane Roe 27/09/2018 3 comments Politics, Local"], ["Jane Roe"]),
        (["Reuters"], []),
        (["The Associated Press"], []),
        (["Staff Reports"], []),
        (["Editorial"], []),
        (["Riverside Courier"], []),
        (["admin"], []),
        (["jane@riverside-courier.example"], []),
        (["https://www.riverside-courier.example/author/jane"], []),
        (["Bruce Y. Lee", "Bruce Y. Lee"], ["Bruce Y. Lee"]),
        (["Maria de la Cruz"], ["Maria de la Cruz"]),
        (["Венера Ерофеева"], ["Венера Ерофеева"]),
        (["Catherine"], ["Catherine"]),
    ],
)
def test_clean_authors(values: list[str], expected: list[str]) -> None:
    assert clean_authors(values, {"riversidecourier"}, {"riversidecourier"}) == expected


def test_organisation_author_typed_in_jsonld_is_dropped_and_person_kept() -> None:
    item = parse(
        page(
            og_title="Bridge reopens after two years",
            jsonld={
                "@type": "NewsArticle",
                "headline": "Bridge reopens after two years",
                "author": [
                    {"@type": "Person", "name": "Jane Roe"},
                    {"@type": "Organization", "name": "Courier Newswire"},
                ],
            },
        )
    )
    assert item.authors == ["Jane Roe"]


def test_author_referenced_by_id_in_a_graph_is_resolved() -> None:
    graph = {
        "@graph": [
            {
                "@type": "NewsArticle",
                "headline": "Bridge reopens after two years",
                "author": {"@id": "https://riverside-courier.example/#/person/1"},
            },
            {"@type": "Person", "@id": "https://riverside-courier.example/#/person/1", "name": "Jane Roe"},
        ]
    }
    item = parse(page(og_title="Bridge reopens after two years", jsonld=graph))
    assert item.authors == ["Jane Roe"]


def test_site_name_as_meta_author_falls_through_to_the_byline() -> None:
    item = parse(
        page(
            og_title="Bridge reopens after two years",
            site_name="Riverside Courier",
            author_meta="Riverside Courier",
            byline='<p class="byline">By <a rel="author" href="/a/jr">Jane Roe</a></p>',
        )
    )
    assert item.authors == ["Jane Roe"]


def test_comment_form_author_field_is_not_a_byline() -> None:
    html = page(og_title="Bridge reopens after two years").replace(
        "</article>",
        '</article><div id="respond"><form><p class="comment-form-author">'
        '<label for="author">Name (required)</label><input id="author"></p></form></div>',
    )
    assert parse(html).authors == []


# --- dates -----------------------------------------------------------------------------------


def test_placeholder_published_date_falls_back_to_microdata() -> None:
    html = page(
        og_title="Bridge reopens after two years",
        jsonld={
            "@type": "NewsArticle",
            "headline": "Bridge reopens",
            "datePublished": "0001-01-01T00:00:00Z",
        },
    ).replace(
        "<article>",
        '<article itemscope itemtype="https://schema.org/NewsArticle">'
        '<time itemprop="datePublished" datetime="2024-11-04T08:36:00+00:00">4 Nov</time>',
    )
    assert parse(html).published_at == datetime(2024, 11, 4, 8, 36, tzinfo=UTC)


# --- the extractor ---------------------------------------------------------------------------


def test_extractor_crash_is_a_counted_malformed_document(monkeypatch: pytest.MonkeyPatch) -> None:
    """No catch-all in the article reader: the crash reaches parse_document, which refuses
    the document as malformed and names the exception."""

    def boom(*_args: object, **_kwargs: object) -> str:
        raise ValueError("extractor bug")

    monkeypatch.setattr(article.trafilatura, "extract", boom)
    with pytest.raises(ParseError) as caught:
        parse(page(og_title="Bridge reopens after two years"))
    assert caught.value.reason == "malformed"
    assert "ValueError: extractor bug" in caught.value.message


def test_dated_related_links_do_not_make_an_article_a_live_page() -> None:
    related = "".join(
        f'<li class="list-item"><a href="/news/{i}"><img src="/i/{i}.jpg" alt=""></a>'
        f'<time datetime="2024-11-0{i}T10:00:00Z">{i} Nov</time>'
        f'<div class="desc">Teaser {i}: another story about the county, its roads and the bridges that '
        "carry them over the river.</div></li>"
        for i in range(1, 5)
    )
    # a sidebar of dated teasers is a sliver of a real article page's text
    html = page(og_title="Bridge reopens after two years").replace(
        "</article>", f'{STORY * 8}</article><ul class="stories">{related}</ul>'
    )
    tree = LexborHTMLParser(html)
    assert len(block_fragments(tree, UTC, datetime(2024, 11, 5, tzinfo=UTC))[0]) >= 2  # the trap is armed
    item = parse(html)
    assert "Paragraph 1" in item.body


def test_published_from_another_document_object_in_jsonld() -> None:
    html = page(
        og_title="Bridge reopens after two years",
        jsonld=[
            {"@type": "WebSite", "name": "Riverside Courier"},
            {"@type": "ClaimReview", "datePublished": "2024-11-04T08:36:00+00:00"},
        ],
    )
    assert parse(html).published_at == datetime(2024, 11, 4, 8, 36, tzinfo=UTC)


def test_published_printed_as_microdata_text() -> None:
    html = page(og_title="Bridge reopens after two years").replace(
        "<article>", '<article><span itemprop="datePublished">Posted: November 4, 2024</span>'
    )
    assert parse(html).published_at == datetime(2024, 11, 4, tzinfo=UTC)
