"""Metric helpers without a broker: lag arithmetic (the embedded broker's short end offsets), lag sampling,
the scrape-time stage gauges, call-site counters (and that /metrics does not grow with the
number of feeds), and the ops.listen parser."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ingestor.ops import metrics
from ingestor.ops.server import parse_listen


def test_partition_lag_is_clamped_and_unknown_stays_unknown() -> None:
    assert metrics.partition_lag(10, 4) == 6
    assert metrics.partition_lag(1, 5) == 0  # embedded broker: end = last batch base offset + 1
    assert metrics.partition_lag(None, 5) is None
    assert metrics.partition_lag(5, None) is None


@dataclass
class FakeConsumer:
    highwaters: dict[TopicPartition, int | None]
    positions: dict[TopicPartition, int]

    def assignment(self) -> set[TopicPartition]:
        return set(self.highwaters)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters[tp]

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]


async def test_sample_lag_uses_known_highwaters_and_forgets_revoked_partitions() -> None:
    t0, t1, t2, gone = (TopicPartition("raw", p) for p in range(4))
    consumer = FakeConsumer({t0: 10, t1: None, t2: 3}, {t0: 7, t1: 0, t2: 8})
    lag = {gone: 99}
    await metrics.sample_lag(consumer, lag)
    assert lag == {t0: 3, t2: 0}


@dataclass
class Stats:
    connected: bool = True
    assigned: set[Any] = field(default_factory=set)
    lag: dict[Any, int] = field(default_factory=dict)
    last_poll_at: float | None = 123.0
    last_batch_at: float | None = None
    assigned_at: float | None = 100.0


@dataclass
class Loop:
    stage: str
    stats: Stats
    running: bool = True


@dataclass
class ConsumerStage:
    loop: Loop
    state_size: int | None = None


@dataclass
class Health:
    running: bool = True
    ready: bool = True
    feeds: int = 4
    in_flight: int = 1
    waiting_for_host: int = 0
    overdue_seconds: float = 2.5
    articles_pending: int | None = 3


class FetchStage:
    def health(self) -> Health:
        return Health()


def test_stage_collector_reads_current_state_at_scrape_time() -> None:
    tp = TopicPartition("items", 2)
    dedup = ConsumerStage(Loop("dedup", Stats(assigned={tp}, lag={tp: 7})), state_size=42)
    registry = CollectorRegistry()
    registry.register(metrics.StageCollector(lambda: {"dedup": dedup, "fetch": FetchStage()}))
    text = generate_latest(registry).decode()
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert found[("ingestor_consumer_lag", (("partition", "2"), ("stage", "dedup"), ("topic", "items")))] == 7
    assert found[("ingestor_consumer_assigned_partitions", (("stage", "dedup"),))] == 1
    assert found[("ingestor_articles_pending", ())] == 3
    assert found[("ingestor_broker_connected", (("stage", "dedup"),))] == 1
    assert found[("ingestor_stage_up", (("stage", "fetch"),))] == 1
    assert found[("ingestor_dedup_state_items", ())] == 42
    assert found[("ingestor_fetch_overdue_seconds", ())] == 2.5
    dedup.loop.stats.connected = False
    assert 'ingestor_broker_connected{stage="dedup"} 0.0' in generate_latest(registry).decode()


@pytest.fixture
def labeled_feeds() -> Iterator[Callable[[list[str]], None]]:
    """Set ``ops.labeled_feeds`` for one test; the allowlist is process-wide, so reset it after."""
    yield metrics.set_labeled_feeds
    metrics.set_labeled_feeds([])


def read(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_call_site_helpers_move_the_shared_registry(labeled_feeds: Callable[[list[str]], None]) -> None:
    labeled_feeds(["unit-feed"])
    before = read("ingestor_fetches_total", outcome="ok")
    metrics.observe_fetch("unit-feed", "ok", success=True, duration_s=0.2, size=100, failures=0)
    metrics.observe_fetch("unit-feed", "timeout", success=False, duration_s=10, size=0, failures=3)
    assert read("ingestor_fetches_total", outcome="ok") == before + 1
    assert read("ingestor_feed_fetches_total", feed="unit-feed", outcome="ok") == 1
    assert read("ingestor_feed_consecutive_failures", feed="unit-feed") == 3
    assert read("ingestor_feed_last_success_timestamp_seconds", feed="unit-feed") > 0
    metrics.observe_published("unit-feed", "updated")
    assert read("ingestor_items_published_total", event="updated") >= 1
    assert read("ingestor_feed_items_published_total", feed="unit-feed") == 1
    assert read("ingestor_last_publish_timestamp_seconds") > 0

    labeled_feeds([])  # dropped from the allowlist: its series go, and no new ones appear
    metrics.observe_fetch("unit-feed", "ok", success=True, duration_s=0.2, size=100, failures=0)
    assert (
        metrics.REGISTRY.get_sample_value(
            "ingestor_feed_fetches_total", {"feed": "unit-feed", "outcome": "ok"}
        )
        is None
    )
    assert (
        metrics.REGISTRY.get_sample_value("ingestor_feed_consecutive_failures", {"feed": "unit-feed"}) is None
    )


def test_metrics_size_does_not_grow_with_the_feed_count(labeled_feeds: Callable[[list[str]], None]) -> None:
    """100,000 feeds through every per-feed call site: /metrics stays small (no feed label by
    default) and only the allowlisted feed gets its own series."""
    labeled_feeds(["scale-watched"])
    outcomes = ("ok", "not_modified", "timeout", "http_error")
    feeds = [f"scale-{n}" for n in range(100_000)] + ["scale-watched"]
    for n, feed in enumerate(feeds):
        outcome = outcomes[n % len(outcomes)]
        metrics.observe_fetch(
            feed, outcome, success=outcome == "ok", duration_s=0.3, size=512, failures=n % 3
        )
        metrics.observe_fetch(feed, "ok", success=True, duration_s=0.1, size=512, failures=0)
        metrics.observe_parsed(feed, "feed", 3)
        if n % 10 == 0:
            metrics.observe_parse_failure(feed, "not_a_feed")
        metrics.observe_published(feed, "created" if n % 2 else "updated")
        metrics.ITEMS_UNCHANGED.inc()

    text = generate_latest(metrics.REGISTRY)
    assert len(text) < 100 * 1024, len(text)
    feed_labeled = {
        (s.name, s.labels["feed"])
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
        if "feed" in s.labels
    }
    assert {feed for _, feed in feed_labeled} <= {"scale-watched"}, sorted(feed_labeled)[:5]
    assert all(name.startswith("ingestor_feed_") for name, _ in feed_labeled)
    assert read("ingestor_feed_fetches_total", feed="scale-watched", outcome="ok") == 2
    assert read("ingestor_feed_items_parsed_total", feed="scale-watched") == 3
    assert read("ingestor_feed_items_published_total", feed="scale-watched") == 1
    assert read("ingestor_feed_last_success_timestamp_seconds", feed="scale-watched") > 0


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        ("[::1]:0", ("::1", 0)),
        (":9108", ("0.0.0.0", 9108)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["9108", "host:", "host:99999", "host:http"])
def test_parse_listen_rejects(listen: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        parse_listen(listen)
