"""The article fetcher: each teaser entry's linked page, fetched once, inside the fetch stage.

A member of the consumer group ``full_text.group_id`` on ``topics.article_requests`` (keyed by
feed id, so one site's entries land on one fetcher and its per-host cap).  Its memory is the
compacted ``full_text.state_topic``: before it handles a request of partition *p* it reads
state partition *p* to its real end, and it writes each entry's record to that same partition.

The order of writes is what makes a crash cheap: a new request's ``pending`` record is
acknowledged before the request's offset is committed; the page (or the fallback) is
acknowledged on ``topics.raw`` before the entry is marked ``done`` (or ``failed``).  A SIGKILL
therefore costs at most the pages in flight, fetched again by the next owner.

Politeness is the feeds': the stage's own ``Fetcher`` (guard, caps, timeouts, User-Agent), its
``HostDispatcher`` (the per-host cap, shared fairly with feed fetches), robots.txt
(``robots``), and at most ``full_text.concurrency`` article fetches at once.  The rules are
pure (``article_decision``); this module only does the I/O, the timers, the log lines and the
metrics, and never lets one bad request or page take the stage down.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from ingestor import headers as hdr
from ingestor.config import FeedConfig, Settings
from ingestor.consumer_loop import dlq_output
from ingestor.fetch.article_decision import (
    ArticlePolicy,
    Attempt,
    Kind,
    after_fallback,
    at_deadline,
    classify,
    expired,
    on_attempt,
    on_request,
    wake_at,
)
from ingestor.fetch.article_state import ArticleState, BadRequest, parse_request
from ingestor.fetch.article_store import ArticleStore
from ingestor.fetch.dispatcher import HostDispatcher
from ingestor.fetch.feedspec import AnyFeed, host_of
from ingestor.fetch.http import Fetcher, FetchResult
from ingestor.fetch.raw import fetch_headers
from ingestor.fetch.robots import RobotsCache
from ingestor.kafka import KafkaConnection, StaticMember
from ingestor.kafka.rebalance import PartitionListener
from ingestor.models import format_utc
from ingestor.ops import metrics
from ingestor.supervise import Backoff, supervise

log = structlog.get_logger("ingestor.fetch")

_FLUSH_S = 5.0
_RETRY_PRODUCE_S = 1.0  # a fallback the broker did not take is tried again this soon
_MAX_SLEEP_S = 3600.0
_BATCH = 500
_CLOSE_S = 1.5  # leaving the group on stop, at most


@dataclass
class ArticleStats:
    """Counts since start, for health and tests (the metrics have the same, process-wide)."""

    requests: int = 0
    skipped: int = 0
    refused: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)  # attempt reason -> count
    fallbacks: dict[str, int] = field(default_factory=dict)  # fallback reason -> count
    produced_pages: int = 0

    def bump(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1


class ArticleFetcher:
    def __init__(
        self,
        settings: Settings,
        connection: KafkaConnection,
        *,
        fetcher: Fetcher,
        dispatcher: HostDispatcher,
        release: Callable[[str], None],
        feed_of: Callable[[str], AnyFeed | None] = lambda _feed_id: None,
        rand: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        full_text, topics = settings.full_text, settings.topics
        self._settings = settings
        self._connection = connection
        self._fetcher = fetcher
        self._dispatcher = dispatcher
        self._release_host = release
        self._feed_of = feed_of
        self._rand = rand or random.Random().random
        self._clock = clock
        self.policy = ArticlePolicy.from_config(full_text, settings.fetch)
        self.requests_topic = topics.article_requests
        self._raw_topic = topics.raw
        self._dlq_topic = topics.dlq
        self._group = full_text.group_id
        self._store = ArticleStore(
            connection, full_text.state_topic, topics.partitions, topics.replication_factor
        )
        self._robots = RobotsCache(fetcher, full_text.robots_ttl, clock=clock)
        self._concurrency = full_text.concurrency
        self._slots: asyncio.Semaphore | None = None
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        # a static group.instance.id (ingestor/kafka/instance.py), kept across consumer rebuilds:
        # a restarted fetcher gets its request partitions back without a rebalance
        self._member: StaticMember | None = None
        self._task: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._states: dict[int, dict[str, ArticleState]] = {}  # per request partition: entry id -> record
        self._loaded: set[int] = set()  # partitions whose requests may be handled now
        self._work: dict[tuple[int, str], asyncio.Task[None]] = {}
        self._grants: dict[Hashable, asyncio.Future[None]] = {}
        self._broken: Exception | None = None  # a restore failed: rebuild the consumer
        self._loading: asyncio.Task[dict[int, dict[str, ArticleState]]] | None = None
        self._stopping = False
        self._joined = False  # an assignment has come since the consumer started
        self.stats = ArticleStats()
        dispatcher.article_granted = self._granted

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def topics(self) -> list[str]:
        """What this fetcher produces to (the stage pins them on its producer)."""
        return [self._raw_topic, self._store.topic, self._dlq_topic]

    @property
    def partitions(self) -> frozenset[int]:
        """The request partitions being served (their state restored)."""
        return frozenset(self._loaded)

    @property
    def pending(self) -> int:
        """Entries whose page is still wanted here (pending, or fallen back and still tried)."""
        return len(self._work)

    async def ensure_topics(self) -> None:
        await self._store.ensure_topic()

    async def start(self, producer: AIOKafkaProducer) -> None:
        """Join the group in the background: the stage's start does not wait for an assignment."""
        self._producer = producer
        self._stopping = False
        self._slots = asyncio.Semaphore(self._concurrency)
        if self._member is None:
            self._member = self._connection.group_member(self._group, "articles")
        self._task = asyncio.create_task(self._run(), name="article-requests")
        self._sweeper = asyncio.create_task(self._sweep(), name="article-sweep")

    async def stop(self) -> None:
        """No new requests; in-flight pages are dropped (fetched again by the next owner)."""
        self._stopping = True
        if self._loading is not None:
            self._loading.cancel()
        for task in (self._sweeper, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._sweeper = self._task = None
        await self.revoked(set(self._states))
        self._states.clear()
        # not yet in the group: nothing to hand over, the join in progress is closed in the background
        await self._close_consumer(_CLOSE_S if self._joined else 0.0)
        member, self._member = self._member, None
        if member is not None:
            member.release()
        self._producer = None
        log.info(
            "articles_stopped",
            stage="fetch",
            requests=self.stats.requests,
            pages=self.stats.produced_pages,
            fallbacks=sum(self.stats.fallbacks.values()),
        )

    async def _run(self) -> None:
        backoff = Backoff(jitter=False)
        await supervise(
            lambda: self._consume(backoff), on_failure=self._failed, backoff=backoff, healthy_spell_s=None
        )

    async def _consume(self, backoff: Backoff) -> None:
        consumer = self._consumer
        if consumer is None:
            cfg = self._settings.fetch
            consumer = self._connection.consumer(
                group_id=self._group,
                member=self._member,
                session_timeout_ms=int(cfg.session_timeout * 1000),
                heartbeat_interval_ms=int(cfg.heartbeat_interval * 1000),
                max_partition_fetch_bytes=4 * 1024 * 1024,
            )
            consumer.subscribe([self.requests_topic], listener=PartitionListener(self))
            self._consumer = consumer
            self._joined = False
            await consumer.start()
            log.info("article_requests_joining", stage="fetch", topic=self.requests_topic, group=self._group)
        while True:
            batch = await consumer.getmany(timeout_ms=1000, max_records=_BATCH)
            if self._broken is not None:
                broken, self._broken = self._broken, None
                raise broken
            if batch:
                await self._handle(consumer, batch)
            backoff.reset()

    async def _failed(self, exc: Exception, attempt: int, delay: float) -> None:
        """The broker went away (or a restore failed): give everything up, rejoin after ``delay``."""
        log.warning(
            "article_requests_failed", stage="fetch", error=f"{type(exc).__name__}: {exc}", retry_in_s=delay
        )
        await self.revoked(set(self._states))
        self._states.clear()
        await self._close_consumer(5.0)

    async def _close_consumer(self, budget: float) -> None:
        """Leave the group within ``budget``: a LeaveGroup (or a join) the coordinator holds up
        must not hold up a shutdown; the group notices the session ending instead."""
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        # aiokafka's stop() first waits for a group join in progress (the broker may hold a JoinGroup
        # for seconds): past the budget it goes on in the background, so the connections still close
        closing = asyncio.create_task(consumer.stop(), name="article-requests-close")
        _CLOSING.add(closing)
        closing.add_done_callback(_closed)
        done, _ = await asyncio.wait({closing}, timeout=budget) if budget > 0 else (set(), set())
        if not done:
            log.info("article_requests_closing_late", stage="fetch", budget_s=budget)

    # --- rebalance ---------------------------------------------------------------------

    async def revoked(self, partitions: set[int]) -> None:
        """Stop the partitions' work and flush what it wrote.  Their records stay in memory (all
        acknowledged): aiokafka revokes everything before each assignment, and a partition
        assigned again right away needs no second read of the state topic."""
        self._loaded -= partitions
        tasks = [task for (p, _), task in self._work.items() if p in partitions]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self._settings.fetch.shutdown_grace)
        if self._producer is not None:
            try:
                async with asyncio.timeout(_FLUSH_S):
                    await self._producer.flush()
            except Exception as exc:  # what was not acknowledged is fetched again: no loss
                log.warning("article_flush_failed", stage="fetch", error=f"{type(exc).__name__}: {exc}")

    async def assigned(self, partitions: set[int]) -> None:
        for lost in set(self._states) - partitions:
            del self._states[lost]
        if self._stopping:
            return
        self._joined = True
        try:
            new = partitions - set(self._states)
            if new:
                # its own task, so that a stop need not wait for it (the group's close would)
                self._loading = asyncio.create_task(self._store.load(new), name="article-state-load")
                try:
                    self._states.update(await self._loading)
                finally:
                    self._loading = None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            return  # the load was cancelled by a stop
        except Exception as exc:  # no request of a partition is handled without its state
            log.warning("article_state_not_restored", stage="fetch", error=f"{type(exc).__name__}: {exc}")
            self._broken = exc
            return
        consumer = self._consumer
        try:
            if consumer is not None:  # records fetched while the state loaded were dropped: re-read
                for p in partitions:
                    tp = TopicPartition(self.requests_topic, p)
                    committed = await consumer.committed(tp)
                    if committed is None:
                        await consumer.seek_to_beginning(tp)
                    else:
                        consumer.seek(tp, committed)
        except Exception as exc:
            log.warning("article_requests_not_rewound", stage="fetch", error=f"{type(exc).__name__}: {exc}")
            self._broken = exc
            return
        now = self._clock()
        resumed = 0
        for p in partitions:
            self._loaded.add(p)
            await self._forget_expired(p, now)
            for entry_id, state in self._states[p].items():
                if state.open:
                    self._start_work(p, entry_id)
                    resumed += 1
        log.info("article_requests_assigned", stage="fetch", partitions=sorted(partitions), resumed=resumed)

    # --- requests ----------------------------------------------------------------------

    async def _handle(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        """Each request against its entry's record; new work is written as ``pending`` and its
        offset committed only once every record the batch wrote is acknowledged."""
        producer = self._producer
        assert producer is not None
        writes = []
        offsets: dict[TopicPartition, int] = {}
        new: list[tuple[int, str]] = []
        now = self._clock()
        for tp, records in batch.items():
            p = tp.partition
            states = self._states.get(p)
            if p not in self._loaded or states is None:
                # Revoked, or its state still loading: aiokafka runs the assignment listener
                # beside getmany, so these may have been fetched before the listener's rewind
                # and would be lost with it; put the position back so they are read again.
                if records and tp in consumer.assignment():
                    consumer.seek(tp, records[0].offset)
                continue
            for record in records:
                offsets[tp] = record.offset + 1
                self.stats.requests += 1
                try:
                    request = parse_request(
                        record.key, record.value, hdr.as_dict(record.headers), record.timestamp
                    )
                except BadRequest as exc:
                    writes.append(self._refuse(producer, record, str(exc)))
                    continue
                verdict = on_request(states.get(request.entry_id), request, self.policy, now)
                if verdict.state is None:
                    self.stats.skipped += 1
                    continue
                self._cancel_work(p, request.entry_id)
                states[request.entry_id] = verdict.state
                writes.append(self._store.write(producer, p, verdict.state))
                new.append((p, request.entry_id))
                log.debug(
                    "article_requested",
                    stage="fetch",
                    feed=request.feed_id,
                    item=request.entry_id,
                    why=verdict.why,
                )
        if writes:
            await asyncio.gather(*writes)  # a refusal raises: nothing committed, the consumer is rebuilt
        for p, entry_id in new:
            if p in self._loaded:
                self._start_work(p, entry_id)
        if offsets:
            try:
                await consumer.commit(offsets)
            except Exception as exc:  # a rebalance: the requests are read again and skipped
                log.warning("article_commit_failed", stage="fetch", error=f"{type(exc).__name__}: {exc}")

    async def _refuse(
        self, producer: AIOKafkaProducer, record: ConsumerRecord[bytes, bytes], why: str
    ) -> None:
        """A request that is not one goes to the DLQ (``dlq-stage: fetch``), counted and logged."""
        self.stats.refused += 1
        metrics.DLQ_MESSAGES.labels("fetch", "bad_request").inc()
        log.warning(
            "message_refused",
            stage="fetch",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error_type="bad_request",
            error=why[:500],
            dlq=self._dlq_topic,
        )
        out = dlq_output(
            record, stage="fetch", dlq_topic=self._dlq_topic, error_type="bad_request", message=why
        )
        await producer.send_and_wait(out.topic, out.value, key=out.key, headers=out.headers)

    # --- the work on one entry -----------------------------------------------------------

    def _start_work(self, p: int, entry_id: str) -> None:
        key = (p, entry_id)
        running = self._work.get(key)
        if running is not None and not running.done():
            return
        task = asyncio.create_task(self._work_on(p, entry_id), name=f"article:{entry_id[:40]}")
        self._work[key] = task

        def finished(done: asyncio.Task[None]) -> None:
            if self._work.get(key) is done:
                del self._work[key]

        task.add_done_callback(finished)

    def _cancel_work(self, p: int, entry_id: str) -> None:
        task = self._work.pop((p, entry_id), None)
        if task is not None:
            task.cancel()

    def _current(self, p: int, entry_id: str) -> ArticleState | None:
        return self._states.get(p, {}).get(entry_id)

    async def _work_on(self, p: int, entry_id: str) -> None:
        """Until the entry is closed: fall back at the deadline, try the page when due."""
        while True:
            state = self._current(p, entry_id)
            if state is None or not state.open:
                return
            try:
                if state.entry is None:  # nothing to publish with: close it
                    await self._save(p, state, state.closed("failed", self._clock(), reason="no_entry"))
                    continue
                now = self._clock()
                if at_deadline(state, self.policy, now):
                    if await self._fall_back(p, state, "deadline") is state:
                        await asyncio.sleep(_RETRY_PRODUCE_S)
                    continue
                wake = wake_at(state, self.policy)
                if wake > now:
                    await asyncio.sleep(min(wake - now, _MAX_SLEEP_S))
                    continue
                await self._try_once(p, state)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug: the entry is tried again later, the stage carries on
                log.exception("article_work_failed", stage="fetch", feed=state.feed_id, item=entry_id)
                await asyncio.sleep(self.policy.backoff_base)

    async def _try_once(self, p: int, state: ArticleState) -> None:
        """One attempt; the deadline's fallback goes out while it runs, if it must."""
        started = time.perf_counter()
        attempt_task = asyncio.create_task(self._attempt(state))
        try:
            while True:
                timeout = None
                if state.fallback_due:
                    timeout = max(0.0, state.first_seen + self.policy.deadline - self._clock())
                done, _ = await asyncio.wait({attempt_task}, timeout=timeout)
                if done:
                    break
                after = await self._fall_back(p, state, "deadline")
                if after is None:
                    return  # superseded (a new link); the attempt is cancelled below
                if after is state:  # not produced: try again shortly
                    await asyncio.wait({attempt_task}, timeout=_RETRY_PRODUCE_S)
                state = after
            attempt, result = attempt_task.result()
        finally:
            if not attempt_task.done():
                attempt_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await attempt_task
        if self._current(p, state.entry_id) is not state:
            return  # superseded while it ran (a new link): the new work fetches the new page
        verdict = on_attempt(state, attempt, self.policy, self._clock(), self._rand)
        if verdict.produce == "page" and result is not None and result.body is not None:
            try:
                await self._produce(state, "page", result, result.body)
                self.stats.produced_pages += 1
            except Exception as exc:
                attempt = Attempt(Kind.TRANSIENT, "produce_failed")
                verdict = on_attempt(state, attempt, self.policy, self._clock(), self._rand)
                log.warning("article_not_produced", stage="fetch", item=state.entry_id, error=repr(exc))
        elif verdict.produce == "fallback":
            try:
                await self._produce(state, attempt.reason, result, b"")
                self._count_fallback(attempt.reason)
            except Exception as exc:  # keep the work open: the deadline sends it again
                log.warning(
                    "article_fallback_not_produced", stage="fetch", item=state.entry_id, error=repr(exc)
                )
                return
        await self._save(p, state, verdict.state)
        self.stats.bump(self.stats.outcomes, attempt.reason)
        metrics.ARTICLE_FETCHES.labels(attempt.reason).inc()
        level = log.info if verdict.outcome in ("page", "retry") else log.warning
        level(
            "article_fetched",
            stage="fetch",
            feed=state.feed_id,
            item=state.entry_id,
            url=state.url,
            status=result.status if result is not None else None,
            outcome=verdict.outcome,
            reason=attempt.reason,
            attempt=verdict.state.attempts,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            next_try=format_utc_s(verdict.state.next_try),
        )

    async def _attempt(self, state: ArticleState) -> tuple[Attempt, FetchResult | None]:
        """robots.txt, then the page, within the article cap and the host's slot."""
        assert self._slots is not None
        host = host_of(state.url)
        user_agent = self._user_agent(state.feed_id)
        async with self._slots:
            await self._acquire_host(host)
            try:
                verdict, _why = await self._robots.check(state.url, state.feed_id, user_agent)
                if verdict == "disallowed":
                    metrics.ARTICLE_ROBOTS_REFUSALS.inc()
                    return Attempt(Kind.PERMANENT, "robots_disallowed"), None
                if verdict == "blocked":
                    return Attempt(Kind.PERMANENT, "blocked"), None
                if verdict == "unreachable":
                    return Attempt(Kind.TRANSIENT, "robots_unreachable"), None
                page = FeedConfig.model_construct(
                    id=state.feed_id, url=state.url, format="html", user_agent=user_agent
                )
                result = await self._fetcher.fetch(page)
            finally:
                self._release_host(host)
        attempt = classify(
            result.outcome, result.status, result.content_type, result.body, result.hints.retry_after
        )
        return attempt, result

    def _user_agent(self, feed_id: str) -> str:
        feed = self._feed_of(feed_id)
        return (feed.user_agent if feed is not None else None) or self._settings.fetch.user_agent

    async def _acquire_host(self, host: str) -> None:
        """A slot on ``host`` from the stage's dispatcher, waiting in the host's article line."""
        token = object()
        if self._dispatcher.acquire_article(host, token):
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._grants[token] = granted
        try:
            await granted
        except asyncio.CancelledError:
            if not self._dispatcher.cancel_article(host, token):  # granted meanwhile: hand it back
                self._release_host(host)
            raise
        finally:
            self._grants.pop(token, None)

    def _granted(self, token: Hashable) -> None:
        granted = self._grants.get(token)
        if granted is not None and not granted.done():
            granted.set_result(None)

    async def _fall_back(self, p: int, state: ArticleState, reason: str) -> ArticleState | None:
        """The feed's text goes out (the deadline passed); the page is still tried.  Returns the
        new record, ``state`` itself if the broker did not take it, None if superseded."""
        if self._current(p, state.entry_id) is not state:
            return None
        try:
            await self._produce(state, reason, None, b"")
        except Exception as exc:
            log.warning("article_fallback_not_produced", stage="fetch", item=state.entry_id, error=repr(exc))
            return state
        self._count_fallback(reason)
        after = after_fallback(state, reason, self._clock())
        await self._save(p, state, after)
        log.warning(
            "article_fetched",
            stage="fetch",
            feed=state.feed_id,
            item=state.entry_id,
            url=state.url,
            status=None,
            outcome="deadline",
            reason=reason,
            attempt=state.attempts,
            duration_ms=round((self._clock() - state.first_seen) * 1000, 1),
            next_try=format_utc_s(state.next_try),
        )
        return after

    def _count_fallback(self, reason: str) -> None:
        self.stats.bump(self.stats.fallbacks, reason)
        metrics.ARTICLE_FALLBACKS.labels(reason).inc()

    async def _save(self, p: int, old: ArticleState, new: ArticleState) -> bool:
        """Replace ``old`` by ``new`` (unless a newer request superseded it) and write it."""
        states = self._states.get(p)
        if states is None or states.get(old.entry_id) is not old:
            return False
        states[new.entry_id] = new
        producer = self._producer
        if producer is None:
            return True
        try:
            await self._store.write(producer, p, new)
        except Exception as exc:  # memory holds it; a restart may fetch the page once more
            log.warning("article_state_not_saved", stage="fetch", item=new.entry_id, error=repr(exc))
        return True

    async def _produce(
        self, state: ArticleState, outcome: str, result: FetchResult | None, body: bytes
    ) -> None:
        """A page (``outcome`` "page") or a fallback (``outcome`` its reason, empty value) on
        ``topics.raw``, keyed by feed id like the feed's own bodies, acknowledged."""
        producer = self._producer
        assert producer is not None and state.entry is not None
        if result is not None and outcome == "page":
            described = fetch_headers(state.url, result)
        else:
            described = [(hdr.URL, state.url), (hdr.FETCHED_AT, format_utc_s(self._clock()))]
        headers = hdr.build(
            [
                *described,
                *state.context,
                (hdr.FEED_FORMAT, "html"),
                (hdr.VIA, "article"),
                (hdr.ARTICLE_OUTCOME, outcome),
            ]
        )
        headers.append((hdr.ARTICLE_ENTRY, state.entry.encode("utf-8")))
        await producer.send_and_wait(
            self._raw_topic, value=body, key=state.feed_id.encode("utf-8"), headers=headers
        )

    # --- forgetting ------------------------------------------------------------------------

    async def _sweep(self) -> None:
        """Tombstone entries closed for longer than ``full_text.remember``, now and then."""
        interval = min(3600.0, max(1.0, self.policy.remember / 10))
        while True:
            await asyncio.sleep(interval)
            now = self._clock()
            for p in list(self._loaded):
                await self._forget_expired(p, now)

    async def _forget_expired(self, p: int, now: float) -> None:
        states = self._states.get(p)
        producer = self._producer
        if not states or producer is None:
            return
        old = [entry_id for entry_id, state in states.items() if expired(state, self.policy, now)]
        for entry_id in old:
            del states[entry_id]
            try:
                await self._store.forget(producer, p, entry_id)
            except Exception as exc:  # compaction keeps it a while longer: harmless
                log.warning("article_state_not_forgotten", stage="fetch", item=entry_id, error=repr(exc))
                return
        if old:
            log.info("article_state_forgotten", stage="fetch", partition=p, entries=len(old))


_CLOSING: set[asyncio.Task[None]] = set()  # consumers still closing after their stop returned


def _closed(task: asyncio.Task[None]) -> None:
    _CLOSING.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("article_requests_close_failed", stage="fetch", error=repr(task.exception()))


def format_utc_s(seconds: float | None) -> str | None:
    return None if seconds is None else format_utc(datetime.fromtimestamp(seconds, UTC))
