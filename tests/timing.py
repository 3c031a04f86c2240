"""CPU-time measurements for the tests that keep parsing linear in its input.

A call is timed in CPU seconds of the calling thread, so time other processes take the
core from it does not count (the suite runs several workers on two cores), and it runs
under its own alarm: the regex engine and the parser check for signals, so a regression
fails in bounded time, counted as infinitely slow.  An alarm pytest-timeout may have set
is put back afterwards.

Compare growth ratios (the time at ``k * n`` over the time at ``n``), or a hostile input
against an ordinary one of the same size, never absolute times: a linear call grows ~k
times, a quadratic one k**2 times, whatever the machine.
"""

from __future__ import annotations

import gc
import math
import signal
import time
from collections.abc import Callable
from types import FrameType

__all__ = ["Stalled", "best_cpu_seconds", "cpu_seconds", "growth_ratio"]


class Stalled(BaseException):
    """Raised by the alarm out of a stalled call (a BaseException, so no "anything else is
    a malformed document" handler of the code under test swallows it)."""


def _stalled(signum: int, frame: FrameType | None) -> None:
    raise Stalled


def cpu_seconds(call: Callable[[], object], stall_seconds: float) -> float:
    """CPU seconds ``call()`` takes; infinite when it runs past ``stall_seconds`` of wall
    time."""
    outer_left, _interval = signal.getitimer(signal.ITIMER_REAL)
    previous = signal.signal(signal.SIGALRM, _stalled)
    started = time.perf_counter()
    cpu_started = time.thread_time()
    signal.setitimer(signal.ITIMER_REAL, stall_seconds)
    try:
        call()
        return time.thread_time() - cpu_started
    except Stalled:
        return math.inf
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            signal.setitimer(signal.ITIMER_REAL, max(0.001, outer_left - (time.perf_counter() - started)))


def best_cpu_seconds(call: Callable[[], object], runs: int, *, floor: float, stall_seconds: float) -> float:
    """The best of ``runs`` timings of ``call()``, and at least ``floor`` (shorter times are
    noise); infinite at the first stall.  The garbage collector is off meanwhile, so a
    collection the call did not cause is not billed to it."""
    best = math.inf
    gc.disable()
    try:
        for _ in range(runs):
            seconds = cpu_seconds(call, stall_seconds)
            if math.isinf(seconds):
                return seconds
            best = min(best, seconds)
    finally:
        gc.enable()
    return max(floor, best)


def growth_ratio(
    small: Callable[[], object],
    large: Callable[[], object],
    *,
    max_ratio: float,
    floor: float,
    stall_seconds: float,
    runs: int = 2,
) -> float:
    """How many times longer ``large()`` takes than ``small()`` (best of ``runs`` each).

    A ratio at or past ``max_ratio`` is measured again with more runs before it is
    returned: a busy moment on a shared machine must not fail a test, a regression does
    by a wide margin.  Infinite when either call stalls."""
    small_seconds = best_cpu_seconds(small, runs, floor=floor, stall_seconds=stall_seconds)
    if math.isinf(small_seconds):
        return math.inf
    ratio = best_cpu_seconds(large, runs, floor=floor, stall_seconds=stall_seconds) / small_seconds
    if max_ratio <= ratio < math.inf:
        small_seconds = best_cpu_seconds(small, runs + 2, floor=floor, stall_seconds=stall_seconds)
        ratio = best_cpu_seconds(large, runs + 2, floor=floor, stall_seconds=stall_seconds) / small_seconds
    return ratio
