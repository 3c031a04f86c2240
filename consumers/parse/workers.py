"""Parsing in worker processes that can be killed: a stalled parse costs one worker, not the daemon.

A thread cannot be stopped, and a regex or a C library that stalls on a hostile page keeps the
GIL or a core for as long as it likes, so every document is parsed in a process of a pebble
``ProcessPool``: past its deadline the worker is killed and a new one takes its place, and the
caller gets :class:`WorkerTimeout`.  ``concurrent.futures.ProcessPoolExecutor`` cannot do that
(killing one of its workers breaks the whole executor).

Choices, and why:

* Workers come from a **forkserver** that has imported the parser once: forking the daemon
  itself (a running event loop, aiokafka and pebble threads) is unsafe, and ``spawn`` pays
  the parser's ~1 s import again for every replacement worker, exactly when a hostile feed
  keeps killing them.  Starting the forkserver costs ~0.7 s once; a replacement ~5 ms.
* SIGTERM kills a worker at once (default action): pebble stops a worker with SIGTERM and
  waits 3 s before SIGKILL, and a worker stuck inside C code never runs a Python handler.
* A worker dies with its parent (``PR_SET_PDEATHSIG``), so even a SIGKILLed daemon leaves no
  stalled parser spinning behind it.
* An optional address-space cap (``RLIMIT_AS``) per worker bounds what one document can cost:
  past it the parser sees MemoryError, which it reports as ``too_large``.
* pebble's own timeout counts from the moment a worker picks the task up; on top of it an
  asyncio timeout (deadline + a grace) guards against pebble itself getting wedged, after
  which the pool is rebuilt.  A pool that broke (pebble gives up on a pool when an idle
  worker dies) is rebuilt too.

Only plain data crosses the process boundary: the RawDocument in, and items already encoded
as JSON bytes out (encoding is work the caller needs anyway, done here in parallel; pickling
bytes is cheaper than pickling pydantic models).  ParseError is turned into a value, since
exceptions with extra constructor arguments do not unpickle.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import multiprocessing
import resource
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import BrokenExecutor, CancelledError, Future
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import structlog
from pebble import ProcessExpired, ProcessPool

from consumers.parse.clean import clean_item
from consumers.parse.dispatch import parse_report, sniff
from consumers.parse.document import ParseError, ParseLimits, RawDocument
from consumers.parse.fulltext import NOT_AN_ARTICLE, article_of, merge_full_text
from consumers.parse.teaser import FullTextMode, requests_among
from ingestor.models import item_from_json, item_to_json

log = structlog.get_logger("consumers.parse.workers")

T = TypeVar("T")

#: Imported once by the forkserver (and again, harmlessly, by each worker's initializer), so no
#: document waits for an import: the page parsers are otherwise imported on first use.  Every
#: new worker also re-runs the main module (multiprocessing prepares each child that way), which
#: is cheap only when what it imports is loaded already: hence what ``ingestor.tools.cli`` (the main
#: module of `ingestor run` and `ingestor parse`) imports; without them each replacement worker
#: spends ~1 s importing.  Not ``ingestor.tools.cli`` itself: runpy warns when re-running a module
#: that is already imported.
PRELOAD: Final = (
    "consumers.parse",
    "consumers.parse.html_page",
    "consumers.parse.text_capture",
    "consumers.parse.workers",
    "ingestor.config",
    "ingestor.logging",
)
#: How long after the deadline pebble may take to report a timeout before the pool counts as
#: wedged (its manager thread checks every 0.1 s; a kill takes a few ms).
WEDGED_GRACE_S: Final = 2.0
#: Exit signals that come from outside (a service manager stopping the process group, an
#: operator): the document is not to blame for them, so they are not dead-lettered.
_EXTERNAL_SIGNALS: Final = frozenset({-signal.SIGTERM, -signal.SIGINT, -signal.SIGHUP})
_PR_SET_PDEATHSIG: Final = 1


class WorkerError(Exception):
    """A document could not be parsed in a worker, for a reason other than its content."""


class WorkerTimeout(WorkerError):
    """The document was still being parsed at its deadline; its worker was killed and replaced."""


class WorkerCrashed(WorkerError):
    """The worker died while parsing the document (segfault, abort, os._exit, OOM kill)."""

    def __init__(self, message: str, exitcode: int | None) -> None:
        super().__init__(message)
        self.exitcode = exitcode


class WorkerInterrupted(WorkerError):
    """The parse was cut short by something that is not the document's fault: the pool is
    closing, its worker was signalled from outside, or the pool broke.  Retry, don't refuse."""


