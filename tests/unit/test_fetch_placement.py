"""Feeds placed by host in the feeds topic, and the rule that resolves an id in two partitions."""

from __future__ import annotations

import itertools
import random

import pytest

from ingestor.config import FeedConfig
from ingestor.fetch.feeds import encode_feed, misplaced
from ingestor.fetch.placement import Definitions, host_partition, tombstone_partitions

pytestmark = pytest.mark.fast


def test_a_hosts_feeds_share_a_partition_whatever_their_path_port_or_case() -> None:
    base = host_partition("https://news.example.org/feed", 12)
    assert host_partition("http://NEWS.example.org:8080/other?x=1", 12) == base
    assert 0 <= base < 12
    # stable across processes and versions: a fixed value, not Python's salted hash
    assert host_partition("https://news.example.org/feed", 1_000_003) == 742_044


def test_hosts_spread_over_the_partitions() -> None:
    counts = [0] * 12
    for n in range(12_000):
        counts[host_partition(f"https://h{n}.example.net/rss", 12)] += 1
    assert min(counts) > 850 and max(counts) < 1150, counts


def test_a_topic_has_partitions() -> None:
    with pytest.raises(ValueError, match="at least one"):
        host_partition("https://x.org/", 0)


def test_tombstones_go_where_the_definition_was_or_everywhere_else() -> None:
    assert tombstone_partitions(None, 2, 4) == [0, 1, 3]  # not known: every other partition
    assert tombstone_partitions(None, None, 3) == [0, 1, 2]  # removed, not known: all
    assert tombstone_partitions(1, 2, 4) == [1]  # moved host
    assert tombstone_partitions(2, 2, 4) == []  # stays
    assert tombstone_partitions(-1, 2, 4) == []  # not registered
    assert tombstone_partitions(3, None, 4) == [3]  # removed


def test_misplaced_lists_definitions_written_by_id() -> None:
    good = FeedConfig(id="good", url="https://a.example/rss")
    bad = FeedConfig(id="bad", url="https://b.example/rss")
    right = host_partition(good.url, 6)
    wrong = (host_partition(bad.url, 6) + 1) % 6
    registered = {"good": (right, encode_feed(good)), "bad": (wrong, encode_feed(bad)), "junk": (0, b"{")}
    assert misplaced(registered, 6) == [("bad", encode_feed(bad), bad.url)]


class Holder:
    """What the registry and ``read_feeds_placed`` keep: one definition per id, and where from."""

    def __init__(self) -> None:
        self.held: dict[str, tuple[int, str]] = {}
        self.definitions: Definitions[str] = Definitions()

    def read(self, key: str, partition: int, value: str | None) -> None:
        where = self.held.get(key)
        at = where[0] if where is not None else None
        if value is None:
            change = self.definitions.tombstone(key, partition, at)
        else:
            change = self.definitions.definition(key, partition, value, at)
        if change.remove:
            del self.held[key]
        elif change.value is not None:
            self.held[key] = (change.partition, change.value)


def test_a_move_resolves_to_the_new_definition_in_every_order_of_reading() -> None:
    """The writer's records: ``old`` in partition 0 long ago; then ``new`` in 1; then a
    tombstone in 0.  A reader reads each partition in order, the partitions interleaved any way."""
    logs: dict[int, list[tuple[str, str | None]]] = {0: [("f", "old"), ("f", None)], 1: [("f", "new")]}
    seen = set()
    for order in set(itertools.permutations([0, 0, 1])):
        holder, positions = Holder(), {0: 0, 1: 0}
        for partition in order:
            key, value = logs[partition][positions[partition]]
            positions[partition] += 1
            holder.read(key, partition, value)
        assert holder.held == {"f": (1, "new")}, order
        assert len(holder.definitions) == 0
        seen.add(order)
    assert len(seen) == 3


def test_a_removal_everywhere_removes_a_feed_caught_mid_move() -> None:
    holder = Holder()
    holder.read("f", 0, "old")
    holder.read("f", 1, "new")  # kept aside: 0 is held
    holder.read("f", 1, None)  # removed everywhere: tombstones in every partition
    holder.read("f", 0, None)
    assert holder.held == {} and len(holder.definitions) == 0


def test_a_lost_partition_hands_its_ids_to_their_alternates() -> None:
    definitions: Definitions[str] = Definitions()
    assert definitions.definition("f", 0, "old", None).value == "old"
    assert definitions.definition("f", 1, "new", 0).value is None
    assert definitions.definition("g", 2, "other", 0).value is None
    definitions.forget([2])  # partition 2 is no longer ours: its alternates go
    assert definitions.take("g") is None
    assert definitions.take("f") == (1, "new")
    assert definitions.take("f") is None


def test_random_moves_always_end_with_the_last_written_definition() -> None:
    """Many feeds each moved between partitions several times, as ``write_feeds`` does it (new
    definition, then tombstones where it was), read in a random interleaving of partitions."""
    rand = random.Random(5)
    for _ in range(200):
        partitions = rand.randint(2, 5)
        logs: dict[int, list[tuple[str, str | None]]] = {p: [] for p in range(partitions)}
        last: dict[str, tuple[int, str]] = {}
        for feed in ("a", "b", "c"):
            where = None
            for version in range(rand.randint(1, 4)):
                target = rand.randrange(partitions)
                value = f"{feed}{version}"
                logs[target].append((feed, value))
                for p in tombstone_partitions(where, target, partitions):
                    logs[p].append((feed, None))
                where = target
                last[feed] = (target, value)
            if rand.random() < 0.2:  # removed at the end
                for p in tombstone_partitions(where, None, partitions):
                    logs[p].append((feed, None))
                del last[feed]
        holder, positions = Holder(), dict.fromkeys(logs, 0)
        pending = [p for p in logs for _ in logs[p]]
        rand.shuffle(pending)
        for partition in pending:
            feed_id, written = logs[partition][positions[partition]]
            positions[partition] += 1
            holder.read(feed_id, partition, written)
        assert holder.held == last
