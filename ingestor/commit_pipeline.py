"""Batches that are sent but not yet acknowledged, committed strictly in the order they were sent.

The consume loop used to finish each batch before it looked at the next one: handle, send,
wait for every acknowledgement, commit, and only then poll again. The acknowledgement and the
commit are two broker round trips in which the stage does nothing, and every record that
arrived meanwhile waited for them (at 1,000 items/s about a third of each hop's latency).

Here a sent batch is handed over and the loop goes on with the next one, while one task waits
for the acknowledgements of the oldest batch and commits its offsets, then the next, in order.
The rule that matters is unchanged: an input offset is committed only once everything produced
for it, and for every batch before it, was acknowledged. A later batch's offsets cover an
earlier batch's records of the same partition, which is why commits never overtake each other.

The consume loop drains the pipeline after every batch unless ``RUN_AHEAD`` is on, and a single
writer (dedup) always does (``ingestor/consumer_loop.py`` says why): running ahead is off until a
chaos failure seen with it is understood. The ordered commit and the delivery deadline come from
here either way.

At most ``depth`` batches wait at once, so a slow broker slows the loop down instead of letting
uncommitted work pile up. A failed send, a commit error, or a single writer's batch that missed
its delivery deadline stops the pipeline: the loop raises it at its next step and tears the
consumer down, and the new consumer resumes from the last commit (nothing after it counts as
done).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition


class DeliveryTooLate(Exception):
    """A single writer's batch was not acknowledged within its delivery deadline: once the group
    can have moved its partitions on, a late delivery is a duplicate, so the consumer is torn down
    and its producer abandoned."""


@dataclass(slots=True)
class SentBatch:
    """One batch's sends (futures that resolve on the broker's acknowledgement) and the input
    offsets to commit once they all resolved."""

    acks: Sequence[asyncio.Future[Any]]
    offsets: dict[TopicPartition, int]
    #: monotonic time of the last send: a single writer's deadline runs from here
    sent_at: float = field(default_factory=time.monotonic)


Commit = Callable[[dict[TopicPartition, int]], Awaitable[None]]
OnCommitted = Callable[[SentBatch], None]


class CommitPipeline:
    """Waits for the acknowledgements of sent batches and commits them, oldest first."""

    def __init__(
        self,
        commit: Commit,
        *,
        depth: int = 4,
        delivery_deadline_s: float | None = None,
        on_committed: OnCommitted | None = None,
    ) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self._commit = commit
        self._deadline_s = delivery_deadline_s
        self._on_committed = on_committed
        self._waiting: deque[SentBatch] = deque()
        self._space = asyncio.Semaphore(depth)
        self._queued = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._failure: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Batches sent and not yet committed."""
        return len(self._waiting)

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    def raise_if_failed(self) -> None:
        """The consume loop calls this at each step: a failure tears the consumer down."""
        if self._failure is not None:
            raise self._failure

    async def put(self, batch: SentBatch) -> None:
        """Hand a sent batch over; waits while ``depth`` batches are already waiting."""
        self.raise_if_failed()
        await self._space.acquire()
        if self._failure is not None:
            self._space.release()
            raise self._failure
        self._waiting.append(batch)
        self._empty.clear()
        self._queued.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="commit-pipeline")

    async def drain(self) -> None:
        """Return once every batch handed over is committed; raise what stopped the pipeline."""
        await self._empty.wait()  # also set when the pipeline stops on a failure
        self.raise_if_failed()

    async def close(self) -> None:
        """Stop waiting; batches not committed stay uncommitted (their input is read again)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._waiting.clear()
        self._empty.set()

    async def _run(self) -> None:
        while True:
            if not self._waiting:
                self._empty.set()
                self._queued.clear()
                await self._queued.wait()
                continue
            batch = self._waiting[0]
            try:
                await self._acknowledged(batch)
                if batch.offsets:
                    await self._commit(batch.offsets)
            except Exception as exc:
                self._failure = exc
                self._space.release()  # a put() waiting for room wakes and raises
                self._empty.set()
                return
            self._waiting.popleft()
            self._space.release()
            if self._on_committed is not None:
                self._on_committed(batch)

    async def _acknowledged(self, batch: SentBatch) -> None:
        if not batch.acks:
            return
        acknowledged = asyncio.gather(*batch.acks)
        if self._deadline_s is None:
            await acknowledged
            return
        remaining = batch.sent_at + self._deadline_s - time.monotonic()
        try:
            await asyncio.wait_for(acknowledged, max(0.0, remaining))
        except TimeoutError:
            raise DeliveryTooLate(
                f"{len(batch.acks)} outputs not acknowledged within {self._deadline_s:.1f} s"
            ) from None
