"""The pure parts of the feed registry: definitions on the topic, seeding, handover plans, OPML."""

from __future__ import annotations

import json

import pytest

from ingestor.config import FeedConfig, load_settings
from ingestor.fetch import shard
from ingestor.fetch.feeds import FeedRefused, decode_feed, encode_feed, feed_group_id, seed_plan
from ingestor.fetch.opml import parse_opml, slug
from ingestor.fetch.state import SavedAttempt, SavedState, SubscriptionState, decode, encode


def test_definitions_round_trip_with_only_non_defaults() -> None:
    feed = FeedConfig(
        id="kyiv", url="https://example.org/rss", timezone="Europe/Kyiv", interval=120, headers={"X-A": "1"}
    )
    raw = encode_feed(feed)
    assert json.loads(raw) == {
        "id": "kyiv",
        "url": "https://example.org/rss",
        "timezone": "Europe/Kyiv",
        "interval": 120.0,
        "headers": {"X-A": "1"},
    }
    assert decode_feed("kyiv", raw) == feed
    assert decode_feed("k2", b'{"url": "https://example.org/a", "interval": "5m"}').interval == 300


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"nope", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"id": "other", "url": "https://x.org"}', "record key"),
        (b'{"url": "ftp://x.org"}', "url"),
        (b'{"url": "https://x.org", "interval": "5x"}', "interval"),
    ],
)
def test_bad_definitions_are_refused_with_a_reason(value: bytes, why: str) -> None:
    with pytest.raises(FeedRefused, match=why):
        decode_feed("k", value)


def test_seeding_writes_only_what_is_absent_or_changed() -> None:
    same = FeedConfig(id="same", url="https://x.org/a")
    changed = FeedConfig(id="changed", url="https://x.org/b", interval=60)
    new = FeedConfig(id="new", url="https://x.org/c")
    registered = {
        "same": encode_feed(same),
        "changed": encode_feed(FeedConfig(id="changed", url="https://x.org/b")),
        "junk": b"{",
    }
    assert [f.id for f in seed_plan([same, changed, new], registered)] == ["changed", "new"]


def test_group_id_is_per_pipeline_unless_named() -> None:
    assert feed_group_id(load_settings(None)) == "ingestor-fetch"
    assert (
        feed_group_id(load_settings(None, overrides={"topics": {"feeds": "x.feeds"}}))
        == "ingestor-fetch.x.feeds"
    )
    named = load_settings(None, overrides={"topics": {"feeds": "x.feeds"}, "fetch": {"group_id": "mine"}})
    assert feed_group_id(named) == "mine"


def test_handover_plan_keeps_drops_and_loads() -> None:
    plan = shard.plan({0, 1, 2}, {1, 2, 5})
    assert (plan.resume, plan.drop, plan.load) == ({1, 2}, {0}, {5})
    assert shard.plan(set(), {0, 1}).load == {0, 1}


def test_state_is_co_located_with_definitions_only_when_counts_match() -> None:
    assert shard.state_partitions({3, 1}, 6, 6) == [1, 3]
    assert shard.state_partitions({3, 1}, 6, 3) is None  # read them all
    assert shard.state_partition(4, 6, 6) == 4
    assert shard.state_partition(4, 6, 3) is None
    assert shard.state_partition(None, 6, 6) is None


def test_state_carries_attempts_owner_and_subscription() -> None:
    saved = SavedState(
        url="https://x.org/rss",
        etag=None,
        last_modified=None,
        sha256=None,
        failures=0,
        change_interval=None,
        last_change_at=None,
        next_due=10.0,
        saved_at=5.0,
        instance="host:1",
        attempts=(
            SavedAttempt(4.0, "not_modified", 304, 12.5, 0, None, 10.0),
            SavedAttempt(4.5, "ok", 200, 8.0, 99, None, 11.0, "push"),
        ),
        websub=SubscriptionState("https://hub.x.org/", "https://x.org/rss", 1000.0, pushes=2, polls=1),
    )
    assert decode(encode(saved)) == saved
    broken = decode(b'{"v":1,"url":"https://x","attempts":[[1],"x",[1.0,"ok",true,1,2,null,3]],"websub":{}}')
    assert broken is not None and broken.websub is None
    assert broken.attempts == (SavedAttempt(1.0, "ok", None, 1.0, 2, None, 3.0),)


OPML = b"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<opml version="2.0"><head><title>&x;</title></head><body>
  <outline text="World">
    <outline text="BBC World" type="rss" xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml"/>
    <outline title="BBC World" text="dup" xmlUrl="https://example.org/other.xml" language="de"/>
  </outline>
  <outline text="" xmlUrl="https://example.org/path/feed.xml"/>
  <outline text="Bad" xmlUrl="gopher://example.org/"/>
  <outline text="Folder without feed"/>
</body></opml>"""


def test_opml_import_names_feeds_stably_and_reports_bad_ones() -> None:
    entries = parse_opml(OPML, {"interval": "10m"})
    ok = [e.feed for e in entries if e.feed is not None]
    assert [(f.id, f.interval, f.language) for f in ok] == [
        ("bbc-world", 600.0, None),
        ("bbc-world-2", 600.0, "de"),
        ("example.org-path-feed.xml", 600.0, None),
    ]
    bad = [e for e in entries if e.feed is None]
    assert len(bad) == 1 and "http(s)" in (bad[0].problem or "")
    assert slug("  Ünïcode News!  ") == "n-code-news"
