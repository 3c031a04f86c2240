"""The fetch stage's counters and the two views of them: ``/readyz`` health and ``feeds status``.

Separate from the stage so that what an operator sees is built in one place from plain
data (counters, the queue, the dispatcher, the feed's state), not interleaved with the
fetch path; the counters are bumped from a ``Decision`` so poll and push count alike.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime

from ingestor.fetch.decision import Decision
from ingestor.fetch.feedstate import AttemptRecord, FeedState, utc
from ingestor.fetch.websub import HubStats
from ingestor.ops import metrics

_LATENESS_SAMPLES = 10_000


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
    articles_pending: int | None = None  # entries whose page is still wanted; None: no article fetcher
    slots_skipped: int = 0  # slots of feeds' cadences passed over since start (``next_poll``)


class StageStats:
    """Counts since start: fetches, produced bodies, outcomes, and how late fetches start."""

    def __init__(self) -> None:
        self.fetches = 0
        self.produced = 0
        self.outcomes: Counter[str] = Counter()
        self.lateness: deque[float] = deque(maxlen=_LATENESS_SAMPLES)
        self.last_produce_error: str | None = None
        #: outcomes since the last ``fetch_summary`` line (see ``take_window``)
        self.window: Counter[str] = Counter()
        #: slots of feeds' cadences passed over (polled less often than asked), since start and
        #: since the last ``fetch_summary`` line
        self.skipped = 0
        self.window_skipped = 0

    def started(self, due: float, now: float) -> None:
        late = max(0.0, now - due)
        self.lateness.append(late)
        metrics.FETCH_LATENESS.observe(late)

    def count(self, decision: Decision) -> None:
        """A poll is a fetch; a push only counts its outcome (as ``push_<outcome>``) and body."""
        if decision.via == "poll":
            self.fetches += 1
        self.produced += int(decision.produced)
        counter = decision.counter
        self.outcomes[counter] += 1
        self.window[counter] += 1
        if decision.skipped:
            self.skipped += decision.skipped
            self.window_skipped += decision.skipped
            metrics.FETCH_SLOTS_SKIPPED.inc(decision.skipped)

    def take_window(self) -> Counter[str]:
        """The outcomes counted since the last call, and a fresh window (slots skipped too:
        ``window_skipped`` is read before this call)."""
        window, self.window = self.window, Counter()
        self.window_skipped = 0
        return window

    def lateness_p99(self) -> float | None:
        samples = sorted(self.lateness)
        return samples[min(len(samples) - 1, int(len(samples) * 0.99))] if samples else None


def feed_status(
    state: FeedState,
    due: float | None,
    now: float,
    instance: str,
    websub: dict[str, object] | None,
) -> FeedStatus:
    """One feed as ``feeds status`` shows it."""
    etag, last_modified, sha256 = state.validators()
    return FeedStatus(
        feed_id=state.feed.id,
        url=state.feed.url,
        next_due=utc(due) if due is not None else None,
        failures=state.timing.failures,
        etag=etag,
        last_modified=last_modified,
        sha256=sha256,
        effective_interval=state.timing.effective_interval(now),
        attempts=tuple(state.history),
        partition=state.partition,
        instance=instance,
        websub=websub,
    )
