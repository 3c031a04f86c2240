"""The registry applying feeds-topic records to a real fetch stage, without a broker: which feeds
each partition holds (the stage knows, the registry keeps no set of its own), and the restored
state records decoded as their feeds come and then let go (issue 15)."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass

from ingestor.config import load_settings
from ingestor.fetch.feedspec import FeedSpec
from ingestor.fetch.registry import FeedRegistry
from ingestor.fetch.service import FetchStage
from ingestor.fetch.state import SavedAttempt, SavedState, encode
from ingestor.kafka import KafkaConnection


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None
    offset: int


def _registry() -> tuple[FetchStage, FeedRegistry]:
    settings = load_settings(
        None, overrides={"fetch": {"state_topic": "t.fetch-state", "sharding": True}, "feeds": []}
    )
    connection = KafkaConnection("127.0.0.1:1", settings.kafka)  # never connected
    stage = FetchStage(settings, connection, feeds=[])
    registry = FeedRegistry(settings, connection, stage)
    registry._owned = {0, 1, 2}
    return stage, registry


def _definition(i: int, **fields: object) -> bytes:
    return json.dumps({"id": f"f{i}", "url": f"https://h{i}.example/rss", **fields}).encode()


def _saved(i: int, **fields: object) -> bytes:
    state = SavedState(
        url=f"https://h{i}.example/rss", etag=f'"{i}"', last_modified=None, sha256=None, failures=2,
        change_interval=None, last_change_at=None, next_due=4e9, saved_at=1.0, instance="old:1",
        attempts=(SavedAttempt(1.0, "not_modified", 304, 5.0, 0, None, 2.0),),
    )  # fmt: skip
    return encode(state) if not fields else json.dumps({**json.loads(encode(state)), **fields}).encode()


def test_feeds_by_partition_are_the_stage_s() -> None:
    stage, registry = _registry()
    for i in range(9):
        registry._apply(i % 3, Record(f"f{i}".encode(), _definition(i), i))  # type: ignore[arg-type]
    assert sorted(registry._ids({1})) == ["f1", "f4", "f7"]
    registry._apply(1, Record(b"f4", None, 10))  # type: ignore[arg-type]  # a tombstone
    registry._apply(1, Record(b"f7", _definition(7, enabled=False), 11))  # type: ignore[arg-type]
    assert registry._ids({1}) == ["f1"] and registry._ids(set()) == []
    registry._drop({0, 1})
    assert sorted(stage._states) == ["f2", "f5", "f8"] and registry._owned == {2}
    assert all(isinstance(state.feed, FeedSpec) for state in stage._states.values())


def test_restored_records_are_decoded_when_their_feed_comes_and_then_dropped() -> None:
    stage, registry = _registry()
    raw = {f"f{i}": _saved(i) for i in range(20)}
    raw["f3"] = _saved(3, url="https://moved.example/rss")  # another URL: not this definition's state
    raw["f4"] = b"{not json"
    registry._restore, registry._restore_size = raw, len(raw)
    for i in range(12):
        registry._apply(i % 3, Record(f"f{i}".encode(), _definition(i), i))  # type: ignore[arg-type]
    resumed = stage._states["f0"]
    assert resumed.etag == '"0"' and resumed.timing.failures == 2 and len(resumed.history) == 1
    assert stage._queue.due_at("f0") == 4e9
    assert stage._states["f3"].etag is None and stage._states["f4"].etag is None  # started afresh
    # taken records are dropped, and the dict is rebuilt at its new size once most are gone
    assert set(registry._restore) == {"f3", "f4", *(f"f{i}" for i in range(12, 20))}
    for i in range(12, 20):
        registry._apply(i % 3, Record(f"f{i}".encode(), _definition(i), i))  # type: ignore[arg-type]
    assert set(registry._restore) == {"f3", "f4"}
    assert registry._restore is not raw and registry._restore_size < 20  # a smaller dict
    assert len(stage._queue._heap) == len(stage._states)  # one heap entry per resumed feed


def test_overdue_feeds_taken_over_come_up_in_the_order_of_their_cadence() -> None:
    """A dead owner's feeds are all overdue; a host's feeds are read together (they share a
    partition) but were due spread over the interval: they are fetched in that order, so a
    host's feeds do not become one burst per interval."""
    stage, registry = _registry()
    now = time.time()
    order = list(range(30))
    random.Random(2).shuffle(order)
    due = {f"f{i}": now - 60 + 2 * n for n, i in enumerate(order)}  # 60 s ago to just now
    raw = {f"f{i}": _saved(i, next_due=due[f"f{i}"]) for i in range(30)}
    registry._restore, registry._restore_size = raw, len(raw)
    for i in range(30):  # read in id order, not in due order
        registry._apply(0, Record(f"f{i}".encode(), _definition(i, interval=300), i))  # type: ignore[arg-type]
    popped = [stage._queue.pop_due(time.time()) for _ in range(30)]
    assert [item[1] for item in popped if item is not None] == [f"f{i}" for i in order]
