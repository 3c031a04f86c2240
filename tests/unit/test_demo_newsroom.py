"""The demo's newsroom renders pages the real parsers read as intended: one item per post,
a correction keeps the id and changes the hash, an unchanged page yields the same items."""

from __future__ import annotations

from collections.abc import Sized
from datetime import UTC, datetime, timedelta

import pytest

from consumers.parse import RawDocument, parse_document
from ingestor.demo.newsroom import NEWSROOM_TZ, PATHS, Newsroom, NewsroomServer
from ingestor.models import NewsItem

START = datetime(2024, 11, 4, 9, 0, tzinfo=UTC)


def _parse(server: NewsroomServer, path: str, fetched_at: datetime) -> list[NewsItem]:
    feed_id, content_type, fmt = PATHS[path]
    body = server.render(path)
    assert body is not None
    return parse_document(
        RawDocument(
            body=body.encode("utf-8"),
            url=f"{server.base}{path}",
            feed_id=feed_id,
            fetched_at=fetched_at,
            content_type=content_type,
            timezone=NEWSROOM_TZ,
            format=fmt,  # type: ignore[arg-type]
            language="en",
        )
    )


def _newsroom(ticks: int) -> NewsroomServer:
    room = Newsroom()
    room.seed(START)
    for n in range(1, ticks + 1):
        room.tick(START + timedelta(minutes=n))
    server = NewsroomServer(room, START)
    server.base = "http://127.0.0.1:8765"
    return server


@pytest.mark.parametrize("path", list(PATHS))
def test_every_page_parses_to_one_item_per_post(path: str) -> None:
    server = _newsroom(ticks=4)
    room = server.newsroom
    pages: dict[str, Sized] = {
        "/live/city.txt": room.live_text,
        "/live/harbour": room.live_html,
        "/feeds/city.rss": room.rss,
        "/feeds/science.atom": room.atom,
    }
    posts = pages[path]
    items = _parse(server, path, START + timedelta(minutes=10))
    fragments = [i for i in items if i.kind == "live_update"] if path.startswith("/live/") else items
    assert len(fragments) == len(posts) and len({i.id for i in fragments}) == len(posts)


def test_a_correction_keeps_the_id_changes_the_hash_and_sets_updated_at() -> None:
    server = _newsroom(ticks=1)
    fetched = START + timedelta(minutes=10)
    before = {i.id: i for i in _parse(server, "/live/harbour", fetched)}
    again = {i.id: i for i in _parse(server, "/live/harbour", fetched + timedelta(seconds=5))}
    assert {k: v.content_hash for k, v in before.items()} == {k: v.content_hash for k, v in again.items()}
    server.newsroom.ticks = 1  # the next tick is the second: it corrects an older post
    server.newsroom.tick(START + timedelta(minutes=5))
    after = {i.id: i for i in _parse(server, "/live/harbour", fetched + timedelta(seconds=10))}
    changed = [k for k in before if before[k].content_hash != after[k].content_hash]
    assert len(changed) == 1
    assert after[changed[0]].updated_at == START + timedelta(minutes=5)
    assert len(after) == len(before) + 1  # plus the new post of that tick
