"""This fetcher's share of the feed registry: a consumer-group member on ``news.feeds``.

Every fetcher instance joins the same group (``fetch.group_id``), so Kafka gives each one a
disjoint set of the topic's partitions, and with them the feeds keyed there.  Definitions
are read from the beginning of each newly assigned partition (the topic is compacted, and
no offsets are committed: the topic itself is the state); later records add, change and
remove feeds live.  The handover rules are in ``shard``; the fetch state of newly assigned
feeds is read from the fetch-state topic before any of them is scheduled, so the new owner
keeps the old owner's validators and due times instead of fetching everything at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Protocol

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from ingestor.config import FeedConfig, Settings
from ingestor.fetch import shard
from ingestor.fetch.feeds import FeedRefused, bind_config_secrets, decode_feed, feed_group_id, seed_feeds
from ingestor.fetch.placement import Change, Definitions
from ingestor.fetch.state import SavedState, decode
from ingestor.fetch.store import load_raw_states, partition_count
from ingestor.kafka import KafkaConnection, StaticMember
from ingestor.kafka.rebalance import PartitionListener
from ingestor.memory import release_free_memory
from ingestor.supervise import Backoff, supervise

log = structlog.get_logger("ingestor.fetch")


class FeedSink(Protocol):
    """What the registry drives: the fetch stage's feed set and schedule."""

    def add_feed(
        self, feed: FeedConfig, *, saved: SavedState | None = None, partition: int | None = None
    ) -> None: ...
    def remove_feed(self, feed_id: str) -> bool: ...
    def pause_feeds(self, feed_ids: Iterable[str]) -> None: ...
    def resume_feeds(self, feed_ids: Iterable[str]) -> None: ...
    async def settle(self, feed_ids: Iterable[str]) -> None: ...
    def set_state_partitions(self, count: int) -> None: ...
    def feeds_in(self, partitions: Iterable[int]) -> list[str]: ...
    def partition_of(self, feed_id: str) -> int | None: ...


