"""The parse stage: news.raw -> news.items, one message per item or live fragment.

Every document is parsed in a worker process (``consumers/parse/workers.py``) with a deadline,
never on the event loop: one hostile page must not freeze fetching, heartbeats and ``/livez``
of the whole daemon.  A document still parsing at ``parse.deadline`` has its worker killed
and goes to the DLQ as ``parse_timeout``; a worker that dies under a document sends it there
as ``parse_crashed``; the stage carries on with the next record either way.

Full text behind feed entries (docs/architecture.md): a feed document's ``feed-full-text``
header (missing: ``never``) says which entries want their linked page; those go to
``topics.article_requests`` instead of ``news.items``.  The fetcher answers on ``news.raw``
with an *article record* (an ``article-entry`` header): its page is parsed in the same
workers and merged with the entry (``body_source: page``), or the entry is published with
the feed's text (``body_source: feed``) when the fetcher fell back, when the page holds no
article, or when the page is refused (the page then goes to the DLQ, and the entry to
``news.items`` in the same batch: an entry is never lost with its page).
"""

from __future__ import annotations

import asyncio
import json
import time
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from consumers.parse import ParseLimits, RawDocument
from consumers.parse.document import FeedFormat
from consumers.parse.fulltext import as_feed_entry
from consumers.parse.teaser import FullTextMode, read_mode
from consumers.parse.workers import (
    Fallback,
    Parsed,
    Unparsable,
    WorkerCrashed,
    WorkerInterrupted,
    WorkerPool,
    WorkerTimeout,
    article_job,
    parse_job,
)
from ingestor import headers as hdr
from ingestor.config import Settings
from ingestor.consumer_loop import ConsumeLoop, Output, Refused, RetryableStageError
from ingestor.kafka import KafkaConnection
from ingestor.models import NewsItem, item_from_json, item_to_json
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
#: Feeds remembered as already warned about an unknown ``feed-full-text`` value (one warning
#: per feed and process; the set is cleared when full, so memory stays bounded).
_MAX_WARNED_FEEDS: Final = 10_000
#: Distinct fallback reasons a process labels the fallback counter with; later ones count
#: as ``other`` (the reasons come from the fetcher, and a label set must stay small).
_MAX_FALLBACK_LABELS: Final = 64
_REASON_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def raw_document(record: ConsumerRecord[bytes, bytes], *, format: FeedFormat | None = None) -> RawDocument:
    """A news.raw message as the pure parser's input; bad metadata is a refusal, not a crash.
    ``format`` overrides the feed's (an article record's page is always read as HTML)."""
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
        format=format if format is not None else next((f for f in _FORMATS if f == fmt), "auto"),
        language=headers.get(hdr.FEED_LANGUAGE),
    )


class ParseInterrupted(RetryableStageError):
    """The parse was cut short by a stop or a broken pool, not by the document: the batch is
    not committed and its records are parsed again, never dead-lettered for it."""


def parse_order_key(record: ConsumerRecord[bytes, bytes]) -> bytes | None:
    """What must be parsed in order: one feed's documents (by the record key), except that the
    article pages of one feed are independent of each other and only need to stay in order per
    entry (its fallback before its page).  Without this, a teaser feed's pages would be parsed
    one at a time on one worker, whatever the pool's size."""
    key: bytes | None = record.key
    for name, value in record.headers or ():
        if name == hdr.ARTICLE_ENTRY and value:
            try:
                entry_id = json.loads(value).get("id")
            except (ValueError, AttributeError):
                return key  # a bad entry is refused by the handler; its order is moot
            if isinstance(entry_id, str):
                return (key or b"") + b"\x00" + entry_id.encode("utf-8", "replace")
            return key
    return key


def _count_restart(reason: str) -> None:
    metrics.PARSE_WORKER_RESTARTS.labels(reason).inc()


_fallback_labels: set[str] = set()


def fallback_label(reason: str) -> str:
    """A fallback reason as a metric label: lower-case ``[a-z0-9_]``, at most 40 characters,
    and at most ``_MAX_FALLBACK_LABELS`` distinct ones per process (then ``other``)."""
    label = reason.strip().lower()[:40]
    if not label or not set(label) <= _REASON_CHARS:
        return "other"
    if label not in _fallback_labels:
        if len(_fallback_labels) >= _MAX_FALLBACK_LABELS:
            return "other"
        _fallback_labels.add(label)
    return label


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


