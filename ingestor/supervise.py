"""Restart loops: capped exponential backoff, and a supervisor that never gives up.

A stage whose consumer fails (a broker outage, a restore that timed out) is rebuilt rather
than left dead: an outage of hours must end in a recovery, not an exit.  The consume loop
and the feed registry restart the same way, with the same constants, from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

#: First retry after ~0.5 s, doubling, capped.
RESTART_BASE_S = 0.5
RESTART_CAP_S = 10.0
#: A run that lasted this long was healthy: the next failure starts the backoff afresh.
HEALTHY_SPELL_S = 60.0


@dataclass
class Backoff:
    """Delays of successive failures: ``base_s`` doubling up to ``cap_s``; ``jitter`` spreads
    each over its upper half, so that members restarting together do not retry in step."""

    base_s: float = RESTART_BASE_S
    cap_s: float = RESTART_CAP_S
    jitter: bool = True
    failures: int = 0

    def reset(self) -> None:
        self.failures = 0

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        self.failures += 1
        delay = min(self.cap_s, self.base_s * 2.0 ** (self.failures - 1))
        return delay * (0.5 + random.random() / 2) if self.jitter else delay


#: Told of each failure: the error, the attempt number and the delay before the next one.
OnFailure = Callable[[Exception, int, float], Awaitable[None] | None]


async def supervise(
    run_once: Callable[[], Awaitable[None]],
    *,
    on_failure: OnFailure,
    backoff: Backoff | None = None,
    stopping: asyncio.Event | None = None,
    healthy_spell_s: float | None = HEALTHY_SPELL_S,
) -> None:
    """Run ``run_once`` until it returns or ``stopping`` is set; after each error call
    ``on_failure`` and wait the backoff's delay (cut short by ``stopping``), then run it again.

    A run that lasted ``healthy_spell_s`` resets the backoff first (None: the caller resets
    it itself, e.g. after each successful poll). Cancellation is not an error: it propagates.
    """
    backoff = backoff if backoff is not None else Backoff()
    while stopping is None or not stopping.is_set():
        started = time.monotonic()
        try:
            await run_once()
            return
        except Exception as exc:
            if healthy_spell_s is not None and time.monotonic() - started > healthy_spell_s:
                backoff.reset()
            delay = backoff.next_delay()
            outcome = on_failure(exc, backoff.failures, delay)
            if outcome is not None:
                await outcome
            if stopping is None:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)
