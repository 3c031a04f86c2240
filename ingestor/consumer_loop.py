"""The commit-after-ack consume loop every consuming stage runs.

Input is at-least-once: for each batch the loop hands every record to the stage's handler,
sends everything the handler returned, and hands the sent batch to a commit pipeline
(``ingestor/commit_pipeline.py``) that commits the batch's offsets only once the broker
acknowledged all of it and every batch before it. Meanwhile the loop goes on with the next
batch (``RUN_AHEAD``), except in a single writer (dedup), which finishes each batch first. The
first output whose delivery fails halts the producer (``ingestor/kafka/producers.py``), so no
later output is delivered after it: what a stage delivers per partition never has a gap.

A record the handler refuses goes to the DLQ (with its original key, value and headers plus
the reason) and counts as handled, so one poison message never stops a partition.  Any
broker error tears the consumer down; the supervisor builds a new one, which resumes from the
committed offsets (and re-runs the stage's assignment hook, e.g. dedup's state restore), so
nothing half-done is ever trusted.

While the broker is away the loop stays up: the supervisor retries with capped exponential
backoff (reset after a healthy spell), and an idle consumer probes the broker every few seconds
so that `health()` reports not-ready during an outage even when there is nothing to consume.
A send that fails or times out stops the commit pipeline: that batch's input and everything
after it is never committed, and the loop tears the consumer down at its next step.

A stage whose output must never be written twice (dedup) also has the group coordinator
confirm, before each batch, that its generation is current (``ingestor/kafka/membership.py``);
the loop never processes records of partitions revoked from it, even when aiokafka still hands
them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError

from ingestor import headers as hdr
from ingestor.commit_pipeline import CommitPipeline, SentBatch
from ingestor.config import KafkaConfig
from ingestor.kafka import (
    KafkaConnection,
    StaticMember,
    abandon_producer,
    confirm_membership,
    halt_on_failed_delivery,
    halt_producer,
    pin_producer_topics,
)
from ingestor.models import format_utc
from ingestor.ops import metrics
from ingestor.supervise import Backoff, supervise

log = structlog.get_logger("ingestor.consumer")

#: An idle consumer checks the broker this often; no contact for STALE_S means not ready.
PROBE_EVERY_S = 5.0
PROBE_TIMEOUT_S = 5.0
STALE_S = 15.0
#: on stop: how long a poll may take to notice, and what closing the clients may take at most
STOP_POLL_S = 0.5
CLOSE_BUDGET_S = 2.5
#: A single writer's batch must be acknowledged within this share of its group session (6 s of
#: the default 10 s), well inside it: once the group can have moved the partitions on, a late
#: delivery is a duplicate.
SINGLE_WRITER_DELIVERY_SHARE = 0.6
#: after a withheld batch, wait this long before polling again (the rejoin is under way)
WITHHELD_PAUSE_S = 0.2
#: Batches sent and waiting for their acknowledgements at once: enough to keep the loop busy
#: through a round trip or two, few enough that a slow broker slows the loop down.
UNCOMMITTED_BATCHES = 4
#: Whether a stage (other than a single writer) handles its next batch before the previous one
#: is acknowledged and committed. Running ahead once lost and duplicated versions in the chaos
#: suite: in a broker outage an older batch's outputs expired while a younger batch's waited and
#: were delivered once the broker was back, and the re-read put the older outputs behind them.
#: The producer now halts at the first failed delivery (``halt_on_failed_delivery``), which
#: closes that gap whether or not the loop runs ahead.
RUN_AHEAD = True


@dataclass(frozen=True, slots=True)
class Output:
    """One message a handler wants produced before its input may be committed."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: hdr.Headers = field(default_factory=list)
    partition: int | None = None


class Refused(Exception):
    """The handler's verdict that a record is poison: it goes to the DLQ under ``error_type``.

    ``outputs`` are produced with the DLQ message, in the same batch: what the record still
    owes downstream although its body is refused (a teaser entry whose page a parse worker
    refused is published with the feed's text), so a refusal never loses them."""

    def __init__(self, error_type: str, message: str, *, outputs: Sequence[Output] = ()) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.outputs = list(outputs)


