"""The fetch stage: the schedule loop, bounded concurrent fetches, and the produce to news.raw.

The loop pops due feeds from the heap and starts at most ``global_concurrency`` fetches;
a feed whose host already has ``per_host_concurrency`` fetches running waits in that
host's line without holding a global slot, so one slow shared host cannot starve the rest.
Conditional-GET state is recorded only after the broker acknowledged the produced body: a
broker outage costs a re-fetch, never a lost body.  No feed can take the stage down: every
failure is classified, logged, and the feed is rescheduled.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import socket
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaProducer
from yarl import URL

from ingestor import headers as hdr
from ingestor import metrics
from ingestor.config import FeedConfig, Settings
from ingestor.fetch import shard
from ingestor.fetch.hints import Hints
from ingestor.fetch.http import Fetcher, FetchResult, Validators
from ingestor.fetch.outcome import Outcome, settle
from ingestor.fetch.registry import FeedRegistry
from ingestor.fetch.schedule import DueQueue, FeedTiming, Policy, first_delay, next_delay
from ingestor.fetch.state import SavedAttempt, SavedState, SubscriptionState, due_for_saving, encode, material
from ingestor.fetch.store import ensure_state_topic, load_states
from ingestor.fetch.websub import HubStats, PushVerdict, WebSubscriber
from ingestor.fetch.websub_protocol import body_key, discover, remember, seen
from ingestor.kafka import KafkaConnection, pin_producer_topics
from ingestor.models import format_utc

log = structlog.get_logger("ingestor.fetch")

_HISTORY = 10
_LATENESS_SAMPLES = 10_000
_FLUSH_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One line of a feed's recent history: the data ``feed_fetched`` logs, kept for status."""

    at: datetime
    outcome: Outcome
    status: int | None
    duration_ms: float
    bytes: int
    reason: str | None
    produced: bool
    next_due: datetime
    via: str = "poll"

    def saved(self) -> SavedAttempt:
        return SavedAttempt(
            round(self.at.timestamp(), 3),
            self.outcome.value,
            self.status,
            self.duration_ms,
            self.bytes,
            self.reason,
            round(self.next_due.timestamp(), 3),
            self.via,
        )

    @classmethod
    def restored(cls, saved: SavedAttempt) -> AttemptRecord:
        try:
            outcome = Outcome(saved.outcome)
        except ValueError:
            outcome = Outcome.ERROR
        return cls(
            _utc(saved.at),
            outcome,
            saved.status,
            saved.duration_ms,
            saved.bytes,
            saved.reason,
            outcome is Outcome.OK,
            _utc(saved.next_due or saved.at),
            saved.via,
        )


@dataclass(slots=True)
class FeedState:
    feed: FeedConfig
    timing: FeedTiming
    host: str
    etag: str | None = None
    last_modified: str | None = None
    sha256: str | None = None
    history: deque[AttemptRecord] = field(default_factory=lambda: deque(maxlen=_HISTORY))
    removed: bool = False
    partition: int | None = None  # of its definition in the feeds topic (sharded mode)
    paused: bool = False  # parked during a rebalance: not dispatched, due time kept aside
    parked_due: float | None = None
    saved_material: tuple[object, ...] | None = None  # what the last state record written held
    saved_at: float = 0.0
    recent: tuple[str, ...] = ()  # WebSub replay window: the last bodies seen, by poll or push


@dataclass(frozen=True, slots=True)
class FeedStatus:
    feed_id: str
    url: str
    next_due: datetime | None
    failures: int
    etag: str | None
    last_modified: str | None
    sha256: str | None
    effective_interval: float
    attempts: tuple[AttemptRecord, ...]
    partition: int | None = None
    instance: str | None = None
    websub: dict[str, object] | None = None


