"""Fetch-stage memory per feed, without Kafka: what a sharded fetcher holds once it owns N feeds.

    python bench/fetch_memory.py                       # N = 100,000 and 1,000,000
    python bench/fetch_memory.py --feeds 100000 --trace 15

For each N, in a fresh process (so the RSS is this N's alone), the records a fetcher reads are
built as the bench (``bench/fetch.py``) seeds them: each feed's definition as ``encode_feed``
writes it to the feeds topic and its fetch state as a running fetcher writes it to the
fetch-state topic (validators, next due time, a few attempts).  They then go through the
stage's real code: the dict of every raw state value that ``load_raw_states`` returns (as
``read_latest`` reads it), the registry's ``assigned`` bookkeeping and ``_apply`` for every
definition, which decodes the feed's state record and calls the stage's ``add_feed`` with it.
Only the broker is missing.  Then every feed is polled ``--fetches`` times (default: enough to
fill the attempt history ``feeds status`` shows, as in a fetcher that has run for a few
intervals), recorded as the stage records a 304.  The numbers are taken after that, with the
records themselves dropped (a real fetcher does not keep them either) and after a full
collection:

- bytes per feed by tracemalloc (what Python allocated and still holds, per feed);
- RSS, and RSS above the interpreter with everything imported, per feed;
- the peak during the load (tracemalloc), which the RSS keeps afterwards as freed arenas.

Each N is loaded twice: once under tracemalloc (``--trace K`` also prints the K largest
allocation sites still held), once without it for the RSS, since tracemalloc's own records
take memory too.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import random
import sys
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingestor.config import FeedConfig, load_settings
from ingestor.fetch.feeds import encode_feed
from ingestor.fetch.feedstate import HISTORY, AttemptRecord, utc
from ingestor.fetch.outcome import Outcome
from ingestor.fetch.registry import FeedRegistry
from ingestor.fetch.service import FetchStage
from ingestor.fetch.state import SavedAttempt, SavedState, encode, material
from ingestor.kafka import KafkaConnection
from ingestor.tools.fetchers import tune_gc

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Record:
    """What ``FeedRegistry._apply`` reads of an aiokafka ``ConsumerRecord``."""

    key: bytes | None
    value: bytes | None
    offset: int


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def feed_value(i: int, interval: float, hosts: int) -> bytes:
    """Feed ``i``'s definition as ``encode_feed`` writes it (checked in ``main``)."""
    url = f"http://h{i % hosts}.bench.test:8080/f/{i}"
    return (f'{{"id":"f{i}","interval":{interval!r},"min_interval":{interval!r},"url":"{url}"}}').encode()


