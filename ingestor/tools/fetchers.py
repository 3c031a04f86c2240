"""Several fetch processes on one machine: ``fetch.processes`` fetchers started by one ``ingestor run``.

One fetcher is one event loop, and one event loop is one core: a conditional GET costs a
fixed amount of Python per fetch, so past a few thousand fetches a second the loop, not the
network, is the limit.  The fetch stage already shares feeds between instances through its
consumer group on ``news.feeds``; here the daemon starts ``count`` such instances as child
processes of its own, so that one command uses every core without a second deployment.

The parent keeps no feed of its own.  It supervises: a child that exits is started again
(after a short backoff, so a child that cannot start does not spin), SIGTERM stops them all
(each leaves the group with its feeds' state written, as a single fetcher does), and a child
dies with its parent (``PR_SET_PDEATHSIG``), so none is left behind even by a SIGKILL.  The
children are handed the broker's resolved address (the embedded broker's too), so none of
them looks for one.  Each child reports its fetch health to the parent every second; the
parent's ``/readyz`` and stage gauges are the sum of them (ready when every child is), while
each child serves its own ``/metrics`` (the per-fetch counters) on the next ports after the
parent's (``docs/operations.md``).

Also here, because they are about the processes that fetch rather than about fetching:
the event loop they run (``fetch.event_loop``) and their garbage-collector thresholds.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import multiprocessing
import multiprocessing.connection
import os
import resource
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from typing import Any, Literal

import structlog

from ingestor.config import FetchConfig, Settings
from ingestor.fetch.http import OTHER_DESCRIPTORS
from ingestor.fetch.status import FetchHealth
from ingestor.kafka import KafkaConnection
from ingestor.supervise import Backoff

log = structlog.get_logger("ingestor.runtime")

#: Young-generation threshold of the processes that fetch (CPython's default is 700).  A fetch
#: allocates a few hundred short-lived container objects (tasks, frames, futures, timers, the
#: response); with 700, collections run every couple of fetches, promote whatever is in flight
#: to the old generations, and so trigger full collections that walk every feed's state: about
#: 40% of the fetcher's CPU at 100,000 feeds (bench/fetch.py, profiled).  At 50,000 the
#: in-flight objects die before a collection sees them; what a collection still walks is the
#: real growth, and cyclic garbage waits at most 50,000 allocations longer to be freed.
GC_YOUNG_THRESHOLD = 50_000

_PR_SET_PDEATHSIG = 1
_HEALTH_EVERY_S = 1.0
_START_WAIT_S = 60.0

LoopKind = Literal["asyncio", "uvloop"]
#: A child's entry point: (its settings, its index, the parent's pid, the pipe to the parent).
ChildMain = Callable[[Settings, int, int, multiprocessing.connection.Connection], None]


def raise_descriptor_limit(config: FetchConfig) -> None:
    """Raise the soft limit on open files to what the fetch settings can use, within the hard
    limit; say so if even the hard limit is too low (the fetcher then keeps fewer connections
    idle: ``idle_connections_allowed``)."""
    need = config.global_concurrency + config.max_idle_connections + OTHER_DESCRIPTORS
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):  # no such limit on this platform
        return
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(OSError, ValueError):  # refused: reported below as too low
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != resource.RLIM_INFINITY and soft < need:
        log.warning(
            "descriptor_limit_low",
            limit=soft,
            needed=need,
            idle_connections=max(0, soft - config.global_concurrency - OTHER_DESCRIPTORS),
            hint="fewer connections are kept alive: raise the open-files limit (ulimit -n, "
            "LimitNOFILE=) or lower fetch.global_concurrency / fetch.max_idle_connections",
        )


def tune_gc() -> None:
    """Raise the young-generation threshold (see ``GC_YOUNG_THRESHOLD``); idempotent."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def run_loop(main: Coroutine[Any, Any, None], kind: LoopKind) -> None:
    """Run ``main`` on the configured event loop.  No fallback: uvloop is a declared dependency,
    so an ImportError is a broken install and is raised, not papered over with asyncio."""
    if kind == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


def child_listen(listen: str | None, index: int) -> str | None:
    """The ops address of child ``index``: the parent's port + 1 + index (port 0: any free one)."""
    if not listen:
        return None
    host, _, port = listen.strip().rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return f"{host}:0"
    return f"{host}:{int(port) + 1 + index}"


def child_settings(settings: Settings, bootstrap: str, index: int) -> Settings:
    """What a child runs with: the resolved broker, one fetcher in-process, its own ops port."""
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"bootstrap_servers": bootstrap}),
            "fetch": settings.fetch.model_copy(update={"processes": 1}),
            "ops": settings.ops.model_copy(update={"listen": child_listen(settings.ops.listen, index)}),
        }
    )


