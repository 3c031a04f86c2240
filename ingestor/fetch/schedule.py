"""When each feed is fetched next: a heap of due times and the policy that fills it.

Pure: no clock, no randomness of its own (both are passed in), no I/O; times are plain
seconds on whatever clock the caller uses.  The policy answers the complaints users of
other readers have: a feed that fails is backed off but never dropped, retries are
jittered so they do not synchronise, servers that ask for less traffic (Retry-After,
Cache-Control, Expires, RSS <ttl>) get it, and busy feeds are polled more often without
ever going under their own floor.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

from ingestor.config import FetchConfig
from ingestor.fetch.feedspec import AnyFeed
from ingestor.fetch.hints import Hints
from ingestor.fetch.outcome import Outcome

Random = Callable[[], float]  # uniform in [0, 1)

#: Weight of the newest gap in the moving average of time between changes.
CHANGE_SMOOTHING = 0.3
#: A busy feed is polled at this fraction of its observed change interval (Nyquist-ish:
#: polling at the change rate itself would see half the changes late by a full period).
CHANGE_SAMPLING = 0.5
#: Backoff jitter never goes under this fraction, so failing feeds spread out even with jitter: 0.
MIN_BACKOFF_JITTER = 0.1


@dataclass(frozen=True, slots=True)
class Policy:
    default_interval: float
    floor: float  # the global politeness floor: no feed is fetched more often than this
    max_interval: float  # cap on what server hints can widen an interval to
    max_backoff: float
    jitter: float  # ± fraction

    @classmethod
    def from_config(cls, config: FetchConfig) -> Policy:
        return cls(
            default_interval=config.default_interval,
            floor=config.min_interval,
            max_interval=config.max_interval,
            max_backoff=config.max_backoff,
            jitter=config.jitter,
        )

    def timing_for(self, feed: AnyFeed) -> FeedTiming:
        """A feed's own interval and floor; without a min_interval it may narrow to a quarter."""
        interval = max(self.floor, feed.interval if feed.interval is not None else self.default_interval)
        wanted_min = feed.min_interval if feed.min_interval is not None else _quarter(interval)
        return FeedTiming(interval=interval, min_interval=max(self.floor, min(interval, wanted_min)))


#: ``interval / 4`` by interval: a float object is 32 bytes, and feeds share a few intervals.
_QUARTERS: dict[float, float] = {}
_QUARTERS_KEPT = 1024


def _quarter(interval: float) -> float:
    """``interval / 4``, one object per interval (the first ``_QUARTERS_KEPT`` intervals seen)."""
    quarter = _QUARTERS.get(interval)
    if quarter is None:
        quarter = interval / 4
        if len(_QUARTERS) < _QUARTERS_KEPT:
            _QUARTERS[interval] = quarter
    return quarter


@dataclass(slots=True)
class FeedTiming:
    """Per-feed schedule state; small and flat so that it can be persisted as is."""

    interval: float
    min_interval: float
    failures: int = 0
    change_interval: float | None = None  # moving average of seconds between observed changes
    last_change_at: float | None = None

    def copy(self) -> FeedTiming:
        """A copy to change (``dataclasses.replace`` costs several times more, once per fetch)."""
        return FeedTiming(
            self.interval, self.min_interval, self.failures, self.change_interval, self.last_change_at
        )

    def observe(self, outcome: Outcome, now: float) -> None:
        if outcome is Outcome.OK:
            if self.last_change_at is not None:
                gap = max(0.0, now - self.last_change_at)
                self.change_interval = (
                    gap
                    if self.change_interval is None
                    else (1 - CHANGE_SMOOTHING) * self.change_interval + CHANGE_SMOOTHING * gap
                )
            self.last_change_at = now
        if outcome.success:
            self.failures = 0
        elif outcome is not Outcome.PRODUCE_FAILED:  # the broker's fault, not the feed's
            self.failures += 1

    def effective_interval(self, now: float) -> float:
        """The configured interval, narrowed towards the observed change rate; the time since
        the last change counts too, so a feed that goes quiet drifts back to its interval."""
        if self.change_interval is None or self.last_change_at is None:
            return self.interval
        estimate = max(self.change_interval, now - self.last_change_at) * CHANGE_SAMPLING
        return min(self.interval, max(self.min_interval, estimate))


def _jittered(value: float, fraction: float, rand: Random) -> float:
    return value * (1.0 + fraction * (2.0 * rand() - 1.0))


def _keep_cadence(delay: float, late: float, floor: float) -> tuple[float, int]:
    """(seconds to the next slot of a cadence of ``delay`` whose current slot was ``late``
    seconds ago, at least ``floor`` from now; how many slots that passes over).  Its next slot
    too close: far behind (a catch-up, an overload), the first slot after it that is far
    enough, so that its phase is kept; a little late (a floor near the interval), as close to
    its slot as the floor allows."""
    ahead = delay - late
    if ahead >= floor:
        return ahead, 0
    if late > delay / 2:
        skipped = math.ceil((floor - ahead) / delay)
        return ahead + skipped * delay, skipped
    return floor, 0


