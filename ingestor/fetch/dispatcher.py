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
"""

from __future__ import annotations

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

    def __init__(self, global_cap: int, per_host: int) -> None:
        self.global_cap = global_cap
        self.per_host = per_host
        self._active: Counter[str] = Counter()
        self._waiting: dict[str, deque[tuple[float, str]]] = {}
        self._freed: set[str] = set()  # hosts with a line and, since a release, room to start
        self._articles: dict[str, deque[Hashable]] = {}  # per host: articles waiting for a slot
        self._article_turn: set[str] = set()  # hosts whose next contended slot is an article's
        #: called with an article's token when a slot is granted to it (counted against its host)
        self.article_granted: Callable[[Hashable], None] | None = None

    def active(self, host: str) -> int:
        return self._active[host]

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
        for host in list(self._freed):
            line = self._waiting.get(host)
            while self._active[host] < per_host:
                if self._articles_first(host, running < cap):
                    self._grant_article(host)
                    continue
                if not line or running >= cap:
                    break
                due, feed_id = line.popleft()
                feed = feeds.get(feed_id)
                if feed is not None and feed.paused:
                    plan.parked.append((due, feed_id))
                elif feed is not None and not feed.removed:
                    self._active[host] += 1
                    running += 1
                    plan.start.append((due, feed_id))
                    if host in self._articles:
                        self._article_turn.add(host)
            if not line:
                self._waiting.pop(host, None)
                self._freed.discard(host)
            elif self._active[host] >= per_host:
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
            if self._active[host] >= per_host:
                self._waiting.setdefault(host, deque()).append((due, feed_id))
                continue
            self._active[host] += 1
            running += 1
            plan.start.append((due, feed_id))
        return plan

    def release(self, host: str) -> None:
        """A fetch (a feed's or an article's) on ``host`` ended: a waiting article whose turn it is
        gets the slot now; a feed line is served at the next dispatch."""
        self._active[host] -= 1
        if self._active[host] <= 0:
            del self._active[host]
        if self._articles_first(host, True):
            self._grant_article(host)
        if host in self._waiting:
            self._freed.add(host)
