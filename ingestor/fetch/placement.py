"""Where a feed's definition lives in ``news.feeds``: the partition of its URL's host.

Fetchers share the feeds topic's partitions as one consumer group, so the partition a
definition is written to decides which fetcher polls it.  Keyed by feed id (Kafka's default),
every fetcher process ends up polling every host, and each keeps a connection to each: at
100,000 feeds on 5,000 hosts, two processes held 5,000 connections apiece, about 40 MiB each
(issue 15).  Placed by host, a host's feeds share one process: half the connections each,
and ``fetch.per_host_concurrency`` holds across processes instead of per process.

Kafka keys stay the feed id (compaction, tombstones, ``feeds status`` all work by id); only
the partition is chosen, by a hash of the host that is stable across processes and versions
(not Python's ``hash``, which is salted per process).

The cost is that a feed whose URL moves to another host moves partition: the writer writes
the definition to its new partition first, and only then a tombstone to every other partition
(``tombstone_partitions``).  So for a while a reader can see one id defined in two partitions.
``Definitions`` is the rule every reader applies (the registry, ``feeds list``): the first
definition of an id it sees is the one it holds; a definition of it in another partition is
kept aside as an alternate; a tombstone removes the id only where it was written, and when the
held one's partition is tombstoned, an alternate takes its place.  Since the tombstone always
follows the new definition, every order of reading ends with the new one held.  Definitions
written before this placement (by id) stay valid where they are until ``ingestor feeds place``
moves them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ingestor.fetch.feedspec import host_of

V = TypeVar("V")


def host_partition(url: str, partitions: int) -> int:
    """The partition of ``news.feeds`` (of ``partitions``) that a feed at ``url`` belongs in."""
    if partitions <= 0:
        raise ValueError(f"a topic has at least one partition, not {partitions}")
    digest = hashlib.blake2b(host_of(url).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def tombstone_partitions(placed: int | None, target: int | None, partitions: int) -> list[int]:
    """Where to write tombstones for a feed written to ``target`` (None: it is removed).

    ``placed`` is where its definition is known to be (None: not known, so every partition but
    the target gets one; a writer that read the topic first passes what it read, and a feed not
    registered at all passes ``-1``: nothing to remove anywhere).
    """
    if placed is None:
        return [p for p in range(partitions) if p != target]
    if placed < 0 or placed == target:
        return []
    return [placed]


@dataclass(frozen=True, slots=True)
class Change(Generic[V]):
    """What a reader holding definitions by id must do after a record."""

    #: the definition to hold now, from ``partition`` (None: nothing to add or replace)
    value: V | None = None
    partition: int = -1
    #: drop what it holds for the id (a tombstone where it was, and no alternate)
    remove: bool = False


class Definitions(Generic[V]):
    """The alternates of ids defined in more than one partition, and the rule that resolves them.

    The holder (the fetch stage, or a plain dict) keeps the one definition per id it acts on and
    says where it came from (``held``); this keeps only the rare others, so it costs nothing
    per feed.
    """

    def __init__(self) -> None:
        self._alternates: dict[str, dict[int, V]] = {}

    def __len__(self) -> int:
        return sum(len(others) for others in self._alternates.values())

    def definition(self, key: str, partition: int, value: V, held: int | None) -> Change[V]:
        """A definition of ``key`` read from ``partition``; ``held`` is where the holder's is from."""
        if held is None or held == partition:
            return Change(value, partition)
        self._alternates.setdefault(key, {})[partition] = value
        return Change()

    def tombstone(self, key: str, partition: int, held: int | None) -> Change[V]:
        """A tombstone of ``key`` in ``partition``."""
        others = self._alternates.get(key)
        if held != partition:
            if others is not None:
                others.pop(partition, None)
                if not others:
                    del self._alternates[key]
            return Change()
        alternate = self.take(key)
        if alternate is None:
            return Change(remove=held is not None)
        return Change(alternate[1], alternate[0])

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the alternates read from ``partitions`` (no longer this reader's)."""
        gone = set(partitions)
        for key in list(self._alternates):
            others = self._alternates[key]
            for partition in gone & others.keys():
                del others[partition]
            if not others:
                del self._alternates[key]

    def take(self, key: str) -> tuple[int, V] | None:
        """An alternate of ``key``, to hold instead of a definition the holder lost with its
        partition (a rebalance): (partition, value), or None."""
        others = self._alternates.get(key)
        if not others:
            return None
        found = others.popitem()
        if not others:
            del self._alternates[key]
        return found
