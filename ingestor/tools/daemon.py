"""The daemon: broker (embedded or not), topics, and the stages, started and stopped in order.

Stages are started downstream first (dedup, parse, fetch) so nothing waits on a stage that is
not there yet, and stopped upstream first (fetch, parse, dedup) so each stage can drain what
the one before it produced.  One shared deadline keeps the whole shutdown under 10 seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing.connection
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, Protocol

import structlog
from aiokafka.errors import KafkaError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from ingestor.config import Settings, TopicsConfig
from ingestor.consumer_loop import ConsumeLoop
from ingestor.kafka import EmbeddedBroker, KafkaConnection, ensure_topics, read_records
from ingestor.ops import metrics
from ingestor.tools.fetchers import FetchProcesses, die_with_parent, raise_descriptor_limit, run_loop, tune_gc

if TYPE_CHECKING:  # imported where it is started: see ``Daemon.start``
    from ingestor.ops.server import OpsServer

log = structlog.get_logger("ingestor.runtime")

StageName = Literal["fetch", "parse", "dedup"]
ALL_STAGES: tuple[StageName, ...] = ("fetch", "parse", "dedup")
_START_ORDER: tuple[StageName, ...] = ("dedup", "parse", "fetch")
SHUTDOWN_BUDGET_S = 8.0


class Stage(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class TopicLayoutError(RuntimeError):
    """news.items and news.published differ in partitions: dedup would publish twice."""


class TopicsMissing(KafkaError):  # type: ignore[misc]  # aiokafka is untyped
    """topics.create is false and a pipeline topic is not there (yet).

    A KafkaError, so start-up waits for it like for a broker outage: the topic Job may simply
    not have run yet.  Starting the stages instead would have their clients ask for the
    topics, and a broker with auto.create.topics.enable create them with its own layout.
    """


async def require_topics(connection: KafkaConnection, topics: TopicsConfig) -> None:
    """Raise TopicsMissing unless every pipeline topic exists (asked without creating any)."""
    wanted = [topics.feeds, topics.raw, topics.items, topics.published, topics.dlq, topics.article_requests]
    missing = await connection.missing_topics(wanted)
    if missing:
        raise TopicsMissing(
            f"{', '.join(missing)} not on {connection.bootstrap_servers}; topics.create is false, so "
            "the daemon waits for them (kafka-topics, the topic Job) rather than have them auto-created"
        )


def build_stage(name: StageName, settings: Settings, connection: KafkaConnection) -> Stage:
    if name == "fetch" and settings.fetch.process_count > 1:
        return FetchProcesses(settings, connection, settings.fetch.process_count, fetch_child)
    if name == "fetch":
        from ingestor.fetch.service import FetchStage

        return FetchStage(settings, connection)
    if name == "parse":
        from consumers.parse.service import ParseStage

        return ParseStage(settings, connection)
    from consumers.dedup.service import DedupStage

    return DedupStage(settings, connection)


async def check_copartitioned(connection: KafkaConnection, settings: Settings) -> None:
    async with connection.reader() as reader:
        items = await reader.partitions_of(settings.topics.items)
        published = await reader.partitions_of(settings.topics.published)
    if not items or not published:  # metadata not there (yet), e.g. the broker is going away: retry
        raise KafkaError(f"no partition metadata for {settings.topics.items} / {settings.topics.published}")
    if len(items) != len(published):
        counts = {settings.topics.items: len(items), settings.topics.published: len(published)}
        raise TopicLayoutError(
            layout_advice(counts, settings.topics.partitions, connection.bootstrap_servers)
        )


def layout_advice(counts: dict[str, int], expected: int, bootstrap: str) -> str:
    """The refusal when items and published differ, with the likely cause and the way out.

    The usual cause is not a typo but auto-creation: a subscriber (or any client) that asked
    for news.published before the daemon created it made the broker create it with its own
    ``num.partitions``.  The operator needs the command, not just the two numbers.
    """
    items, published = counts
    odd = next((topic for topic, n in counts.items() if n != expected), published)
    other = items if odd == published else published
    n = counts[odd]
    return (
        f"{odd} has {n} partitions and {other} {counts[other]}, expected {expected} (topics.partitions) "
        f"for both: dedup needs them co-partitioned. {odd} was probably auto-created with the "
        "broker's default partition count by a client that asked for it before the daemon created it "
        f"(e.g. a subscriber started first). If it holds nothing to keep, delete it "
        f"(kafka-topics.sh --bootstrap-server {bootstrap} --delete --topic {odd}) and start again: the "
        f"daemon re-creates it with {expected}; or set topics.partitions to {n} and re-create {other} "
        f"with {n} the same way. Disable auto.create.topics.enable on production clusters."
    )


def _until_the_broker_answers(step: str) -> AsyncRetrying:
    """Retry a start-up step for as long as the broker is away (never giving up: a daemon that
    exits during an outage needs a human to come back), logging every wait."""

    def waiting(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "broker_unavailable",
            step=step,
            attempt=state.attempt_number,
            error=f"{type(error).__name__}: {error}" if error else None,
            retry_in_s=round(state.upcoming_sleep, 2),
        )

    return AsyncRetrying(
        retry=retry_if_exception_type((KafkaError, OSError, TimeoutError)),
        wait=wait_exponential_jitter(multiplier=0.5, max=10),
        before_sleep=waiting,
        reraise=True,
    )


class Daemon:
    """Everything `ingestor run` starts, in one asyncio loop."""

    def __init__(self, settings: Settings, stages: Sequence[StageName] = ALL_STAGES) -> None:
        self.settings = settings
        self.stage_names = [name for name in _START_ORDER if name in stages]
        self.broker: EmbeddedBroker | None = None
        self.connection: KafkaConnection | None = None
        self.stages: dict[StageName, Stage] = {}
        self.ops: OpsServer | None = None

    async def _bootstrap(self) -> str:
        kafka = self.settings.kafka
        if not kafka.is_embedded:
            return kafka.bootstrap_servers
        if set(self.stage_names) != set(ALL_STAGES):
            # A single stage joins the embedded broker of a daemon already running here.
            records = read_records(kafka.embedded.state_dir)
            if records:
                log.info("embedded_broker_found", bootstrap_servers=records[0].bootstrap_servers)
                return records[0].bootstrap_servers
        self.broker = EmbeddedBroker(kafka.embedded)
        return await self.broker.start()

    async def start(self) -> None:
        metrics.set_labeled_feeds(self.settings.ops.labeled_feeds)
        if self.settings.ops.listen and self.ops is None:  # first: /livez answers during start-up
            # imported here: a process without ops.listen (a fetch child of a daemon without it)
            # never loads aiohttp's server side (2.5 MiB resident with the ops server's own)
            from ingestor.ops.server import OpsServer

            self.ops = OpsServer(self.settings.ops.listen, self)
            await self.ops.start()
        bootstrap = await self._bootstrap()
        self.connection = KafkaConnection(bootstrap, self.settings.kafka)
        async for attempt in _until_the_broker_answers("topics"):
            with attempt:
                if self.settings.topics.create:
                    created = await ensure_topics(
                        self.connection, self.settings.topics, compacted=[self.settings.fetch.state_topic]
                    )
                    if created:
                        log.info("topics_created", topics=created, partitions=self.settings.topics.partitions)
                else:
                    await require_topics(self.connection, self.settings.topics)
                if "dedup" in self.stage_names:
                    await check_copartitioned(self.connection, self.settings)
        built = {name: build_stage(name, self.settings, self.connection) for name in self.stage_names}
        for name, stage in built.items():
            if isinstance(stage, FetchProcesses):  # the children start first: they take longest
                stage.spawn()
                self.stages[name] = stage  # stopped with the rest, even if a later start fails
        for name, stage in built.items():
            async for attempt in _until_the_broker_answers(f"start {name}"):
                with attempt:
                    await stage.start()
            self.stages[name] = stage
        log.info(
            "daemon_started",
            stages=self.stage_names,
            bootstrap_servers=bootstrap,
            embedded=self.broker is not None,
        )

    async def stop(self) -> None:
        """Fetching stops first (nothing new comes in), then the consuming stages together.

        Each consuming stage finishes and commits its batch in hand; they need not wait for one
        another, since what parse produces after dedup stopped is dedup's input on the next run.
        """
        deadline = time.monotonic() + SHUTDOWN_BUDGET_S
        fetch = self.stages.pop("fetch", None)
        if fetch is not None:
            await self._stop_stage("fetch", fetch, deadline)
        rest = [(name, self.stages.pop(name)) for name in reversed(self.stage_names) if name in self.stages]
        await asyncio.gather(*(self._stop_stage(name, stage, deadline) for name, stage in rest))
        if self.ops is not None:  # before the broker: it waits for open connections to close
            await self.ops.stop()
            self.ops = None
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None
        log.info("daemon_stopped")

    @staticmethod
    async def _stop_stage(name: str, stage: Stage, deadline: float) -> None:
        remaining = max(0.5, deadline - time.monotonic())
        try:
            loop = getattr(stage, "loop", None)
            if isinstance(loop, ConsumeLoop):
                await loop.stop(remaining)  # fits its batch, the cancel and the close into the budget
            else:
                await asyncio.wait_for(stage.stop(), remaining)
        except TimeoutError:
            log.warning("stage_stop_timeout", stage=name)
        except Exception as exc:
            log.warning("stage_stop_failed", stage=name, error=repr(exc))


async def run_until(
    settings: Settings,
    stages: Sequence[StageName],
    stop: asyncio.Event,
    *,
    started: Callable[[Daemon], None] | None = None,
) -> None:
    """Start the daemon, run until ``stop`` is set, stop it; ``started`` is told once it runs."""
    daemon = Daemon(settings, stages)
    try:
        start = asyncio.create_task(daemon.start())
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({start, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if start in done:
            start.result()
            if started is not None:
                started(daemon)
            await stopper
        else:
            start.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # stopping anyway
                await start
    finally:
        await daemon.stop()


# ---- a fetch child process (fetch.processes > 1; ingestor/tools/fetchers.py supervises it) ----------

_HEALTH_EVERY_S = 1.0


def fetch_child(
    settings: Settings, index: int, parent: int, conn: multiprocessing.connection.Connection
) -> None:
    """Entry point of a fetch child (spawned): the fetch stage of a daemon, reporting its health
    to the parent through ``conn``; it logs as the parent does (``ingestor run`` put its --log-*
    options into ``settings``) and runs ``fetch.event_loop``."""
    die_with_parent()
    if os.getppid() != parent:  # the parent died before the death signal was armed
        return
    from ingestor.logging import configure_logging

    configure_logging(settings.logging.level, settings.logging.format)
    tune_gc()
    raise_descriptor_limit(settings.fetch)
    run_loop(_fetch_child(settings, conn), settings.fetch.event_loop)


async def _fetch_child(settings: Settings, conn: multiprocessing.connection.Connection) -> None:
    stop = asyncio.Event()
    # SIGTERM/SIGINT stop the child; a second one is not a forced exit (as it is for `ingestor
    # run`): a Ctrl-C or a `timeout` signals the whole process group, and the parent's own SIGTERM
    # follows. The parent SIGKILLs a child still running at the end of its shutdown budget.
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    reporter: asyncio.Task[None] | None = None

    def started(daemon: Daemon) -> None:
        nonlocal reporter
        reporter = asyncio.create_task(_report(daemon, conn), name="fetch-child-report")

    try:
        await run_until(settings, ["fetch"], stop, started=started)
    finally:
        if reporter is not None:
            reporter.cancel()
        with contextlib.suppress(OSError):
            conn.close()


async def _report(daemon: Daemon, conn: multiprocessing.connection.Connection) -> None:
    """The child's fetch health to the parent, every second (a pipe write of a small object)."""
    while True:
        stage = daemon.stages.get("fetch")
        health = getattr(stage, "health", None)
        try:
            conn.send(health() if callable(health) else None)
        except (OSError, ValueError):  # the parent is gone; PR_SET_PDEATHSIG stops us
            return
        await asyncio.sleep(_HEALTH_EVERY_S)
