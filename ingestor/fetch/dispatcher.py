"""Which due feeds may start now: the global cap, the per-host cap, and a line per host.

Pure bookkeeping (no tasks, no clock, no I/O) so that politeness and fairness are testable
on their own: the stage's loop asks :meth:`HostDispatcher.dispatch` what to start, starts
it, and reports each finished fetch with :meth:`HostDispatcher.release`.

A feed whose host already has ``per_host`` fetches running waits in that host's line
without holding a global slot, so one slow shared host cannot starve the rest; a host's
line is served first (oldest first) as soon as one of its fetches finishes, so nothing in a
line waits behind feeds that became due after it.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
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

    def active(self, host: str) -> int:
        return self._active[host]

    def waiting(self) -> int:
        """Feeds due but waiting for their host (in no task, holding no global slot)."""
        return sum(len(line) for line in self._waiting.values())

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
            while line and running < cap and self._active[host] < per_host:
                due, feed_id = line.popleft()
                feed = feeds.get(feed_id)
                if feed is not None and feed.paused:
                    plan.parked.append((due, feed_id))
                elif feed is not None and not feed.removed:
                    self._active[host] += 1
                    running += 1
                    plan.start.append((due, feed_id))
            if not line:
                self._waiting.pop(host, None)
                self._freed.discard(host)
            elif self._active[host] >= per_host:
                self._freed.discard(host)
            if running >= cap:
                return plan
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
        """A fetch on ``host`` ended: its line, if any, is served at the next dispatch."""
        self._active[host] -= 1
        if self._active[host] <= 0:
            del self._active[host]
        if host in self._waiting:
            self._freed.add(host)
