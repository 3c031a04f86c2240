"""Pipeline latency: fetch -> parse -> dedup at about 1,000 items/s, from the fetch to news.published.

    python bench/pipeline.py                      # 50 feeds x 20 new entries/s, 30 s measured
    python bench/pipeline.py --compare            # first with the settings before the tuning, then now

A feed server in its own process serves ``--feeds`` JSON feeds on 127.0.0.1, each gaining
``--rate`` entries a second and showing its newest ``--window``.  ``ingestor run`` (all three
stages in one process, as shipped) polls every feed every second against the embedded broker
(``ingestor broker``, the same Tansu binary, in its own process so the bench can find it), so
news.published gains ``feeds x rate`` items a second and news.items ``feeds x window`` (each
entry is on the feed for window / rate polls; dedup drops the repeats).

Per item published in the measured window, from the daemon's own timestamps (one clock), all
read off the news.published message alone: the bench consumes news.published only (with a
200 ms fetch wait), never news.raw or news.items, so that it adds next to nothing to the CPU
and broker load it measures under (the rate into news.items is the growth of that topic's end
offsets over the window: two list-offsets requests).

* total: the published message's timestamp (dedup's producer) minus its ``item-fetched-at``
  header (the item's ``fetched_at``, taken when the fetcher had the body);
* per hop, from the lineage headers: fetch -> raw (``raw-timestamp``: the news.raw message's
  timestamp, which parse puts on the item and dedup copies, minus ``fetched_at``), raw -> items
  (``items-timestamp``, the news.items message's, minus ``raw-timestamp``: parse consumed it,
  parsed it in a worker, produced), items -> published (the message's own timestamp minus
  ``items-timestamp``: dedup consumed, decided, produced);
* published -> bench: the bench's own consumer receiving it.  Not in the total, and mostly the
  bench's own fetch wait (up to 200 ms); printed to show the bench keeps up.

The broker's share: a probe sends a timestamped message every 20 ms through the same broker
to a consumer with the fetch wait the stages get (``kafka.max_wait`` from the daemon's config,
50 ms, unless ``INGESTOR_KAFKA__MAX_WAIT`` overrides it) from a producer with their linger
(``kafka.linger``, 5 ms, or ``INGESTOR_KAFKA__LINGER``), in the same run; its send -> receive
time is a hop with no stage work in it.  Two such hops sit between the fetch and the
publication (news.raw -> parse, news.items -> dedup), so twice the probe's p50 is the broker's
share of the total p50.

``--compare`` runs the daemon first with the settings before the latency work (what the
environment overrides in BEFORE say), then with the shipped ones, each with its own topics.
Numbers on a machine shared with other work are indicative only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from ingestor.config import parse_duration
from ingestor.kafka.embedded import free_port

#: The settings before the latency work, as environment overrides of `ingestor run`.
BEFORE = {
    "INGESTOR_KAFKA__MAX_WAIT": "0.5",  # aiokafka's default fetch_max_wait_ms
    "INGESTOR_KAFKA__LINGER": "0.005",
    "INGESTOR_KAFKA__STATIC_MEMBERSHIP": "false",
}
PROBE_EVERY_S = 0.02
#: The daemon's fetch wait and linger, written to its config file; the probe uses them too,
#: unless the environment overrides them (``INGESTOR_KAFKA__MAX_WAIT``, ``..._LINGER``), as it
#: does for the daemon.  max_wait: what `ingestor run` uses on its own embedded (memory) broker,
#: which this one is; linger: the config's default.
KAFKA_TIMING = {"max_wait": 0.05, "linger": 0.005}
#: The bench's own fetch wait on news.published: "published -> bench" is not in the total.
TAP_MAX_WAIT_MS = 200


def kafka_timing(env: dict[str, str]) -> dict[str, float]:
    """``KAFKA_TIMING`` as the daemon gets it: the environment (the bench's, then ``env``, as
    the daemon is started with) wins over the config file, like ``load_settings``."""
    merged = {**os.environ, **env}
    return {
        key: parse_duration(merged.get(f"INGESTOR_KAFKA__{key.upper()}", value))
        for key, value in KAFKA_TIMING.items()
    }


def serve(port: int, rate: float, window: int, started: float) -> None:
    """Feed i shows entries k-window+1..k, entry k appearing at started + k / rate.

    JSON Feed: the parse cost per item is a tenth of RSS's (feedparser), so that 1,000 items a
    second fit on a small machine next to everything else and the bench measures the pipeline,
    not the feed parser (``bench/parse.py`` measures that).
    """

    async def handler(request: web.Request) -> web.Response:
        i = int(request.match_info["i"])
        newest = int((time.time() - started) * rate)
        etag = f'"{i}-{newest}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        items = [
            {
                "id": f"f{i}-{k}",
                "url": f"https://bench.example/{i}/{k}",
                "title": f"Entry {k} of feed {i}",
                "content_text": f"Entry {k} of feed {i}: what happened, in a sentence or two.",
                "date_published": datetime.fromtimestamp(started + k / rate, UTC).isoformat(),
            }
            for k in range(newest, max(-1, newest - window), -1)
        ]
        body = {"version": "https://jsonfeed.org/version/1.1", "title": f"Feed {i}", "items": items}
        return web.Response(
            body=json.dumps(body).encode(), content_type="application/feed+json", headers={"ETag": etag}
        )

    app = web.Application()
    app.router.add_get("/f/{i}", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=4096)


def _config(workdir: Path, tag: str, bootstrap: str, port: int, feeds: int) -> Path:
    data: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            **KAFKA_TIMING,
            "embedded": {"state_dir": str(workdir / "state")},
        },
        "topics": {
            "raw": f"p{tag}.raw",
            "items": f"p{tag}.items",
            "published": f"p{tag}.published",
            "dlq": f"p{tag}.dlq",
            "feeds": f"p{tag}.feeds",
            "article_requests": f"p{tag}.article-requests",
        },
        "fetch": {
            "allow_private_networks": True,
            "state_topic": f"p{tag}.fetch-state",
            "group_id": f"p{tag}-fetch",
            "per_host_concurrency": 32,
            "startup_spread": "1s",
            "jitter": 0.05,
        },
        "full_text": {
            "mode": "never",
            "state_topic": f"p{tag}.article-state",
            "group_id": f"p{tag}-articles",
        },
        "parse": {"group_id": f"p{tag}-parse"},
        "dedup": {"group_id": f"p{tag}-dedup"},
        "logging": {"level": "INFO", "format": "json"},
        "ops": {"listen": None},
        "feeds": [
            {"id": f"f{i}", "url": f"http://127.0.0.1:{port}/f/{i}", "interval": "1s", "format": "feed"}
            for i in range(feeds)
        ],
    }
    path = workdir / f"config-{tag}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class Sample:
    total: float
    fetch_raw: float | None
    raw_items: float | None
    items_published: float | None
    published_bench: float


def _ms_header(headers: dict[str, str], name: str) -> float | None:
    """A lineage timestamp header (ms) in seconds; None if missing or not a number."""
    try:
        return int(headers[name]) / 1000
    except (KeyError, ValueError):
        return None


@dataclass
class Tap:
    """Reads news.published as the daemon writes it: each message carries its own lineage."""

    bootstrap: str
    tag: str
    samples_at: list[tuple[float, Sample]] = field(default_factory=list)  # (published ts, sample)
    _consumer: AIOKafkaConsumer | None = None

    async def run(self) -> None:
        self._consumer = await _consumer_for(
            self.bootstrap, [f"p{self.tag}.published"], max_wait_ms=TAP_MAX_WAIT_MS
        )
        try:
            while True:
                for records in (await self._consumer.getmany(timeout_ms=1000)).values():
                    received = time.time()
                    for record in records:
                        self._take(record, received)
        finally:
            await self._consumer.stop()

    def _take(self, record: ConsumerRecord[bytes, bytes], received: float) -> None:
        ts = record.timestamp / 1000
        headers = {name: value.decode("utf-8", "replace") for name, value in record.headers or ()}
        fetched = datetime.fromisoformat(headers["item-fetched-at"].replace("Z", "+00:00")).timestamp()
        raw = _ms_header(headers, "raw-timestamp")
        items = _ms_header(headers, "items-timestamp")
        sample = Sample(
            total=ts - fetched,
            fetch_raw=raw - fetched if raw is not None else None,
            raw_items=items - raw if items is not None and raw is not None else None,
            items_published=ts - items if items is not None else None,
            published_bench=received - ts,
        )
        self.samples_at.append((ts, sample))

    def samples(self, since: float, until: float) -> list[Sample]:
        return [sample for ts, sample in self.samples_at if since <= ts < until]

    async def items_end(self) -> int:
        """How many records news.items holds (the sum of its end offsets): one list-offsets
        request, where reading the topic would cost a consumer of ~1,500 messages a second."""
        if self._consumer is None:
            return 0
        partitions = self._consumer.assignment()  # news.items is co-partitioned with news.published
        tps = [TopicPartition(f"p{self.tag}.items", tp.partition) for tp in partitions]
        return sum((await self._consumer.end_offsets(tps)).values())


async def _consumer_for(bootstrap: str, topics: list[str], max_wait_ms: int) -> AIOKafkaConsumer:
    """A group-less consumer on every partition of ``topics``, from the beginning, once they exist."""
    while True:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=max_wait_ms)
        with contextlib.suppress(KafkaError):
            await consumer.start()
            tps = [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            if {tp.topic for tp in tps} == set(topics):
                consumer.assign(tps)
                await consumer.seek_to_beginning()
                return consumer
        await asyncio.sleep(0.1)  # aiokafka 0.14: a stop right after the start re-raises a cancel
        await consumer.stop()
        await asyncio.sleep(0.5)


class Probe:
    """A bare produce -> consume hop through the broker, with the stages' fetch settings."""

    def __init__(self, bootstrap: str, topic: str, max_wait_ms: int, linger_ms: int) -> None:
        self.delays: list[tuple[float, float]] = []  # (sent at, delay)
        self._bootstrap, self._topic = bootstrap, topic
        self._max_wait_ms, self._linger_ms = max_wait_ms, linger_ms

    async def run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all", linger_ms=self._linger_ms)
        await producer.start()
        consumer: AIOKafkaConsumer | None = None
        try:
            await producer.send_and_wait(self._topic, b"0")  # auto-creates the probe topic
            consumer = await _consumer_for(self._bootstrap, [self._topic], self._max_wait_ms)
            receiving = asyncio.create_task(self._receive(consumer))
            try:
                while True:
                    await producer.send(self._topic, str(time.time()).encode())
                    await asyncio.sleep(PROBE_EVERY_S)
            finally:
                receiving.cancel()
        finally:
            if consumer is not None:
                await consumer.stop()
            await producer.stop()

    async def _receive(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                now = time.time()
                for record in records:
                    with contextlib.suppress(ValueError):
                        sent = float(record.value or b"")
                        if sent > 1:
                            self.delays.append((sent, now - sent))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _row(name: str, values: list[float]) -> str:
    if not values:
        return f"  {name:<18} -"
    ms = [v * 1000 for v in values]
    return f"  {name:<18} p50 {_pct(ms, 0.5):7.1f}  p99 {_pct(ms, 0.99):7.1f}  max {max(ms):7.1f} ms"


async def run_mode(
    mode: str, env: dict[str, str], bootstrap: str, port: int, workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    tag = f"{mode[0]}{uuid.uuid4().hex[:6]}"
    config = _config(workdir, tag, bootstrap, port, args.feeds)
    timing = kafka_timing(env)  # as `ingestor run` converts them (ingestor/kafka/connection.py)
    max_wait_ms, linger_ms = int(timing["max_wait"] * 1000), int(timing["linger"] * 1000)
    tap = Tap(bootstrap, tag)
    probe = Probe(bootstrap, f"p{tag}.probe", max_wait_ms, linger_ms)
    log_path = workdir / f"{tag}-daemon.log"
    with log_path.open("wb") as log:
        daemon = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ingestor",
            "run",
            "--config",
            str(config),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            env={**os.environ, **env},
        )
    tasks = [asyncio.create_task(tap.run()), asyncio.create_task(probe.run())]
    try:
        deadline = time.monotonic() + 120
        while not tap.samples_at and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if not tap.samples_at:
            raise RuntimeError(f"{mode}: nothing published in 120 s; see {log_path}")
        await asyncio.sleep(args.warmup)
        items_before = await tap.items_end()
        since = time.time()
        await asyncio.sleep(args.seconds)
        until = time.time()
        items_in = await tap.items_end() - items_before
        await asyncio.sleep(3)  # the last ones of the window reach the tap
    finally:
        daemon.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(daemon.wait(), 15)
        if daemon.returncode is None:
            daemon.kill()
            await daemon.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    samples = tap.samples(since, until)
    probe_delays = [delay for sent, delay in probe.delays if since <= sent < until]
    totals = [s.total for s in samples]
    rate = len(samples) / args.seconds
    print(f"[{mode}] {rate:.0f} items/s published, {items_in / args.seconds:.0f}/s into items")
    print(_row("fetch -> published", totals))
    print(_row("  fetch -> raw", [s.fetch_raw for s in samples if s.fetch_raw is not None]))
    print(_row("  raw -> items", [s.raw_items for s in samples if s.raw_items is not None]))
    print(_row("  items -> published", [s.items_published for s in samples if s.items_published is not None]))
    print(_row("published -> bench", [s.published_bench for s in samples]))
    print(_row("broker probe (1 hop)", probe_delays))
    share = (
        2 * statistics.median(probe_delays) / statistics.median(totals) if probe_delays and totals else None
    )
    if share is not None:
        print(f"  broker's share of the p50: {share:.0%} (2 hops x the probe's p50)", flush=True)
    return {
        "mode": mode,
        "items_per_s": round(len(samples) / args.seconds),
        "p50_ms": round(_pct(totals, 0.5) * 1000, 1),
        "p99_ms": round(_pct(totals, 0.99) * 1000, 1),
        "max_ms": round(max(totals) * 1000, 1) if totals else None,
        "probe_p50_ms": round(_pct(probe_delays, 0.5) * 1000, 1),
        "probe_p99_ms": round(_pct(probe_delays, 0.99) * 1000, 1),
        "broker_share_p50": round(share, 2) if share is not None else None,
    }


async def main(args: argparse.Namespace, workdir: Path) -> int:
    print(f"logs in {workdir}", flush=True)
    port = free_port("127.0.0.1")
    server = multiprocessing.get_context("spawn").Process(
        target=serve, args=(port, args.rate, args.window, time.time()), daemon=True
    )
    server.start()
    broker_port = free_port("127.0.0.1")
    with (workdir / "broker.log").open("wb") as log:
        broker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ingestor",
            "broker",
            "--port",
            str(broker_port),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
        )
    results = []
    try:
        for attempt in range(600):  # both listening
            try:
                for p in (port, broker_port):
                    _, writer = await asyncio.open_connection("127.0.0.1", p)
                    writer.close()
                break
            except OSError:
                await asyncio.sleep(0.1 if attempt < 599 else 0)
        modes = [("before", BEFORE), ("now", {})] if args.compare else [("now", {})]
        for mode, env in modes:
            results.append(await run_mode(mode, env, f"127.0.0.1:{broker_port}", port, workdir, args))
    finally:
        broker.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(broker.wait(), 15)
        if broker.returncode is None:
            broker.kill()
        server.terminate()
    print(json.dumps(results))
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feeds", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20.0, help="new entries per feed per second")
    parser.add_argument("--window", type=int, default=30, help="entries a feed shows (> rate x poll gap)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds after the first publication")
    parser.add_argument("--compare", action="store_true", help="the settings before the tuning first")
    parser.add_argument("--workdir", help="where configs and logs go (default: a new temporary folder)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    folder = Path(arguments.workdir or tempfile.mkdtemp(prefix="pipeline-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    sys.exit(asyncio.run(main(arguments, folder)))