def feed_records(n: int, partitions: int, partition: int) -> Iterator[Record]:
    """One partition of the feeds topic, made as it is consumed: a batch at a time, not all kept."""
    interval, hosts = n / 4000, max(1, n // 20)
    for offset, i in enumerate(range(partition, n, partitions)):
        yield Record(f"f{i}".encode(), feed_value(i, interval, hosts), offset)


def state_records(n: int, attempts: int) -> list[tuple[bytes, bytes]]:
    """The fetch-state topic as a running fetcher leaves it: validators, the body hash, the next
    due time and its last ``attempts`` attempts."""
    interval, hosts, now, rand = n / 4000, max(1, n // 20), time.time(), random.Random(7)
    states: list[tuple[bytes, bytes]] = []
    for i in range(n):
        due = now + interval * rand.random()
        history = tuple(
            SavedAttempt(now - k * interval, "not_modified", 304, 12.5, 0, None, due, "poll")
            for k in range(attempts)
        )
        state = SavedState(
            url=f"http://h{i % hosts}.bench.test:8080/f/{i}",
            etag=f'"{i}-0"',
            last_modified="Wed, 21 Oct 2015 07:28:00 GMT",
            sha256=f"{i:064x}",
            failures=0,
            change_interval=None,
            last_change_at=None,
            next_due=due,
            saved_at=now,
            instance="fetcher-0:1234",
            attempts=history,
        )
        states.append((f"f{i}".encode(), encode(state)))
    return states


def run_a_while(stage: FetchStage, fetches: int) -> None:
    """Each feed as after ``fetches`` more polls: a 304 each (what most polls are), recorded the
    way ``recorder.apply`` and the keeper record them (the attempt in the history, the material
    of the state record written)."""
    rand = random.Random(11)
    for state in stage._states.values():
        for _ in range(fetches):
            now = time.time()
            status = int("304")  # a fresh int per response, as the HTTP client's parser makes it
            attempt = AttemptRecord(
                datetime.now(UTC), Outcome.NOT_MODIFIED, status, round(rand.random() * 50, 1), 0, None,
                False, utc(now + state.timing.interval),
            )  # fmt: skip
            state.history.append(attempt)
            record = SavedState(
                url=state.feed.url, etag=state.etag, last_modified=state.last_modified, sha256=state.sha256,
                failures=0, change_interval=None, last_change_at=None, next_due=now + state.timing.interval,
                saved_at=now, instance=stage.instance,
            )  # fmt: skip
            state.mark_saved(material(record), now)  # as the state keeper does


async def load(n: int, partitions: int, states: list[tuple[bytes, bytes]]) -> tuple[FetchStage, FeedRegistry]:
    """The stage's per-feed structures, built by the same calls a sharded fetcher makes."""
    settings = load_settings(
        None,
        overrides={
            "topics": {"partitions": partitions},
            "fetch": {"state_topic": "bench.fetch-state", "sharding": True, "startup_spread": n / 4000},
            "feeds": [],
        },
    )
    connection = KafkaConnection("127.0.0.1:1", settings.kafka)  # never connected
    stage = FetchStage(settings, connection, feeds=[])
    registry = FeedRegistry(settings, connection, stage)
    # store.load_raw_states: every raw value of the assigned state partitions (decoded by _apply)
    raw = {key.decode(): value for key, value in states}
    states.clear()
    registry._owned = set(range(partitions))
    registry._restore, registry._restore_size = raw, len(raw)
    del raw
    for partition in range(partitions):
        for record in feed_records(n, partitions, partition):
            registry._apply(partition, record)  # type: ignore[arg-type]
    return stage, registry


def measure(
    n: int,
    partitions: int,
    attempts: int,
    fetches: int,
    trace: int,
    out: multiprocessing.connection.Connection,
) -> None:
    """Load ``n`` feeds; with ``trace`` >= 0 under tracemalloc (which costs RSS of its own, so the
    RSS figures come from a run without it)."""
    tune_gc()
    states = state_records(n, attempts)
    gc.collect()
    state_bytes = sum(len(k) + len(v) for k, v in states)
    if trace >= 0:
        tracemalloc.start(3 if trace else 1)
    base_rss = rss_bytes()
    started = time.monotonic()
    stage, registry = asyncio.run(load(n, partitions, states))
    seconds = time.monotonic() - started
    run_a_while(stage, fetches)
    gc.collect()
    lines = [
        f"N={n}: {len(stage._states)} feeds loaded in {seconds:.1f}s "
        f"(state records {state_bytes / n:.0f} B per feed, read whole, then dropped), "
        f"then {fetches} polls per feed"
    ]
    if trace < 0:
        rss = rss_bytes()
        lines.append(
            f"  RSS {rss / MIB:.0f} MiB (before the load, state records read: {base_rss / MIB:.0f} MiB)"
        )
        out.send((lines, rss))
        return
    held, peak = tracemalloc.get_traced_memory()
    lines.append(
        f"  held by Python (tracemalloc): {held / MIB:.0f} MiB = {held / n:.0f} B per feed; "
        f"peak during the load {peak / MIB:.0f} MiB"
    )
    if trace:
        snapshot = tracemalloc.take_snapshot()
        lines.append(f"  top {trace} allocation sites still held:")
        for stat in snapshot.statistics("traceback")[:trace]:
            frames = reversed(list(stat.traceback))  # the allocation first, then its callers
            where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in frames)
            lines.append(f"    {stat.size / n:7.1f} B/feed {stat.count / n:5.2f} blocks/feed  {where}")
    tracemalloc.stop()
    del registry
    out.send((lines, 0))


def run(n: int, args: argparse.Namespace, trace: int) -> int:
    """One measurement in a fresh process: its lines printed, its RSS returned (0 under tracemalloc)."""
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=measure, args=(n, args.partitions, args.attempts, args.fetches, trace, theirs))
    proc.start()
    lines, rss = ours.recv()
    for line in lines:
        print(line, flush=True)
    proc.join()
    return int(rss)


def fresh_rss(out: multiprocessing.connection.Connection) -> None:
    """RSS of a process that imported everything and built nothing: the interpreter's share."""
    FetchStage  # noqa: B018 - imported, like a fetcher
    gc.collect()
    out.send(rss_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feeds", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--attempts", type=int, default=3, help="attempts in each saved state record")
    parser.add_argument(
        "--fetches", type=int, default=HISTORY, help="polls per feed after the load (default: a full history)"
    )
    parser.add_argument("--trace", type=int, default=0, help="K > 0: the K largest allocation sites")
    args = parser.parse_args()
    sample = FeedConfig(id="f7", url="http://h2.bench.test:8080/f/7", interval=2.5, min_interval=2.5)
    assert feed_value(7, 2.5, 5) == encode_feed(sample), "feed_value no longer matches encode_feed"
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=fresh_rss, args=(theirs,))
    proc.start()
    base = ours.recv()
    proc.join()
    print(f"interpreter with the stage imported: RSS {base / MIB:.0f} MiB")
    for n in args.feeds:
        run(n, args, args.trace)  # tracemalloc: bytes per feed held, the peak, the top sites
        rss = run(n, args, -1)  # no tracemalloc: the RSS
        print(f"  RSS above the interpreter: {(rss - base) / n:.0f} B per feed", flush=True)


if __name__ == "__main__":
    main()
