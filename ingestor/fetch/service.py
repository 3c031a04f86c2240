"""The fetch stage: the schedule loop, bounded concurrent fetches, and the produce to news.raw.

The loop pops due feeds from the heap and starts at most ``global_concurrency`` fetches;
a feed whose host already has ``per_host_concurrency`` fetches running waits in that
host's line without holding a global slot, so one slow shared host cannot starve the rest
(and a host's second fetch starts only once its first has run ``per_host_stagger``, so a fast
host is polled one fetch at a time over one kept-alive connection).
Conditional-GET state is recorded only after the broker acknowledged the produced body: a
broker outage costs a re-fetch, never a lost body.  No feed can take the stage down: every
failure is classified, logged, and the feed is rescheduled.

This module is the shell: lifecycle, wiring, the registry's API and the loop's tasks.  The
rules live in pure modules (``decision`` for what an attempt means, ``dispatcher`` for what
may start, ``schedule`` for when); the other I/O in one module per job (``raw`` writes
bodies, ``keeper`` the state topic, ``recorder`` the attempt, ``push`` WebSub, ``status``
the counters and views).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import socket
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaProducer

from ingestor.config import FeedConfig, Settings
from ingestor.fetch import packed
from ingestor.fetch.articles import ArticleFetcher
from ingestor.fetch.decision import NO_PUSH, FetchPolicy, Verdict, judge
from ingestor.fetch.dispatcher import HostDispatcher
from ingestor.fetch.feedspec import FeedSpec
from ingestor.fetch.feedstate import AttemptRecord, FeedState
from ingestor.fetch.http import Fetcher, FetchResult, Validators
from ingestor.fetch.keeper import StateKeeper
from ingestor.fetch.outcome import Outcome
from ingestor.fetch.push import PushAdapter
from ingestor.fetch.raw import RawSink
from ingestor.fetch.recorder import Recorder
from ingestor.fetch.registry import FeedRegistry
from ingestor.fetch.schedule import DueQueue, first_delay, resume_due
from ingestor.fetch.state import SavedState, adopted
from ingestor.fetch.status import FeedStatus, FetchHealth, StageStats, feed_status
from ingestor.kafka import KafkaConnection, pin_producer_topics
from ingestor.memory import release_free_memory

log = structlog.get_logger("ingestor.fetch")

__all__ = ["AttemptRecord", "FeedState", "FeedStatus", "FetchHealth", "FetchStage"]

_FLUSH_TIMEOUT = 5.0


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
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self._policy = FetchPolicy.from_config(settings.fetch, self.instance)
        self._fetcher = fetcher or Fetcher(settings.fetch)
        self._rand = rand or random.Random().random
        self._raw = RawSink(self._topic, settings.full_text.mode)
        self._queue = DueQueue()
        self._states: dict[str, FeedState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatcher = HostDispatcher(
            self._config.global_concurrency, self._config.per_host_concurrency, self._config.per_host_stagger
        )
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stats = StageStats()
        self._restored: set[str] = set()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._keeper = StateKeeper(settings, connection)
        self._recorder = Recorder(
            self._policy,
            self._rand,
            self._queue,
            self._stats,
            self._keeper,
            self._raw,
            self._is_stopping,
            log_every_fetch=self._config.log_every_fetch,
        )
        self._summary_task: asyncio.Task[None] | None = None
        self._registry = (
            FeedRegistry(settings, connection, self) if feeds is None and self._config.sharding else None
        )
        self._push = (
            PushAdapter(
                self._config, self._policy, self._states, self._queue, self._raw, self._stats, self._recorder
            )
            if self._config.websub.callback_url
            else None
        )
        initial = feeds if feeds is not None else [f for f in settings.feeds if f.enabled]
        for feed in initial if self._registry is None else ():
            self._register(feed, time.time())
        # full text: every fetch stage fetches the pages its share of entries link to, whatever
        # full_text.mode says (a feed may ask for full text itself; parse decides per entry)
        self._articles = (
            ArticleFetcher(
                settings,
                connection,
                fetcher=self._fetcher,
                dispatcher=self._dispatcher,
                release=self._release,
                feed_of=self._feed_config,
            )
            if settings.topics.article_requests
            else None
        )

    def _feed_config(self, feed_id: str) -> FeedSpec | None:
        state = self._states.get(feed_id)
        return state.feed if state is not None else None

    def _is_stopping(self) -> bool:
        return self._stopping

    @property
    def _producer(self) -> AIOKafkaProducer | None:
        """The producer while started (the raw sink's; the state keeper writes with it too)."""
        return self._raw.producer

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self._loop_task is not None:
            return
        if self._registry is None:
            await self._restore()
        elif self._keeper.topic:
            await self._keeper.ensure_topic()
        if self._articles is not None:
            await self._articles.ensure_topics()
        producer = await self._connection.start_producer()
        self._raw.producer = producer
        try:
            articles = self._articles.topics if self._articles is not None else []
            await pin_producer_topics(producer, [self._topic, self._config.state_topic or "", *articles])
            await self._fetcher.start()
            if self._push is not None:
                await self._push.start()
        except BaseException:
            await self._fetcher.close()
            await producer.stop()
            self._raw.producer = None
            raise
        now = time.time()
        for feed_id, state in self._states.items():  # first fetches count from now, not from __init__
            if feed_id not in self._restored:
                self._queue.schedule(
                    feed_id, now + first_delay(state.timing, self._config.startup_spread, self._rand)
                )
        self._stopping = False
        self._loop_task = asyncio.create_task(self._run(), name="fetch-schedule")
        self._summary_task = asyncio.create_task(self._summaries(), name="fetch-summary")
        if self._articles is not None:
            await self._articles.start(producer)
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

    async def _summaries(self) -> None:
        """Every ``fetch.summary_interval``, one line with what the fetches of that interval
        came to: the 304s and unchanged bodies that get no line of their own are in it.

        On the same tick the C allocator's free pages go back to the system: fetched bodies
        and Kafka batches are larger blocks that glibc keeps once freed (6 MiB of a 172 MiB
        fetcher at 100,000 feeds; trimming takes milliseconds, see ``ingestor.memory``)."""
        while True:
            await asyncio.sleep(self._config.summary_interval)
            self._log_summary()
            release_free_memory()

    def _log_summary(self) -> None:
        skipped = self._stats.window_skipped
        window = self._stats.take_window()
        if not window:
            return
        log.info(
            "fetch_summary",
            stage="fetch",
            interval_s=self._config.summary_interval,
            fetches=sum(n for outcome, n in window.items() if not outcome.startswith("push_")),
            outcomes=dict(sorted(window.items())),
            feeds=len(self._states),
            in_flight=len(self._tasks),
            lateness_p99_seconds=self._stats.lateness_p99(),
            slots_skipped=skipped,
        )

    async def stop(self) -> None:
        """Stop scheduling, give in-flight fetches ``shutdown_grace`` to finish, then cancel them;
        flush the producer (at most a few seconds)."""
        if self._summary_task is not None:
            self._summary_task.cancel()
            self._summary_task = None
            self._log_summary()  # the partial interval, so no fetch goes uncounted in the logs
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
        if self._articles is not None:  # before the client and the producer it uses
            try:
                await self._articles.stop()
            except Exception as exc:
                log.warning("articles_stop_failed", stage="fetch", error=repr(exc))
        await self._fetcher.close()
        if self._push is not None:
            await self._push.stop()
        producer, self._raw.producer = self._raw.producer, None
        if producer is not None:
            try:
                # bounded: with the broker gone, flushing would wait out the request timeout; what
                # is not acknowledged was never recorded as fetched, so it is re-fetched, not lost
                async with asyncio.timeout(_FLUSH_TIMEOUT):
                    await producer.stop()
            except TimeoutError:
                log.warning("fetch_flush_timed_out", stage="fetch", seconds=_FLUSH_TIMEOUT)
        log.info("fetch_stopped", stage="fetch", fetches=self._stats.fetches, produced=self._stats.produced)

    async def _restore(self) -> None:
        """Resume validators and schedule from the state topic; a feed whose URL changed starts afresh."""
        if not self._keeper.topic:
            return
        saved = await self._keeper.load()
        now = time.time()
        restored = 0
        for feed_id, state in self._states.items():
            previous = saved.get(feed_id)
            if previous is None or previous.url != state.feed.url:
                continue
            state.set_validators(previous.etag, previous.last_modified, previous.sha256)
            previous.apply_to(state.timing)
            state.mark_saved(*adopted(previous, self.instance))
            if self._push is not None:
                state.recent = self._push.window(previous.recent)
                if previous.websub is not None:
                    self._push.keep_for_start(feed_id, previous.websub)
            if previous.next_due is not None and previous.next_due > now:
                self._queue.schedule(feed_id, previous.next_due)
                self._restored.add(feed_id)
            restored += 1
        log.info("fetch_state_restored", stage="fetch", feeds=restored, known=len(saved))

    # --- feeds ----------------------------------------------------------------------

    def _register(self, feed: FeedConfig | FeedSpec, now: float, *, schedule: bool = True) -> FeedState:
        """Hold ``feed`` (as a ``FeedSpec``: see ``feedspec``), due after the start-up spread
        unless ``schedule`` is false (its caller knows when it is due)."""
        spec = feed if isinstance(feed, FeedSpec) else FeedSpec.of(feed)
        timing = self._policy.schedule.timing_for(spec)
        state = FeedState(feed=spec, timing=timing)
        self._states[spec.id] = state
        if schedule:
            self._queue.schedule(spec.id, now + first_delay(timing, self._config.startup_spread, self._rand))
        return state

    def add_feed(
        self, feed: FeedConfig, *, saved: SavedState | None = None, partition: int | None = None
    ) -> None:
        """Start polling a feed (or apply a changed definition, keeping its validators).

        ``saved`` is the state its previous owner left in the fetch-state topic: with it the
        feed resumes with the same validators and next due time (a handover, not a restart).
        """
        spec = FeedSpec.of(feed)
        old = self._states.get(spec.id)
        if old is not None and old.feed == spec:
            old.partition = partition if partition is not None else old.partition
            return
        if old is not None:
            old.removed = True
            self._queue.remove(spec.id)
        now = time.time()
        same_url = old is not None and old.feed.url == spec.url
        resumed = not same_url and saved is not None and saved.url == spec.url
        # a feed resumed with a due time is scheduled once, below: not twice (a stale heap entry
        # per feed is memory held until the queue's next compaction)
        due_known = resumed and saved is not None and saved.next_due is not None
        state = self._register(spec, now, schedule=not due_known)
        state.partition = partition
        if old is not None and same_url:
            state.set_validators(*old.validators())
            state.history, state.recent = old.history, old.recent
        elif saved is not None and resumed:
            state.set_validators(saved.etag, saved.last_modified, saved.sha256)
            saved.apply_to(state.timing)
            if self._push is not None:
                state.recent = self._push.window(saved.recent)
            state.mark_saved(*adopted(saved, self.instance))
            state.history.extend(AttemptRecord.restored(a) for a in saved.attempts)
            if saved.next_due is not None:  # overdue: at once, in the order of their cadence
                self._queue.schedule(spec.id, resume_due(saved.next_due, state.timing.interval, now))
            if saved.websub is not None and self._push is not None:  # subscribe with our callback
                self._push.adopt(spec.id, saved.websub)
        self._wake.set()

    def remove_feed(self, feed_id: str) -> bool:
        state = self._states.pop(feed_id, None)
        if state is None:
            return False
        state.removed = True
        self._queue.remove(feed_id)
        if self._push is not None:
            self._push.forget(feed_id)
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
        if self._raw.producer is not None:
            try:
                async with asyncio.timeout(_FLUSH_TIMEOUT):
                    await self._raw.producer.flush()
            except Exception as exc:  # the next owner fetches a little early: no loss
                log.warning("fetch_state_flush_failed", stage="fetch", error=f"{type(exc).__name__}: {exc}")

    def feeds_in(self, partitions: Iterable[int]) -> list[str]:
        """The ids of the feeds held of these feeds-topic partitions (sharded mode)."""
        wanted = set(partitions)
        return [feed_id for feed_id, state in self._states.items() if state.partition in wanted]

    def partition_of(self, feed_id: str) -> int | None:
        """The feeds-topic partition the held definition of ``feed_id`` was read from (None:
        not held, or not sharded)."""
        state = self._states.get(feed_id)
        return state.partition if state is not None else None

    def set_state_partitions(self, count: int) -> None:
        """Co-locate state records with definitions (same partition number) when ``count`` > 0."""
        self._keeper.set_partitions(count)

    # --- introspection ----------------------------------------------------------------

    def health(self) -> FetchHealth:
        now = time.time()
        head = self._queue.peek()
        running = self._loop_task is not None and not self._loop_task.done()
        return FetchHealth(
            running=running,
            ready=running and self._raw.producer is not None and not self._stopping,
            feeds=len(self._states),
            in_flight=len(self._tasks),
            waiting_for_host=self._dispatcher.waiting(),
            overdue_seconds=max(0.0, now - head[0]) if head else 0.0,
            fetches=self._stats.fetches,
            produced=self._stats.produced,
            outcomes=dict(self._stats.outcomes),
            lateness_p99_seconds=self._stats.lateness_p99(),
            last_produce_error=self._stats.last_produce_error,
            instance=self.instance,
            partitions=tuple(self._registry.partitions) if self._registry is not None else None,
            rebalances=self._registry.rebalances if self._registry is not None else 0,
            websub=self._push.hubs() if self._push is not None else {},
            articles_pending=self._articles.pending if self._articles is not None else None,
            slots_skipped=self._stats.skipped,
        )

    def feed_status(self, feed_id: str) -> FeedStatus | None:
        state = self._states.get(feed_id)
        if state is None:
            return None
        return feed_status(
            state,
            self._queue.due_at(feed_id),
            time.time(),
            self.instance,
            self._push.status_of(feed_id) if self._push is not None else None,
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
                opening = self._dispatcher.next_opening()
                wake = min(
                    head[0] if head is not None else math.inf, opening if opening is not None else math.inf
                )
                if wake < math.inf:
                    timeout = max(0.0, wake - time.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _dispatch(self, now: float) -> None:
        plan = self._dispatcher.dispatch(self._queue, self._states, len(self._tasks), now)
        for due, feed_id in plan.parked:
            self._states[feed_id].parked_due = due
        for due, feed_id in plan.start:
            self._start(self._states[feed_id], due, now)

    def _start(self, state: FeedState, due: float, now: float) -> None:
        """Run one fetch as a task; the dispatcher has counted it against its host already."""
        self._stats.started(due, now)
        feed_id = state.feed.id
        task = asyncio.create_task(self._fetch_one(state, due), name=f"fetch:{feed_id}")
        self._tasks.add(task)
        self._in_flight[feed_id] = task

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            if self._in_flight.get(feed_id) is finished:
                del self._in_flight[feed_id]
            # A global slot is free only now (a fetch's own wake-up comes before this), so
            # the loop must look again, or a full global cap would stall it for good.
            self._wake.set()

        task.add_done_callback(done)

    def _release(self, host: str) -> None:
        self._dispatcher.release(host)
        self._wake.set()

    async def _fetch_one(self, state: FeedState, due: float | None = None) -> None:
        """One poll: fetch, judge, produce a new body, record; never raises for a feed's sake.
        ``due``: the time it was due (the next one keeps the feed's cadence from it)."""
        feed = state.feed
        try:
            etag, last_modified, _ = state.validators()
            result = await self._fetcher.fetch(feed, Validators(etag, last_modified))
            link = self._push.before_poll(feed.id) if self._push is not None else NO_PUSH
            # read again after the await (a push may have moved them); shared with the decision
            # below unless a produce awaits in between (most polls: unpacked once, not twice)
            known: packed.Validators | None = state.validators()
            verdict = judge(state, result, self._policy, link, known)
            if verdict.produce:
                known = None
                try:
                    await self._raw.produce(feed, result)
                    verdict = verdict.acknowledged()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    verdict = verdict.refused(f"produce failed: {type(exc).__name__}: {exc}")
                    self._stats.last_produce_error = verdict.reason
            await self._record(state, result, verdict, known, due)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug; the feed is still rescheduled, with backoff
            log.exception("fetch_failed_unexpectedly", stage="fetch", feed=feed.id)
            now = datetime.now(UTC)
            result = FetchResult(feed.id, feed.url, feed.url, Outcome.ERROR, repr(exc), None, now, 0.0)
            await self._record(state, result, Verdict(Outcome.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            self._release(state.host)

    async def _record(
        self,
        state: FeedState,
        result: FetchResult,
        verdict: Verdict,
        known: packed.Validators | None = None,
        due: float | None = None,
    ) -> None:
        """A poll's end: WebSub learns of the hub it names, then the shared recording path."""
        link = self._push.after_poll(state, result, verdict) if self._push is not None else NO_PUSH
        await self._recorder.commit(state, result, verdict, link, known, due)
