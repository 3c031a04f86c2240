"""Which raw records the parse stage keeps in order: one feed's documents, but the article pages
of one feed only per entry (so a teaser feed's pages are parsed on every worker at once)."""

from __future__ import annotations

import json

from aiokafka import ConsumerRecord

from consumers.parse.service import parse_order_key
from ingestor import headers as hdr


def _record(key: bytes, headers: list[tuple[str, bytes]]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("news.raw", 0, 1, 0, 0, key, b"", None, 0, 0, headers)


def test_feed_documents_are_ordered_by_feed() -> None:
    assert parse_order_key(_record(b"feed-a", [(hdr.URL, b"https://a.example/")])) == b"feed-a"


def test_article_pages_of_one_feed_are_ordered_per_entry() -> None:
    def page(entry_id: str) -> ConsumerRecord[bytes, bytes]:
        return _record(b"feed-a", [(hdr.ARTICLE_ENTRY, json.dumps({"id": entry_id}).encode())])

    first, second, again = page("e1"), page("e2"), page("e1")
    assert parse_order_key(first) != parse_order_key(second)
    assert parse_order_key(first) == parse_order_key(again)  # a fallback and its later page
    assert parse_order_key(first) != b"feed-a"


def test_a_bad_entry_header_falls_back_to_the_feed_order() -> None:
    for value in (b"{not json", b"[1, 2]", b'{"id": 7}'):
        assert parse_order_key(_record(b"feed-a", [(hdr.ARTICLE_ENTRY, value)])) == b"feed-a"
