"""The article-state topic: create it (compacted), read partitions of it back, write records.

A record goes to the same partition number as the request it answers, so the owner of
request partition *p* finds everything about its entries in state partition *p*.  Should the
two topics have different partition counts (created by hand), records go to *p* modulo the
state topic's count, and a restore reads that partition (keeping records of other request
partitions costs memory, never a wrong decision: their requests go elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition

from ingestor.fetch.article_state import ArticleState, decode, encode
from ingestor.kafka import KafkaConnection, ensure_compacted_topic

log = structlog.get_logger("ingestor.fetch")


class ArticleStore:
    def __init__(self, connection: KafkaConnection, topic: str, partitions: int, replication: int) -> None:
        self._connection = connection
        self.topic = topic
        self._create = (partitions, replication)
        self.partitions = 0  # the topic's partition count, once known

    async def ensure_topic(self) -> None:
        await ensure_compacted_topic(self._connection, self.topic, *self._create)
        async with self._connection.reader() as reader:
            self.partitions = len(await reader.partitions_of(self.topic))

    def partition_for(self, request_partition: int) -> int:
        return request_partition % self.partitions if self.partitions else request_partition

    async def load(
        self, request_partitions: Iterable[int], *, limit_s: float = 60.0
    ) -> dict[int, dict[str, ArticleState]]:
        """Per request partition, every entry's latest record, read to the real end of the state
        partitions (a lagging end is waited out: a record missed here is a page fetched twice).
        All partitions are read at once: a rebalance waits for the slowest one, not their sum."""
        wanted = sorted(set(request_partitions))
        tps = sorted({TopicPartition(self.topic, self.partition_for(p)) for p in wanted})
        by_state: dict[int, dict[str, ArticleState]] = {tp.partition: {} for tp in tps}
        unreadable = 0
        async with self._connection.reader() as reader:
            async for record in reader.read_to_end(tps, limit_s=limit_s):
                if record.key is None:
                    continue
                latest = by_state[record.partition]
                key = record.key.decode("utf-8", errors="replace")
                state = decode(record.value)
                if state is None:
                    latest.pop(key, None)
                    unreadable += record.value is not None
                else:
                    latest[key] = state
        loaded = {p: dict(by_state[self.partition_for(p)]) for p in wanted}
        log.info(
            "article_state_loaded",
            stage="fetch",
            topic=self.topic,
            partitions=wanted,
            entries=sum(len(states) for states in loaded.values()),
            open=sum(s.open for states in loaded.values() for s in states.values()),
            unreadable=unreadable,
        )
        return loaded

    async def write(self, producer: AIOKafkaProducer, request_partition: int, state: ArticleState) -> None:
        """The record, acknowledged."""
        await producer.send_and_wait(
            self.topic,
            encode(state),
            key=state.entry_id.encode("utf-8"),
            partition=self.partition_for(request_partition),
        )

    async def forget(self, producer: AIOKafkaProducer, request_partition: int, entry_id: str) -> None:
        """A tombstone: the entry is no longer remembered (compaction removes it)."""
        await producer.send(
            self.topic, None, key=entry_id.encode("utf-8"), partition=self.partition_for(request_partition)
        )
