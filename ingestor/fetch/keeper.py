"""Reads and writes the fetch-state topic: the only I/O of a feed's persisted state.

What the record holds and whether it is worth writing is decided elsewhere (``decision``,
with the rules of ``state``); this module exists so that the stage's fetch path only hands
over a ``Decision``, and so that where the record goes (which partition, in sharded mode)
and what a failed write costs are decided in one place.
"""

from __future__ import annotations

import structlog
from aiokafka import AIOKafkaProducer

from ingestor.config import Settings
from ingestor.fetch import shard
from ingestor.fetch.decision import Decision
from ingestor.fetch.feedstate import FeedState
from ingestor.fetch.state import SavedState, encode
from ingestor.fetch.store import ensure_state_topic, load_states
from ingestor.kafka import KafkaConnection

log = structlog.get_logger("ingestor.fetch")


class StateKeeper:
    """The fetch-state topic of one stage: created if missing, read at start, written per decision."""

    def __init__(self, settings: Settings, connection: KafkaConnection) -> None:
        self._settings = settings
        self._connection = connection
        self.topic = settings.fetch.state_topic
        self._partitions = 0  # > 0: write a feed's state to its feeds-topic partition number

    def set_partitions(self, count: int) -> None:
        """Co-locate state records with definitions (same partition number) when ``count`` > 0."""
        self._partitions = count

    async def ensure_topic(self) -> None:
        if not self.topic:
            return
        topics = self._settings.topics
        await ensure_state_topic(self._connection, self.topic, topics.partitions, topics.replication_factor)

    async def load(self) -> dict[str, SavedState]:
        """Every feed's last record (none without a state topic)."""
        if not self.topic:
            return {}
        await self.ensure_topic()
        return await load_states(self._connection, self.topic)

    async def save(self, producer: AIOKafkaProducer | None, state: FeedState, decision: Decision) -> None:
        """Enqueue (not await) the state record: it follows the raw produce it describes."""
        topic = self.topic
        if not topic or producer is None or decision.record is None or not decision.persist:
            return
        state.mark_saved(decision.material, decision.record.saved_at)
        partition = shard.state_partition(state.partition, self._partitions, self._partitions)
        try:
            await producer.send(
                topic, encode(decision.record), key=state.feed.id.encode("utf-8"), partition=partition
            )
        except Exception as exc:  # losing a state record costs one unconditional fetch, no more
            state.saved_material = None  # try again with the next fetch
            log.warning("fetch_state_not_saved", stage="fetch", feed=state.feed.id, error=str(exc))
