"""HTML pages cannot reach files or the network, and hostile pages fail fast and classified.

HTML goes through lexbor (selectolax) and, for ordinary articles, trafilatura (lxml's HTML
parser): neither resolves DOCTYPEs or entities, and these tests hold them to it.  Deeply
nested or element-flooded pages must end in items or a ``ParseError`` within seconds.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from consumers.parse import ParseError, RawDocument, parse_document
from consumers.parse.safety import MAX_HTML_DEPTH, _collapse_runs, check_html_nesting, html_nesting_depth
from tests.unit.test_parse_safety import io_events

PARA = "<p>" + "Crews restored power to the northern district after the storm passed. " * 3 + "</p>"
FIFTEEN_MIB = 15 * 1024 * 1024


def page(body: bytes) -> RawDocument:
    return RawDocument(
        body=body,
        url="https://news.example.test/page",
        feed_id="h",
        fetched_at=datetime(2024, 11, 4, 12, tzinfo=UTC),
        content_type="text/html; charset=utf-8",
    )


def padded(html: str) -> bytes:
    body = html.encode()
    return body + b" " * max(0, FIFTEEN_MIB - len(body))


def test_html_entities_and_doctypes_read_no_file_and_call_no_network(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    html = (
        f'<!DOCTYPE html SYSTEM "{secret.as_uri()}" [<!ENTITY xxe SYSTEM "{secret.as_uri()}">'
        '<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>'
        "<html><head><title>Harbour storm</title>"
        '<link rel="stylesheet" href="http://127.0.0.1:9/x.css"></head><body><article>'
        f"<h1>Harbour storm</h1><p>&xxe;</p>{PARA}{PARA}"
        '<img src="http://127.0.0.1:9/x.png"><iframe src="file:///etc/passwd"></iframe>'
        "</article></body></html>"
    )
    with io_events() as events:
        items = parse_document(page(html.encode()))
    assert items and all("TOP-SECRET" not in i.body and "root:" not in i.body for i in items)
    assert [e for e in events if e[0] != "open"] == []
    assert not [e for e in events if str(tmp_path) in repr(e[1]) or "/etc/passwd" in repr(e[1])]


def test_deep_nesting_is_refused_fast() -> None:
    levels = 100_000
    body = padded("<html><body>" + "<div>" * levels + PARA + "</div>" * levels + "</body></html>")
    started = time.perf_counter()
    with pytest.raises(ParseError) as info:
        parse_document(page(body))
    assert info.value.reason == "malformed"
    assert time.perf_counter() - started < 3.0


@pytest.mark.parametrize("tag", ["b", "span"])
def test_a_million_tiny_elements_end_in_items_or_a_classified_error(tag: str) -> None:
    flood = f"<{tag}>x</{tag}>" * 1_000_000
    body = padded(
        f"<html><head><title>Flood</title></head><body><article>{PARA}{flood}</article></body></html>"
    )
    started = time.perf_counter()
    try:
        items = parse_document(page(body))
    except ParseError as exc:
        assert exc.reason in {"malformed", "too_large", "no_items"}
    else:
        assert items
    # generous: this only proves it ends; bench/parse.py measures how fast
    assert time.perf_counter() - started < 40.0


def test_nesting_estimate_ignores_unclosed_paragraphs_and_void_elements() -> None:
    # Real pages leave <p>, <li> and <br> unclosed; that is not nesting.
    check_html_nesting("<div>" + "<p>x<li>y<br><img src=a>" * (MAX_HTML_DEPTH * 2) + "</div>")
    with pytest.raises(ParseError):
        check_html_nesting("<span>" * (MAX_HTML_DEPTH + 1))


# --- the nesting count follows the tree the parser builds, so no trick lowers it ----------


def lexbor_depth(html: str) -> int:
    """The depth of the tree lexbor really builds (``<html>`` is 1), counting elements only."""
    root = LexborHTMLParser(html).root
    deepest = 0
    stack = [(root, 1)] if root is not None else []
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        child = node.child
        while child is not None:
            if child.is_element_node:
                stack.append((child, depth + 1))
            child = child.next
    return deepest


def assert_refused_fast(html: str, what: str = "HTML nested more than|too convoluted") -> None:
    started = time.perf_counter()
    with pytest.raises(ParseError, match=what) as info:
        check_html_nesting(html)
    assert info.value.reason == "malformed"
    assert time.perf_counter() - started < 5.0


DEEP = 20_000


@pytest.mark.parametrize(
    "unit",
    [
        "<div></x>",  # stray end tags close nothing
        "<div></span>",
        "<div></b>",  # no open <b>: still closes nothing
        "<div></p>",  # makes an empty <p>, closes nothing
        "<div></li></dd></td></tr></table></option>",
        "<span></div>",  # </div> with no open div
        "<b id=1><span></b>",  # </b> closes the b and the span in it
        "<rt>",  # ruby tags nest when there is no <ruby>
        "<rb><rp>",
        "<table><td>",  # each level is table > tbody > tr > td
        "<ul><li><ol>",
        "<select><div>",  # lexbor nests anything in a select
        "<svg><g>",
        "<div><script></div></script>",  # end tags inside raw text are text
        "<div><style></div></style>",
        "<div><textarea></div></textarea>",
        "<div><title></div></title>",
        "<div><!-- </div> -->",
        "<div><script><!--<script></script></div>--></script>",  # a double-escaped script
        "<div><noscript></div></noscript>",  # lexbor runs without scripting: noscript is markup
    ],
)
def test_tricks_do_not_lower_the_count(unit: str) -> None:
    html = "<body>" + unit * DEEP
    small = "<body>" + unit * 300
    assert html_nesting_depth(small) >= lexbor_depth(small)
    if lexbor_depth(small) > 300:  # the trick nests: the full page must be refused
        assert_refused_fast(html)


@pytest.mark.parametrize(
    "html",
    [
        "<body>" + "<p>x" * DEEP,  # unclosed paragraphs close each other
        "<body><ul>" + "<li>x" * DEEP + "</ul>",
        "<body><dl>" + "<dt>a<dd>b" * DEEP + "</dl>",
        "<body><table>" + "<tr><td>a<td>b" * DEEP + "</table>",
        "<body><select>" + "<option>o" * DEEP + "</select>",
        "<body><ruby>" + "x<rb>a<rt>b<rp>c" * DEEP + "</ruby>",
        "<body>" + "<br><img src=x><hr><input><wbr>" * DEEP,
        "<body>" + "<b>x</b><i>y</i><span>z</span>" * DEEP,
        "<body><svg>" + '<path d="M0 0"/>' * DEEP + "</svg>",
        "<body>" + "<div>x</div>" * DEEP,
    ],
    ids=["p", "li", "dt-dd", "tr-td", "option", "ruby", "void", "inline", "svg-paths", "flat-divs"],
)
def test_ordinary_markup_is_counted_as_flat(html: str) -> None:
    started = time.perf_counter()
    check_html_nesting(html)
    assert time.perf_counter() - started < 5.0
    assert html_nesting_depth(html) <= 6


def test_reopened_formatting_elements_are_counted() -> None:
    """Misnested <b> is reopened in every new paragraph: lexbor nests the clones."""
    html = "<body>" + "".join(f"<b id={i}>" for i in range(40)) + "<p>x</p>" * 10
    assert html_nesting_depth(html) >= lexbor_depth(html)
    assert_refused_fast("<body>" + "".join(f"<b id={i}><p>x" for i in range(6_000)))


def test_foreign_content_self_closing_and_breakout() -> None:
    html = "<body><svg>" + "<g/>" * 50 + "<div>" * 10 + "</svg><p>x"
    assert html_nesting_depth(html) >= lexbor_depth(html)
    # In an HTML integration point <x/> is an HTML element again, and it nests.
    assert_refused_fast("<body><svg><foreignObject>" + "<div/>" * DEEP)


def test_the_fast_path_is_sound() -> None:
    """A fragment with few "<" is never scanned: it cannot nest past the limit."""
    few = (MAX_HTML_DEPTH - 3) // 3
    html = "<table><td>" * (few // 2)
    assert html.count("<") <= few
    check_html_nesting(html)
    assert lexbor_depth(html) <= MAX_HTML_DEPTH


def test_deep_entry_html_refuses_the_feed() -> None:
    deep = "<div>" * DEEP + "x" + "</div>" * DEEP
    rss = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>a</title>'
        f"<guid>g</guid><description><![CDATA[{deep}]]></description></item></channel></rss>"
    ).encode()
    atom = (
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry>'
        f'<id>g</id><title>a</title><content type="html"><![CDATA[{deep}]]></content></entry></feed>'
    ).encode()
    json_feed = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "t",
            "items": [{"id": "g", "content_html": deep}],
        }
    ).encode()
    for body, content_type in (
        (rss, "application/rss+xml"),
        (atom, "application/atom+xml"),
        (json_feed, None),
    ):
        document = dataclasses.replace(page(body), content_type=content_type)
        started = time.perf_counter()
        with pytest.raises(ParseError, match="HTML in a feed entry") as info:
            parse_document(document)
        assert info.value.reason == "malformed"
        assert time.perf_counter() - started < 5.0


def test_ordinary_entry_html_still_parses() -> None:
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>a</title>'
        b"<guid>g</guid><description><![CDATA[<div><p>Power is back <b>across</b> the district.</p></div>]]>"
        b"</description></item></channel></rss>"
    )
    (item,) = parse_document(dataclasses.replace(page(body), content_type="application/rss+xml"))
    assert item.body == "Power is back across the district."


def test_a_realistic_15mib_hostile_page_is_refused_fast() -> None:
    body = padded("<html><body>" + "<div></x>" * 100_000 + PARA + "</body></html>")
    started = time.perf_counter()
    with pytest.raises(ParseError) as info:
        parse_document(page(body))
    assert info.value.reason == "malformed"
    assert time.perf_counter() - started < 5.0


# --- property: an upper bound of lexbor's depth, exact on well-formed trees ---------------

_NAMES = [
    "div", "span", "p", "b", "i", "a", "font", "nobr", "em", "li", "ul", "ol", "dl", "dt", "dd",
    "table", "tbody", "tr", "td", "th", "caption", "colgroup", "col", "ruby", "rb", "rt", "rp", "rtc",
    "br", "img", "hr", "input", "svg", "math", "g", "mi", "foreignObject", "desc", "select", "option",
    "optgroup", "form", "button", "h1", "h2", "template", "object", "section", "x-y", "noscript",
]  # fmt: skip
_ATTRS = ["", " id=1", " class='a'", " color=red", ' encoding="text/html"', ' x="y>z"', " /"]
_TEXT = ["x", " ", "<!-- c -->", "<script>a</script>", "<style>b</style>", "<textarea>t</textarea>", "&amp;"]

_token = st.one_of(
    st.builds(lambda n, a: f"<{n}{a}>", st.sampled_from(_NAMES), st.sampled_from(_ATTRS)),
    st.builds(lambda n: f"</{n}>", st.sampled_from(_NAMES)),
    st.sampled_from(_TEXT),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_token, max_size=80))
@example(["<select>", "<optgroup>", "<option>"])  # an option stays in its optgroup
def test_the_count_is_never_below_lexbors_depth(tokens: list[str]) -> None:
    html = "".join(tokens)
    assert html_nesting_depth(html) >= lexbor_depth(html)


_BLOCKS = ["div", "section", "article", "span", "b", "em", "ul", "blockquote"]


@st.composite
def _well_formed(draw: st.DrawFn, depth: int = 0) -> str:
    if depth >= 6 or draw(st.booleans()):
        return draw(st.sampled_from(["x", "<br>", "<img src=a>", " "]))
    name = draw(st.sampled_from(_BLOCKS))
    children = draw(st.lists(_well_formed(depth + 1), min_size=1, max_size=3))
    inner = "".join(f"<li>{c}</li>" for c in children) if name == "ul" else "".join(children)
    return f"<{name}>{inner}</{name}>"


@settings(max_examples=150, deadline=None)
@given(st.lists(_well_formed(), min_size=1, max_size=4))
def test_well_formed_pages_are_counted_exactly(parts: list[str]) -> None:
    html = "<html><body>" + "".join(parts) + "</body></html>"
    assert html_nesting_depth(html) == lexbor_depth(html)


_unit_run = st.builds(
    lambda n, a, t, k: f"<{n}{a}>{t}</{n}>" * k,
    st.sampled_from(_NAMES),
    st.sampled_from(["", " id=1", " class=a"]),
    st.sampled_from(["x", "", " "]),
    st.integers(min_value=3, max_value=8),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_token, _unit_run), max_size=60))
def test_collapsing_runs_of_identical_units_keeps_the_bound(tokens: list[str]) -> None:
    """check_html_nesting scans floods of identical tiny elements as two copies."""
    html = "".join(tokens)
    assert html_nesting_depth(_collapse_runs(html)) >= lexbor_depth(html)