# ---- in the worker -----------------------------------------------------------------------------


def _init_worker(memory_limit: int | None, preload: Sequence[str]) -> None:
    """Runs in each new worker before its first task (see the module docstring for why)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    for name in preload:
        importlib.import_module(name)
    if memory_limit is not None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = memory_limit if hard == resource.RLIM_INFINITY else min(memory_limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


@dataclass(frozen=True, slots=True)
class Parsed:
    """A successful parse: ``(item id, item JSON)`` pairs, what was dropped, the page shape,
    and the teaser entries whose linked page is wanted (``(entry id, entry JSON, url)``:
    they go to the article requests instead of ``news.items``)."""

    items: list[tuple[str, bytes]]
    dropped: dict[str, int] = field(default_factory=dict)
    shape: str = "feed"
    requests: list[tuple[str, bytes, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Unparsable:
    """The parser's ParseError as a value (it would not survive pickling as an exception)."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Fallback:
    """An entry's page that is not its story (``not_an_article``): the entry stands as the
    feed gave it."""

    reason: str
    message: str


def parse_job(
    doc: RawDocument, limits: ParseLimits, full_text: FullTextMode = "never", teaser_words: int = 100
) -> Parsed | Unparsable:
    """The work one worker does for one document; runs in the worker process.

    With ``full_text`` other than ``never``, the feed entries that want their linked page
    (``consumers/parse/teaser.py``) come back as ``requests`` rather than as items."""
    try:
        report = parse_report(doc, limits)
    except ParseError as exc:
        return Unparsable(exc.reason, exc.message)
    shape = doc.format if doc.format != "auto" else sniff(doc.body, doc.content_type)
    wanted = requests_among(report.items, full_text, teaser_words)
    if not wanted:
        return Parsed([(item.id, item_to_json(item)) for item in report.items], dict(report.dropped), shape)
    items = [(item.id, item_to_json(item)) for item in report.items if item.id not in wanted]
    requests = [(item.id, item_to_json(item), item.url or "") for item in report.items if item.id in wanted]
    return Parsed(items, dict(report.dropped), shape, requests)


def article_job(doc: RawDocument, entry_json: str, limits: ParseLimits) -> Parsed | Unparsable | Fallback:
    """An entry's linked page, parsed as any HTML page, merged with the entry
    (``consumers/parse/fulltext.py``); runs in the worker process.

    A page that parses but holds no article text (``no_items``, an empty body, a live page
    without an intro, a stub no longer than the teaser) is a :class:`Fallback`; a page the
    parser refuses for any other reason is :class:`Unparsable`, like any refused document."""
    entry = item_from_json(entry_json)
    try:
        report = parse_report(doc, limits)
    except ParseError as exc:
        if exc.reason in ("no_items", "empty"):
            return Fallback(NOT_AN_ARTICLE, exc.message)
        return Unparsable(exc.reason, exc.message)
    page = article_of(report.items)
    if page is None:
        return Fallback(NOT_AN_ARTICLE, "the page has no article item (a live page without an intro?)")
    merged = merge_full_text(entry, page)
    if merged is None:
        return Fallback(
            NOT_AN_ARTICLE, f"the page's text ({len(page.body)} chars) is no longer than the teaser"
        )
    merged = clean_item(merged)
    return Parsed([(merged.id, item_to_json(merged))], {}, "full_text")