@dataclass(frozen=True, slots=True)
class _ArticleRecord:
    """An article record's entry and where it came from, for its outputs and log line."""

    record: ConsumerRecord[bytes, bytes]
    feed_id: str
    entry: NewsItem
    started: float

    @classmethod
    def read(cls, record: ConsumerRecord[bytes, bytes], headers: dict[str, str]) -> _ArticleRecord:
        """The entry from the ``article-entry`` header; an unreadable one is bad metadata
        (there is no entry to publish then)."""
        started = time.monotonic()
        if record.key is None:
            raise Refused("bad_metadata", "article record without a feed id key")
        try:
            entry = item_from_json(headers[hdr.ARTICLE_ENTRY])
        except ValidationError as exc:
            message = f"article-entry is not an item: {exc}".replace("\n", " ")
            raise Refused("bad_metadata", message[:1000]) from None
        return cls(record, record.key.decode("utf-8", "replace"), entry, started)

    @property
    def context(self) -> dict[str, object]:
        return {
            "stage": STAGE,
            "feed": self.feed_id,
            "item": self.entry.id,
            "topic": self.record.topic,
            "partition": self.record.partition,
            "offset": self.record.offset,
        }

    def elapsed_ms(self) -> float:
        return round((time.monotonic() - self.started) * 1000, 2)