def die_with_parent() -> None:
    """Armed in a child: the kernel sends it SIGTERM when the parent dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass(slots=True)
class _Child:
    index: int
    process: BaseProcess
    conn: multiprocessing.connection.Connection
    started_at: float
    health: FetchHealth | None = None


class FetchProcesses:
    """The fetch stage as ``count`` child processes (a Stage: ``start``, ``stop``, ``health``)."""

    def __init__(
        self, settings: Settings, connection: KafkaConnection, count: int, target: ChildMain
    ) -> None:
        self._settings = settings
        self._target = target  # ``daemon.fetch_child``: runs the fetch stage of a daemon
        self._bootstrap = connection.bootstrap_servers
        self.count = count
        self._context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._children: dict[int, _Child] = {}
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self.restarts = 0

    def _spawn(self, index: int) -> _Child:
        ours, theirs = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=self._target,
            args=(
                child_settings(self._settings, self._bootstrap, index),
                index,
                os.getpid(),
                theirs,
            ),
            name=f"ingestor-fetch-{index}",
        )
        process.start()
        theirs.close()
        child = _Child(index, process, ours, time.monotonic())
        log.info(
            "fetch_process_started",
            index=index,
            pid=process.pid,
            ops_listen=child_listen(self._settings.ops.listen, index),
        )
        return child

    def spawn(self) -> None:
        """Start every child, without waiting: ``ingestor run`` calls it before it starts its other
        stages, so that the children's interpreter start and group joins (seconds) overlap theirs."""
        if self._watch is not None:
            return
        self._stopping = False
        for index in range(self.count):
            self._children[index] = self._spawn(index)
        self._watch = asyncio.create_task(self._supervise(), name="fetch-processes")

    async def start(self) -> None:
        """Start every child (unless ``spawn`` did) and wait (bounded) until each fetches; a late
        one is not an error."""
        self.spawn()
        deadline = time.monotonic() + _START_WAIT_S
        while time.monotonic() < deadline and not all(c.health for c in self._children.values()):
            await asyncio.sleep(0.1)

    async def _supervise(self) -> None:
        """Restart exited children, each after its own backoff (one failing child does not hold
        up another's restart); a child that fetched for a minute starts its backoff afresh."""
        backoffs = {index: Backoff(jitter=False) for index in self._children}
        restart_at: dict[int, float] = {}
        while not self._stopping:
            now = time.monotonic()
            for index, child in list(self._children.items()):
                self._drain(child)
                if child.process.is_alive():
                    if child.health is not None and now - child.started_at > 60:
                        backoffs[index].reset()
                    continue
                if index not in restart_at:
                    delay = backoffs[index].next_delay()
                    restart_at[index] = now + delay
                    log.warning(
                        "fetch_process_exited",
                        index=index,
                        pid=child.process.pid,
                        exit_code=child.process.exitcode,
                        restart_in_s=round(delay, 2),
                    )
                elif now >= restart_at[index]:
                    del restart_at[index]
                    child.conn.close()
                    child.process.join(0)
                    self._children[index] = self._spawn(index)
                    self.restarts += 1
            await asyncio.sleep(0.2)

    @staticmethod
    def _drain(child: _Child) -> None:
        """Keep the latest health report the child sent (non-blocking)."""
        try:
            while child.conn.poll():
                child.health = child.conn.recv()
        except (EOFError, OSError):
            pass

    async def stop(self) -> None:
        """SIGTERM every child (each hands its feeds over), wait, then SIGKILL what is left."""
        self._stopping = True
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        children = list(self._children.values())
        for child in children:
            if child.process.is_alive() and child.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.process.pid, signal.SIGTERM)
        try:
            while any(child.process.is_alive() for child in children):
                await asyncio.sleep(0.05)
        finally:  # cancelled at the daemon's shutdown budget: nothing may outlive us
            for child in children:
                if child.process.is_alive():
                    child.process.kill()
                child.process.join(1)
                child.conn.close()
            self._children.clear()
        log.info("fetch_processes_stopped", count=len(children), restarts=self.restarts)

    def health(self) -> FetchHealth:
        """The children's health summed: ready when every child is, counts added up."""
        for child in self._children.values():
            self._drain(child)
        reports = [c.health for c in self._children.values() if c.process.is_alive()]
        return combine(reports, self.count)


def combine(reports: list[FetchHealth | None], expected: int) -> FetchHealth:
    """One ``FetchHealth`` for ``expected`` fetch processes from what they last reported."""
    known = [r for r in reports if r is not None]
    complete = len(known) == expected
    if not known:
        return FetchHealth(
            running=False, ready=False, feeds=0, in_flight=0, waiting_for_host=0, overdue_seconds=0.0,
            fetches=0, produced=0, outcomes={}, lateness_p99_seconds=None, last_produce_error=None,
        )  # fmt: skip
    outcomes: Counter[str] = Counter()
    for report in known:
        outcomes.update(report.outcomes)
    latenesses = [r.lateness_p99_seconds for r in known if r.lateness_p99_seconds is not None]
    partitions = sorted({p for r in known for p in (r.partitions or ())})
    pending = [n for r in known if (n := getattr(r, "articles_pending", None)) is not None]
    websub = {hub: stats for r in known for hub, stats in r.websub.items()}
    return replace(
        known[0],
        running=complete and all(r.running for r in known),
        ready=complete and all(r.ready for r in known),
        feeds=sum(r.feeds for r in known),
        in_flight=sum(r.in_flight for r in known),
        waiting_for_host=sum(r.waiting_for_host for r in known),
        overdue_seconds=max(r.overdue_seconds for r in known),
        fetches=sum(r.fetches for r in known),
        produced=sum(r.produced for r in known),
        outcomes=dict(outcomes),
        lateness_p99_seconds=max(latenesses) if latenesses else None,
        last_produce_error=next((r.last_produce_error for r in known if r.last_produce_error), None),
        instance=",".join(r.instance for r in known),
        partitions=tuple(partitions) if any(r.partitions is not None for r in known) else None,
        rebalances=sum(r.rebalances for r in known),
        websub=websub,
        **({"articles_pending": sum(pending)} if pending else {}),
    )
