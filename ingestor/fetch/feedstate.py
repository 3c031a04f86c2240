"""What the fetch stage knows about one feed while it owns it: plain data, no behaviour.

Its own module so that the pure decision (``decision``), the per-host dispatcher, the state
keeper and the status snapshot can all read the same record without importing the stage
that does the I/O; only the shell writes to it, and only what a ``Decision`` says.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from yarl import URL

from ingestor.config import FeedConfig
from ingestor.fetch.outcome import Outcome
from ingestor.fetch.schedule import FeedTiming
from ingestor.fetch.state import SavedAttempt

HISTORY = 10  # attempts kept in memory per feed (``feeds status``); the state record keeps fewer


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def host_of(url: str) -> str:
    """The key of a feed's per-host line: politeness is owed to a host, not to a URL."""
    return (URL(url).host or "").lower()


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One line of a feed's recent history: the data ``feed_fetched`` logs, kept for status."""

    at: datetime
    outcome: Outcome
    status: int | None
    duration_ms: float
    bytes: int
    reason: str | None
    produced: bool
    next_due: datetime
    via: str = "poll"

    def saved(self) -> SavedAttempt:
        return SavedAttempt(
            round(self.at.timestamp(), 3),
            self.outcome.value,
            self.status,
            self.duration_ms,
            self.bytes,
            self.reason,
            round(self.next_due.timestamp(), 3),
            self.via,
        )

    @classmethod
    def restored(cls, saved: SavedAttempt) -> AttemptRecord:
        try:
            outcome = Outcome(saved.outcome)
        except ValueError:
            outcome = Outcome.ERROR
        return cls(
            utc(saved.at),
            outcome,
            saved.status,
            saved.duration_ms,
            saved.bytes,
            saved.reason,
            outcome is Outcome.OK,
            utc(saved.next_due or saved.at),
            saved.via,
        )


@dataclass(slots=True)
class FeedState:
    feed: FeedConfig
    timing: FeedTiming
    host: str
    etag: str | None = None
    last_modified: str | None = None
    sha256: str | None = None
    history: deque[AttemptRecord] = field(default_factory=lambda: deque(maxlen=HISTORY))
    removed: bool = False
    partition: int | None = None  # of its definition in the feeds topic (sharded mode)
    paused: bool = False  # parked during a rebalance: not dispatched, due time kept aside
    parked_due: float | None = None
    saved_material: tuple[object, ...] | None = None  # what the last state record written held
    saved_at: float = 0.0
    recent: tuple[str, ...] = ()  # WebSub replay window: the last bodies seen, by poll or push
