"""The restart backoff and supervisor shared by the consume loop and the feed registry."""

from __future__ import annotations

import asyncio

import pytest

from ingestor.supervise import RESTART_BASE_S, RESTART_CAP_S, Backoff, supervise


def test_backoff_doubles_to_its_cap_and_resets() -> None:
    backoff = Backoff(jitter=False)
    delays = [backoff.next_delay() for _ in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert (delays[0], delays[-1]) == (RESTART_BASE_S, RESTART_CAP_S)
    backoff.reset()
    assert backoff.next_delay() == RESTART_BASE_S


def test_jitter_stays_in_the_upper_half() -> None:
    backoff = Backoff()
    for failures in range(1, 8):
        delay = backoff.next_delay()
        full = min(RESTART_CAP_S, RESTART_BASE_S * 2 ** (failures - 1))
        assert full / 2 <= delay <= full


async def test_supervise_retries_until_a_run_returns_and_reports_each_failure() -> None:
    runs: list[int] = []
    failures: list[tuple[str, int, float]] = []

    async def run_once() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError(f"broker away {len(runs)}")

    def on_failure(exc: Exception, attempt: int, delay: float) -> None:
        failures.append((str(exc), attempt, delay))

    await supervise(run_once, on_failure=on_failure, backoff=Backoff(base_s=0.01, jitter=False))
    assert len(runs) == 3
    assert failures == [("broker away 1", 1, 0.01), ("broker away 2", 2, 0.02)]


async def test_a_stop_cuts_the_wait_short_and_cancellation_propagates() -> None:
    stopping = asyncio.Event()

    async def failing() -> None:
        raise RuntimeError("down")

    def on_failure(exc: Exception, attempt: int, delay: float) -> None:
        stopping.set()

    await asyncio.wait_for(
        supervise(failing, on_failure=on_failure, backoff=Backoff(base_s=60.0), stopping=stopping), 2.0
    )

    async def forever() -> None:
        await asyncio.sleep(3600)

    task = asyncio.create_task(supervise(forever, on_failure=on_failure))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