class FeedRegistry:
    def __init__(self, settings: Settings, connection: KafkaConnection, sink: FeedSink) -> None:
        self._settings = settings
        self._connection = connection
        self._sink = sink
        self._topic = settings.topics.feeds
        self._group = feed_group_id(settings)
        # config literals are {config: true} on the topic; resolved from here (same id and origin)
        self._configured = {feed.id: feed for feed in settings.feeds}
        self._consumer: AIOKafkaConsumer | None = None
        # static group identity, kept across consumer rebuilds (ingestor/kafka/instance.py)
        self._member: StaticMember | None = None
        self._task: asyncio.Task[None] | None = None
        self._owned: set[int] = set()
        self._parked: set[int] = set()
        self._positions: dict[int, int] = {}
        #: the fetch-state records of the feeds being loaded, raw: each is decoded when its feed's
        #: definition comes, and dropped once the feed took it over
        self._restore: dict[str, bytes] = {}
        self._restore_size = 0  # len(_restore) when last built (see ``_taken``)
        #: definitions of held ids in another partition (a feed moving host: see ``placement``)
        self._definitions: Definitions[bytes] = Definitions()
        self._feeds_partitions = 0
        self._state_partitions = 0
        self.rebalances = 0
        self.refused = 0

    @property
    def partitions(self) -> list[int]:
        return sorted(self._owned - self._parked)

    @property
    def group_id(self) -> str:
        return self._group

    async def start(self) -> None:
        """Seed the config feeds, then join the group; returns once the consumer runs."""
        configured = list(self._settings.feeds)
        seeded = await seed_feeds(self._connection, self._topic, configured)
        if seeded:
            log.info("feeds_seeded", stage="fetch", topic=self._topic, feeds=len(seeded))
        # both counts before joining: the first assignment may arrive during any later await
        self._feeds_partitions = await partition_count(self._connection, self._topic)
        state_topic = self._settings.fetch.state_topic
        if state_topic:
            self._state_partitions = await partition_count(self._connection, state_topic)
        self._sink.set_state_partitions(
            self._state_partitions if self._state_partitions == self._feeds_partitions else 0
        )
        if self._member is None:
            self._member = self._connection.group_member(self._group, "fetch")
        self._consumer = await self._new_consumer()
        self._task = asyncio.create_task(self._run(), name="fetch-registry")

    async def stop(self) -> None:
        """Park every feed, let in-flight fetches record their state, then leave the group, so
        the next owner restores exactly what this one last did."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.revoked(set(self._owned))
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
        member, self._member = self._member, None
        if member is not None:
            member.release()

    async def _new_consumer(self) -> AIOKafkaConsumer:
        cfg = self._settings.fetch
        consumer = self._connection.consumer(
            group_id=self._group,
            member=self._member,
            session_timeout_ms=int(cfg.session_timeout * 1000),
            heartbeat_interval_ms=int(cfg.heartbeat_interval * 1000),
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        consumer.subscribe([self._topic], listener=PartitionListener(self))
        await consumer.start()
        log.info(
            "fetch_registry_joining",
            stage="fetch",
            topic=self._topic,
            group=self._group,
            instance=self._member.instance_id if self._member is not None else None,
        )
        return consumer

    async def _run(self) -> None:
        """Consume until cancelled; the backoff restarts from its base after every good poll."""
        backoff = Backoff(jitter=False)
        await supervise(
            lambda: self._consume(backoff), on_failure=self._failed, backoff=backoff, healthy_spell_s=None
        )

    async def _consume(self, backoff: Backoff) -> None:
        consumer = self._consumer
        if consumer is None:
            consumer = self._consumer = await self._new_consumer()
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    self._apply(tp.partition, record)
            backoff.reset()

    async def _failed(self, exc: Exception, attempt: int, delay: float) -> None:
        """The broker went away: give the feeds up, rejoin after ``delay``."""
        log.warning(
            "fetch_registry_failed", stage="fetch", error=f"{type(exc).__name__}: {exc}", retry_in_s=delay
        )
        await self.revoked(set(self._owned))
        self._drop(self._owned)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()

    # --- rebalance --------------------------------------------------------------------

    async def revoked(self, partitions: set[int]) -> None:
        ids = self._ids(partitions & self._owned)
        self._parked |= partitions & self._owned
        if not ids:
            return
        self._sink.pause_feeds(ids)
        await self._sink.settle(ids)
        log.info("feeds_parked", stage="fetch", partitions=sorted(partitions), feeds=len(ids))

    async def assigned(self, partitions: set[int]) -> None:
        self.rebalances += 1
        handover = shard.plan(self._owned, partitions)
        self._drop(handover.drop)
        self._sink.resume_feeds(self._ids(handover.resume))
        self._restore = {}
        state_topic = self._settings.fetch.state_topic
        if handover.load and state_topic:
            wanted = shard.state_partitions(handover.load, self._feeds_partitions, self._state_partitions)
            try:
                self._restore = await load_raw_states(self._connection, state_topic, partitions=wanted)
                self._restore_size = len(self._restore)
            except Exception as exc:  # without it the feeds are fetched unconditionally once: no loss
                log.warning("fetch_state_not_restored", stage="fetch", error=f"{type(exc).__name__}: {exc}")
        consumer = self._consumer
        if consumer is not None:
            for partition in handover.resume:
                position = self._positions.get(partition)
                if position is not None:  # go on where we were: re-reading would re-apply history
                    consumer.seek(TopicPartition(self._topic, partition), position)
            new = [TopicPartition(self._topic, p) for p in handover.load]
            if new:
                await consumer.seek_to_beginning(*new)
        self._owned = set(partitions)
        self._parked = set()
        log.info(
            "feeds_assigned",
            stage="fetch",
            partitions=sorted(partitions),
            kept=sorted(handover.resume),
            lost=sorted(handover.drop),
            new=sorted(handover.load),
            restored=len(self._restore),
            state_partitions=(self._feeds_partitions, self._state_partitions),
        )

    def _drop(self, partitions: Iterable[int]) -> None:
        dropped = set(partitions)
        lost = self._ids(dropped)
        for feed_id in lost:
            self._sink.remove_feed(feed_id)
        self._definitions.forget(dropped)
        for partition in dropped:
            self._positions.pop(partition, None)
            self._owned.discard(partition)
            self._parked.discard(partition)
        for feed_id in lost:  # also defined in a partition still ours (a move under way)
            alternate = self._definitions.take(feed_id)
            if alternate is not None:
                self._define(feed_id, alternate[0], alternate[1], offset=None)

    def _ids(self, partitions: Iterable[int]) -> list[str]:
        """The feeds held of these partitions, as the sink knows them (each feed's partition is
        in its state there): a set of ids per partition here as well was 60 bytes a feed."""
        wanted = set(partitions)
        return self._sink.feeds_in(wanted) if wanted else []

    # --- records ----------------------------------------------------------------------

    def _apply(self, partition: int, record: ConsumerRecord[bytes, bytes]) -> None:
        if partition in self._parked or partition not in self._owned:
            # aiokafka fetches for a new assignment while ``assigned`` still restores state: such
            # records are neither applied nor passed; the seek at the end of ``assigned`` re-reads them
            return
        self._positions[partition] = record.offset + 1
        if record.key is None:
            return
        feed_id = record.key.decode("utf-8", errors="replace")
        held = self._sink.partition_of(feed_id)
        change: Change[bytes]
        if record.value is None:
            change = self._definitions.tombstone(feed_id, partition, held)
            if change.remove and self._sink.remove_feed(feed_id):
                log.info("feed_removed", stage="fetch", feed=feed_id, partition=partition)
        else:
            change = self._definitions.definition(feed_id, partition, record.value, held)
        if change.value is not None:
            self._define(feed_id, change.partition, change.value, offset=record.offset)

    def _define(self, feed_id: str, partition: int, value: bytes, *, offset: int | None) -> None:
        """Hold (add or change) the feed a definition read from ``partition`` describes."""
        try:
            feed = decode_feed(feed_id, value)
        except FeedRefused as exc:
            self.refused += 1
            log.warning(
                "feed_definition_refused",
                stage="fetch",
                feed=feed_id,
                partition=partition,
                offset=offset,
                reason=str(exc),
            )
            return
        if not feed.enabled:
            self._sink.remove_feed(feed_id)
            return
        feed = bind_config_secrets(feed, self._configured.get(feed_id))
        raw = self._restore.get(feed_id)
        saved = decode(raw) if raw is not None else None
        if saved is not None and saved.url == feed.url:
            # taken over by the stage: holding every restored record (and the JSON values it
            # references) until the next rebalance doubled a fetcher's memory (issue 15)
            self._taken(feed_id)
        self._sink.add_feed(feed, saved=saved, partition=partition)

    def _taken(self, feed_id: str) -> None:
        """Forget a restored record the stage took over.  A dict keeps its size when entries
        go, so once most are gone the rest move to a dict of their size (or none at all), and
        the memory the records took is handed back (see ``ingestor.memory``)."""
        del self._restore[feed_id]
        if len(self._restore) * 4 <= self._restore_size:
            self._restore = dict(self._restore)
            self._restore_size = len(self._restore)
            release_free_memory()
