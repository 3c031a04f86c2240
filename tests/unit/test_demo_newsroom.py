"""The demo's newsroom renders pages the real parsers read as intended: one item per post,
a correction keeps the id and changes the hash, an unchanged page yields the same items; the
teaser feed's entries are teasers whose links lead to pages with the whole story."""

from __future__ import annotations

import io
from collections.abc import Sized
from datetime import UTC, datetime, timedelta

import pytest

from consumers.parse import RawDocument, parse_document
from ingestor.demo.newsroom import (
    ARTICLES,
    NEWSROOM_TZ,
    PATHS,
    STORY_PREFIX,
    STORY_TYPE,
    Newsroom,
    NewsroomServer,
    teaser,
)
from ingestor.models import NewsItem
from ingestor.tools.demo import EventPrinter, full_text_note

START = datetime(2024, 11, 4, 9, 0, tzinfo=UTC)


def _parse(server: NewsroomServer, path: str, fetched_at: datetime) -> list[NewsItem]:
    feed_id, content_type, fmt = PATHS[path][:3] if path in PATHS else ("story", STORY_TYPE, "html")
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
        "/feeds/stories.rss": room.stories,
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


def test_the_teaser_feed_links_each_entry_to_a_page_with_the_whole_story() -> None:
    server = _newsroom(ticks=6)  # the seed's story and one every third tick
    room = server.newsroom
    assert len(room.stories) == 3 and len({e.story for e in room.stories}) == 3
    entries = _parse(server, "/feeds/stories.rss", START + timedelta(minutes=10))
    assert [e.url for e in entries] == [f"{server.base}{STORY_PREFIX}{e.slot}" for e in room.stories]
    for entry, story in zip(entries, room.stories, strict=True):
        headline, paragraphs = ARTICLES[story.story]
        text = entry.body or entry.summary or ""
        assert entry.title == headline and text == teaser(story.story)
        assert text.endswith("…") and len(text.split()) < 30  # a teaser by any rule
        page = _parse(server, f"{STORY_PREFIX}{story.slot}", START + timedelta(minutes=10))
        (article,) = page
        assert article.kind == "article" and article.title == headline
        assert article.body.split("\n\n") == list(paragraphs)  # the whole story, no furniture


def test_only_the_teaser_feed_asks_for_full_text_and_unknown_stories_are_404() -> None:
    server = _newsroom(ticks=0)
    feeds = {f["id"]: f["full_text"] for f in server.feeds(1.0)}
    assert feeds.pop("demo-city-stories") == "auto"
    assert set(feeds.values()) == {"never"}
    assert server.render(f"{STORY_PREFIX}999") is None
    assert server.render(f"{STORY_PREFIX}x1") is None
    assert server.render(f"{STORY_PREFIX}{server.newsroom.stories[0].slot}") is not None


def test_the_demo_marks_full_text_only_on_feed_entries_that_got_their_page() -> None:
    feeds = frozenset({"demo-city-stories", "demo-city-rss"})
    entry = {"kind": "article", "source": "demo-city-stories", "body": "one two three", "body_source": "page"}
    assert full_text_note(entry, feeds) == "[full text, 3 words]"
    assert full_text_note({**entry, "body_source": "feed"}, feeds) == ""  # a fallback: the teaser
    assert full_text_note({**entry, "source": "demo-city-live"}, feeds) == ""  # a page's own article
    out = io.StringIO()
    printer = EventPrinter(out, feeds)
    printer.show({**entry, "event": "created", "version": 1, "title": "Night buses."})
    printer.show({**entry, "source": "demo-city-live", "event": "created", "version": 1, "title": "Live"})
    assert printer.full_text == 1 and "[full text, 3 words] Night buses." in out.getvalue()
