"""The parse stage: news.raw -> news.items, one message per item or live fragment.

Every document is parsed in a worker process (``consumers/parse/workers.py``) with a deadline,
never on the event loop: one hostile page must not freeze fetching, heartbeats and ``/livez``
of the whole daemon.  A document still parsing at ``parse.deadline`` has its worker killed
and goes to the DLQ as ``parse_timeout``; a worker that dies under a document sends it there
as ``parse_crashed``; the stage carries on with the next record either way.
"""

from __future__ import annotations

import asyncio
import time
import zoneinfo
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from aiokafka import ConsumerRecord

from consumers.parse import ParseLimits, RawDocument
from consumers.parse.document import FeedFormat
from consumers.parse.workers import (
    Parsed,
    WorkerCrashed,
    WorkerInterrupted,
    WorkerPool,
    WorkerTimeout,
    parse_job,
)
from ingestor import headers as hdr
from ingestor.config import Settings
from ingestor.consumer_loop import ConsumeLoop, Output, Refused, RetryableStageError
from ingestor.kafka import KafkaConnection
from ingestor.ops import metrics

log = structlog.get_logger("consumers.parse")

STAGE = "parse"
_FORMATS: tuple[FeedFormat, ...] = ("auto", "feed", "text", "html")

#: On stop, the batch in hand gets this long to finish before the workers are killed (a
#: stalled parse would otherwise hold the shutdown for up to its deadline); what is not
#: committed is parsed again on the next start.
STOP_GRACE_S: Final = 2.0
#: What killing the workers may take at most on stop.
POOL_STOP_S: Final = 1.5


def raw_document(record: ConsumerRecord[bytes, bytes]) -> RawDocument:
    """A news.raw message as the pure parser's input; bad metadata is a refusal, not a crash."""
    headers = hdr.as_dict(record.headers)
    if record.key is None:
        raise Refused("bad_metadata", "news.raw message without a feed id key")
    feed_id = record.key.decode("utf-8", "replace")
    fetched_text = headers.get(hdr.FETCHED_AT)
    try:
        fetched_at = (
            datetime.fromisoformat(fetched_text.replace("Z", "+00:00"))
            if fetched_text
            else datetime.fromtimestamp(record.timestamp / 1000, UTC)
        )
        if fetched_at.tzinfo is None:
            fetched_at = fetched_at.replace(tzinfo=UTC)
    except ValueError:
        raise Refused("bad_metadata", f"fetched-at {fetched_text!r} is not RFC 3339") from None
    timezone = headers.get(hdr.FEED_TIMEZONE) or "UTC"
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise Refused("bad_metadata", f"unknown feed time zone {timezone!r}") from None
    fmt = headers.get(hdr.FEED_FORMAT) or "auto"
    return RawDocument(
        body=record.value or b"",
        url=headers.get(hdr.URL) or "",
        feed_id=feed_id,
        fetched_at=fetched_at,
        content_type=headers.get(hdr.CONTENT_TYPE),
        final_url=headers.get(hdr.FINAL_URL),
        timezone=timezone,
        format=next((f for f in _FORMATS if f == fmt), "auto"),
        language=headers.get(hdr.FEED_LANGUAGE),
    )


class ParseInterrupted(RetryableStageError):
    """The parse was cut short by a stop or a broken pool, not by the document: the batch is
    not committed and its records are parsed again, never dead-lettered for it."""


def _count_restart(reason: str) -> None:
    metrics.PARSE_WORKER_RESTARTS.labels(reason).inc()


