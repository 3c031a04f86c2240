"""Turning clock-only times ("1:10 AM", "13:10") into UTC instants.

Live lists show a wall-clock time without a date.  The date is implied by the list order
(newest first) and by when we looked: the fetch time, or the end of the capture date for a
saved capture that states it.  docs/architecture.md ("Identity, versions and time") and
docs/parsing.md ("Time rules") fix the rules; this module is the only place they are
implemented, so every page shape agrees.

All arithmetic goes through :mod:`zoneinfo` with PEP 495 ``fold``: an autumn repeated hour
has two instants per clock reading (both are candidates, the bound decides), and a spring
skipped hour has none (we take ``fold=0``, the pre-transition offset, which lands one hour
later on the wall clock: a publisher cannot really have shown that time, and picking a
valid neighbour keeps the list ordered instead of failing).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "capture_reference",
    "earliest_not_before",
    "get_zone",
    "latest_not_after",
    "resolve_newest_first",
]


@lru_cache(maxsize=256)
def get_zone(name: str | None) -> tzinfo:
    """The IANA zone ``name``; UTC when it is missing or unknown (a config typo must not
    stop parsing; the config layer is where unknown zones are reported)."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def capture_reference(day: date) -> datetime:
    """The reference moment for a capture dated ``day``: the last millisecond of that UTC date."""
    return datetime(day.year, day.month, day.day, 23, 59, 59, 999000, tzinfo=UTC)


def _candidates(clock: time, zone: tzinfo, days: Iterable[date]) -> list[datetime]:
    """Every UTC instant that shows ``clock`` in ``zone`` on one of ``days``."""
    naive_clock = clock.replace(tzinfo=None, fold=0)
    out: list[datetime] = []
    for day in days:
        naive = datetime.combine(day, naive_clock)
        first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
        second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
        # PEP 495: equal -> an ordinary time; fold=0 earlier -> the repeated (autumn) hour,
        # both real; fold=0 later -> the skipped (spring) hour, keep fold=0 (see module doc).
        out.append(first)
        if first < second:
            out.append(second)
    return out


def _local_day(bound: datetime, zone: tzinfo) -> date:
    if bound.tzinfo is None:
        raise ValueError("bound must be timezone-aware")
    return bound.astimezone(zone).date()


def latest_not_after(clock: time, zone: tzinfo, bound: datetime) -> datetime:
    """The latest instant whose wall clock in ``zone`` reads ``clock`` and which is not
    after ``bound``."""
    day = _local_day(bound, zone)
    # Days are tried newest first; every candidate of a later local day is later than every
    # candidate of an earlier one, so the first day with a fit holds the answer.
    for offset in (1, 0, -1, -2, -3):
        fits = [c for c in _candidates(clock, zone, [day + timedelta(days=offset)]) if c <= bound]
        if fits:
            return max(fits)
    raise AssertionError("unreachable: a clock time recurs within every 26 hours")


def earliest_not_before(clock: time, zone: tzinfo, bound: datetime) -> datetime:
    """The earliest instant whose wall clock in ``zone`` reads ``clock`` and which is not
    before ``bound`` (an "Updated:" time relative to the entry's own time)."""
    day = _local_day(bound, zone)
    for offset in (-1, 0, 1, 2, 3):
        fits = [c for c in _candidates(clock, zone, [day + timedelta(days=offset)]) if c >= bound]
        if fits:
            return min(fits)
    raise AssertionError("unreachable: a clock time recurs within every 26 hours")


def resolve_newest_first(clocks: Sequence[time], zone: tzinfo, reference: datetime) -> list[datetime]:
    """Resolve a newest-first list: each entry is the latest instant with its clock time that
    is not after the entry above it (the first one: not after ``reference``)."""
    out: list[datetime] = []
    bound = reference
    for clock in clocks:
        bound = latest_not_after(clock, zone, bound)
        out.append(bound)
    return out