class RetryableStageError(Exception):
    """Not the record's fault: tear the consumer down and retry instead of dead-lettering."""


class RecordHandler(Protocol):
    async def __call__(self, record: ConsumerRecord[bytes, bytes]) -> list[Output]: ...


PartitionHook = Callable[[set[TopicPartition]], Awaitable[None]]


def dlq_output(
    record: ConsumerRecord[bytes, bytes], *, stage: str, dlq_topic: str, error_type: str, message: str
) -> Output:
    """The original bytes, untouched, with the reason and the source position in headers."""
    original = [(name, value) for name, value in (record.headers or ()) if not name.startswith("dlq-")]
    extra = hdr.build(
        [
            (hdr.DLQ_STAGE, stage),
            (hdr.DLQ_ERROR_TYPE, error_type),
            (hdr.DLQ_ERROR_MESSAGE, message[:2000]),
            (hdr.DLQ_SOURCE_TOPIC, record.topic),
            (hdr.DLQ_SOURCE_PARTITION, str(record.partition)),
            (hdr.DLQ_SOURCE_OFFSET, str(record.offset)),
            (hdr.DLQ_FAILED_AT, format_utc(datetime.now(UTC))),
        ]
    )
    return Output(dlq_topic, record.key, record.value, [*original, *extra])


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ConsumeLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._loop.handle_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._loop.handle_assigned(set(assigned))


@dataclass
class LoopStats:
    """What the loop has done, for readiness checks, metrics and `ingestor status`."""

    records: int = 0
    produced: int = 0
    refused: int = 0
    batches: int = 0
    last_batch_at: float | None = None
    assigned: set[TopicPartition] = field(default_factory=set)
    connected: bool = False
    restarts: int = 0
    assigned_at: float | None = None  # the last completed group join; None while (re)joining
    last_poll_at: float | None = None
    lag: dict[TopicPartition, int] = field(default_factory=dict)
    last_error: str | None = None
    #: monotonic time of the last successful round trip to the broker
    last_contact: float | None = None
    broker_ok: bool = False


@dataclass(frozen=True, slots=True)
class LoopHealth:
    """A snapshot for /readyz and operators: cheap, no I/O."""

    stage: str
    running: bool
    ready: bool
    connected: bool
    broker_ok: bool
    assigned: list[int]
    records: int
    produced: int
    refused: int
    batches: int
    restarts: int
    last_batch_at: float | None
    seconds_since_contact: float | None
    last_error: str | None


def _record_key(record: ConsumerRecord[bytes, bytes]) -> bytes | None:
    key: bytes | None = record.key
    return key


