"""The fetch-state record: round trip, and tolerance of what it cannot read."""

from __future__ import annotations

from ingestor.fetch.schedule import FeedTiming
from ingestor.fetch.state import SavedState, decode, encode


def test_round_trip_and_apply() -> None:
    saved = SavedState(
        url="https://example.com/rss", etag='"abc"', last_modified="Mon, 04 Nov 2024 10:00:00 GMT",
        sha256="0" * 64, failures=3, change_interval=120.5, last_change_at=1.7e9, next_due=1.7e9 + 60,
        saved_at=1.7e9,
    )  # fmt: skip
    assert decode(encode(saved)) == saved
    timing = FeedTiming(interval=300, min_interval=75)
    saved.apply_to(timing)
    assert (timing.failures, timing.change_interval, timing.last_change_at) == (3, 120.5, 1.7e9)


def test_unreadable_records_are_ignored() -> None:
    assert decode(None) is None  # a tombstone
    assert decode(b"") is None
    assert decode(b"not json") is None
    assert decode(b'{"v": 99, "url": "https://x"}') is None
    assert decode(b'["v", 1]') is None
    partial = decode(b'{"v": 1, "url": "https://x", "failures": "many", "etag": 5}')
    assert partial is not None and partial.failures == 0 and partial.etag is None and partial.next_due is None
