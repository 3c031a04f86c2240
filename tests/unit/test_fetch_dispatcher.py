"""The per-host dispatcher on its own: caps, host lines and fairness, without tasks or sockets."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from ingestor.fetch.dispatcher import HostDispatcher
from ingestor.fetch.schedule import DueQueue


@dataclass
class Feed:
    host: str
    paused: bool = False
    removed: bool = False


def feeds_on(**hosts: int) -> dict[str, Feed]:
    return {f"{host}-{i}": Feed(host) for host, count in hosts.items() for i in range(count)}


def test_a_busy_host_waits_in_its_line_without_holding_global_slots() -> None:
    feeds = {**feeds_on(slow=6), **feeds_on(other=2)}
    queue = DueQueue()
    for i in range(6):
        queue.schedule(f"slow-{i}", float(i))
    queue.schedule("other-0", 10.0)
    queue.schedule("other-1", 11.0)
    dispatcher = HostDispatcher(global_cap=4, per_host=2)
    plan = dispatcher.dispatch(queue, feeds, running=0, now=20.0)
    assert [f for _, f in plan.start] == ["slow-0", "slow-1", "other-0", "other-1"]
    assert dispatcher.waiting() == 4 and dispatcher.active("slow") == 2
    # one slow fetch ends: the oldest in its line goes next, ahead of anything due later
    dispatcher.release("slow")
    queue.schedule("other-0", 21.0)
    plan = dispatcher.dispatch(queue, feeds, running=3, now=30.0)
    assert [f for _, f in plan.start] == ["slow-2"]
    assert dispatcher.waiting() == 3 and "other-0" in queue  # global cap reached: it stays queued


def test_the_global_cap_counts_what_the_caller_still_runs() -> None:
    feeds = feeds_on(a=3, b=3, c=3)
    queue = DueQueue()
    for i, feed_id in enumerate(feeds):
        queue.schedule(feed_id, float(i))
    dispatcher = HostDispatcher(global_cap=3, per_host=2)
    assert len(dispatcher.dispatch(queue, feeds, running=2, now=100.0).start) == 1
    assert dispatcher.dispatch(queue, feeds, running=3, now=100.0).start == []
    assert len(queue) == 8  # nothing popped while the cap is reached


def test_paused_feeds_in_a_line_are_parked_and_removed_ones_dropped() -> None:
    feeds = feeds_on(h=4)
    queue = DueQueue()
    for i in range(4):
        queue.schedule(f"h-{i}", float(i))
    dispatcher = HostDispatcher(global_cap=10, per_host=1)
    assert [f for _, f in dispatcher.dispatch(queue, feeds, 0, 10.0).start] == ["h-0"]
    feeds["h-1"].paused = True
    feeds["h-2"].removed = True
    dispatcher.release("h")
    plan = dispatcher.dispatch(queue, feeds, 0, 10.0)
    assert plan.parked == [(1.0, "h-1")]
    assert plan.start == [(3.0, "h-3")]
    assert dispatcher.waiting() == 0


def test_feeds_gone_from_the_set_are_skipped() -> None:
    queue = DueQueue()
    queue.schedule("gone", 0.0)
    queue.schedule("here", 1.0)
    plan = HostDispatcher(2, 2).dispatch(queue, {"here": Feed("h")}, 0, 5.0)
    assert plan.start == [(1.0, "here")]


# --- properties ------------------------------------------------------------------------------

_HOSTS = ("a", "b", "c", "d")
_step = st.one_of(
    st.tuples(st.just("due"), st.integers(0, 15), st.floats(0, 5)),  # feed k due after a delay
    st.tuples(st.just("done"), st.integers(0, 100), st.just(0.0)),  # a running fetch ends
    st.tuples(st.just("tick"), st.just(0), st.floats(0, 3)),  # time passes
)


@settings(max_examples=300, deadline=None)
@given(
    hosts=st.lists(st.sampled_from(_HOSTS), min_size=16, max_size=16),
    steps=st.lists(_step, max_size=80),
    global_cap=st.integers(1, 6),
    per_host=st.integers(1, 3),
    stagger=st.sampled_from([0.0, 0.5, 2.0]),
)
def test_caps_are_never_exceeded_and_nothing_due_starves(
    hosts: list[str], steps: list[tuple[str, int, float]], global_cap: int, per_host: int, stagger: float
) -> None:
    feeds = {f"f{k}": Feed(host) for k, host in enumerate(hosts)}
    queue = DueQueue()
    dispatcher = HostDispatcher(global_cap, per_host, stagger)
    latest_start: dict[str, float] = {}  # per host with fetches running
    running: list[str] = []
    idle = set(feeds)  # neither queued, waiting in a line, nor running
    scheduled: list[str] = []
    started: list[str] = []
    last_due: dict[str, float] = {}
    now = 0.0

    def dispatch(at: float) -> None:
        plan = dispatcher.dispatch(queue, feeds, len(running), at)
        assert plan.parked == []
        for due, feed_id in plan.start:
            assert due <= at  # never before it is due
            host = feeds[feed_id].host
            assert due >= last_due.get(host, float("-inf"))  # a host's feeds start in due order
            last_due[host] = due
            if any(feeds[f].host == host for f in running):
                # an overlap: only once the host's latest fetch, or this feed (the line's head:
                # it joined the line when due or later), has waited the stagger
                assert at >= min(latest_start[host], due) + stagger
            latest_start[host] = at
            running.append(feed_id)
            started.append(feed_id)
        assert len(running) <= global_cap
        for host in _HOSTS:
            on_host = sum(feeds[f].host == host for f in running)
            assert on_host <= per_host
            assert dispatcher.active(host) == on_host

    for kind, number, seconds in steps:
        if kind == "due":
            feed_id = f"f{number}"
            if feed_id in idle:
                idle.discard(feed_id)
                queue.schedule(feed_id, now + seconds)
                scheduled.append(feed_id)
        elif kind == "done" and running:
            feed_id = running.pop(number % len(running))
            dispatcher.release(feeds[feed_id].host)
            idle.add(feed_id)
        else:
            now += seconds
        dispatch(now)
        opening = dispatcher.next_opening()
        if opening is not None and opening <= now:  # the caller would wake at once: it did
            dispatch(now)

    # no starvation: once fetches keep finishing, everything that became due gets its turn
    for _ in range(len(scheduled) + 1):
        while running:
            dispatcher.release(feeds[running.pop()].host)
        dispatch(now + 10.0)
    assert sorted(started) == sorted(scheduled)
    assert dispatcher.waiting() == 0 and len(queue) == 0


# --- the stagger: a host's next fetch waits for its latest to have run a while ---------------


def test_a_hosts_second_fetch_waits_for_the_stagger_or_takes_over_when_the_first_ends() -> None:
    feeds = feeds_on(h=3)
    queue = DueQueue()
    for i in range(3):
        queue.schedule(f"h-{i}", 0.0)
    dispatcher = HostDispatcher(global_cap=10, per_host=2, stagger=0.5)
    assert [f for _, f in dispatcher.dispatch(queue, feeds, 0, now=1.0).start] == ["h-0"]
    assert dispatcher.waiting() == 2 and dispatcher.next_opening() == 1.5
    assert dispatcher.dispatch(queue, feeds, 1, now=1.4).start == []
    # the first is still running at 1.5: the second slot opens (the host is slow)
    assert [f for _, f in dispatcher.dispatch(queue, feeds, 1, now=1.5).start] == ["h-1"]
    assert dispatcher.active("h") == 2 and dispatcher.waiting() == 1
    # a fast host: its fetch ends before the stagger and the next one takes over at once
    dispatcher.release("h")
    dispatcher.release("h")
    assert [f for _, f in dispatcher.dispatch(queue, feeds, 0, now=1.6).start] == ["h-2"]


def test_a_feed_due_later_lines_up_behind_the_staggered_ones_and_other_hosts_go_on() -> None:
    feeds = {**feeds_on(h=3), **feeds_on(o=1)}
    queue = DueQueue()
    queue.schedule("h-0", 0.0)
    queue.schedule("h-1", 0.1)
    dispatcher = HostDispatcher(global_cap=10, per_host=3, stagger=1.0)
    assert [f for _, f in dispatcher.dispatch(queue, feeds, 0, now=0.2).start] == ["h-0"]
    queue.schedule("h-2", 0.3)
    queue.schedule("o-0", 0.3)
    assert [f for _, f in dispatcher.dispatch(queue, feeds, 1, now=0.4).start] == ["o-0"]
    assert [f for _, f in dispatcher.dispatch(queue, feeds, 2, now=1.2).start] == ["h-1"]
    assert [f for _, f in dispatcher.dispatch(queue, feeds, 3, now=2.2).start] == ["h-2"]


def test_no_stagger_starts_a_hosts_fetches_together() -> None:
    feeds = feeds_on(h=2)
    queue = DueQueue()
    queue.schedule("h-0", 0.0)
    queue.schedule("h-1", 0.0)
    dispatcher = HostDispatcher(10, 2, stagger=0.0)
    assert len(dispatcher.dispatch(queue, feeds, 0, now=1.0).start) == 2
    assert dispatcher.next_opening() is None


def test_a_host_with_more_feeds_due_than_one_connection_serves_gets_its_second_slot() -> None:
    """Fast answers (50 ms) never reach the stagger, but a line whose head has waited it out
    opens the second slot: thousands of feeds on one host must not queue behind one connection."""
    feeds = feeds_on(big=12)
    queue = DueQueue()
    for i in range(12):
        queue.schedule(f"big-{i}", 0.0)
    dispatcher = HostDispatcher(global_cap=10, per_host=2, stagger=0.5)
    running = len(dispatcher.dispatch(queue, feeds, 0, now=0.0).start)
    most = running
    now = 0.0
    while now < 0.45:  # each fetch answers in 50 ms: one at a time while the head is young
        now = round(now + 0.05, 2)
        dispatcher.release("big")
        running = len(dispatcher.dispatch(queue, feeds, 0, now=now).start)
        most = max(most, dispatcher.active("big"))
        assert running == 1
    assert most == 1
    opening = dispatcher.next_opening()
    assert opening is not None and opening <= 0.5
    assert len(dispatcher.dispatch(queue, feeds, 1, now=0.5).start) == 1
    assert dispatcher.active("big") == 2