class ParseLoop(ConsumeLoop):
    """The consume loop that also owns the worker pool's lifetime, since the daemon stops a
    consuming stage through its loop (``ingestor/tools/daemon.py``)."""

    def __init__(self, *, pool: WorkerPool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool = pool

    async def stop(self, timeout: float = 8.0) -> None:
        """The base stop (finish the batch in hand, leave the group), but a batch stuck in a
        slow parse is not waited for past STOP_GRACE_S: the workers are killed instead."""
        stopping = asyncio.create_task(super().stop(max(0.5, timeout - POOL_STOP_S)))
        try:
            done, _ = await asyncio.wait({stopping}, timeout=STOP_GRACE_S)
            if not done:
                await self.pool.close(POOL_STOP_S)
            await stopping
        finally:
            await self.pool.close(POOL_STOP_S)


class ParseStage:
    def __init__(self, settings: Settings, connection: KafkaConnection) -> None:
        self._settings = settings
        self._deadline = settings.parse.deadline
        self._limits = ParseLimits()
        self.items_produced = 0
        self.pool = WorkerPool(
            settings.parse.worker_count,
            memory_limit=settings.parse.worker_memory,
            on_restart=_count_restart,
        )
        self.loop = ParseLoop(
            pool=self.pool,
            stage=STAGE,
            connection=connection,
            topics=[settings.topics.raw],
            group_id=settings.parse.group_id,
            handler=self._handle,
            dlq_topic=settings.topics.dlq,
            output_topics=[settings.topics.items],
            max_batch=settings.parse.max_batch,
            max_message_bytes=settings.parse.max_message_bytes,
            concurrency=settings.parse.worker_count,
        )

    async def start(self) -> None:
        await self.pool.start()  # the workers are ready before the first record
        await self.loop.start()

    async def stop(self) -> None:
        """Stop consuming and kill the workers (also what a tool that only used handle() calls)."""
        await self.loop.stop()

    async def handle(self, record: ConsumerRecord[bytes, bytes]) -> list[Output]:
        """The stage's handler, for tools that must parse exactly as the stage does (replay)."""
        return await self._handle(record)

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> list[Output]:
        started = time.monotonic()
        doc = raw_document(record)
        context = {
            "stage": STAGE,
            "feed": doc.feed_id,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
        }
        try:
            outcome = await self.pool.run(parse_job, doc, self._limits, timeout=self._deadline)
        except WorkerTimeout as exc:
            metrics.PARSE_TIMEOUTS.inc()
            raise self._refuse(doc, context, started, "parse_timeout", str(exc)) from None
        except WorkerCrashed as exc:
            raise self._refuse(doc, context, started, "parse_crashed", str(exc)) from None
        except WorkerInterrupted as exc:
            raise ParseInterrupted(str(exc)) from None
        if not isinstance(outcome, Parsed):
            raise self._refuse(doc, context, started, outcome.reason, outcome.message)
        outputs = [
            Output(
                self._settings.topics.items,
                item_id.encode("utf-8"),
                value,
                hdr.build(
                    [
                        ("source-feed", doc.feed_id),
                        ("raw-partition", str(record.partition)),
                        ("raw-offset", str(record.offset)),
                    ]
                ),
            )
            for item_id, value in outcome.items
        ]
        self.items_produced += len(outputs)
        metrics.PARSE_DURATION.observe(time.monotonic() - started)
        metrics.observe_parsed(doc.feed_id, outcome.shape, len(outputs))
        for reason, count in sorted(outcome.dropped.items()):
            metrics.ITEMS_DROPPED.labels(reason).inc(count)
            log.warning("items_dropped", **context, reason=reason, count=count)
        log.info(
            "raw_parsed",
            **context,
            status="ok",
            items=len(outputs),
            dropped=outcome.dropped,
            bytes=len(doc.body),
            duration_ms=round((time.monotonic() - started) * 1000, 2),
        )
        return outputs

    @staticmethod
    def _refuse(
        doc: RawDocument, context: dict[str, object], started: float, reason: str, message: str
    ) -> Refused:
        """Count and log a document that yields nothing; the consume loop dead-letters it."""
        metrics.observe_parse_failure(doc.feed_id, reason)
        log.warning(
            "raw_parsed",
            **context,
            status="refused",
            reason=reason,
            error=message[:300],
            bytes=len(doc.body),
            duration_ms=round((time.monotonic() - started) * 1000, 2),
        )
        return Refused(reason, message)
