"""The dedup stage: news.items -> news.published, with state restored from news.published."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence

import structlog
from aiokafka import ConsumerRecord, TopicPartition
from pydantic import ValidationError

from consumers.dedup.decision import PartitionState
from consumers.dedup.restore import (
    FETCHED_AT_HEADER,
    HASH_HEADER,
    ITEMS_TIMESTAMP_HEADER,
    RAW_TIMESTAMP_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    VERSION_HEADER,
    restore_partitions,
)
from ingestor import headers as hdr
from ingestor.config import Settings
from ingestor.consumer_loop import ConsumeLoop, Output, Refused, RetryableStageError
from ingestor.kafka import KafkaConnection
from ingestor.models import SCHEMA_VERSION, NewsItem, format_utc
from ingestor.ops import metrics

log = structlog.get_logger("consumers.dedup")

STAGE = "dedup"
RESTORE_WAIT_S = 120.0


def cloudevents_headers(item: NewsItem, event: str, version: int) -> list[tuple[str, str | None]]:
    """CloudEvents Kafka protocol binding, binary mode: the value is the item, the headers the event."""
    return [
        ("ce_specversion", "1.0"),
        ("ce_id", f"{item.id}:{version}"),
        ("ce_source", f"news-ingestor/feeds/{item.source}"),
        ("ce_type", f"news.item.{event}"),
        ("ce_time", format_utc(item.updated_at or item.published_at or item.fetched_at)),
        ("ce_subject", item.id),
        ("ce_dataschema", f"news-ingestor:item:v{SCHEMA_VERSION}"),
        ("content-type", "application/json"),
    ]


class DedupStage:
    """Owns partitions of news.items and, with them, the same partitions of news.published."""

    def __init__(self, settings: Settings, connection: KafkaConnection) -> None:
        self._settings = settings
        self._connection = connection
        self._states: dict[int, PartitionState] = {}
        self._restoring: dict[int, asyncio.Event] = {}
        self.loop = ConsumeLoop(
            stage=STAGE,
            connection=connection,
            topics=[settings.topics.items],
            group_id=settings.dedup.group_id,
            handler=self._handle,
            dlq_topic=settings.topics.dlq,
            output_topics=[settings.topics.published],
            max_batch=settings.dedup.max_batch,
            max_message_bytes=settings.dedup.max_message_bytes,
            on_assigned=self._on_assigned,
            on_revoked=self._on_revoked,
            # Publishing next to a partition's new owner would publish twice: no batch without
            # the coordinator's word that the partition is still ours (ingestor/kafka/membership.py).
            single_writer=True,
        )
        self.published = 0
        self.last_published_at: float | None = None

    @property
    def state_size(self) -> int:
        return sum(len(state.seen) for state in self._states.values())

    async def start(self) -> None:
        await self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        partitions = sorted(tp.partition for tp in assigned if tp.topic == self._settings.topics.items)
        events = {partition: asyncio.Event() for partition in partitions}
        self._restoring.update(events)
        try:
            restored = await restore_partitions(self._connection, self._settings.topics.published, partitions)
            self._states.update(restored)
        finally:
            # Waiters wake either way; without a state they refuse to decide (RestoreMissing).
            for event in events.values():
                event.set()

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self._states.pop(tp.partition, None)
            self._restoring.pop(tp.partition, None)

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> list[Output]:
        started = time.monotonic()
        state = await self._state_for(record.partition)
        if state.already_decided(record.offset):
            return []
        item = _parse_item(record)
        decision = state.decide(item.id, item.content_hash, record.offset, item.fetched_at)
        if not decision.publish:
            metrics.ITEMS_UNCHANGED.inc()
            log.debug(
                "item_unchanged",
                stage=STAGE,
                item=item.id,
                feed=item.source,
                partition=record.partition,
                offset=record.offset,
            )
            return []
        assert decision.event is not None
        value = item.model_dump(mode="json")
        value["event"] = decision.event
        value["version"] = decision.version
        headers = hdr.build(
            [
                *cloudevents_headers(item, decision.event, decision.version),
                (VERSION_HEADER, str(decision.version)),
                (HASH_HEADER, item.content_hash),
                (SOURCE_PARTITION_HEADER, str(record.partition)),
                (SOURCE_OFFSET_HEADER, str(record.offset)),
                (FETCHED_AT_HEADER, format_utc(item.fetched_at)),
                (ITEMS_TIMESTAMP_HEADER, str(record.timestamp)),
                (RAW_TIMESTAMP_HEADER, raw_timestamp(record.headers)),
            ]
        )
        self.published += 1
        self.last_published_at = time.time()
        metrics.observe_published(item.source, decision.event)
        log.info(
            "item_published",
            stage=STAGE,
            item=item.id,
            feed=item.source,
            kind=item.kind,
            topic=self._settings.topics.published,
            partition=record.partition,
            offset=record.offset,
            status=decision.event,
            version=decision.version,
            title=item.title[:120],
            duration_ms=round((time.monotonic() - started) * 1000, 2),
        )
        return [
            Output(
                self._settings.topics.published,
                item.id.encode("utf-8"),
                json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
                headers,
                partition=record.partition,  # co-partitioned with news.items
            )
        ]

    async def _state_for(self, partition: int) -> PartitionState:
        """aiokafka may hand out records while the assignment hook still restores: wait for it."""
        state = self._states.get(partition)
        if state is not None:
            return state
        event = self._restoring.get(partition)
        if event is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), RESTORE_WAIT_S)
            state = self._states.get(partition)
        if state is None:
            # Never decide without the restored state: that could publish twice. Raising tears
            # the consumer down; the next assignment restores again.
            raise RestoreMissing(f"no restored dedup state for partition {partition}")
        return state


def raw_timestamp(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The items record's ``raw-timestamp`` if it is a plain millisecond count, else None (left
    out): a scan of a few headers, no decoding of the others."""
    for name, value in headers or ():
        if name == RAW_TIMESTAMP_HEADER:
            if value and len(value) <= 16 and value.isdigit():
                return value.decode("ascii")
            return None
    return None


class RestoreMissing(RetryableStageError):
    """A record arrived for a partition whose published history was not restored."""


def _parse_item(record: ConsumerRecord[bytes, bytes]) -> NewsItem:
    if not record.value:
        raise Refused("invalid_item", "empty message")
    try:
        raw = json.loads(record.value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused("invalid_json", str(exc)) from None
    if not isinstance(raw, dict):
        raise Refused("invalid_item", "not a JSON object")
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise Refused("unknown_schema_version", f"schema_version {raw.get('schema_version')!r}")
    try:
        item = NewsItem.model_validate(raw)
    except ValidationError as exc:
        raise Refused("invalid_item", str(exc).replace("\n", " ")[:1000]) from None
    if record.key is not None and record.key.decode("utf-8", "replace") != item.id:
        raise Refused("invalid_item", "message key is not the item id")
    return item
