"""What the fetch stage knows about one feed while it owns it: plain data, no behaviour.

Its own module so that the pure decision (``decision``), the per-host dispatcher, the state
keeper and the status snapshot can all read the same record without importing the stage
that does the I/O; only the shell writes to it, and only what a ``Decision`` says.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from ingestor.fetch import packed
from ingestor.fetch.feedspec import FeedSpec
from ingestor.fetch.outcome import Outcome
from ingestor.fetch.schedule import FeedTiming
from ingestor.fetch.state import SavedAttempt

HISTORY = 10  # attempts kept in memory per feed (``feeds status``); the state record keeps fewer


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


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
_PRODUCED, _PUSH, _NO_STATUS = 1, 2, 4
_OUTCOMES = tuple(Outcome)
_OUTCOME_INDEX = {outcome: n for n, outcome in enumerate(_OUTCOMES)}

#: One attempt as stored: at and next due (microseconds since the epoch: exact for any aware
#: datetime), duration_ms, bytes, status (0 when none), outcome (index into ``Outcome``), flags.
_Fields = tuple[int, int, float, int, int, int, int]

#: The narrow layout, one attempt in a 176-bit integer (22 bytes), what every attempt the stage
#: records fits: at in 52 bits (until 2112), the outcome in 5, the flags in 3, the status in 10,
#: the duration in tenths of a millisecond in 27 (3.7 hours; ``decide`` rounds it to tenths),
#: the size in 32 (4 GiB) and next due minus at in 47 (± 814 days), offset to be unsigned.
_NARROW = 22
_AT_BITS, _STATUS_BITS, _TENTHS_BITS, _SIZE_BITS, _DUE_BITS = 52, 10, 27, 32, 47
_OUTCOME_SHIFT = _AT_BITS
_FLAGS_SHIFT = _OUTCOME_SHIFT + 5
_STATUS_SHIFT = _FLAGS_SHIFT + 3
_TENTHS_SHIFT = _STATUS_SHIFT + _STATUS_BITS
_SIZE_SHIFT = _TENTHS_SHIFT + _TENTHS_BITS
_DUE_SHIFT = _SIZE_SHIFT + _SIZE_BITS
_DUE_OFFSET = 1 << (_DUE_BITS - 1)
assert _DUE_SHIFT + _DUE_BITS == 8 * _NARROW and len(_OUTCOMES) <= 32
#: The wide layout, for an attempt that does not fit the narrow one (a duration that is not
#: in tenths, a time before 1970, a status above 1023, a body of 4 GiB): every field at full
#: width, 42 bytes.  A history is in one layout or the other, said by its first byte.
_WIDE = struct.Struct("<qqdqqBB")
_NARROW_MARK, _WIDE_MARK = b"\x00", b"\x01"


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // _MICROSECOND


def _tenths(duration_ms: float) -> int | None:
    """``duration_ms`` in tenths of a millisecond, if that is exact (the sign of zero too)."""
    if not math.isfinite(duration_ms) or not 0 <= duration_ms < (1 << _TENTHS_BITS) / 10:
        return None
    tenths = round(duration_ms * 10)
    if tenths / 10 != duration_ms or (tenths == 0 and math.copysign(1.0, duration_ms) < 0):
        return None
    return tenths


def _narrow(fields: _Fields) -> bytes | None:
    """One attempt in the narrow layout, or None if it does not fit."""
    at, next_due, duration_ms, size, status, outcome, flags = fields
    due = next_due - at + _DUE_OFFSET
    tenths = _tenths(duration_ms)
    if (
        tenths is None
        or not 0 <= at < 1 << _AT_BITS
        or not 0 <= due < 1 << _DUE_BITS
        or not 0 <= size < 1 << _SIZE_BITS
        or not 0 <= status < 1 << _STATUS_BITS
    ):
        return None
    value = (
        at
        | outcome << _OUTCOME_SHIFT
        | flags << _FLAGS_SHIFT
        | status << _STATUS_SHIFT
        | tenths << _TENTHS_SHIFT
        | size << _SIZE_SHIFT
        | due << _DUE_SHIFT
    )
    return value.to_bytes(_NARROW, "little")


def _from_narrow(packed: bytes, offset: int) -> _Fields:
    value = int.from_bytes(packed[offset : offset + _NARROW], "little")
    at = value & ((1 << _AT_BITS) - 1)
    return (
        at,
        at + (value >> _DUE_SHIFT) - _DUE_OFFSET,
        ((value >> _TENTHS_SHIFT) & ((1 << _TENTHS_BITS) - 1)) / 10,
        (value >> _SIZE_SHIFT) & ((1 << _SIZE_BITS) - 1),
        (value >> _STATUS_SHIFT) & ((1 << _STATUS_BITS) - 1),
        (value >> _OUTCOME_SHIFT) & 31,
        (value >> _FLAGS_SHIFT) & 7,
    )


Texts = tuple[tuple[str | None, str] | None, ...]


class History:
    """A feed's last ``HISTORY`` attempts, packed: what ``feeds status`` shows, at a fraction of
    the memory of ``AttemptRecord`` objects.

    Every feed keeps ten attempts, so at a million feeds ten records with two datetimes each
    (about 2.7 KiB per feed, and a 760-byte deque) were most of a fetcher's memory (issue 15).
    Here the numbers of one attempt are 22 bytes (the narrow layout above; 42 in the wide one
    for what does not fit it) in a single ``bytes`` per feed, and the rare texts (a failure's
    reason, a ``via`` other than poll or push) sit in a side tuple that exists only while some
    attempt has one, a text equal to the previous attempt's shared with it (a failing feed
    fails the same way ten times).  Reading gives back equal ``AttemptRecord``s (times in
    UTC), so callers see the same records as before; only ``feeds status`` and the state
    record read them, a few at a time.

    A ``History()`` keeps its attempts itself; a feed's (``FeedState.history``) is a view of
    the two values its ``FeedState`` keeps, so that a feed costs no history object.
    """

    __slots__ = ("_packed", "_texts")

    def __init__(self, attempts: Iterable[AttemptRecord] = ()) -> None:
        #: a layout mark, then the attempts, oldest first; b"" while there are none
        self._packed = b""
        #: per attempt, None or its (reason, via) when they are not (None, "poll" | "push");
        #: () while every attempt's are
        self._texts: Texts = ()
        self.extend(attempts)

    def _parts(self) -> tuple[bytes, Texts]:
        """(the packed attempts, their texts), wherever they are kept."""
        return self._packed, self._texts

    def _store(self, packed: bytes, texts: Texts) -> None:
        self._packed, self._texts = packed, texts

    def __len__(self) -> int:
        return _count(self._parts()[0])

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
        fields = (
            _micros(attempt.at),
            _micros(attempt.next_due),
            attempt.duration_ms,
            attempt.bytes,
            attempt.status or 0,
            _OUTCOME_INDEX[attempt.outcome],
            flags,
        )
        packed, texts = self._parts()
        count = _count(packed)
        drop = max(0, count + 1 - HISTORY)
        narrow = _narrow(fields)
        if narrow is not None and (not packed or packed[0] == 0):
            packed = _NARROW_MARK + packed[1 + drop * _NARROW :] + narrow
        else:  # a wide attempt comes or goes: all of them in the layout they all fit
            packed = _pack([*(_fields(packed, i) for i in range(drop, count)), fields])
        if text is not None or texts:
            texts = texts or (None,) * count
            previous = texts[-1] if count else None
            if text is not None and previous is not None:  # the same failure over and over: one text
                if previous == text:
                    text = previous
                elif previous[0] == text[0]:
                    text = (previous[0], text[1])
            kept = (*texts[drop:], text)
            texts = kept if any(t is not None for t in kept) else ()
        self._store(packed, texts)

    def extend(self, attempts: Iterable[AttemptRecord]) -> None:
        for attempt in attempts:
            self.append(attempt)

    def last(self, n: int) -> list[AttemptRecord]:
        """The newest ``n`` attempts (fewer if there are not as many), oldest first."""
        packed, texts = self._parts()
        count = _count(packed)
        out: list[AttemptRecord] = []
        for i in range(max(0, count - max(n, 0)), count):
            at, next_due, duration_ms, size, status, outcome, flags, reason, via = _unpack(packed, texts, i)
            out.append(
                AttemptRecord(
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
            )
        return out

    def saved_last(self, n: int) -> list[SavedAttempt]:
        """``[a.saved() for a in self.last(n)]`` without the ``AttemptRecord``s and their datetimes
        in between: the state record is built from these (a third of a fetch's CPU went there)."""
        packed, texts = self._parts()
        count = _count(packed)
        out: list[SavedAttempt] = []
        for i in range(max(0, count - max(n, 0)), count):
            at, next_due, duration_ms, size, status, outcome, _, reason, via = _unpack(packed, texts, i)
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


class _FeedHistory(History):
    """``FeedState.history``: the history API over the two values the feed's state keeps."""

    __slots__ = ("_state",)

    def __init__(self, state: FeedState) -> None:  # no attempts of its own: they are the state's
        self._state = state

    def _parts(self) -> tuple[bytes, Texts]:
        return self._state._attempts(), self._state._texts

    def _store(self, packed: bytes, texts: Texts) -> None:
        self._state._store_attempts(packed)
        self._state._texts = texts


def _count(packed: bytes) -> int:
    if not packed:
        return 0
    return (len(packed) - 1) // (_NARROW if packed[0] == 0 else _WIDE.size)


def _fields(packed: bytes, i: int) -> _Fields:
    """Attempt ``i`` as stored, whichever the layout."""
    if packed[0] == 0:
        return _from_narrow(packed, 1 + i * _NARROW)
    fields: _Fields = _WIDE.unpack_from(packed, 1 + i * _WIDE.size)
    return fields


def _unpack(
    packed: bytes, texts: Texts, i: int
) -> tuple[int, int, float, int, int | None, int, int, str | None, str]:
    """Attempt ``i`` as stored: times in microseconds, the outcome's index, the flags; the
    status (None when it had none), reason and via resolved."""
    at, next_due, duration_ms, size, status, outcome, flags = _fields(packed, i)
    text = texts[i] if texts else None
    reason, via = text if text is not None else (None, "push" if flags & _PUSH else "poll")
    return (
        at, next_due, duration_ms, size, None if flags & _NO_STATUS else status, outcome, flags,
        reason, via,
    )  # fmt: skip


def _pack(attempts: list[_Fields]) -> bytes:
    """Attempts in the narrow layout if every one fits it, else all in the wide one."""
    narrow = [_narrow(fields) for fields in attempts]
    if all(n is not None for n in narrow):
        return _NARROW_MARK + b"".join(n for n in narrow if n is not None)
    return _WIDE_MARK + b"".join(_WIDE.pack(*fields) for fields in attempts)


class _Rare(NamedTuple):
    """What most feeds never have, in ``FeedState._rare`` only while one of them is set: the
    texts of its attempts (``History``), its WebSub replay window, its parked due time and
    whether it is paused or removed."""

    texts: Texts = ()
    recent: tuple[str, ...] = ()
    parked_due: float | None = None
    paused: bool = False
    removed: bool = False


_COMMON = _Rare()

#: The head of a feed's packed record: when its last state record was written, that record's
#: ``material`` (``_UNSAVED``: none written by this instance) and the length of the validators.
_HEAD = struct.Struct("<dQI")
_UNSAVED = (1 << 64) - 1


class FeedState:
    """One owned feed: its definition, schedule, validators, recent attempts and bookkeeping.

    Slotted by hand rather than a dataclass because what changes with its fetches is one
    ``bytes`` (issue 15): when and what the last state record written held, the validators
    (``packed``) and the attempt history (``History``), where five objects (and their
    allocator rounding) were about 200 bytes a feed more.  They read and write like the
    attributes they were: ``etag``, ``saved_at``, ``history.append``, ...; ``set_validators``
    and ``mark_saved`` write two or three at once, as a decision and the state keeper do.
    What most feeds never have (attempts with a reason, a WebSub replay window, being
    parked or removed) is one more slot, None for them (``_Rare``): each slot is 8 bytes a
    feed, and the allocator rounds an object up to 16.
    """

    __slots__ = ("_packed", "_rare", "feed", "partition", "timing")

    def __init__(
        self,
        feed: FeedSpec,
        timing: FeedTiming,
        etag: str | None = None,
        last_modified: str | None = None,
        sha256: str | None = None,
        history: History | None = None,
        removed: bool = False,
        partition: int | None = None,  # of its definition in the feeds topic (sharded mode)
        paused: bool = False,  # parked during a rebalance: not dispatched, due time kept aside
        parked_due: float | None = None,
        saved_material: int | None = None,  # ``state.material`` of the last state record written
        saved_at: float = 0.0,
        recent: tuple[str, ...] = (),  # WebSub replay window: the last bodies seen, by poll or push
    ) -> None:
        self.feed = feed
        self.timing = timing
        self.partition = partition
        attempts, texts = history._parts() if history is not None else (b"", ())
        validators = packed.pack(etag, last_modified, sha256) or b""
        self._packed = b""
        self._write(saved_at, _material(saved_material), validators, attempts)
        rare = _Rare(texts, recent, parked_due, paused, removed)
        self._rare = None if rare == _COMMON else rare

    def __repr__(self) -> str:
        return (
            f"FeedState(feed={self.feed!r}, timing={self.timing!r}, "
            f"validators={self.validators()!r}, history={self.history!r}, removed={self.removed!r}, "
            f"partition={self.partition!r}, paused={self.paused!r}, parked_due={self.parked_due!r}, "
            f"saved_material={self.saved_material!r}, saved_at={self.saved_at!r}, recent={self.recent!r})"
        )

    @property
    def host(self) -> str:
        """The key of the feed's per-host line (kept with its definition: ``FeedSpec.host``)."""
        return self.feed.host

    # --- what most feeds never have -----------------------------------------------------

    def _kept(self, rare: _Rare) -> None:
        self._rare = None if rare == _COMMON else rare

    @property
    def _texts(self) -> Texts:
        return self._rare.texts if self._rare is not None else ()

    @_texts.setter
    def _texts(self, value: Texts) -> None:
        if value or self._rare is not None:
            self._kept((self._rare or _COMMON)._replace(texts=value))

    @property
    def recent(self) -> tuple[str, ...]:
        """The WebSub replay window: the last bodies seen, by poll or push."""
        return self._rare.recent if self._rare is not None else ()

    @recent.setter
    def recent(self, value: tuple[str, ...]) -> None:
        if value or self._rare is not None:
            self._kept((self._rare or _COMMON)._replace(recent=value))

    @property
    def parked_due(self) -> float | None:
        """The due time kept aside while the feed is paused (or its host's line is full)."""
        return self._rare.parked_due if self._rare is not None else None

    @parked_due.setter
    def parked_due(self, value: float | None) -> None:
        if value is not None or self._rare is not None:
            self._kept((self._rare or _COMMON)._replace(parked_due=value))

    @property
    def paused(self) -> bool:
        """Parked during a rebalance: not dispatched, its due time kept aside."""
        return self._rare.paused if self._rare is not None else False

    @paused.setter
    def paused(self, value: bool) -> None:
        if value or self._rare is not None:
            self._kept((self._rare or _COMMON)._replace(paused=value))

    @property
    def removed(self) -> bool:
        """No longer this instance's (or redefined): a fetch in flight records nothing more."""
        return self._rare.removed if self._rare is not None else False

    @removed.setter
    def removed(self, value: bool) -> None:
        if value or self._rare is not None:
            self._kept((self._rare or _COMMON)._replace(removed=value))

    # --- the packed record ----------------------------------------------------------

    def _sections(self) -> tuple[float, int, bytes, bytes]:
        """(saved at, saved material or ``_UNSAVED``, packed validators, packed attempts)."""
        record = self._packed
        saved_at, material, size = _HEAD.unpack_from(record)
        end = _HEAD.size + size
        return saved_at, material, record[_HEAD.size : end], record[end:]

    def _write(self, saved_at: float, material: int, validators: bytes, attempts: bytes) -> None:
        self._packed = _HEAD.pack(saved_at, material, len(validators)) + validators + attempts

    @property
    def history(self) -> History:
        """The feed's recent attempts (kept in this state: see ``History``)."""
        return _FeedHistory(self)

    @history.setter
    def history(self, value: History) -> None:
        saved_at, material, validators, _ = self._sections()
        attempts, self._texts = value._parts()
        self._write(saved_at, material, validators, attempts)

    def _attempts(self) -> bytes:
        return self._sections()[3]

    def _store_attempts(self, attempts: bytes) -> None:
        saved_at, material, validators, _ = self._sections()
        self._write(saved_at, material, validators, attempts)

    # --- validators -----------------------------------------------------------------

    def validators(self) -> packed.Validators:
        """(etag, last_modified, sha256) in one unpacking."""
        return packed.unpack(self._sections()[2] or None)

    def set_validators(self, etag: str | None, last_modified: str | None, sha256: str | None) -> None:
        saved_at, material, validators, attempts = self._sections()
        if (etag, last_modified, sha256) != packed.unpack(validators or None):
            self._write(saved_at, material, packed.pack(etag, last_modified, sha256) or b"", attempts)

    @property
    def etag(self) -> str | None:
        return self.validators()[0]

    @etag.setter
    def etag(self, value: str | None) -> None:
        _, last_modified, sha256 = self.validators()
        self.set_validators(value, last_modified, sha256)

    @property
    def last_modified(self) -> str | None:
        return self.validators()[1]

    @last_modified.setter
    def last_modified(self, value: str | None) -> None:
        etag, _, sha256 = self.validators()
        self.set_validators(etag, value, sha256)

    @property
    def sha256(self) -> str | None:
        return self.validators()[2]

    @sha256.setter
    def sha256(self, value: str | None) -> None:
        etag, last_modified, _ = self.validators()
        self.set_validators(etag, last_modified, value)

    # --- the last state record written ------------------------------------------------

    @property
    def saved_material(self) -> int | None:
        """``state.material`` of the last state record this instance wrote (or adopted)."""
        material: int = _HEAD.unpack_from(self._packed)[1]
        return None if material == _UNSAVED else material

    @saved_material.setter
    def saved_material(self, value: int | None) -> None:
        self.mark_saved(value, self.saved_at)

    @property
    def saved_at(self) -> float:
        saved_at: float = _HEAD.unpack_from(self._packed)[0]
        return saved_at

    @saved_at.setter
    def saved_at(self, value: float) -> None:
        self.mark_saved(self.saved_material, value)

    def mark_saved(self, material: int | None, at: float) -> None:
        """The state record written (or adopted) last: its ``material``, and when."""
        _, _, validators, attempts = self._sections()
        self._write(at, _material(material), validators, attempts)


def _material(value: int | None) -> int:
    if value is None:
        return _UNSAVED
    if not 0 <= value < _UNSAVED:
        raise ValueError(f"a material fingerprint is in [0, 2**64 - 1): {value}")
    return value
