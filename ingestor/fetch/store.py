"""The fetch-state topic: create it (compacted), read it back whole at start-up.

Writes go through the stage's own producer (after the raw body is acknowledged), so this
module only owns the two things that are not a plain produce.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog

from ingestor.fetch.state import SavedState, decode
from ingestor.kafka import KafkaConnection, ensure_compacted_topic

log = structlog.get_logger("ingestor.fetch")


async def ensure_state_topic(
    connection: KafkaConnection, topic: str, partitions: int, replication: int
) -> None:
    await ensure_compacted_topic(connection, topic, partitions, replication)


async def partition_count(connection: KafkaConnection, topic: str) -> int:
    async with connection.reader() as reader:
        return len(await reader.partitions_of(topic))


async def read_latest(
    connection: KafkaConnection,
    topic: str,
    *,
    timeout: float = 30.0,
    partitions: Iterable[int] | None = None,
    newest: Callable[[bytes], float] | None = None,
) -> dict[str, bytes]:
    """The latest value per key of a compacted topic (or of the ``partitions`` named), read from
    the beginning up to its end at call time; a tombstone removes its key.

    The end is the broker's reported end plus the batch that reaches it (``quiet_s=0``): this
    reader does not wait out a lagging end (see ingestor/kafka/reader.py), because it runs
    inside a rebalance while feeds are parked, and a state record it misses costs one
    unconditional fetch of that feed, nothing more.

    ``newest`` (for readers of every partition: ``ingestor status``, ``feeds status``): a key
    can live in two partitions, a feed's state following its feed to its new host's partition
    while the old one waits for compaction.  Partitions are read interleaved, so "the last one
    read" means nothing across them: each partition's latest value is kept (a tombstone removes
    a key only in its own partition) and the one ``newest`` ranks highest wins.
    """
    latest: dict[str, bytes] = {}
    per_partition: dict[tuple[int, str], bytes] = {}
    async with connection.reader() as reader:
        wanted = None if partitions is None else set(partitions)
        tps = [tp for tp in await reader.partitions_of(topic) if wanted is None or tp.partition in wanted]
        async for record in reader.read_to_end(tps, limit_s=timeout, quiet_s=0.0):
            if record.key is None:
                continue
            key = record.key.decode("utf-8", errors="replace")
            if newest is not None:
                place = (record.partition, key)
                if record.value is None:
                    per_partition.pop(place, None)
                else:
                    per_partition[place] = record.value
            elif record.value is None:
                latest.pop(key, None)
            else:
                latest[key] = record.value
    if newest is not None:
        for (_, key), value in per_partition.items():
            kept = latest.get(key)
            if kept is None or newest(value) > newest(kept):
                latest[key] = value
    return latest


def saved_at(raw: bytes) -> float:
    """A state record's ``saved_at`` (-inf when unreadable): ``read_latest``'s ``newest``."""
    saved = decode(raw)
    return float("-inf") if saved is None else saved.saved_at


async def load_states(
    connection: KafkaConnection,
    topic: str,
    *,
    timeout: float = 30.0,
    partitions: Iterable[int] | None = None,
) -> dict[str, SavedState]:
    """The latest readable state per feed id (an unreadable record counts as none; of a feed's
    records in two partitions, the one saved last)."""
    raw = await load_raw_states(connection, topic, timeout=timeout, partitions=partitions, newest=saved_at)
    return {key: saved for key, value in raw.items() if (saved := decode(value)) is not None}


async def load_raw_states(
    connection: KafkaConnection,
    topic: str,
    *,
    timeout: float = 30.0,
    partitions: Iterable[int] | None = None,
    newest: Callable[[bytes], float] | None = None,
) -> dict[str, bytes]:
    """The latest state record per feed id, not decoded yet (``state.decode``; an unreadable one
    decodes as None).  The registry decodes each when its feed is added: decoded all at once,
    they were about twice the records' size on top of them during a load (issue 15).
    ``newest``: as for ``read_latest``."""
    parts = None if partitions is None else sorted(set(partitions))
    raw = await read_latest(connection, topic, timeout=timeout, partitions=parts, newest=newest)
    log.info(
        "fetch_state_loaded",
        stage="fetch",
        topic=topic,
        feeds=len(raw),
        partitions=parts if parts is not None else "all",
    )
    return raw
