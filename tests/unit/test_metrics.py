"""Metric helpers without a broker: lag arithmetic (the embedded broker's short end offsets), lag sampling,
the scrape-time stage gauges, call-site counters, and the ops.listen parser."""

from __future__ import annotations

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
    assert found[("ingestor_broker_connected", (("stage", "dedup"),))] == 1
    assert found[("ingestor_stage_up", (("stage", "fetch"),))] == 1
    assert found[("ingestor_dedup_state_items", ())] == 42
    assert found[("ingestor_fetch_overdue_seconds", ())] == 2.5
    dedup.loop.stats.connected = False
    assert 'ingestor_broker_connected{stage="dedup"} 0.0' in generate_latest(registry).decode()


def test_call_site_helpers_move_the_shared_registry() -> None:
    def read(name: str, **labels: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    before = read("ingestor_fetches_total", feed="unit-feed", outcome="ok")
    metrics.observe_fetch("unit-feed", "ok", success=True, duration_s=0.2, size=100, failures=0)
    metrics.observe_fetch("unit-feed", "timeout", success=False, duration_s=10, size=0, failures=3)
    assert read("ingestor_fetches_total", feed="unit-feed", outcome="ok") == before + 1
    assert read("ingestor_feed_consecutive_failures", feed="unit-feed") == 3
    assert read("ingestor_feed_last_success_timestamp_seconds", feed="unit-feed") > 0
    metrics.observe_published("unit-feed", "updated")
    assert read("ingestor_items_published_total", feed="unit-feed", event="updated") >= 1
    assert read("ingestor_last_publish_timestamp_seconds") > 0


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