@dataclass(frozen=True, slots=True)
class FetchHealth:
    """What /readyz and an operator want to know, cheap to compute (no scan of the feeds)."""

    running: bool
    ready: bool
    feeds: int
    in_flight: int
    waiting_for_host: int
    overdue_seconds: float  # how late the most overdue feed in the queue is
    fetches: int
    produced: int
    outcomes: dict[str, int]
    lateness_p99_seconds: float | None
    last_produce_error: str | None
    instance: str = ""
    partitions: tuple[int, ...] | None = None  # feeds-topic partitions owned; None: not sharded
    rebalances: int = 0
    websub: dict[str, HubStats] = field(default_factory=dict)  # per hub: pushed vs only polled


def _host_of(url: str) -> str:
    return (URL(url).host or "").lower()


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class FetchStage:
    """Polls the configured feeds and produces every changed body once to ``topics.raw``."""

    def __init__(
        self,
        settings: Settings,
        connection: KafkaConnection,
        *,
        feeds: list[FeedConfig] | None = None,
        fetcher: Fetcher | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self._settings = settings
        self._config = settings.fetch
        self._connection = connection
        self._topic = settings.topics.raw
        self._policy = Policy.from_config(settings.fetch)
        self._fetcher = fetcher or Fetcher(settings.fetch)
        self._rand = rand or random.Random().random
        self._producer: AIOKafkaProducer | None = None
        self._queue = DueQueue()
        self._states: dict[str, FeedState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._host_active: Counter[str] = Counter()
        self._host_waiting: dict[str, deque[tuple[float, str]]] = {}
        self._hosts_freed: set[str] = set()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._fetches = 0
        self._produced = 0
        self._outcomes: Counter[str] = Counter()
        self._lateness: deque[float] = deque(maxlen=_LATENESS_SAMPLES)
        self._last_produce_error: str | None = None
        self._restored: set[str] = set()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._state_partitions = 0  # > 0: write a feed's state to its feeds-topic partition number
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self._registry = (
            FeedRegistry(settings, connection, self) if feeds is None and self._config.sharding else None
        )
        self._websub = (
            WebSubscriber(self._config, self._on_push) if self._config.websub.callback_url else None
        )
        self._websub_restored: dict[str, SubscriptionState] = {}  # resubscribed once WebSub runs
        initial = feeds if feeds is not None else [f for f in settings.feeds if f.enabled]
        for feed in initial if self._registry is None else ():
            self._register(feed, time.time())

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self._loop_task is not None:
            return
        if self._registry is None:
            await self._restore()
        elif self._config.state_topic:
            topics = self._settings.topics
            await ensure_state_topic(
                self._connection, self._config.state_topic, topics.partitions, topics.replication_factor
            )
        producer = await self._connection.start_producer()
        self._producer = producer
        try:
            await pin_producer_topics(producer, [self._topic, self._config.state_topic or ""])
            await self._fetcher.start()
            if self._websub is not None:
                await self._websub.start()
                restored, self._websub_restored = self._websub_restored, {}
                for feed_id, sub in restored.items():
                    if feed_id in self._states:
                        self._websub.ensure(feed_id, sub.hub, sub.topic, restored=sub)
        except BaseException:
            await self._fetcher.close()
            await producer.stop()
            self._producer = None
            raise
        now = time.time()
        for feed_id, state in self._states.items():  # first fetches count from now, not from __init__
            if feed_id not in self._restored:
                self._queue.schedule(
                    feed_id, now + first_delay(state.timing, self._config.startup_spread, self._rand)
                )
        self._stopping = False
        self._loop_task = asyncio.create_task(self._run(), name="fetch-schedule")
        if self._registry is not None:
            try:
                await self._registry.start()
            except BaseException:
                await self.stop()
                raise
        log.info(
            "fetch_started",
            stage="fetch",
            feeds=len(self._states),
            topic=self._topic,
            instance=self.instance,
            sharded=self._registry is not None,
        )

    async def stop(self) -> None:
        """Stop scheduling, give in-flight fetches ``shutdown_grace`` to finish, then cancel them;
        flush the producer (at most a few seconds)."""
        if self._registry is not None:  # first: hand the feeds over with their latest state
            try:
                await self._registry.stop()
            except Exception as exc:
                log.warning("fetch_registry_stop_failed", stage="fetch", error=repr(exc))
        self._stopping = True
        self._wake.set()
        loop_task, self._loop_task = self._loop_task, None
        if loop_task is not None:
            loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self._config.shutdown_grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        await self._fetcher.close()
        if self._websub is not None:
            await self._websub.stop()
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                # bounded: with the broker gone, flushing would wait out the request timeout; what
                # is not acknowledged was never recorded as fetched, so it is re-fetched, not lost
                async with asyncio.timeout(_FLUSH_TIMEOUT):
                    await producer.stop()
            except TimeoutError:
                log.warning("fetch_flush_timed_out", stage="fetch", seconds=_FLUSH_TIMEOUT)
        log.info("fetch_stopped", stage="fetch", fetches=self._fetches, produced=self._produced)

    async def _restore(self) -> None:
        """Resume validators and schedule from the state topic; a feed whose URL changed starts afresh."""
        topic = self._config.state_topic
        if not topic:
            return
        topics = self._settings.topics
        await ensure_state_topic(self._connection, topic, topics.partitions, topics.replication_factor)
        saved = await load_states(self._connection, topic)
        now = time.time()
        restored = 0
        for feed_id, state in self._states.items():
            previous = saved.get(feed_id)
            if previous is None or previous.url != state.feed.url:
                continue
            state.etag, state.last_modified, state.sha256 = (
                previous.etag,
                previous.last_modified,
                previous.sha256,
            )
            previous.apply_to(state.timing)
            if self._websub is not None:
                state.recent = previous.recent[-self._config.websub.replay_window :]
                if previous.websub is not None:
                    self._websub_restored[feed_id] = previous.websub
            if previous.next_due is not None and previous.next_due > now:
                self._queue.schedule(feed_id, previous.next_due)
                self._restored.add(feed_id)
            restored += 1
        log.info("fetch_state_restored", stage="fetch", feeds=restored, known=len(saved))

    async def _save(self, state: FeedState, due: float, now: float) -> None:
        """Enqueue (not await) the state record: it follows the raw produce it describes."""
        topic = self._config.state_topic
        if not topic or self._producer is None:
            return
        keep = self._config.state_attempts
        record = SavedState(
            url=state.feed.url,
            etag=state.etag,
            last_modified=state.last_modified,
            sha256=state.sha256,
            failures=state.timing.failures,
            change_interval=state.timing.change_interval,
            last_change_at=state.timing.last_change_at,
            next_due=due,
            saved_at=now,
            instance=self.instance,
            attempts=tuple(a.saved() for a in list(state.history)[-keep:]) if keep else (),
            websub=self._websub.snapshot(state.feed.id) if self._websub is not None else None,
            recent=state.recent,
        )
        current = material(record)
        if not due_for_saving(state.saved_material, current, state.saved_at, now, self._config.state_refresh):
            return
        state.saved_material, state.saved_at = current, now
        partition = shard.state_partition(state.partition, self._state_partitions, self._state_partitions)
        try:
            await self._producer.send(
                topic, encode(record), key=state.feed.id.encode("utf-8"), partition=partition
            )
        except Exception as exc:  # losing a state record costs one unconditional fetch, no more
            state.saved_material = None  # try again with the next fetch
            log.warning("fetch_state_not_saved", stage="fetch", feed=state.feed.id, error=str(exc))

    # --- feeds ----------------------------------------------------------------------

    def _register(self, feed: FeedConfig, now: float) -> FeedState:
        timing = self._policy.timing_for(feed)
        state = FeedState(feed=feed, timing=timing, host=_host_of(feed.url))
        self._states[feed.id] = state
        self._queue.schedule(feed.id, now + first_delay(timing, self._config.startup_spread, self._rand))
        return state

    def add_feed(
        self, feed: FeedConfig, *, saved: SavedState | None = None, partition: int | None = None
    ) -> None:
        """Start polling a feed (or apply a changed definition, keeping its validators).

        ``saved`` is the state its previous owner left in the fetch-state topic: with it the
        feed resumes with the same validators and next due time (a handover, not a restart).
        """
        old = self._states.get(feed.id)
        if old is not None and old.feed == feed:
            old.partition = partition if partition is not None else old.partition
            return
        if old is not None:
            old.removed = True
            self._queue.remove(feed.id)
        now = time.time()
        state = self._register(feed, now)
        state.partition = partition
        if old is not None and old.feed.url == feed.url:
            state.etag, state.last_modified, state.sha256 = old.etag, old.last_modified, old.sha256
            state.history, state.recent = old.history, old.recent
        elif saved is not None and saved.url == feed.url:
            state.etag, state.last_modified, state.sha256 = saved.etag, saved.last_modified, saved.sha256
            saved.apply_to(state.timing)
            if self._websub is not None:
                state.recent = saved.recent[-self._config.websub.replay_window :]
            state.history.extend(AttemptRecord.restored(a) for a in saved.attempts)
            if saved.next_due is not None:  # overdue (its owner died): soon, spread over a second
                spread = min(state.timing.interval, 1.0) * self._rand()
                self._queue.schedule(feed.id, max(saved.next_due, now + spread))
            if saved.websub is not None and self._websub is not None:  # subscribe with our callback
                self._websub.ensure(feed.id, saved.websub.hub, saved.websub.topic, restored=saved.websub)
        self._wake.set()

    def remove_feed(self, feed_id: str) -> bool:
        state = self._states.pop(feed_id, None)
        if state is None:
            return False
        state.removed = True
        self._queue.remove(feed_id)
        if self._websub is not None:
            self._websub.forget(feed_id)
        return True

    def pause_feeds(self, feed_ids: Iterable[str]) -> None:
        """Take feeds off the schedule, keeping their due times aside (a rebalance is under way)."""
        for feed_id in feed_ids:
            state = self._states.get(feed_id)
            if state is None or state.paused:
                continue
            state.paused = True
            state.parked_due = self._queue.due_at(feed_id)
            self._queue.remove(feed_id)

    def resume_feeds(self, feed_ids: Iterable[str]) -> None:
        for feed_id in feed_ids:
            state = self._states.get(feed_id)
            if state is None or not state.paused:
                continue
            state.paused = False
            due, state.parked_due = state.parked_due, None
            if due is not None and not state.removed:
                self._queue.schedule(feed_id, due)
        self._wake.set()

    async def settle(self, feed_ids: Iterable[str]) -> None:
        """Wait (bounded) for the feeds' in-flight fetches, then for the broker to acknowledge
        their state records: what the next owner reads is what this one last did."""
        tasks = [task for feed_id in feed_ids if (task := self._in_flight.get(feed_id)) is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=self._config.shutdown_grace)
        if self._producer is not None:
            try:
                async with asyncio.timeout(_FLUSH_TIMEOUT):
                    await self._producer.flush()
            except Exception as exc:  # the next owner fetches a little early: no loss
                log.warning("fetch_state_flush_failed", stage="fetch", error=f"{type(exc).__name__}: {exc}")

    def set_state_partitions(self, count: int) -> None:
        """Co-locate state records with definitions (same partition number) when ``count`` > 0."""
        self._state_partitions = count

    # --- introspection ----------------------------------------------------------------

    def health(self) -> FetchHealth:
        now = time.time()
        head = self._queue.peek()
        samples = sorted(self._lateness)
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] if samples else None
        running = self._loop_task is not None and not self._loop_task.done()
        return FetchHealth(
            running=running,
            ready=running and self._producer is not None and not self._stopping,
            feeds=len(self._states),
            in_flight=len(self._tasks),
            waiting_for_host=sum(len(line) for line in self._host_waiting.values()),
            overdue_seconds=max(0.0, now - head[0]) if head else 0.0,
            fetches=self._fetches,
            produced=self._produced,
            outcomes=dict(self._outcomes),
            lateness_p99_seconds=p99,
            last_produce_error=self._last_produce_error,
            instance=self.instance,
            partitions=tuple(self._registry.partitions) if self._registry is not None else None,
            rebalances=self._registry.rebalances if self._registry is not None else 0,
            websub=self._websub.hubs() if self._websub is not None else {},
        )

    def feed_status(self, feed_id: str) -> FeedStatus | None:
        state = self._states.get(feed_id)
        if state is None:
            return None
        due = self._queue.due_at(feed_id)
        return FeedStatus(
            feed_id=feed_id,
            url=state.feed.url,
            next_due=_utc(due) if due is not None else None,
            failures=state.timing.failures,
            etag=state.etag,
            last_modified=state.last_modified,
            sha256=state.sha256,
            effective_interval=state.timing.effective_interval(time.time()),
            attempts=tuple(state.history),
            partition=state.partition,
            instance=self.instance,
            websub=self._websub.status_of(feed_id) if self._websub is not None else None,
        )

    # --- the loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            now = time.time()
            try:
                self._dispatch(now)
            except Exception:  # a bug here must not stop every feed; log and keep the loop alive
                log.exception("fetch_dispatch_failed", stage="fetch")
            timeout: float | None = None
            if len(self._tasks) < self._config.global_concurrency:
                head = self._queue.peek()
                if head is not None:
                    timeout = max(0.0, head[0] - time.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _dispatch(self, now: float) -> None:
        cap = self._config.global_concurrency
        per_host = self._config.per_host_concurrency
        for host in list(self._hosts_freed):
            line = self._host_waiting.get(host)
            while line and len(self._tasks) < cap and self._host_active[host] < per_host:
                due, feed_id = line.popleft()
                state = self._states.get(feed_id)
                if state is not None and state.paused:
                    state.parked_due = due
                elif state is not None and not state.removed:
                    self._start(state, due, now)
            if not line:
                self._host_waiting.pop(host, None)
                self._hosts_freed.discard(host)
            elif self._host_active[host] >= per_host:
                self._hosts_freed.discard(host)
            if len(self._tasks) >= cap:
                return
        while len(self._tasks) < cap:
            item = self._queue.pop_due(now)
            if item is None:
                return
            due, feed_id = item
            state = self._states.get(feed_id)
            if state is None:
                continue
            if self._host_active[state.host] >= per_host:
                self._host_waiting.setdefault(state.host, deque()).append((due, feed_id))
                continue
            self._start(state, due, now)

    def _start(self, state: FeedState, due: float, now: float) -> None:
        self._host_active[state.host] += 1
        self._lateness.append(max(0.0, now - due))
        metrics.FETCH_LATENESS.observe(max(0.0, now - due))
        feed_id = state.feed.id
        task = asyncio.create_task(self._fetch_one(state), name=f"fetch:{feed_id}")
        self._tasks.add(task)
        self._in_flight[feed_id] = task

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            if self._in_flight.get(feed_id) is finished:
                del self._in_flight[feed_id]

        task.add_done_callback(done)

    def _release(self, host: str) -> None:
        self._host_active[host] -= 1
        if self._host_active[host] <= 0:
            del self._host_active[host]
        if host in self._host_waiting:
            self._hosts_freed.add(host)
        self._wake.set()

    async def _fetch_one(self, state: FeedState) -> None:
        feed = state.feed
        try:
            result = await self._fetcher.fetch(feed, Validators(state.etag, state.last_modified))
            outcome = settle(result.outcome, result.sha256, state.sha256)
            reason = result.reason
            if outcome is Outcome.OK and self._earlier_body(state, result.sha256):
                outcome, reason = Outcome.UNCHANGED, "an earlier body again"
            produced = False
            if outcome is Outcome.OK:
                try:
                    await self._produce(feed, result)
                    produced = True
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    outcome = Outcome.PRODUCE_FAILED
                    reason = f"produce failed: {type(exc).__name__}: {exc}"
                    self._last_produce_error = reason
            await self._record(state, result, outcome, reason, produced)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug; the feed is still rescheduled, with backoff
            log.exception("fetch_failed_unexpectedly", stage="fetch", feed=feed.id)
            now = datetime.now(UTC)
            result = FetchResult(feed.id, feed.url, feed.url, Outcome.ERROR, repr(exc), None, now, 0.0)
            await self._record(state, result, Outcome.ERROR, f"{type(exc).__name__}: {exc}", False)
        finally:
            self._release(state.host)

    async def _record(
        self, state: FeedState, result: FetchResult, outcome: Outcome, reason: str | None, produced: bool
    ) -> None:
        """Update validators and schedule; log the canonical ``feed_fetched`` line."""
        now = time.time()
        if produced or (outcome is Outcome.UNCHANGED and result.sha256 == state.sha256):
            state.etag, state.last_modified = result.etag, result.last_modified
            state.sha256 = result.sha256
            if self._websub is not None and result.sha256 is not None:  # a push of it is a replay
                state.recent = remember(state.recent, result.sha256, self._config.websub.replay_window)
        elif outcome is Outcome.UNCHANGED:  # an earlier body again: the latest one stays the latest
            pass
        elif outcome is Outcome.NOT_MODIFIED:
            state.etag = result.etag or state.etag
            state.last_modified = result.last_modified or state.last_modified
        state.timing.observe(outcome, now)
        hints = result.hints if outcome is not Outcome.ERROR else Hints()
        delay = next_delay(self._policy, state.timing, outcome, hints, now, self._rand)
        if self._websub is not None and outcome.success:
            delay = self._push_aware(state, result, produced, delay)
        due = now + delay
        if state.paused:
            state.parked_due = due
        elif not state.removed and not self._stopping:
            self._queue.schedule(state.feed.id, due)
        self._fetches += 1
        self._produced += int(produced)
        self._outcomes[outcome.value] += 1
        record = AttemptRecord(
            at=result.fetched_at,
            outcome=outcome,
            status=result.status,
            duration_ms=round(result.duration_ms, 1),
            bytes=result.bytes_read,
            reason=reason,
            produced=produced,
            next_due=_utc(due),
        )
        state.history.append(record)
        await self._save(state, due, now)  # after the history: the record carries this attempt too
        metrics.observe_fetch(
            state.feed.id,
            outcome.value,
            success=outcome.success,
            duration_s=result.duration_ms / 1000,
            size=result.bytes_read,
            failures=state.timing.failures,
        )
        (log.info if outcome.success else log.warning)(
            "feed_fetched",
            stage="fetch",
            feed=state.feed.id,
            status=result.status,
            duration_ms=record.duration_ms,
            url=state.feed.url,
            final_url=result.final_url if result.final_url != state.feed.url else None,
            bytes=result.bytes_read,
            outcome=outcome.value,
            reason=reason,
            attempts=result.attempts,
            produced=produced,
            failures=state.timing.failures,
            next_due=format_utc(record.next_due),
        )

    def _earlier_body(self, state: FeedState, sha256: str | None) -> bool:
        """A poll of a pushed feed that returns one of its recent bodies, not the latest: a stale
        copy (a CDN node, a lagging origin) of what a push already delivered. Producing it would
        make dedup publish the old text as a new version, as a replayed push would."""
        return (
            sha256 is not None
            and self._websub is not None
            and self._websub.subscribed(state.feed.id)
            and seen(state.recent, sha256)
        )

    def _push_aware(self, state: FeedState, result: FetchResult, produced: bool, delay: float) -> float:
        """Subscribe where the feed names a hub; poll a pushed feed only as a slow fallback."""
        assert self._websub is not None
        feed_id = state.feed.id
        if result.body is not None or result.links:
            found = discover(result.links, result.body, result.final_url)
            if found.hub is not None and not state.removed:
                self._websub.ensure(feed_id, found.hub, found.self_url or state.feed.url)
        if not self._websub.active(feed_id):
            return delay
        if produced:
            self._websub.note_poll_change(feed_id)
        return max(delay, self._config.websub.poll_interval)

    async def _on_push(self, feed_id: str, body: bytes, content_type: str | None) -> PushVerdict:
        """A hub's push, treated as a fetch result: produced once (body hash), state and log as a poll."""
        state = self._states.get(feed_id)
        if state is None or state.removed or self._producer is None:
            return "unknown"
        if state.paused:  # a rebalance is deciding who owns it: the hub retries, the owner takes it
            return "failed"
        fetched_at = datetime.now(UTC)
        started = time.perf_counter()
        sha = hashlib.sha256(body).hexdigest()
        result = FetchResult(
            feed_id,
            state.feed.url,
            state.feed.url,
            Outcome.OK,
            None,
            200,
            fetched_at,
            0.0,
            body=body,
            bytes_read=len(body),
            content_type=content_type,
            sha256=sha,
        )
        outcome = settle(Outcome.OK, sha, state.sha256)
        if outcome is Outcome.OK and state.recent and state.recent[-1] == body_key(sha):
            outcome = Outcome.UNCHANGED  # the same push at two callbacks (a renewal), still in flight
        if outcome is Outcome.OK and seen(state.recent, sha):
            # one of the feed's recent bodies but not the latest: a captured push sent again, or a
            # hub resending old content. Producing it would make dedup publish old text as new.
            self._outcomes["push_replayed"] += 1
            log.warning("websub_push_replayed", stage="fetch", feed=feed_id, sha256=sha)
            return "replayed"
        produced = False
        if outcome is Outcome.OK:
            before = state.recent  # remembered before the await: a concurrent push of it is a duplicate
            state.recent = remember(before, sha, self._config.websub.replay_window)
            try:
                await self._produce(state.feed, result, via="push")
            except Exception as exc:  # the hub retries a push it did not get a 2xx for
                state.recent = before
                self._last_produce_error = f"produce failed: {type(exc).__name__}: {exc}"
                log.warning(
                    "feed_push_not_produced", stage="fetch", feed=feed_id, error=self._last_produce_error
                )
                return "failed"
            produced = True
            state.sha256 = sha
        now = time.time()
        state.timing.observe(outcome, now)
        due = self._queue.due_at(feed_id) or state.parked_due or now
        self._produced += int(produced)
        self._outcomes[f"push_{outcome.value}"] += 1
        record = AttemptRecord(
            at=fetched_at,
            outcome=outcome,
            status=200,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            bytes=len(body),
            reason=None,
            produced=produced,
            next_due=_utc(due),
            via="push",
        )
        state.history.append(record)
        await self._save(state, due, now)
        log.info(
            "feed_fetched",
            stage="fetch",
            feed=feed_id,
            status=200,
            duration_ms=record.duration_ms,
            url=state.feed.url,
            bytes=len(body),
            outcome=outcome.value,
            reason=None,
            produced=produced,
            via="push",
            failures=state.timing.failures,
            next_due=format_utc(record.next_due),
        )
        return "new" if produced else "unchanged"

    async def _produce(self, feed: FeedConfig, result: FetchResult, *, via: str = "poll") -> None:
        assert self._producer is not None and result.body is not None
        headers = hdr.build(
            [
                (hdr.URL, feed.url),
                (hdr.FINAL_URL, result.final_url),
                (hdr.STATUS, str(result.status) if result.status is not None else None),
                (hdr.CONTENT_TYPE, result.content_type),
                (hdr.ETAG, result.etag),
                (hdr.LAST_MODIFIED, result.last_modified),
                (hdr.FETCHED_AT, format_utc(result.fetched_at)),
                (hdr.BODY_SHA256, result.sha256),
                (hdr.FEED_TIMEZONE, feed.timezone),
                (hdr.FEED_FORMAT, feed.format),
                (hdr.FEED_LANGUAGE, feed.language),
                (hdr.VIA, via),
            ]
        )
        await self._producer.send_and_wait(
            self._topic, value=result.body, key=feed.id.encode("utf-8"), headers=headers
        )
