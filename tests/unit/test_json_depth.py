"""JSON depth is capped before any decoder runs, in JSON Feeds and in JSON-LD."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.parse import ParseError, RawDocument, parse_document
from consumers.parse.safety import MAX_JSON_DEPTH, json_depth_exceeds

FETCHED = datetime(2025, 3, 1, 12, tzinfo=UTC)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.integers() | st.text(alphabet='ab[]{}"\\ ', max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=200,
)


@settings(max_examples=200, deadline=None)
@given(json_values, st.integers(min_value=1, max_value=12))
def test_the_cap_agrees_with_the_real_depth(value: Any, limit: int) -> None:
    assert json_depth_exceeds(json.dumps(value), limit) == (_depth(value) > limit)


def _doc(body: str, content_type: str) -> RawDocument:
    return RawDocument(
        body=body.encode(),
        url="https://news.example/feed",
        feed_id="f",
        fetched_at=FETCHED,
        content_type=content_type,
    )


def test_a_deep_json_feed_is_refused_with_a_reason() -> None:
    deep = "[" * (MAX_JSON_DEPTH * 1000) + "]" * (MAX_JSON_DEPTH * 1000)
    feed = '{"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [], "x": ' + deep + "}"
    with pytest.raises(ParseError) as info:
        parse_document(_doc(feed, "application/feed+json"))
    assert info.value.reason == "malformed"
    assert "levels deep" in info.value.message


def test_deep_json_ld_is_ignored_and_the_page_still_parses() -> None:
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    page = (
        "<html><head><title>Harbour cranes idle</title>"
        f'<script type="application/ld+json">{deep}</script></head>'
        "<body><article><h1>Harbour cranes idle</h1>"
        + "<p>Dockworkers at the northern terminal left their cranes idle for a second day.</p>" * 5
        + "</article></body></html>"
    )
    items = parse_document(_doc(page, "text/html; charset=utf-8"))
    assert items and items[0].title == "Harbour cranes idle"


#: ``"`` then escaped quotes and no closing quote: before the string pattern let a string
#: run to the end of the text, each escaped quote started a new string that read to the end
#: again (n**2).  The 70 brackets get past the cheap count that skips shallow documents.
UNTERMINATED = "[" * 70 + '"' + '\\"' * 32_768


@pytest.mark.timeout(10)
def test_an_unterminated_string_of_escaped_quotes_is_read_once() -> None:
    started = time.perf_counter()  # before: 17 s for these 64 KB
    assert json_depth_exceeds(UNTERMINATED)
    # what follows an unterminated quote is string to the decoder too: it never nests there
    assert not json_depth_exceeds("[" * 10 + '"' + '\\"' * 32_768 + "[" * 100)
    assert time.perf_counter() - started < 1.0


@pytest.mark.timeout(10)
def test_a_json_feed_with_an_unterminated_string_is_refused_quickly() -> None:
    feed = '{"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [' + UNTERMINATED
    started = time.perf_counter()  # before: 16 s
    with pytest.raises(ParseError) as info:
        parse_document(_doc(feed, "application/feed+json"))
    assert info.value.reason == "malformed"
    assert time.perf_counter() - started < 1.0