def next_poll(
    policy: Policy,
    timing: FeedTiming,
    outcome: Outcome,
    hints: Hints,
    now: float,
    rand: Random,
    late: float = 0.0,
) -> tuple[float, int]:
    """(seconds until the next fetch, slots of its cadence passed over), given an outcome
    already ``observe``d by ``timing``.

    ``late``: how long after its due time this attempt ended (the wait for a slot, the fetch
    itself).  A successful poll keeps its place in the feed's cadence: the next one is due an
    interval after this one was *due*, not after it ended, and never sooner than the feed's
    ``min_interval`` from now (``_keep_cadence``; a feed whose ``min_interval`` is its
    interval is polled as before).  Counted from the end instead, every late start and every
    fetch's own duration would push all later fetches back for good: the feed would be polled
    less often than asked, and after a catch-up (a restart after an outage) every feed would
    stay where the catch-up put it, packed into the minutes it took, one burst per interval,
    which the jitter spreads out only over many hours.  A server's own hint (Cache-Control,
    Expires, <ttl>, Retry-After) and a failure's backoff still count from now: they are about
    this response.  A slot passed over (a feed polled less often than asked: an overload, or
    the round after a catch-up) is counted, so that it is not silent (``fetch_summary``,
    ``ingestor_fetch_slots_skipped_total``).
    """
    skipped = 0
    if outcome.success:
        base = timing.effective_interval(now)
        widen = hints.widen_to()
        widened = False
        if widen is not None:
            wanted = max(base, min(widen, max(policy.max_interval, timing.interval)))
            widened, base = wanted > base, wanted
        delay = _jittered(base, policy.jitter, rand)
        if late > 0 and not widened:
            delay, skipped = _keep_cadence(delay, late, min(timing.min_interval, delay))
    elif outcome is Outcome.PRODUCE_FAILED:
        delay = _jittered(timing.interval, policy.jitter, rand)
    else:
        cap = max(policy.max_backoff, timing.interval)
        exponent = min(max(timing.failures - 1, 0), 62)
        backoff = min(cap, timing.interval * 2.0**exponent)
        fraction = max(policy.jitter, MIN_BACKOFF_JITTER)
        delay = _jittered(backoff, fraction, rand)
        if delay > cap:  # spread below the cap instead of piling every dead feed onto it
            delay = cap * (1.0 - fraction * rand())
    if hints.retry_after is not None:  # never sooner than asked, within reason
        delay = max(delay, min(hints.retry_after, policy.max_interval))
    return max(delay, policy.floor), skipped


def first_delay(timing: FeedTiming, spread: float, rand: Random) -> float:
    """Spread the first fetches so that a start with many feeds is not one burst."""
    return min(timing.interval, spread) * rand()


def resume_due(saved_due: float, interval: float, now: float) -> float:
    """When a feed taken over with its state is due: when its previous owner would have
    fetched it; if that has passed (the owner died, or the fetcher was down), the latest slot
    of its cadence that has passed, so it is fetched at once, its place in the cadence kept.

    Overdue feeds then come up in the order of their cadence, which is spread over the
    interval, and each next due time counts from its fetch, so they stay spread.  Spreading
    them over the next second instead put them in the order they were read: a partition at a
    time, with a host's feeds in one partition (``shard``).  A host's feeds were fetched one
    after another and stayed together from then on, one burst per interval: in
    ``bench/fetch.py`` every host's 20 feeds came within about two seconds, and between the
    bursts the host's kept-alive connection expired (a new connection for one fetch in 20).
    At most one interval late, so a feed that waited out a long outage does not make the
    stage look stalled for longer than its own cadence (``overdue_seconds``).
    """
    if saved_due >= now:
        return saved_due
    return now - (now - saved_due) % interval


class DueQueue:
    """Feed ids by due time: a heap with lazy deletion, O(log n) per change, no scans per tick.

    The heap holds (due time, key) entries; ``_live`` each key's current due time.  Moving or
    removing a key leaves its old entry in the heap, dropped when it comes up: an entry whose
    time is not its key's live one.  One entry per feed, and a float shared between the heap
    and ``_live``, is the least per-feed memory a heap of due times takes (issue 15: a sequence
    number per entry and a (time, number) tuple per key were about 100 bytes a feed more).
    Without the number, feeds due at the very same time come out in key order; an old entry
    with the key's live time is no different from the live one (either pops the key at that
    time, and the other is stale from then on).
    """

    _COMPACT_SLACK = 1024

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._live: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def due_at(self, key: str) -> float | None:
        return self._live.get(key)

    def schedule(self, key: str, when: float) -> None:
        """Set (or move) a feed's due time."""
        self._live[key] = when
        heapq.heappush(self._heap, (when, key))
        if len(self._heap) > 2 * len(self._live) + self._COMPACT_SLACK:
            self._compact()

    def remove(self, key: str) -> bool:
        return self._live.pop(key, None) is not None

    def _drop_stale(self) -> None:
        heap, live = self._heap, self._live
        while heap:
            when, key = heap[0]
            if live.get(key) == when:
                return
            heapq.heappop(heap)

    def peek(self) -> tuple[float, str] | None:
        """The earliest (due time, feed id), without removing it."""
        self._drop_stale()
        if not self._heap:
            return None
        return self._heap[0]

    def pop_due(self, now: float) -> tuple[float, str] | None:
        """The earliest feed due at or before ``now`` (removed from the queue), else None."""
        self._drop_stale()
        if not self._heap or self._heap[0][0] > now:
            return None
        when, key = heapq.heappop(self._heap)
        del self._live[key]
        return when, key

    def _compact(self) -> None:
        self._heap = [(when, key) for key, when in self._live.items()]
        heapq.heapify(self._heap)