class ConsumeLoop:
    """One stage's consumer group member: consume, handle, produce, wait for acks, commit."""

    def __init__(
        self,
        *,
        stage: str,
        connection: KafkaConnection,
        topics: Sequence[str],
        group_id: str,
        handler: RecordHandler,
        dlq_topic: str,
        max_batch: int = 200,
        max_message_bytes: int = 20 * 1024 * 1024,
        on_assigned: PartitionHook | None = None,
        on_revoked: PartitionHook | None = None,
        output_topics: Sequence[str] = (),
        consumer_overrides: dict[str, Any] | None = None,
        single_writer: bool = False,
        concurrency: int = 1,
        order_key: Callable[[ConsumerRecord[bytes, bytes]], bytes | None] | None = None,
    ) -> None:
        self.stage = stage
        self._connection = connection
        self._topics = list(topics)
        self._group_id = group_id
        self._handler = handler
        self._dlq_topic = dlq_topic
        self._max_batch = max_batch
        self._max_message_bytes = max_message_bytes
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._consumer_overrides = consumer_overrides or {}
        config = getattr(connection, "config", None) or KafkaConfig()  # tests may pass no connection
        session_ms = self._consumer_overrides.get("session_timeout_ms", config.session_timeout * 1000)
        self._delivery_deadline_s = SINGLE_WRITER_DELIVERY_SHARE * float(session_ms) / 1000
        # A stage whose output must never be written twice (one writer per partition) asks the
        # coordinator before every batch whether its partitions are still its own (see
        # ingestor/kafka/membership.py), gives each batch a delivery deadline inside the session, and
        # never lets its producer deliver anything after a teardown.
        self._single_writer = single_writer
        # Records of one batch handled at once (parse: one per worker), so that one slow
        # record does not hold back the records of other keys in the same batch.
        self._concurrency = max(1, concurrency)
        # What must stay in order: by default the record's key (one feed's documents); a stage
        # whose records of one key are independent of each other may order by something finer.
        self._order_key = order_key or _record_key
        # Revoked and not (yet) assigned again: records aiokafka still hands out for these
        # (fetched before the rebalance) are not ours to process.
        self._revoked_pending: set[TopicPartition] = set()
        self._output_topics = [*output_topics, dlq_topic]
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._pipeline: CommitPipeline | None = None
        self._batch_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_probe_at = 0.0
        self._closing = False
        # The static group identity (ingestor/kafka/instance.py), claimed on start and kept across
        # consumer rebuilds, so a rebuilt or restarted member rejoins as itself.
        self._member: StaticMember | None = None
        self.stats = LoopStats()

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping.clear()
        if self._member is None:
            self._member = self._connection.group_member(self._group_id, self.stage)
        self._task = asyncio.create_task(self._supervise(), name=f"{self.stage}-consume-loop")

    @property
    def group_instance_id(self) -> str | None:
        return self._member.instance_id if self._member is not None else None

    async def stop(self, timeout: float = 8.0) -> None:
        """Finish the batch in hand (produced, acknowledged, committed), then leave the group.

        Whatever else the loop is doing is abandoned: a poll, or a group join that the
        coordinator holds up while it waits for a dead member's session to expire. Nothing is
        lost by that, since only committed input counts as done. All of it fits in ``timeout``.
        """
        self._stopping.set()
        task = self._task
        if task is None:
            self._release_member()
            return
        deadline = time.monotonic() + timeout
        try:
            async with asyncio.timeout(max(0.1, timeout - CLOSE_BUDGET_S)):
                async with self._batch_lock:  # the batch in hand is sent, and no new one starts
                    await self._drain("stop")  # ... and everything sent is acknowledged and committed
                    try:
                        await asyncio.wait_for(asyncio.shield(task), STOP_POLL_S)
                    except TimeoutError:
                        pass
                    except asyncio.CancelledError:  # the loop's task ended cancelled, not us
                        if _being_cancelled():
                            raise
        except TimeoutError:
            log.warning("stage_stop_timeout", stage=self.stage, timeout_s=timeout)
        if not task.done() and not self._closing:  # a close under way ends within its budget
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, max(0.1, deadline - time.monotonic()))
        self._task = None
        if task.done():  # a close still under way keeps the identity until the process ends
            self._release_member()

    def _release_member(self) -> None:
        member, self._member = self._member, None
        if member is not None:
            member.release()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def health(self) -> LoopHealth:
        stats = self.stats
        since = time.monotonic() - stats.last_contact if stats.last_contact is not None else None
        fresh = since is not None and since < STALE_S
        running = self.running and not self._stopping.is_set()
        return LoopHealth(
            stage=self.stage,
            running=running,
            ready=running and stats.connected and stats.broker_ok and fresh,
            connected=stats.connected,
            broker_ok=stats.broker_ok,
            assigned=sorted(tp.partition for tp in stats.assigned),
            records=stats.records,
            produced=stats.produced,
            refused=stats.refused,
            batches=stats.batches,
            restarts=stats.restarts,
            last_batch_at=stats.last_batch_at,
            seconds_since_contact=round(since, 3) if since is not None else None,
            last_error=stats.last_error,
        )

    def ready(self) -> bool:
        return self.health().ready

    def _contact(self) -> None:
        self.stats.last_contact = time.monotonic()
        self._next_probe_at = self.stats.last_contact + PROBE_EVERY_S
        if not self.stats.broker_ok:
            self.stats.broker_ok = True
            log.info("broker_reachable", stage=self.stage)

    async def _supervise(self) -> None:
        """Run the consumer until stopped; on any error rebuild it after a capped, jittered backoff
        that never gives up (an outage of hours ends in a recovery, not an exit)."""
        await supervise(
            self._run_once, on_failure=self._restarting, backoff=Backoff(), stopping=self._stopping
        )

    def _restarting(self, exc: Exception, attempt: int, delay: float) -> None:
        self.stats.broker_ok = False
        self.stats.last_error = f"{type(exc).__name__}: {exc}"[:500]
        log.warning(
            "stage_restarting",
            stage=self.stage,
            attempt=attempt,
            error=self.stats.last_error,
            retry_in_s=round(delay, 2),
        )

    async def _run_once(self) -> None:
        consumer = self._connection.consumer(
            group_id=self._group_id, member=self._member, **self._consumer_overrides
        )
        producer: AIOKafkaProducer | None = None
        self._consumer = consumer
        pipeline = self._pipeline = self._commit_pipeline(consumer)
        try:
            producer = self._producer = await self._connection.start_producer()
            await pin_producer_topics(producer, self._output_topics)
            consumer.subscribe(self._topics, listener=_Listener(self))
            await consumer.start()
            self.stats.connected = True
            self._contact()
            log.info(
                "stage_consuming",
                stage=self.stage,
                topics=self._topics,
                group=self._group_id,
                instance=self.group_instance_id,
            )
            while not self._stopping.is_set():
                pipeline.raise_if_failed()
                batch = await consumer.getmany(timeout_ms=250, max_records=self._max_batch)
                if batch:
                    async with self._batch_lock:
                        processed = await self._process_batch(consumer, producer, batch, pipeline)
                    if processed:
                        self._contact()
                    else:
                        await asyncio.sleep(WITHHELD_PAUSE_S)
                elif time.monotonic() >= self._next_probe_at:
                    await self._probe(consumer)
                self.stats.last_poll_at = time.time()
                await metrics.sample_lag(consumer, self.stats.lag)
            await pipeline.drain()
        except Exception:
            self.stats.restarts += 1
            metrics.STAGE_RESTARTS.labels(self.stage).inc()
            raise
        finally:
            self.stats.connected = False
            self._pipeline = None
            await pipeline.close()
            await self._close(consumer, producer)

    def _commit_pipeline(self, consumer: AIOKafkaConsumer) -> CommitPipeline:
        async def commit(offsets: dict[TopicPartition, int]) -> None:
            try:
                await consumer.commit(offsets)
            except CommitFailedError as exc:
                metrics.COMMIT_FAILURES.labels(self.stage).inc()
                # The group moved on while we worked: the new owner re-reads from the last
                # commit, and what we produced is recognised downstream by its ids.
                log.warning("commit_failed_rebalanced", stage=self.stage, error=str(exc))

        def committed(batch: SentBatch) -> None:
            self.stats.produced += len(batch.acks)
            self.stats.batches += 1
            self.stats.last_batch_at = time.time()

        return CommitPipeline(
            commit,
            depth=UNCOMMITTED_BATCHES,
            delivery_deadline_s=self._delivery_deadline_s if self._single_writer else None,
            on_committed=committed,
        )

    async def _drain(self, why: str) -> None:
        """Wait until every sent batch is acknowledged and committed (before partitions move, or
        on stop). A failure here is the loop's to act on; the input stays uncommitted either way."""
        pipeline = self._pipeline
        if pipeline is None:
            return
        try:
            await pipeline.drain()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("uncommitted_batches", stage=self.stage, during=why, error=error)

    async def _probe(self, consumer: AIOKafkaConsumer) -> None:
        """An idle consumer cannot tell a quiet topic from a dead broker; a metadata request can.

        aiokafka reconnects by itself once the broker is back, so a failed probe only reports
        not-ready (and logs once); it does not tear the consumer down.
        """
        try:
            await asyncio.wait_for(consumer.topics(), PROBE_TIMEOUT_S)
        except Exception as exc:
            if self.stats.broker_ok:
                log.warning("broker_unreachable", stage=self.stage, error=f"{type(exc).__name__}: {exc}")
            self.stats.broker_ok = False
            self.stats.last_error = f"broker unreachable: {type(exc).__name__}: {exc}"[:500]
            self._next_probe_at = time.monotonic() + PROBE_EVERY_S
            return
        self._contact()

    async def _close(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer | None) -> None:
        self._closing = True
        try:
            await self._close_clients(consumer, producer)
        finally:
            self._closing = False

    async def _close_clients(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer | None) -> None:
        # aiokafka does not call the revoke listener on stop: commit is already done per batch,
        # but give the stage's revoke hook a chance to drop its state.
        if self._on_revoked is not None and self.stats.assigned:
            try:
                await self._on_revoked(set(self.stats.assigned))
            except Exception as exc:
                log.warning("revoke_hook_failed", stage=self.stage, error=repr(exc))
        self.stats.assigned = set()
        self.stats.assigned_at = None
        self.stats.lag.clear()
        # On stop the clients get a short budget: a LeaveGroup the coordinator holds up must not
        # hold up the shutdown (the group notices the session ending instead).
        each_s = CLOSE_BUDGET_S / 2 if self._stopping.is_set() else 5.0
        # A single writer's producer is abandoned, not flushed: whatever it still holds belongs to
        # a batch that was not committed, and its next owner decides those records again.
        stop_producer = abandon_producer if self._single_writer else AIOKafkaProducer.stop
        closers = [consumer.stop, *([lambda: stop_producer(producer)] if producer is not None else [])]
        for closer in closers:
            try:
                await asyncio.wait_for(closer(), each_s)
            except asyncio.CancelledError:
                # aiokafka's consumer.stop() awaits its own fetch tasks after cancelling them and
                # can let their CancelledError out; only a cancellation of *this* task is ours.
                if _being_cancelled():
                    raise
                log.warning(
                    "client_close_failed", stage=self.stage, error="CancelledError in the client's close"
                )
            except Exception as exc:
                log.warning("client_close_failed", stage=self.stage, error=repr(exc))
        self._consumer = self._producer = None

    # ---- rebalance -------------------------------------------------------------------------

    async def handle_revoked(self, revoked: set[TopicPartition]) -> None:
        # Waiting for the batch lock and the pipeline means every batch handled is produced, acked
        # and committed before the partitions move: the next owner starts exactly after it.
        async with self._batch_lock:
            await self._drain("revoke")
            self._revoked_pending |= revoked
            self.stats.assigned -= revoked
            self.stats.assigned_at = None
            if self._on_revoked is not None:
                await self._on_revoked(revoked)
        log.info("partitions_revoked", stage=self.stage, partitions=sorted(tp.partition for tp in revoked))

    async def handle_assigned(self, assigned: set[TopicPartition]) -> None:
        self._revoked_pending -= assigned
        if self._on_assigned is not None:
            await self._on_assigned(assigned)
        self.stats.assigned |= assigned
        self.stats.assigned_at = time.time()  # also with nothing assigned: a standby member is joined
        metrics.REBALANCES.labels(self.stage).inc()
        log.info("partitions_assigned", stage=self.stage, partitions=sorted(tp.partition for tp in assigned))

    # ---- the batch ----------------------------------------------------------------------------

    async def _process_batch(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
        pipeline: CommitPipeline,
    ) -> bool:
        """Handle and send a batch, then hand it to ``pipeline`` to be committed once acknowledged.

        False when the batch was withheld (not ours any more, or not confirmed ours)."""
        owned = {
            tp: records
            for tp, records in batch.items()
            if tp in consumer.assignment() and tp not in self._revoked_pending
        }
        # Revoked while we waited for the lock: the new owner has them. If aiokafka gives the
        # partition back to us, its position is reset to the committed offset anyway; rewinding
        # covers the records that arrive before the assignment hook ran.
        _rewind(consumer, {tp: batch[tp] for tp in batch.keys() - owned.keys()})
        if not owned:
            return True
        if self._single_writer:
            membership = await confirm_membership(consumer)
            if not membership.owns_partitions:
                metrics.BATCHES_WITHHELD.labels(self.stage, membership.value).inc()
                log.warning(
                    "batch_withheld",
                    stage=self.stage,
                    reason=membership.value,
                    partitions=sorted(tp.partition for tp in owned),
                    records=sum(len(records) for records in owned.values()),
                )
                _rewind(consumer, owned)
                return False
        pending: list[asyncio.Future[Any]] = []
        offsets: dict[TopicPartition, int] = {}
        # The first output not delivered halts the producer: nothing sent after it may be
        # delivered, or a re-read would put older outputs behind newer ones (producers.py).
        on_delivery = halt_on_failed_delivery(producer)

        async def handle_and_send(record: ConsumerRecord[bytes, bytes]) -> None:
            for output in await self._handle(record):
                try:
                    future = await producer.send(
                        output.topic,
                        output.value,
                        key=output.key,
                        partition=output.partition,
                        headers=output.headers or None,
                    )
                except BaseException:
                    halt_producer(producer)
                    raise
                future.add_done_callback(on_delivery)
                pending.append(future)
            self.stats.records += 1

        if self._concurrency == 1:
            for records in owned.values():
                for record in records:
                    await handle_and_send(record)
        else:
            await self._handle_concurrently(owned, handle_and_send)
        for tp, records in owned.items():
            offsets[tp] = records[-1].offset + 1
            metrics.RECORDS.labels(self.stage).inc(len(records))
        # every output acknowledged (acks=all), this batch's and every earlier one's, before the
        # input is committed
        await pipeline.put(SentBatch(pending, offsets))
        if not RUN_AHEAD or self._single_writer:
            # A single writer is not ahead of its acknowledgements: a batch handled while the
            # previous one is unacknowledged can have its sends held up by a broker outage and
            # delivered after the group moved its partitions on, long after its membership was
            # confirmed.
            await pipeline.drain()
        return True

    async def _handle_concurrently(
        self,
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
        handle_and_send: Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None]],
    ) -> None:
        """Handle a batch's records ``concurrency`` at a time, sending each record's outputs
        as soon as it is done.

        Records with the same key (one feed's successive documents) stay in order, one after
        the other, so their outputs keep their order too; records of other keys do not wait
        for a slow one.  The batch is committed only once every record is done and every
        output acknowledged, as in the sequential case, so a crash re-reads the whole batch.
        """
        chains: dict[tuple[str, int, bytes | None], list[ConsumerRecord[bytes, bytes]]] = {}
        for tp, records in batch.items():
            for record in records:
                chains.setdefault((tp.topic, tp.partition, self._order_key(record)), []).append(record)
        slots = asyncio.Semaphore(self._concurrency)

        async def run_chain(chain: list[ConsumerRecord[bytes, bytes]]) -> None:
            for record in chain:
                async with slots:
                    await handle_and_send(record)

        try:
            async with asyncio.TaskGroup() as group:
                for chain in chains.values():
                    group.create_task(run_chain(chain))
        except BaseExceptionGroup as failed:  # the loop's callers expect the error itself
            raise failed.exceptions[0] from None

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> list[Output]:
        size = len(record.value or b"")
        if size > self._max_message_bytes:
            return [self._refuse(record, "too_large", f"{size} bytes > {self._max_message_bytes}")]
        try:
            return await self._handler(record)
        except Refused as exc:
            return [self._refuse(record, exc.error_type, exc.message), *exc.outputs]
        except RetryableStageError:
            raise
        except Exception as exc:
            log.exception(
                "handler_crashed",
                stage=self.stage,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
            return [self._refuse(record, "crash", f"{type(exc).__name__}: {exc}")]

    def _refuse(self, record: ConsumerRecord[bytes, bytes], error_type: str, message: str) -> Output:
        self.stats.refused += 1
        metrics.DLQ_MESSAGES.labels(self.stage, error_type).inc()
        log.warning(
            "message_refused",
            stage=self.stage,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error_type=error_type,
            error=message[:500],
            dlq=self._dlq_topic,
        )
        return dlq_output(
            record, stage=self.stage, dlq_topic=self._dlq_topic, error_type=error_type, message=message
        )


def _being_cancelled() -> bool:
    """Whether the running task itself has been asked to cancel (Python 3.11+)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _rewind(
    consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
) -> None:
    """Put the records back: the next poll returns them again if the partition is still ours."""
    assignment = consumer.assignment()
    for tp, records in batch.items():
        if records and tp in assignment:
            with contextlib.suppress(Exception):  # unassigned in between: the new owner reads them
                consumer.seek(tp, records[0].offset)
