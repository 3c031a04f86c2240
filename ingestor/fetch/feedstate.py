"""What the fetch stage knows about one feed while it owns it: plain data, no behaviour.

Its own module so that the pure decision (``decision``), the per-host dispatcher, the state
keeper and the status snapshot can all read the same record without importing the stage
that does the I/O; only the shell writes to it, and only what a ``Decision`` says.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from yarl import URL

from ingestor.config import FeedConfig
from ingestor.fetch.outcome import Outcome
from ingestor.fetch.schedule import FeedTiming
from ingestor.fetch.state import SavedAttempt

HISTORY = 10  # attempts kept in memory per feed (``feeds status``); the state record keeps fewer


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def host_of(url: str) -> str:
    """The key of a feed's per-host line: politeness is owed to a host, not to a URL.

    Interned: many feeds share a host, and at a million feeds one string per host instead of
    one per feed is tens of MiB (issue 15)."""
    return sys.intern((URL(url).host or "").lower())


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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: at and next due (microseconds since the epoch: exact for any aware datetime), duration_ms,
#: bytes, status, outcome (index into ``Outcome``), flags (below)
_PACKED = struct.Struct("<qqdqqBB")
_PRODUCED, _PUSH, _NO_STATUS = 1, 2, 4
_OUTCOMES = tuple(Outcome)
_OUTCOME_INDEX = {outcome: n for n, outcome in enumerate(_OUTCOMES)}


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // _MICROSECOND


class History:
    """A feed's last ``HISTORY`` attempts, packed: what ``feeds status`` shows, at a fraction of
    the memory of ``AttemptRecord`` objects.

    Every feed keeps ten attempts, so at a million feeds ten records with two datetimes each
    (about 2.7 KiB per feed, and a 760-byte deque) were most of a fetcher's memory (issue 15).
    Here the numbers of one attempt are one 42-byte struct in a single ``bytes`` per feed, and
    the rare texts (a failure's reason, a ``via`` other than poll or push) sit in a side tuple
    that exists only while some attempt has one.  Reading gives back equal ``AttemptRecord``s
    (times in UTC), so callers see the same records as before; only ``feeds status`` and the
    state record read them, a few at a time.
    """

    __slots__ = ("_packed", "_texts")

    def __init__(self, attempts: Iterable[AttemptRecord] = ()) -> None:
        self._packed = b""
        #: per attempt, None or its (reason, via) when they are not (None, "poll" | "push");
        #: () while every attempt's are
        self._texts: tuple[tuple[str | None, str] | None, ...] = ()
        self.extend(attempts)

    def __len__(self) -> int:
        return len(self._packed) // _PACKED.size

    def __iter__(self) -> Iterator[AttemptRecord]:
        return iter(self.last(HISTORY))

    def __repr__(self) -> str:
        return f"History({list(self)!r})"

    def append(self, attempt: AttemptRecord) -> None:
        """Add the newest attempt; the oldest goes beyond ``HISTORY`` (as a bounded deque did)."""
        flags = (_PRODUCED if attempt.produced else 0) | (_NO_STATUS if attempt.status is None else 0)
        text: tuple[str | None, str] | None = None
        if attempt.via == "push":
            flags |= _PUSH
        elif attempt.via != "poll":
            text = (attempt.reason, attempt.via)
        if attempt.reason is not None:
            text = (attempt.reason, attempt.via)
        record = _PACKED.pack(
            _micros(attempt.at),
            _micros(attempt.next_due),
            attempt.duration_ms,
            attempt.bytes,
            attempt.status or 0,
            _OUTCOME_INDEX[attempt.outcome],
            flags,
        )
        count = len(self)
        drop = max(0, count + 1 - HISTORY)
        self._packed = self._packed[drop * _PACKED.size :] + record
        if text is not None or self._texts:
            texts = self._texts or (None,) * count
            kept = (*texts[drop:], text)
            self._texts = kept if any(t is not None for t in kept) else ()

    def extend(self, attempts: Iterable[AttemptRecord]) -> None:
        for attempt in attempts:
            self.append(attempt)

    def last(self, n: int) -> list[AttemptRecord]:
        """The newest ``n`` attempts (fewer if there are not as many), oldest first."""
        count = len(self)
        start = max(0, count - max(n, 0))
        return [self._record(i) for i in range(start, count)]

    def saved_last(self, n: int) -> list[SavedAttempt]:
        """``[a.saved() for a in self.last(n)]`` without the ``AttemptRecord``s and their datetimes
        in between: the state record is built from these (a third of a fetch's CPU went there)."""
        count = len(self)
        out: list[SavedAttempt] = []
        for i in range(max(0, count - max(n, 0)), count):
            at, next_due, duration_ms, size, status, outcome, _, reason, via = self._unpack(i)
            out.append(
                SavedAttempt(
                    round(at / 1_000_000, 3),
                    _OUTCOMES[outcome].value,
                    status,
                    duration_ms,
                    size,
                    reason,
                    round(next_due / 1_000_000, 3),
                    via,
                )
            )
        return out

    def _record(self, i: int) -> AttemptRecord:
        at, next_due, duration_ms, size, status, outcome, flags, reason, via = self._unpack(i)
        return AttemptRecord(
            _EPOCH + at * _MICROSECOND,
            _OUTCOMES[outcome],
            status,
            duration_ms,
            size,
            reason,
            bool(flags & _PRODUCED),
            _EPOCH + next_due * _MICROSECOND,
            via,
        )

    def _unpack(self, i: int) -> tuple[int, int, float, int, int | None, int, int, str | None, str]:
        """Attempt ``i`` as stored: times in microseconds, the outcome's index, the flags; the
        status (None when it had none), reason and via resolved."""
        at, next_due, duration_ms, size, status, outcome, flags = _PACKED.unpack_from(
            self._packed, i * _PACKED.size
        )
        text = self._texts[i] if self._texts else None
        reason, via = text if text is not None else (None, "push" if flags & _PUSH else "poll")
        return (
            at, next_due, duration_ms, size, None if flags & _NO_STATUS else status, outcome, flags,
            reason, via,
        )  # fmt: skip


@dataclass(slots=True)
class FeedState:
    feed: FeedConfig
    timing: FeedTiming
    host: str
    etag: str | None = None
    last_modified: str | None = None
    sha256: str | None = None
    history: History = field(default_factory=History)
    removed: bool = False
    partition: int | None = None  # of its definition in the feeds topic (sharded mode)
    paused: bool = False  # parked during a rebalance: not dispatched, due time kept aside
    parked_due: float | None = None
    saved_material: tuple[object, ...] | None = None  # what the last state record written held
    saved_at: float = 0.0
    recent: tuple[str, ...] = ()  # WebSub replay window: the last bodies seen, by poll or push
