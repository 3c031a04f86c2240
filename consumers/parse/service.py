"""The parse stage: news.raw -> news.items, one message per item or live fragment."""

from __future__ import annotations

import asyncio
import time
import zoneinfo
from datetime import UTC, datetime

import structlog
from aiokafka import ConsumerRecord

from consumers.parse import ParseError, RawDocument, parse_document, sniff
from consumers.parse.document import FeedFormat
from ingestor import headers as hdr
from ingestor import metrics
from ingestor.config import Settings
from ingestor.consumer_loop import ConsumeLoop, Output, Refused
from ingestor.kafka import KafkaConnection
from ingestor.models import item_to_json

log = structlog.get_logger("consumers.parse")

STAGE = "parse"
_FORMATS: tuple[FeedFormat, ...] = ("auto", "feed", "text", "html")

#: Documents above this size are parsed in a worker thread so the event loop (and with it the
#: fetcher's schedule in the all-in-one daemon) keeps ticking.
_THREAD_THRESHOLD = 64 * 1024


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


class ParseStage:
    def __init__(self, settings: Settings, connection: KafkaConnection) -> None:
        self._settings = settings
        self.items_produced = 0
        self.loop = ConsumeLoop(
            stage=STAGE,
            connection=connection,
            topics=[settings.topics.raw],
            group_id=settings.parse.group_id,
            handler=self._handle,
            dlq_topic=settings.topics.dlq,
            output_topics=[settings.topics.items],
            max_batch=settings.parse.max_batch,
            max_message_bytes=settings.parse.max_message_bytes,
        )

    async def start(self) -> None:
        await self.loop.start()

    async def stop(self) -> None:
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
            if len(doc.body) > _THREAD_THRESHOLD:
                items = await asyncio.to_thread(parse_document, doc)
            else:
                items = parse_document(doc)
        except ParseError as exc:
            metrics.PARSE_FAILURES.labels(doc.feed_id, exc.reason).inc()
            log.warning(
                "raw_parsed",
                **context,
                status="refused",
                reason=exc.reason,
                error=exc.message[:300],
                duration_ms=round((time.monotonic() - started) * 1000, 2),
            )
            raise Refused(exc.reason, exc.message) from None
        outputs = [
            Output(
                self._settings.topics.items,
                item.id.encode("utf-8"),
                item_to_json(item),
                hdr.build(
                    [
                        ("source-feed", doc.feed_id),
                        ("raw-partition", str(record.partition)),
                        ("raw-offset", str(record.offset)),
                    ]
                ),
            )
            for item in items
        ]
        self.items_produced += len(outputs)
        metrics.PARSE_DURATION.observe(time.monotonic() - started)
        shape = doc.format if doc.format != "auto" else sniff(doc.body, doc.content_type)
        metrics.ITEMS_PARSED.labels(doc.feed_id, shape).inc(len(outputs))
        log.info(
            "raw_parsed",
            **context,
            status="ok",
            items=len(outputs),
            bytes=len(doc.body),
            duration_ms=round((time.monotonic() - started) * 1000, 2),
        )
        return outputs