class ParseStage:
    def __init__(self, settings: Settings, connection: KafkaConnection) -> None:
        self._settings = settings
        self._deadline = settings.parse.deadline
        self._limits = ParseLimits()
        self.items_produced = 0
        self.requests_produced = 0
        self._requests_topic = settings.topics.article_requests
        self._teaser_words = settings.full_text.teaser_words
        self._warned_modes: set[str] = set()
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
            output_topics=[settings.topics.items, settings.topics.article_requests],
            max_batch=settings.parse.max_batch,
            max_message_bytes=settings.parse.max_message_bytes,
            concurrency=settings.parse.worker_count,
            order_key=parse_order_key,
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

    def _full_text_mode(self, headers: dict[str, str], feed_id: str) -> FullTextMode:
        """The feed's ``feed-full-text`` header; an unknown value reads as ``never``, counted,
        and warned about once per feed (a newer fetcher may know a mode this parse does not)."""
        value = headers.get(hdr.FEED_FULL_TEXT)
        mode = read_mode(value)
        if mode is not None:
            return mode
        metrics.FULL_TEXT_MODE_UNKNOWN.inc()
        if feed_id not in self._warned_modes:
            if len(self._warned_modes) >= _MAX_WARNED_FEEDS:
                self._warned_modes.clear()
            self._warned_modes.add(feed_id)
            log.warning("full_text_mode_unknown", stage=STAGE, feed=feed_id, value=(value or "")[:100])
        return "never"

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> list[Output]:
        headers = hdr.as_dict(record.headers)
        if hdr.ARTICLE_ENTRY in headers:
            return await self._handle_article(record, headers)
        started = time.monotonic()
        doc = raw_document(record)
        context = {
            "stage": STAGE,
            "feed": doc.feed_id,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
        }
        mode = self._full_text_mode(headers, doc.feed_id)
        try:
            outcome = await self.pool.run(
                parse_job, doc, self._limits, mode, self._teaser_words, timeout=self._deadline
            )
        except WorkerTimeout as exc:
            metrics.PARSE_TIMEOUTS.inc()
            raise self._refuse(doc, context, started, "parse_timeout", str(exc)) from None
        except WorkerCrashed as exc:
            raise self._refuse(doc, context, started, "parse_crashed", str(exc)) from None
        except WorkerInterrupted as exc:
            raise ParseInterrupted(str(exc)) from None
        if not isinstance(outcome, Parsed):
            raise self._refuse(doc, context, started, outcome.reason, outcome.message)
        outputs = [self._to_items(record, doc.feed_id, item_id, value) for item_id, value in outcome.items]
        self.items_produced += len(outputs)
        requests = [
            Output(
                self._requests_topic,
                doc.feed_id.encode("utf-8"),
                value,
                hdr.build(
                    [
                        ("source-feed", doc.feed_id),
                        ("raw-partition", str(record.partition)),
                        ("raw-offset", str(record.offset)),
                        (hdr.FEED_TIMEZONE, headers.get(hdr.FEED_TIMEZONE)),
                        (hdr.FEED_LANGUAGE, headers.get(hdr.FEED_LANGUAGE)),
                        (hdr.URL, url),
                    ]
                ),
            )
            for _entry_id, value, url in outcome.requests
        ]
        self.requests_produced += len(requests)
        metrics.ARTICLE_REQUESTS.inc(len(requests))
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
            requests=len(requests),
            dropped=outcome.dropped,
            bytes=len(doc.body),
            duration_ms=round((time.monotonic() - started) * 1000, 2),
        )
        return outputs + requests

    def _to_items(
        self, record: ConsumerRecord[bytes, bytes], feed_id: str, item_id: str, value: bytes
    ) -> Output:
        """An item for news.items, keyed by its id, with where it came from and when that
        news.raw record was written (``raw-timestamp``, ms: dedup copies it onto news.published)."""
        return Output(
            self._settings.topics.items,
            item_id.encode("utf-8"),
            value,
            hdr.build(
                [
                    ("source-feed", feed_id),
                    ("raw-partition", str(record.partition)),
                    ("raw-offset", str(record.offset)),
                    (hdr.RAW_TIMESTAMP, str(record.timestamp)),
                ]
            ),
        )

    # ---- article records: an entry's linked page (or the fetcher's fallback) ----------------

    async def _handle_article(
        self, record: ConsumerRecord[bytes, bytes], headers: dict[str, str]
    ) -> list[Output]:
        """An article record: the entry with its page's text, or with the feed's."""
        article = _ArticleRecord.read(record, headers)
        outcome = headers.get(hdr.ARTICLE_OUTCOME) or "no_outcome"
        if outcome != "page":
            return [self._fell_back(article, outcome, None)]
        try:
            doc = raw_document(record, format="html")
        except Refused as exc:
            raise self._refuse_page(article, exc.error_type, exc.message) from None
        try:
            result = await self.pool.run(
                article_job, doc, headers[hdr.ARTICLE_ENTRY], self._limits, timeout=self._deadline
            )
        except WorkerTimeout as exc:
            metrics.PARSE_TIMEOUTS.inc()
            raise self._refuse_page(article, "parse_timeout", str(exc)) from None
        except WorkerCrashed as exc:
            raise self._refuse_page(article, "parse_crashed", str(exc)) from None
        except WorkerInterrupted as exc:
            raise ParseInterrupted(str(exc)) from None
        if isinstance(result, Fallback):
            return [self._fell_back(article, result.reason, result.message)]
        if isinstance(result, Unparsable):
            raise self._refuse_page(article, result.reason, result.message)
        ((item_id, value),) = result.items
        metrics.FULL_TEXT_ITEMS.labels("page").inc()
        metrics.PARSE_DURATION.observe(time.monotonic() - article.started)
        metrics.observe_parsed(article.feed_id, result.shape, 1)
        self.items_produced += 1
        log.info(
            "article_parsed",
            **article.context,
            status="page",
            reason=None,
            body_source="page",
            bytes=len(doc.body),
            duration_ms=article.elapsed_ms(),
        )
        return [self._to_items(record, article.feed_id, item_id, value)]

    def _fell_back(
        self, article: _ArticleRecord, reason: str, message: str | None, *, status: str = "fallback"
    ) -> Output:
        """Count and log an entry published with the feed's text; its output."""
        metrics.FULL_TEXT_ITEMS.labels("feed").inc()
        metrics.FULL_TEXT_FALLBACKS.labels(fallback_label(reason)).inc()
        metrics.observe_parsed(article.feed_id, "full_text", 1)
        self.items_produced += 1
        log.info(
            "article_parsed",
            **article.context,
            status=status,
            reason=reason[:100],
            error=message[:300] if message else None,
            body_source="feed",
            bytes=len(article.record.value or b""),
            duration_ms=article.elapsed_ms(),
        )
        entry = as_feed_entry(article.entry)
        return self._to_items(article.record, article.feed_id, entry.id, item_to_json(entry))

    def _refuse_page(self, article: _ArticleRecord, reason: str, message: str) -> Refused:
        """A page the parser refused: the page to the DLQ (the consume loop), and the entry,
        with the feed's text, to news.items in the same batch."""
        metrics.observe_parse_failure(article.feed_id, reason)
        entry_output = self._fell_back(article, reason, message, status="refused")
        return Refused(reason, message, outputs=[entry_output])

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
