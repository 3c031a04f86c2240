"""Which fetches may leave their connection open afterwards: a budget of idle connections.

A kept-alive connection saves the next fetch of the same origin a TCP (and TLS) handshake,
but only if that fetch comes before the connection's keep-alive runs out; until then it is a
file descriptor and about 10 KB of memory here, and a socket at the publisher's end.  A
fetcher following many hosts would otherwise hold one per origin fetched in the last
keep-alive period: at a million feeds that is tens of thousands of sockets, past the usual
descriptor limit (bench/fetch.py: connects stalled, RSS grew by hundreds of MiB).

So a request is sent with ``Connection: close`` when

- another request to the same origin is in flight (one idle connection per origin is enough
  for a host polled one feed at a time; aiohttp's pool reuses connections round-robin, so a
  second one, once opened, would otherwise stay open as long as the host is polled), or
- it needs a new connection and its origin was not fetched in the last keep-alive period: a
  host polled less often than that would only find its connection expired (most hosts, at a
  5-minute cadence; at a million feeds in ``bench/fetch.py`` every one of them), or
- it needs a new connection and the budget of idle connections is spent.

aiohttp's pool does not say how many connections it holds idle, so the budget counts them
itself: an origin whose last fetch kept its connection counts as idle until twice the
keep-alive has passed (the pool closes an expired connection at its next clean-up, which runs
once per keep-alive period) or until its next fetch takes the connection.  The count is an
upper bound of what the pool holds, so the budget is one too.  No I/O here: the fetcher
(``ingestor/fetch/http.py``) asks before each request and reports after it.
"""

from __future__ import annotations

from collections import OrderedDict

#: origins remembered as recently fetched, per idle connection the budget allows
_RECENT_PER_IDLE = 4

#: (scheme, host as written, explicit port or None): what a kept-alive connection is reused for
Origin = tuple[str, str | None, int | None]


class IdleConnectionBudget:
    """Decides per request whether its connection is kept alive; see the module docstring."""

    def __init__(self, max_idle: int, keepalive_seconds: float) -> None:
        if max_idle < 0:
            raise ValueError(f"max_idle must be >= 0, got {max_idle}")
        self.max_idle = max_idle
        self._keepalive = keepalive_seconds
        self._counted_for = 2 * keepalive_seconds
        self._idle: OrderedDict[Origin, float] = OrderedDict()  # origin -> when it went idle
        # origin -> its last request's start, within the last keep-alive period (at most
        # ``_RECENT_PER_IDLE`` per idle connection allowed: the oldest go first)
        self._recent: OrderedDict[Origin, float] = OrderedDict()
        self._recent_cap = max(1, _RECENT_PER_IDLE * max_idle)
        self._in_flight: dict[Origin, int] = {}
        self._keeping = 0  # requests in flight that will keep their connection

    @property
    def idle(self) -> int:
        """Connections counted as idle now (an upper bound of what the pool holds)."""
        return len(self._idle)

    def start(self, origin: Origin, now: float) -> bool:
        """A request to ``origin`` starts; whether it may keep its connection afterwards.

        Every ``start`` is followed by one ``finish`` with the same origin and answer."""
        self._expire(now)
        recent = self._recent.pop(origin, None) is not None
        self._recent[origin] = now
        if len(self._recent) > self._recent_cap:
            self._recent.popitem(last=False)
        busy = self._in_flight.get(origin, 0)
        self._in_flight[origin] = busy + 1
        if busy:
            keep = False
        elif self._idle.pop(origin, None) is not None:
            keep = True  # it reuses the idle connection: the count stays the same
        else:
            keep = recent and len(self._idle) + self._keeping < self.max_idle
        self._keeping += keep
        return keep

    def finish(self, origin: Origin, now: float, kept: bool) -> None:
        """The request started with ``start(origin)`` is over (whatever its outcome)."""
        left = self._in_flight[origin] - 1
        if left:
            self._in_flight[origin] = left
        else:
            del self._in_flight[origin]
        if kept:
            self._keeping -= 1
            self._idle[origin] = now
            self._idle.move_to_end(origin)

    def _expire(self, now: float) -> None:
        _drop_before(self._idle, now - self._counted_for)
        _drop_before(self._recent, now - self._keepalive)


def _drop_before(entries: OrderedDict[Origin, float], horizon: float) -> None:
    """Drop the oldest entries up to ``horizon`` (entries are in time order: oldest first)."""
    while entries:
        origin, since = next(iter(entries.items()))
        if since > horizon:
            return
        del entries[origin]