# ---- in the daemon ---------------------------------------------------------------------------------


def _context(preload: Sequence[str]) -> multiprocessing.context.BaseContext:
    if "forkserver" not in multiprocessing.get_all_start_methods():  # not on Windows
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    return context


def _stop(pool: ProcessPool) -> None:
    """Kill the workers (running tasks included) and wait for pebble's threads; blocking."""
    pool.stop()  # type: ignore[no-untyped-call]
    with contextlib.suppress(Exception):  # a pool that already broke has nothing left to join
        pool.join()


RestartHook = Callable[[str], None]


class WorkerPool:
    """A fixed number of parse workers, each task bounded by a deadline.

    ``on_restart(reason)`` is called whenever a worker is lost mid-task and replaced:
    ``timeout``, ``crash``, ``killed`` (signalled from outside) or ``cancelled``.
    """

    def __init__(
        self,
        workers: int,
        *,
        memory_limit: int | None = None,
        preload: Sequence[str] = PRELOAD,
        on_restart: RestartHook | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.workers = workers
        self._memory_limit = memory_limit
        self._preload = tuple(preload)
        self._on_restart = on_restart
        self._pool: ProcessPool | None = None
        self._build_lock = threading.Lock()
        self._slots: asyncio.Semaphore | None = None
        self._inflight: set[Future[Any]] = set()  # guarded by _inflight_lock (pebble's threads)
        self._inflight_lock = threading.Lock()
        self._closing = False

    # ---- pool lifecycle --------------------------------------------------------------------------

    def _new_pool(self) -> ProcessPool:
        pool = ProcessPool(
            max_workers=self.workers,
            initializer=_init_worker,
            initargs=(self._memory_limit, self._preload),
            context=_context(self._preload),
        )
        if not pool.active:  # starts the workers (and the forkserver, the first time)
            raise WorkerInterrupted("the parse worker pool did not start")
        return pool

    def _live_pool(self) -> ProcessPool:
        """The running pool; a broken one is replaced.  Blocking: it may start processes."""
        with self._build_lock:
            if self._closing:
                raise WorkerInterrupted("the parse worker pool is closing")
            pool = self._pool
            if pool is not None and pool.active:
                return pool
            if pool is not None:
                log.warning("parse_pool_rebuilt", stage="parse", workers=self.workers)
                threading.Thread(target=_stop, args=(pool,), daemon=True).start()
            self._pool = self._new_pool()
            return self._pool

    def _healthy(self) -> ProcessPool | None:
        pool = self._pool
        return pool if pool is not None and pool.active and not self._closing else None

    def _discard(self, pool: ProcessPool) -> None:
        """Forget a wedged pool (the next task builds a new one) and stop it in the background."""
        with self._build_lock:
            if self._pool is pool:
                self._pool = None
        threading.Thread(target=_stop, args=(pool,), daemon=True).start()

    def start_sync(self) -> None:
        """Start the workers now rather than on the first document (also after a close)."""
        with self._build_lock:
            self._closing = False
        self._live_pool()

    async def start(self) -> None:
        """:meth:`start_sync` off the event loop (starting the forkserver takes ~0.7 s)."""
        await asyncio.to_thread(self._live_pool)

    def close_sync(self) -> None:
        """Kill every worker, stalled or not; tasks in flight end with WorkerInterrupted."""
        with self._build_lock:
            self._closing = True
            pool, self._pool = self._pool, None
        with self._inflight_lock:
            inflight = list(self._inflight)
        for future in inflight:
            future.cancel()
        if pool is not None:
            _stop(pool)

    async def close(self, timeout: float = 3.0) -> None:
        """:meth:`close_sync` without blocking the loop; gives up waiting after ``timeout``."""
        try:
            await asyncio.wait_for(asyncio.to_thread(self.close_sync), timeout)
        except TimeoutError:
            log.warning("parse_pool_stop_timeout", stage="parse", timeout_s=timeout)

    # ---- tasks ------------------------------------------------------------------------------------

    def _restarted(self, reason: str) -> None:
        if self._on_restart is not None:
            self._on_restart(reason)

    def _schedule(
        self, pool: ProcessPool, fn: Callable[..., T], args: tuple[Any, ...], timeout: float
    ) -> Future[T]:
        try:
            future: Future[T] = pool.schedule(fn, args=args, timeout=timeout)
        except RuntimeError as exc:  # broke since we looked: not this document's fault
            raise WorkerInterrupted(f"the parse worker pool is not running: {exc}") from None
        with self._inflight_lock:
            self._inflight.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future[Any]) -> None:
        with self._inflight_lock:
            self._inflight.discard(future)

    def _outcome(self, future: Future[T], timeout: float) -> T:
        """The task's result, or the WorkerError that says what happened to it."""
        try:
            return future.result(timeout=0)
        except TimeoutError:
            self._restarted("timeout")
            raise WorkerTimeout(f"still parsing after {timeout:g} s; the worker was killed") from None
        except ProcessExpired as exc:
            if self._closing or exc.exitcode in _EXTERNAL_SIGNALS:
                self._restarted("killed")
                raise WorkerInterrupted(f"the parse worker was stopped (exit code {exc.exitcode})") from None
            self._restarted("crash")
            raise WorkerCrashed(_describe_exit(exc.exitcode), exc.exitcode) from None
        except (CancelledError, BrokenExecutor) as exc:
            raise WorkerInterrupted(f"the parse worker pool stopped: {type(exc).__name__}") from None

    def run_sync(self, fn: Callable[..., T], *args: Any, timeout: float) -> T:
        """``fn(*args)`` in a worker, for at most ``timeout`` seconds; blocking (for the CLI)."""
        future = self._schedule(self._live_pool(), fn, args, timeout)
        with contextlib.suppress(BaseException):  # the outcome is read below
            future.exception(timeout=timeout + WEDGED_GRACE_S)
        if not future.done():
            self._wedged(future, timeout)
        return self._outcome(future, timeout)

    async def run(self, fn: Callable[..., T], *args: Any, timeout: float) -> T:
        """``fn(*args)`` in a worker, for at most ``timeout`` seconds of its time on the worker.

        Raises WorkerTimeout, WorkerCrashed or WorkerInterrupted; whatever ``fn`` raises is
        re-raised.  Cancelling the caller kills the worker running the task.
        """
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        async with self._slots:  # a task starts on a worker as soon as it is scheduled
            pool = self._healthy()
            if pool is None:
                pool = await asyncio.to_thread(self._live_pool)
            future = self._schedule(pool, fn, args, timeout)
            waiting = asyncio.wrap_future(future)
            try:
                async with asyncio.timeout(timeout + WEDGED_GRACE_S):
                    await asyncio.wait({waiting})
            except TimeoutError:
                self._wedged(future, timeout)
            except asyncio.CancelledError:
                if future.running():
                    self._restarted("cancelled")
                future.cancel()  # pebble kills the worker running it
                raise
            if not waiting.cancelled():
                waiting.exception()  # retrieved: asyncio must not warn about it
            return self._outcome(future, timeout)

    def _wedged(self, future: Future[Any], timeout: float) -> None:
        """pebble did not report the task's end well past its deadline: replace the pool."""
        log.error("parse_pool_wedged", stage="parse", deadline_s=timeout, grace_s=WEDGED_GRACE_S)
        future.cancel()
        pool = self._pool
        if pool is not None:
            self._discard(pool)
        self._restarted("timeout")
        raise WorkerTimeout(f"still parsing after {timeout:g} s; the worker pool was replaced")


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the parse worker died of {name}"
    return f"the parse worker exited with status {exitcode}"
