"""HTML pages cannot reach files or the network, and hostile pages fail fast and classified.

HTML goes through lexbor (selectolax) and, for ordinary articles, trafilatura (lxml's HTML
parser): neither resolves DOCTYPEs or entities, and these tests hold them to it.  Deeply
nested or element-flooded pages must end in items or a ``ParseError`` within seconds.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumers.parse import ParseError, RawDocument, parse_document
from consumers.parse.safety import MAX_HTML_DEPTH, check_html_nesting
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
    assert time.perf_counter() - started < 10.0


def test_nesting_estimate_ignores_unclosed_paragraphs_and_void_elements() -> None:
    # Real pages leave <p>, <li> and <br> unclosed; that is not nesting.
    check_html_nesting("<div>" + "<p>x<li>y<br><img src=a>" * (MAX_HTML_DEPTH * 2) + "</div>")
    with pytest.raises(ParseError):
        check_html_nesting("<span>" * (MAX_HTML_DEPTH + 1))
