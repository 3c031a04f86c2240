"""The idle-connection budget: which requests keep their connection (pure, no sockets)."""

from __future__ import annotations

import pytest

from ingestor.fetch.keepalive import IdleConnectionBudget, Origin


def origin(n: int) -> Origin:
    return ("https", f"h{n}.example", 443)


def warm(budget: IdleConnectionBudget, *numbers: int, at: float = 0.0) -> None:
    """A first request to each origin: not kept (nothing says it will be fetched again soon)."""
    for n in numbers:
        assert not budget.start(origin(n), at)
        budget.finish(origin(n), at, False)


def test_one_request_at_a_time_keeps_its_connection_and_reuses_it() -> None:
    budget = IdleConnectionBudget(max_idle=10, keepalive_seconds=15)
    for t in range(5):
        keep = budget.start(origin(1), float(t))
        assert keep is (t > 0)  # the first: the origin was not fetched in the last 15 s
        budget.finish(origin(1), t + 0.1, keep)
        assert budget.idle == (t > 0)


def test_an_origin_fetched_less_often_than_the_keepalive_never_keeps() -> None:
    budget = IdleConnectionBudget(max_idle=10, keepalive_seconds=15)
    for t in range(0, 200, 20):
        keep = budget.start(origin(1), float(t))
        assert not keep
        budget.finish(origin(1), t + 0.1, keep)
    assert budget.idle == 0


def test_the_memory_of_recent_origins_is_bounded() -> None:
    budget = IdleConnectionBudget(max_idle=2, keepalive_seconds=15)
    warm(budget, *range(100))  # 8 remembered (4 per idle connection allowed): the newest
    assert [budget.start(origin(n), 1.0) for n in (0, 91, 99)] == [False, False, True]


def test_a_request_overlapping_another_to_the_same_origin_closes() -> None:
    budget = IdleConnectionBudget(max_idle=10, keepalive_seconds=15)
    warm(budget, 1, 2)
    first = budget.start(origin(1), 0.0)
    second = budget.start(origin(1), 0.0)
    other = budget.start(origin(2), 0.0)
    assert first and not second and other
    budget.finish(origin(1), 0.1, second)
    budget.finish(origin(1), 0.2, first)
    budget.finish(origin(2), 0.2, other)
    assert budget.idle == 2
    # the overlap is over: the next request reuses the one kept
    assert budget.start(origin(1), 1.0)


def test_new_connections_close_once_the_budget_is_spent() -> None:
    budget = IdleConnectionBudget(max_idle=3, keepalive_seconds=15)
    warm(budget, *range(6), 9, 10, at=-1.0)
    kept = []
    for n in range(6):  # in flight together: three may keep, counted before they finish
        kept.append(budget.start(origin(n), 0.0))
    assert kept == [True, True, True, False, False, False]
    for n in range(6):
        budget.finish(origin(n), 0.1, kept[n])
    assert budget.idle == 3
    # an origin already holding an idle connection still reuses (and keeps) it
    assert budget.start(origin(0), 1.0)
    budget.finish(origin(0), 1.1, True)
    # a new origin does not, until one of the idle ones has expired
    assert not budget.start(origin(9), 2.0)
    budget.finish(origin(9), 2.1, False)
    warm(budget, 10, at=30.0)
    assert budget.start(origin(10), 30.2)  # 2 x keep-alive after origins 1 and 2 went idle
    budget.finish(origin(10), 30.3, True)
    assert budget.idle == 2  # origin 0 (idle since 1.1) and origin 10


def test_counted_idle_never_exceeds_the_budget_under_random_traffic() -> None:
    import random

    rand = random.Random(5)
    budget = IdleConnectionBudget(max_idle=5, keepalive_seconds=1)
    open_requests: list[tuple[Origin, bool]] = []
    now, kept = 0.0, 0
    for _ in range(20_000):
        now += rand.random() * 0.01
        if open_requests and rand.random() < 0.5:
            o, keep = open_requests.pop(rand.randrange(len(open_requests)))
            budget.finish(o, now, keep)
        else:
            o = origin(rand.randrange(20))
            open_requests.append((o, budget.start(o, now)))
        keeping = sum(keep for _, keep in open_requests)
        assert budget.idle + keeping <= 5
        kept += keeping > 0
    for o, keep in open_requests:
        budget.finish(o, now, keep)
    assert budget.idle <= 5
    assert kept > 1000  # the budget was in use, not just never reached


def test_zero_keeps_nothing_and_a_negative_budget_is_refused() -> None:
    budget = IdleConnectionBudget(max_idle=0, keepalive_seconds=15)
    assert not budget.start(origin(1), 0.0)
    budget.finish(origin(1), 0.1, False)
    assert budget.idle == 0
    with pytest.raises(ValueError, match="max_idle"):
        IdleConnectionBudget(max_idle=-1, keepalive_seconds=15)
