"""Which due feeds may start now: the global cap, the per-host cap, and a line per host.

Pure bookkeeping (no tasks, no clock, no I/O) so that politeness and fairness are testable
on their own: the stage's loop asks :meth:`HostDispatcher.dispatch` what to start, starts
it, and reports each finished fetch with :meth:`HostDispatcher.release`.

A feed whose host already has ``per_host`` fetches running waits in that host's line
without holding a global slot, so one slow shared host cannot starve the rest; a host's
line is served first (oldest first) as soon as one of its fetches finishes, so nothing in a
line waits behind feeds that became due after it.

Article pages (full text) share the per-host cap: an article asks for a slot with
:meth:`HostDispatcher.acquire_article` and, when its host is full, waits in the host's article
line (holding no slot) until a release or a dispatch grants it one, announced through
``article_granted``.  When a host has both lines waiting, freed slots alternate between them, so
a burst of 200 new entries of one site neither starves that site's feeds nor is starved by them.
Articles have their own global cap (``full_text.concurrency``, the caller's), not the feeds'.

A host's second (third, ...) feed fetch does not start at once: only when the host's latest
fetch has been running ``stagger`` seconds (``fetch.per_host_stagger``), or the head of its
line has waited that long.  A fast host is then polled one fetch at a time, each handing its
kept-alive connection to the next; a slow one, or one with more feeds due than one connection
serves (thousands of feeds on one host, one after another), gets up to ``per_host``
connections.  Starting them together opened a new connection for nearly every overlap (the
idle budget keeps one connection per origin: ``ingestor/fetch/keepalive.py``), and under load
overlaps are the rule: in ``bench/fetch.py`` at 5,000 fetches/s opening connections was an
eighth of the fetchers' profile (py-spy), and the p99 lateness 3.6 s against 0.3-1.2 s with
the stagger (same-hour runs; docs/operations.md).  The caller wakes the loop at
:meth:`HostDispatcher.next_opening`, when such a slot opens.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ingestor.fetch.schedule import DueQueue


class Dispatchable(Protocol):
    """What the dispatcher reads of a feed: its host, and whether it may still be fetched."""

    @property
    def host(self) -> str: ...
    @property
    def paused(self) -> bool: ...
    @property
    def removed(self) -> bool: ...


@dataclass(slots=True)
class Plan:
    """What one dispatch round came to: ``start`` these (due time, feed id), in this order;
    ``parked`` were waiting in a host's line when a rebalance paused them (keep the due time)."""

    start: list[tuple[float, str]] = field(default_factory=list)
    parked: list[tuple[float, str]] = field(default_factory=list)


