"""The clock-only time rules (docs/parsing.md), including midnight and both DST changes."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.parse.timeresolve import (
    capture_reference,
    earliest_not_before,
    get_zone,
    latest_not_after,
    resolve_newest_first,
)

KYIV = ZoneInfo("Europe/Kyiv")
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_capture_reference_is_end_of_utc_day() -> None:
    assert capture_reference(date(2024, 11, 4)) == datetime(2024, 11, 4, 23, 59, 59, 999000, tzinfo=UTC)


def test_seed_time_resolves_to_late_utc_evening() -> None:
    ref = capture_reference(date(2024, 11, 4))
    assert latest_not_after(time(1, 10), KYIV, ref) == utc(2024, 11, 4, 23, 10)


def test_newest_first_crosses_midnight() -> None:
    ref = utc(2024, 11, 5, 0, 30)  # 02:30 in Kyiv
    got = resolve_newest_first([time(2, 5), time(0, 40), time(23, 50), time(22, 0)], KYIV, ref)
    assert got == [
        utc(2024, 11, 5, 0, 5),
        utc(2024, 11, 4, 22, 40),
        utc(2024, 11, 4, 21, 50),
        utc(2024, 11, 4, 20),
    ]


def test_equal_times_stay_on_same_instant() -> None:
    ref = utc(2024, 6, 1, 12)
    got = resolve_newest_first([time(14, 0), time(14, 0), time(13, 59)], KYIV, ref)
    assert got[0] == got[1] == utc(2024, 6, 1, 11)
    assert got[2] == utc(2024, 6, 1, 10, 59)


def test_autumn_repeated_hour_picks_latest_instant_not_after_bound() -> None:
    # London falls back on 2024-10-27 at 02:00 BST -> 01:00 GMT: 01:30 happens twice.
    ref = utc(2024, 10, 27, 3)
    got = resolve_newest_first([time(1, 45), time(1, 30), time(1, 50), time(1, 10)], LONDON, ref)
    assert got == [
        utc(2024, 10, 27, 1, 45),  # second 01:45 (GMT)
        utc(2024, 10, 27, 1, 30),  # second 01:30 (GMT)
        utc(2024, 10, 27, 0, 50),  # first 01:50 (BST): the GMT one is after the bound
        utc(2024, 10, 27, 0, 10),  # first 01:10 (BST)
    ]


def test_autumn_repeated_hour_kyiv_and_new_york() -> None:
    # Kyiv: 2024-10-27 04:00 EEST -> 03:00 EET.
    assert latest_not_after(time(3, 30), KYIV, utc(2024, 10, 27, 2)) == utc(2024, 10, 27, 1, 30)
    assert latest_not_after(time(3, 30), KYIV, utc(2024, 10, 27, 1)) == utc(2024, 10, 27, 0, 30)
    # New York: 2024-11-03 02:00 EDT -> 01:00 EST.
    assert latest_not_after(time(1, 30), NEW_YORK, utc(2024, 11, 3, 7)) == utc(2024, 11, 3, 6, 30)
    assert latest_not_after(time(1, 30), NEW_YORK, utc(2024, 11, 3, 6)) == utc(2024, 11, 3, 5, 30)


def test_spring_skipped_hour_does_not_crash() -> None:
    # London springs forward on 2024-03-31 at 01:00 GMT -> 02:00 BST: 01:30 never shows.
    ref = utc(2024, 3, 31, 3)
    got = resolve_newest_first([time(3, 5), time(1, 30), time(0, 50)], LONDON, ref)
    assert got[0] == utc(2024, 3, 31, 2, 5)
    assert got[1] <= got[0]
    assert got[2] == utc(2024, 3, 31, 0, 50)
    # New York 2024-03-10 02:00 EST -> 03:00 EDT.
    skipped = latest_not_after(time(2, 30), NEW_YORK, utc(2024, 3, 10, 12))
    assert skipped <= utc(2024, 3, 10, 12)


def test_spring_change_around_resolution() -> None:
    # Kyiv 2024-03-31 03:00 EET -> 04:00 EEST.
    ref = utc(2024, 3, 31, 6)  # 09:00 EEST
    got = resolve_newest_first([time(8, 0), time(4, 10), time(2, 50)], KYIV, ref)
    assert got == [utc(2024, 3, 31, 5), utc(2024, 3, 31, 1, 10), utc(2024, 3, 31, 0, 50)]


def test_updated_is_earliest_not_before_own_time() -> None:
    own = utc(2024, 11, 4, 21, 50)  # 23:50 Kyiv
    assert earliest_not_before(time(0, 15), KYIV, own) == utc(2024, 11, 4, 22, 15)
    assert earliest_not_before(time(23, 50), KYIV, own) == own


def test_updated_in_repeated_hour_takes_first_occurrence() -> None:
    own = utc(2024, 11, 3, 5, 10)  # 01:10 EDT
    assert earliest_not_before(time(1, 40), NEW_YORK, own) == utc(2024, 11, 3, 5, 40)
    own_late = utc(2024, 11, 3, 6, 10)  # 01:10 EST (second)
    assert earliest_not_before(time(1, 40), NEW_YORK, own_late) == utc(2024, 11, 3, 6, 40)


def test_unknown_zone_falls_back_to_utc() -> None:
    assert get_zone("Mars/Olympus") is UTC
    assert get_zone(None) is UTC


def test_naive_bound_is_refused() -> None:
    with pytest.raises(ValueError):
        latest_not_after(time(1, 0), KYIV, datetime(2024, 1, 1))


ZONES = st.sampled_from([KYIV, LONDON, NEW_YORK, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("UTC")])
CLOCKS = st.builds(time, st.integers(0, 23), st.integers(0, 59))
BOUNDS = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2037, 12, 30), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(clock=CLOCKS, zone=ZONES, bound=BOUNDS)
def test_latest_not_after_properties(clock: time, zone: ZoneInfo, bound: datetime) -> None:
    got = latest_not_after(clock, zone, bound)
    assert got <= bound
    assert bound - got < timedelta(hours=26)
    local = got.astimezone(zone)
    if local.time().replace(second=0, microsecond=0) == clock:
        # Nothing later with the same wall clock fits under the bound.
        for step in (timedelta(hours=1), timedelta(hours=23), timedelta(hours=24), timedelta(hours=25)):
            later = got + step
            if later <= bound:
                assert later.astimezone(zone).time().replace(second=0, microsecond=0) != clock


@settings(max_examples=300, deadline=None)
@given(clock=CLOCKS, zone=ZONES, bound=BOUNDS)
def test_earliest_not_before_properties(clock: time, zone: ZoneInfo, bound: datetime) -> None:
    got = earliest_not_before(clock, zone, bound)
    assert got >= bound
    assert got - bound < timedelta(hours=26)


@settings(max_examples=200, deadline=None)
@given(clocks=st.lists(CLOCKS, min_size=1, max_size=30), zone=ZONES, ref=BOUNDS)
def test_newest_first_is_monotonic(clocks: list[time], zone: ZoneInfo, ref: datetime) -> None:
    got = resolve_newest_first(clocks, zone, ref)
    assert len(got) == len(clocks)
    assert got[0] <= ref
    assert all(a >= b for a, b in itertools.pairwise(got))
