"""What a rebalance means for this fetcher's feeds: pure set arithmetic, kept apart from Kafka.

Fetchers share the partitions of ``news.feeds`` as one consumer group.  aiokafka speaks the
eager protocol: every rebalance first revokes everything from everyone, then hands out the
new assignment.  So on revoke a fetcher *parks* its feeds (nothing new is dispatched, in-flight
fetches finish and their state is flushed), and on assignment it sorts partitions three ways:
kept ones resume exactly where they were, lost ones are forgotten (their new owner restores
them from the fetch-state topic), and new ones are restored from that topic before their
first fetch is scheduled.  Parking costs the feeds a few seconds of lateness during the
rebalance; it buys a handover with no double fetch and no burst.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Handover:
    resume: frozenset[int]  # kept: parked feeds go back on the schedule as they were
    drop: frozenset[int]  # lost to another fetcher: forget their feeds
    load: frozenset[int]  # new: restore fetch state, then read their definitions


def plan(owned: Iterable[int], assigned: Iterable[int]) -> Handover:
    before, after = frozenset(owned), frozenset(assigned)
    return Handover(resume=before & after, drop=before - after, load=after - before)


def state_partitions(load: Iterable[int], feeds_partitions: int, state_partitions: int) -> list[int] | None:
    """The fetch-state partitions holding the states of feeds in ``load``.

    The stage writes a feed's state to the partition number its definition has in the feeds
    topic whenever both topics have the same partition count, so a new owner reads only its
    own partitions; otherwise (None) it must read them all.
    """
    if feeds_partitions != state_partitions or feeds_partitions <= 0:
        return None
    return sorted(set(load))


def state_partition(feed_partition: int | None, feeds_partitions: int, state_partitions: int) -> int | None:
    """Where to write a feed's state: co-located with its definition when the counts match."""
    if feed_partition is None or feeds_partitions != state_partitions or feed_partition >= state_partitions:
        return None
    return feed_partition