class HostDispatcher:
    """Per-host concurrency and lines; the caller owns the tasks and the global count of them."""

    def __init__(self, global_cap: int, per_host: int, stagger: float = 0.0) -> None:
        self.global_cap = global_cap
        self.per_host = per_host
        self.stagger = stagger
        self._active: Counter[str] = Counter()
        self._latest: dict[str, float] = {}  # per host with a feed fetch running: the latest start
        self._openings: list[tuple[float, str]] = []  # heap: when a lined-up host's next slot opens
        #: per busy host, its line: (due, feed id, when it joined the line), oldest first
        self._waiting: dict[str, deque[tuple[float, str, float]]] = {}
        self._freed: set[str] = set()  # hosts with a line and, since a release, room to start
        self._articles: dict[str, deque[Hashable]] = {}  # per host: articles waiting for a slot
        self._article_turn: set[str] = set()  # hosts whose next contended slot is an article's
        #: called with an article's token when a slot is granted to it (counted against its host)
        self.article_granted: Callable[[Hashable], None] | None = None

    def active(self, host: str) -> int:
        return self._active[host]

    def next_opening(self) -> float | None:
        """When a host with a line may start its next fetch, if it waits only for the stagger
        (its latest fetch, or its line's head, to have waited ``stagger``): the caller's loop
        wakes then.  It may be stale (a look that finds nothing to start)."""
        return self._openings[0][0] if self._openings else None

    def _opens_at(self, host: str) -> float:
        """When ``host`` may start one more feed fetch (below its cap): once its latest fetch or
        the head of its line has waited ``stagger``; now, if nothing of it runs."""
        latest = self._latest.get(host)
        if latest is None or self.stagger <= 0:
            return float("-inf")
        line = self._waiting.get(host)
        if line:
            latest = min(latest, line[0][2])
        return latest + self.stagger

    def _started(self, host: str, now: float) -> None:
        self._active[host] += 1
        self._latest[host] = now

    def _held(self, host: str, now: float) -> bool:
        """Whether a feed of ``host`` must wait: the cap is reached, or neither its latest fetch
        nor the head of its line has waited ``stagger`` (then the heap says when to look)."""
        if self._active[host] >= self.per_host:
            return True
        latest = self._latest.get(host)
        if latest is None or latest > now:  # nothing of it runs (or the clock went back)
            return False
        opens = self._opens_at(host)
        if opens <= now:
            return False
        heapq.heappush(self._openings, (opens, host))
        return True

    def waiting(self) -> int:
        """Feeds due but waiting for their host (in no task, holding no global slot)."""
        return sum(len(line) for line in self._waiting.values())

    def articles_waiting(self) -> int:
        """Article pages waiting for their host's slot."""
        return sum(len(line) for line in self._articles.values())

    def acquire_article(self, host: str, token: Hashable) -> bool:
        """A slot on ``host`` for an article now (True), or a place in its host's article line
        (False: ``article_granted(token)`` is called once it has a slot)."""
        if self._active[host] < self.per_host and not self._articles.get(host):
            self._active[host] += 1
            return True
        self._articles.setdefault(host, deque()).append(token)
        return False

    def cancel_article(self, host: str, token: Hashable) -> bool:
        """Take a waiting article out of its line; False if it is not there (granted already:
        the caller then owns a slot and must ``release`` it)."""
        line = self._articles.get(host)
        if not line or token not in line:
            return False
        line.remove(token)
        if not line:
            del self._articles[host]
            self._article_turn.discard(host)
        return True

    def _grant_article(self, host: str) -> None:
        line = self._articles[host]
        token = line.popleft()
        if not line:
            del self._articles[host]
        self._article_turn.discard(host)
        self._active[host] += 1
        if self.article_granted is not None:
            self.article_granted(token)

    def _articles_first(self, host: str, feeds_can_start: bool) -> bool:
        """Whether the next free slot of ``host`` goes to a waiting article."""
        if host not in self._articles:
            return False
        return host in self._article_turn or not feeds_can_start or not self._waiting.get(host)

    def dispatch(self, queue: DueQueue, feeds: Mapping[str, Dispatchable], running: int, now: float) -> Plan:
        """Pop what may start from the freed hosts' lines, then from ``queue`` (due by ``now``).

        ``running`` is the number of fetches still holding a global slot; every start
        returned is counted against its host here, and must be ``release``d when it ends.
        Feeds gone from ``feeds`` (or removed) are dropped; a due feed whose host is at its cap
        joins the host's line.
        """
        plan = Plan()
        cap, per_host = self.global_cap, self.per_host
        openings = self._openings
        while openings and openings[0][0] <= now:
            host = heapq.heappop(openings)[1]
            if host in self._waiting:
                self._freed.add(host)
        for host in list(self._freed):
            line = self._waiting.get(host)
            while self._active[host] < per_host:
                if self._articles_first(host, running < cap):
                    self._grant_article(host)
                    continue
                if not line or running >= cap or self._held(host, now):
                    break
                due, feed_id, _ = line.popleft()
                feed = feeds.get(feed_id)
                if feed is not None and feed.paused:
                    plan.parked.append((due, feed_id))
                elif feed is not None and not feed.removed:
                    self._started(host, now)
                    running += 1
                    plan.start.append((due, feed_id))
                    if host in self._articles:
                        self._article_turn.add(host)
            if not line:
                self._waiting.pop(host, None)
                self._freed.discard(host)
            elif self._active[host] >= per_host or self._opens_at(host) > now:
                self._freed.discard(host)
        while running < cap:
            item = queue.pop_due(now)
            if item is None:
                return plan
            due, feed_id = item
            feed = feeds.get(feed_id)
            if feed is None:
                continue
            host = feed.host
            line = self._waiting.get(host)
            if line is not None:
                line.append((due, feed_id, now))
                continue
            if self._held(host, now):
                self._waiting[host] = deque([(due, feed_id, now)])
                continue
            self._started(host, now)
            running += 1
            plan.start.append((due, feed_id))
        return plan

    def release(self, host: str) -> None:
        """A fetch (a feed's or an article's) on ``host`` ended: a waiting article whose turn it is
        gets the slot now; a feed line is served at the next dispatch."""
        self._active[host] -= 1
        if self._active[host] <= 0:
            del self._active[host]
            self._latest.pop(host, None)
        if self._articles_first(host, True):
            self._grant_article(host)
        if host in self._waiting:
            self._freed.add(host)
