"""Fetch logging at volume: a line per fetch that changed something or failed, counts for the rest."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from ingestor.fetch.outcome import Outcome
from ingestor.fetch.recorder import QUIET_OUTCOMES, logged_on_its_own
from ingestor.fetch.status import StageStats


@pytest.mark.parametrize("outcome", list(Outcome))
def test_only_quiet_outcomes_lose_their_own_line(outcome: Outcome) -> None:
    assert logged_on_its_own(outcome, every_fetch=True)
    assert logged_on_its_own(outcome, every_fetch=False) == (outcome not in QUIET_OUTCOMES)
    if not outcome.success:
        assert logged_on_its_own(outcome, every_fetch=False)  # a failure is never summarised away


def test_quiet_outcomes_are_exactly_the_ones_where_nothing_happened() -> None:
    assert {o.value for o in QUIET_OUTCOMES} == {"not_modified", "unchanged"}


class _Decision:
    def __init__(self, counter: str, via: str = "poll", produced: bool = False, skipped: int = 0) -> None:
        self.counter, self.via, self.produced, self.skipped = counter, via, produced, skipped


def test_the_summary_window_counts_every_outcome_once_and_starts_afresh() -> None:
    stats = StageStats()
    decisions: list[Any] = [_Decision("not_modified")] * 3 + [
        _Decision("ok", produced=True),
        _Decision("push_ok", "push"),
    ]
    for decision in decisions:
        stats.count(decision)
    assert stats.take_window() == Counter({"not_modified": 3, "ok": 1, "push_ok": 1})
    assert stats.take_window() == Counter()
    assert stats.outcomes["not_modified"] == 3  # the totals since start are kept apart


def test_slots_passed_over_are_counted_in_the_window_and_since_start() -> None:
    stats = StageStats()
    for decision in [_Decision("not_modified", skipped=1), _Decision("ok", skipped=2), _Decision("ok")]:
        stats.count(decision)  # type: ignore[arg-type]
    assert (stats.window_skipped, stats.skipped) == (3, 3)
    stats.take_window()
    stats.count(_Decision("not_modified", skipped=1))  # type: ignore[arg-type]
    assert (stats.window_skipped, stats.skipped) == (1, 4)
