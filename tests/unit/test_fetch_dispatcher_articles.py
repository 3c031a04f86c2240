"""Article pages and feeds sharing one per-host cap: slots, the article line, alternation, wake-ups."""

from __future__ import annotations

from collections.abc import Hashable
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


def dispatcher_with_grants(global_cap: int = 10, per_host: int = 2) -> tuple[HostDispatcher, list[Hashable]]:
    dispatcher = HostDispatcher(global_cap, per_host)
    granted: list[Hashable] = []
    dispatcher.article_granted = granted.append
    return dispatcher, granted


def test_articles_take_free_slots_and_wait_in_their_hosts_line_when_it_is_full() -> None:
    dispatcher, granted = dispatcher_with_grants(per_host=2)
    assert dispatcher.acquire_article("site", "a1") and dispatcher.acquire_article("site", "a2")
    assert not dispatcher.acquire_article("site", "a3")
    assert dispatcher.acquire_article("other", "b1")  # another host is not held up
    assert dispatcher.articles_waiting() == 1 and dispatcher.active("site") == 2
    dispatcher.release("site")  # an article ends: the next one is woken at once
    assert granted == ["a3"] and dispatcher.active("site") == 2 and dispatcher.articles_waiting() == 0


def test_a_feed_fetch_ending_wakes_a_waiting_article() -> None:
    dispatcher, granted = dispatcher_with_grants(per_host=1)
    feeds = {"f": Feed("site")}
    queue = DueQueue()
    queue.schedule("f", 0.0)
    assert [f for _, f in dispatcher.dispatch(queue, feeds, running=0, now=1.0).start] == ["f"]
    assert not dispatcher.acquire_article("site", "a1")
    dispatcher.release("site")
    assert granted == ["a1"] and dispatcher.active("site") == 1


def test_feeds_and_articles_of_one_host_alternate_when_both_wait() -> None:
    dispatcher, granted = dispatcher_with_grants(per_host=1)
    feeds = {f"f{i}": Feed("site") for i in range(3)}
    queue = DueQueue()
    for i in range(3):
        queue.schedule(f"f{i}", float(i))
    started: list[str] = [f for _, f in dispatcher.dispatch(queue, feeds, running=0, now=10.0).start]
    assert started == ["f0"]  # f1, f2 wait in the feed line
    for token in ("a0", "a1", "a2"):
        assert not dispatcher.acquire_article("site", token)
    order: list[str] = ["f0"]
    for _ in range(5):
        before = len(granted)
        dispatcher.release("site")
        plan = dispatcher.dispatch(queue, feeds, running=0, now=10.0)
        order += [f for _, f in plan.start] + [str(t) for t in granted[before:]]
        assert dispatcher.active("site") == 1
    # f1 waited before the articles came; from then on the two lines take turns: a burst of
    # articles does not starve the site's feeds, nor its feeds the articles
    assert order == ["f0", "f1", "a0", "f2", "a1", "a2"]


def test_a_cancelled_article_leaves_the_line_and_a_granted_one_must_be_released() -> None:
    dispatcher, granted = dispatcher_with_grants(per_host=1)
    assert dispatcher.acquire_article("site", "a1")
    assert not dispatcher.acquire_article("site", "a2")
    assert not dispatcher.acquire_article("site", "a3")
    assert dispatcher.cancel_article("site", "a2")
    assert not dispatcher.cancel_article("site", "a2")
    dispatcher.release("site")
    assert granted == ["a3"]
    assert not dispatcher.cancel_article("site", "a3")  # granted already: the caller releases
    dispatcher.release("site")
    assert dispatcher.active("site") == 0


def test_articles_do_not_use_the_feeds_global_slots_and_are_served_when_feeds_cannot_start() -> None:
    dispatcher, granted = dispatcher_with_grants(global_cap=1, per_host=1)
    feeds = {"f0": Feed("site"), "g0": Feed("busy")}
    queue = DueQueue()
    queue.schedule("g0", 0.0)
    queue.schedule("f0", 1.0)
    assert [f for _, f in dispatcher.dispatch(queue, feeds, running=0, now=5.0).start] == ["g0"]
    assert dispatcher.acquire_article("site", "a0")  # the global cap is the feeds' only
    assert not dispatcher.acquire_article("site", "a1")
    dispatcher.release("site")  # the feed line is empty here (f0 is still queued): article next
    assert granted == ["a1"]


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["feed", "article", "end", "cancel"]), st.sampled_from(["x", "y"])),
        max_size=60,
    ),
    per_host=st.integers(1, 3),
)
def test_the_per_host_cap_holds_for_feeds_and_articles_together(
    ops: list[tuple[str, str]], per_host: int
) -> None:
    """Whatever the interleaving: never more than ``per_host`` running on a host, nothing waits
    while its host has a free slot, and every grant is counted."""
    dispatcher, granted = dispatcher_with_grants(global_cap=100, per_host=per_host)
    feeds: dict[str, Feed] = {}
    queue = DueQueue()
    running: dict[str, int] = {"x": 0, "y": 0}
    waiting_articles: dict[str, list[str]] = {"x": [], "y": []}
    for n, (op, host) in enumerate(ops):
        if op == "feed":
            feeds[f"f{n}"] = Feed(host)
            queue.schedule(f"f{n}", float(n))
        elif op == "article":
            if dispatcher.acquire_article(host, f"a{n}"):
                running[host] += 1
            else:
                waiting_articles[host].append(f"a{n}")
        elif op == "end" and running[host] > 0:
            running[host] -= 1
            dispatcher.release(host)
        elif op == "cancel" and waiting_articles[host]:
            assert dispatcher.cancel_article(host, waiting_articles[host].pop(0))
        for token in granted:
            for h, line in waiting_articles.items():
                if token in line:
                    line.remove(token)
                    running[h] += 1
        granted.clear()
        plan = dispatcher.dispatch(queue, feeds, running=0, now=float(n))
        for _, feed_id in plan.start:
            running[feeds[feed_id].host] += 1
        for token in granted:
            for h, line in waiting_articles.items():
                if token in line:
                    line.remove(token)
                    running[h] += 1
        granted.clear()
        for h in ("x", "y"):
            assert running[h] == dispatcher.active(h) <= per_host
            if running[h] < per_host:
                assert not waiting_articles[h]
