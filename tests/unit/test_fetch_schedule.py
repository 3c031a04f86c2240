"""The schedule policy and the due queue, with a fixed clock and a scripted random source."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest

from ingestor.config import FeedConfig
from ingestor.fetch.hints import Hints
from ingestor.fetch.outcome import Outcome
from ingestor.fetch.schedule import (
    DueQueue,
    FeedTiming,
    Policy,
    first_delay,
    next_poll,
    resume_due,
)

MID = lambda: 0.5  # noqa: E731 - no jitter: 2*0.5-1 == 0
POLICY = Policy(default_interval=300, floor=1, max_interval=6 * 3600, max_backoff=6 * 3600, jitter=0.1)


def feed(**kw: object) -> FeedConfig:
    return FeedConfig.model_validate({"id": "f", "url": "https://example.com/rss", **kw})


def next_delay(
    policy: Policy,
    timing: FeedTiming,
    outcome: Outcome,
    hints: Hints,
    now: float,
    rand: Callable[[], float],
    late: float = 0.0,
) -> float:
    """The delay alone, for the cases that are not about slots passed over."""
    return next_poll(policy, timing, outcome, hints, now, rand, late)[0]


def run(timing: FeedTiming, outcome: Outcome, now: float, hints: Hints | None = None, rand=MID) -> float:
    timing.observe(outcome, now)
    return next_delay(POLICY, timing, outcome, hints or Hints(), now, rand)


def test_timing_uses_feed_interval_and_floors() -> None:
    t = POLICY.timing_for(feed(interval=60))
    assert (t.interval, t.min_interval) == (60, 15)
    t = POLICY.timing_for(feed())
    assert t.interval == 300
    t = POLICY.timing_for(feed(interval=0.2, min_interval=0.1))  # the politeness floor wins
    assert (t.interval, t.min_interval) == (1, 1)
    t = POLICY.timing_for(feed(interval=60, min_interval=120))  # a floor above the interval is clamped
    assert t.min_interval == 60


def test_plain_success_is_the_interval() -> None:
    t = POLICY.timing_for(feed(interval=60))
    assert run(t, Outcome.NOT_MODIFIED, 0) == 60
    assert run(t, Outcome.OK, 60) == 60  # one change says nothing about a rate yet


def test_jitter_stays_within_bounds() -> None:
    t = POLICY.timing_for(feed(interval=100))
    rng = random.Random(1)
    delays = [run(t, Outcome.NOT_MODIFIED, 0, rand=rng.random) for _ in range(500)]
    assert min(delays) >= 90 and max(delays) <= 110
    assert max(delays) - min(delays) > 15  # actually spread


@pytest.mark.parametrize(
    ("hints", "expected"),
    [
        (Hints(max_age=900), 900),
        (Hints(expires=1200), 1200),
        (Hints(ttl=3600), 3600),
        (Hints(max_age=30), 60),  # a short cache hint never narrows
        (Hints(max_age=10**9), 6 * 3600),  # capped by max_interval
        (Hints(max_age=900, ttl=1800), 1800),  # the widest wins
    ],
)
def test_cache_hints_widen_within_the_cap(hints: Hints, expected: float) -> None:
    t = POLICY.timing_for(feed(interval=60))
    assert run(t, Outcome.NOT_MODIFIED, 0, hints) == expected


def test_busy_feed_narrows_down_to_its_min_interval_and_drifts_back() -> None:
    t = POLICY.timing_for(feed(interval=600, min_interval=60))
    now = 0.0
    delays = []
    for _ in range(12):  # the feed changes every 100 s
        delays.append(run(t, Outcome.OK, now))
        now += 100
    assert delays[0] == 600
    assert delays[-1] == pytest.approx(60, abs=1)  # 100 s * 0.5, floored at 60
    # it goes quiet: the interval widens back to the configured one
    quiet = [run(t, Outcome.NOT_MODIFIED, now + s) for s in (200, 600, 2000)]
    assert quiet[0] == pytest.approx(150)  # 300 s since the last change * 0.5
    assert quiet[-1] == 600


def test_failures_back_off_exponentially_capped_and_reset_on_success() -> None:
    policy = Policy(default_interval=60, floor=1, max_interval=3600, max_backoff=1000, jitter=0.0)
    t = policy.timing_for(feed(interval=60))
    delays = []
    for n in range(10):
        t.observe(Outcome.CONNECT, n)
        delays.append(next_delay(policy, t, Outcome.CONNECT, Hints(), n, MID))
    assert delays[:5] == [60, 120, 240, 480, 960]
    assert all(d <= 1000 for d in delays)
    assert t.failures == 10  # never dropped: always a finite next delay
    t.observe(Outcome.NOT_MODIFIED, 20)
    assert t.failures == 0
    assert next_delay(policy, t, Outcome.NOT_MODIFIED, Hints(), 20, MID) == 60


def test_backoff_at_the_cap_is_spread_not_piled_up() -> None:
    policy = Policy(default_interval=60, floor=1, max_interval=3600, max_backoff=1000, jitter=0.0)
    rng = random.Random(7)
    delays = set()
    for _ in range(50):
        t = policy.timing_for(feed(interval=60))
        t.failures = 30
        delays.add(round(next_delay(policy, t, Outcome.HTTP_5XX, Hints(), 0, rng.random)))
    assert max(delays) <= 1000 and len(delays) > 20


@pytest.mark.parametrize("outcome", [Outcome.HTTP_429, Outcome.HTTP_5XX])
def test_retry_after_is_honoured_never_sooner(outcome: Outcome) -> None:
    t = POLICY.timing_for(feed(interval=60))
    low = lambda: 0.0  # noqa: E731 - the most negative jitter
    assert run(t, outcome, 0, Hints(retry_after=900), rand=low) >= 900
    assert run(t, outcome, 0, Hints(retry_after=10**8), rand=low) == 6 * 3600  # capped


def test_retry_after_also_floors_a_success() -> None:
    t = POLICY.timing_for(feed(interval=60))
    assert run(t, Outcome.NOT_MODIFIED, 0, Hints(retry_after=120)) == 120


def test_produce_failure_does_not_count_against_the_feed() -> None:
    t = POLICY.timing_for(feed(interval=60))
    assert run(t, Outcome.PRODUCE_FAILED, 0) == 60
    assert t.failures == 0


def test_first_fetches_are_spread() -> None:
    t = POLICY.timing_for(feed(interval=300))
    rng = random.Random(3)
    firsts = [first_delay(t, 10, rng.random) for _ in range(200)]
    assert min(firsts) >= 0 and max(firsts) <= 10 and max(firsts) - min(firsts) > 8


def test_a_feed_taken_over_keeps_its_place_in_its_cadence() -> None:
    now = 10_000.0
    assert resume_due(now + 42, 300, now) == now + 42  # not due yet: when its owner said
    assert resume_due(now - 10, 300, now) == now - 10  # overdue: at once
    # down for longer than the interval: the latest slot of its cadence that has passed
    assert resume_due(now - 1000, 300, now) == pytest.approx(now - 100)
    # so overdue feeds come up in the order of their cadence, whatever order they are read in
    rng = random.Random(5)
    saved = [now - 30 * rng.random() - 300 * rng.randrange(4) for _ in range(100)]
    dues = [resume_due(d, 300, now) for d in saved]
    assert all(now - 300 < d <= now for d in dues)
    assert sorted(range(100), key=dues.__getitem__) == sorted(range(100), key=lambda i: saved[i] % 300)


def test_a_late_success_keeps_its_place_in_the_cadence_never_closer_than_its_min_interval() -> None:
    t = POLICY.timing_for(feed(interval=300))  # min_interval 75
    ok = Outcome.NOT_MODIFIED
    assert next_delay(POLICY, t, ok, Hints(), 0, MID) == 300
    # the fetch's own time does not push the cadence back
    assert next_delay(POLICY, t, ok, Hints(), 0, MID, late=0.4) == pytest.approx(299.6)
    assert next_delay(POLICY, t, ok, Hints(), 0, MID, late=200) == 100
    # its next slot is closer than its min_interval: the slot after it, not twice in a row
    assert next_delay(POLICY, t, ok, Hints(), 0, MID, late=290) == 310
    assert next_delay(POLICY, t, ok, Hints(), 0, MID, late=1000) == 200  # long overdue: the next slot ahead
    # what is about this response still counts from now: a failure's backoff, a server's hints
    assert next_delay(POLICY, t, Outcome.HTTP_5XX, Hints(), 0, MID, late=200) == 300
    assert next_delay(POLICY, t, ok, Hints(max_age=900), 0, MID, late=200) == 900
    assert next_delay(POLICY, t, ok, Hints(retry_after=250), 0, MID, late=200) == 250
    assert next_delay(POLICY, t, ok, Hints(max_age=60), 0, MID, late=200) == 100  # narrower: no widening
    # a floor at the interval (the feed must not be polled more often): a little late is not
    # made up for, and never turns into a skipped slot
    t = POLICY.timing_for(feed(interval=300, min_interval=300))
    assert next_delay(POLICY, t, ok, Hints(), 0, MID, late=5) == 300
    up = lambda: 0.75  # noqa: E731 - jitter +5%: 315 s
    assert next_delay(POLICY, t, ok, Hints(), 0, up, late=5) == 310
    assert next_delay(POLICY, t, ok, Hints(), 0, up, late=40) == 300


def test_slots_passed_over_are_counted() -> None:
    """Polled less often than asked must not be silent: each slot passed over is counted."""
    t = POLICY.timing_for(feed(interval=300))  # min_interval 75
    ok = Outcome.NOT_MODIFIED
    assert next_poll(POLICY, t, ok, Hints(), 0, MID, late=0.4)[1] == 0
    assert next_poll(POLICY, t, ok, Hints(), 0, MID, late=200) == (100, 0)
    assert next_poll(POLICY, t, ok, Hints(), 0, MID, late=290) == (310, 1)  # the slot at +10 s
    assert next_poll(POLICY, t, ok, Hints(), 0, MID, late=1000) == (200, 3)  # -700, -400, -100
    assert next_poll(POLICY, t, Outcome.HTTP_5XX, Hints(), 0, MID, late=1000)[1] == 0  # backoff: none
    t = POLICY.timing_for(feed(interval=300, min_interval=300))
    assert next_poll(POLICY, t, ok, Hints(), 0, MID, late=5) == (300, 0)  # clamped, not passed over


def test_after_a_catch_up_the_feeds_are_back_on_their_cadence_not_packed_into_it() -> None:
    """Back after an outage, every feed is overdue; the stage fetches them as fast as it can,
    here all 1,000 in 20 s.  The next round must be spread over the interval again, as before
    the outage: counted from the end of each catch-up fetch it would be packed into those 20 s,
    one burst per interval for hours (the 10% jitter spreads it only slowly)."""
    now, interval = 100_000.0, 300.0
    rng = random.Random(7)
    slots = sorted(resume_due(now - 3600 - interval * rng.random(), interval, now) for _ in range(1000))
    nexts = []
    for i, slot in enumerate(slots):
        t = POLICY.timing_for(feed(interval=interval))
        ended = now + 20 * i / len(slots)
        t.observe(Outcome.NOT_MODIFIED, ended)
        delay = next_delay(POLICY, t, Outcome.NOT_MODIFIED, Hints(), ended, rng.random, ended - slot)
        nexts.append(ended + delay)
    assert max(nexts) - min(nexts) > 0.9 * interval
    per_minute = [sum(1 for d in nexts if now + m * 60 <= d < now + (m + 1) * 60) for m in range(6)]
    assert max(per_minute) < 2.5 * len(slots) * 60 / interval, per_minute  # no burst


def test_due_queue_orders_moves_and_removes() -> None:
    q = DueQueue()
    q.schedule("a", 30)
    q.schedule("b", 10)
    q.schedule("c", 20)
    q.schedule("b", 40)  # moved later
    assert len(q) == 3 and "b" in q and q.due_at("b") == 40
    assert q.peek() == (20, "c")
    assert q.pop_due(5) is None
    assert q.pop_due(25) == (20, "c")
    assert q.remove("a")
    assert not q.remove("a")
    assert q.pop_due(100) == (40, "b")
    assert q.pop_due(100) is None and len(q) == 0


def test_due_queue_stays_compact_under_churn() -> None:
    q = DueQueue()
    for i, key in zip(range(50_000), itertools.cycle(["x", "y", "z"]), strict=False):
        q.schedule(key, float(i))
    assert len(q) == 3
    assert len(q._heap) <= 2 * 3 + DueQueue._COMPACT_SLACK + 1
    assert [q.pop_due(10**6) for _ in range(4)] == [(49_997.0, "z"), (49_998.0, "x"), (49_999.0, "y"), None]


def test_due_queue_pops_in_time_order() -> None:
    q = DueQueue()
    rng = random.Random(5)
    for i in range(1000):
        q.schedule(f"f{i}", rng.random() * 1000)
    popped = [q.pop_due(10**6) for _ in range(1000)]
    times = [p[0] for p in popped if p is not None]
    assert len(times) == 1000 and times == sorted(times)


def test_due_queue_keeps_one_entry_per_schedule_and_ties_come_out_in_key_order() -> None:
    """Entries are (time, key) pairs sharing the time with the live table (issue 15): no
    sequence number, so feeds due at the same instant come out by id."""
    q = DueQueue()
    for key in ("c", "a", "b"):
        q.schedule(key, 5.0)
    assert all(type(entry) is tuple and len(entry) == 2 for entry in q._heap)
    assert [q.pop_due(5.0) for _ in range(4)] == [(5.0, "a"), (5.0, "b"), (5.0, "c"), None]


def test_due_queue_an_old_entry_at_the_live_time_pops_the_key_once() -> None:
    q = DueQueue()
    q.schedule("a", 5.0)
    q.remove("a")
    q.schedule("a", 5.0)  # two entries (5, "a"), both matching the live time
    q.schedule("b", 6.0)
    q.schedule("b", 7.0)
    q.schedule("b", 6.0)  # moved back: the entry at 7 is stale
    assert q.pop_due(10.0) == (5.0, "a")
    assert q.pop_due(10.0) == (6.0, "b")
    assert q.pop_due(10.0) is None and len(q) == 0 and q.peek() is None
