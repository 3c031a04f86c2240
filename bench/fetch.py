"""Fetch-stage benchmark: many simulated feeds on a loopback server, fetched by the fetch stage in
``--processes`` processes (sharing the feeds through the consumer group, as ``fetch.processes``
does), produced to the embedded broker; then, in the same run, a bare aiohttp conditional-GET
loop against the same server, and the server's own capacity.

    python bench/fetch.py --feeds 100000 --rate 5000 --seconds 20
    python bench/fetch.py --feeds 100000 --rate 4000 --seconds 20      # p99 lateness below saturation
    python bench/fetch.py --feeds 100000 --rate 10000 --seconds 20 --loop asyncio   # the ceiling
    python bench/fetch.py --feeds 1000000 --rate 5000 --seconds 20 --bare-seconds 0   # RSS at 1M

The server runs in its own process and counts the requests it answered (that count is printed
next to the fetchers' own).  It serves ``/f/<i>``: 304 to the right ETag for most feeds, a
changing body every 10 s for 3%, 0.5 s slow for 1%, 500 for 1%.  Each feed has its own host
name (``h<i mod hosts>.bench.test``, resolved by a static resolver to one of
``SERVER_ADDRESSES`` loopback addresses, 127.0.0.1-127.0.0.32, on all of which the server
listens: nothing leaves loopback) so the per-host cap and the connection budget apply as in
the wild.  One address would not do at a million feeds: every connection to one address and
port needs its own local port, and the ~28,000 of the ephemeral range run out.  Feeds start
warm: their definitions are on the feeds topic and their fetch state (validators, next due
time spread over one interval from after the takeover (``seed_state``, written again before
each event loop's processes start), last written over one ``fetch.state_refresh`` before the
window) on the fetch-state topic, as a running fetcher leaves them, so the window writes state
records at a running fetcher's rate; the window starts after one interval, once every host
has its connection.  Each fetch process runs as ``ingestor run`` runs it: ``fetch.event_loop``
(``--loop``, ``both`` measures asyncio and uvloop one after the other in the same run) and the
raised GC threshold.

Prints, for each loop: fetches/s counted by the fetchers (into the broker) and by the server,
CPU seconds per 1,000 fetches and RSS of all fetch processes, p99 lateness, the outcomes and
the slots of feeds' cadences passed over (feeds too late for their next slot: an overload);
then the bare
loop (one process, ``--bare-concurrency`` in flight, the same conditional GETs, nothing
else) and the ratio; then the server alone under ``--capacity-clients`` bare loops at once,
which shows it can serve more than the fetchers ask.  ``--reader-feeds N`` adds the
comparison with lemon24/reader (``pip install reader``; off by default).

Sample output (2 cores, nothing else running; numbers on this kind of machine vary by up to 2×
between runs and between machines):

    100000 feeds, 5000 hosts, every 20s; 2 fetch processes; seeded the feeds and their state in 12s
    [asyncio] the fetch processes took all feeds over; 0% of them were overdue by then
    [asyncio] fetches/s: 5070 by the fetchers (into the broker), 4984 answered by the server (target 5000)
    [asyncio] CPU s per 1,000 fetches (all fetch processes): 0.32; RSS 129 + 129 = 258 MiB (PSS, ...: 231 MiB)
    [asyncio] p99 lateness (last 10k dispatches per process): 0.03 s
    [asyncio] outcomes in the window: {'http_5xx': 835, 'not_modified': 97635, 'ok': 3034}
    [uvloop] ... 5064 by the fetchers ... 0.32 ... p99 lateness ... 0.06 s
    bare aiohttp conditional-GET loop (1 process, 64 in flight): 10061/s (10205/s answered by the
        server), 0.099 CPU s per 1,000
    [asyncio] ratio, fetch stage / bare loop: 0.50 in fetches/s (goal >= 0.45) (kept up with the
        5000/s asked: a floor; ask more to see the ceiling); 0.31 in CPU per fetch
    [uvloop] ratio, fetch stage / bare loop: 0.50 in fetches/s (goal >= 0.45) (kept up ...); 0.31 ...
    server capacity (2 bare loops at once, counted at the server): 17200 requests/s

The machine's speed varies by up to 2× within the hour: the same command in a slow phase
(bare loop 6,748/s) once gave 4,337/s asyncio and 4,677/s uvloop, at 0.36–0.39 CPU s per
1,000; in a fast one the bare loop ran 14,684/s, so that a stage which kept up with the
5,000/s asked showed only 0.34 of it.  The stage does what ``--rate`` asks and no more, while the bare
loop runs flat out, so at a rate the stage keeps up with the ratio in fetches/s is only a
floor. Its ceiling: ``--rate 10000 --loop asyncio`` gave 4,956 fetches/s into the broker (4,942
answered by the server), ratio 0.51 against the bare loop of the same run (9,704/s); the two
cores are then full (fetchers, server, broker).

The RSS is read at the end of the window, so a short window reads it before the fetchers
settle: every host's connection open (2,500 per process here: feeds are placed by host),
each feed's attempt history filled (10 attempts; the seeded state carries 3), and the
allocator's free space at its usual level.  ``--seconds 150 --loop asyncio --bare-seconds 0``
reads it settled: 143 + 147 = 289 MiB at 100,000 feeds (PSS 262 MiB: RSS counts the code
both processes share in each of them).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.connection
import os
import random
import resource
import socket
import sys
import tempfile
import time
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from ingestor.config import EmbeddedBrokerConfig, FeedConfig, Settings, load_settings
from ingestor.fetch.feeds import write_feeds
from ingestor.fetch.http import Fetcher
from ingestor.fetch.placement import host_partition
from ingestor.fetch.service import FetchStage
from ingestor.fetch.state import SavedState, encode
from ingestor.kafka import KafkaConnection, ensure_topics
from ingestor.kafka.embedded import EmbeddedBroker, free_port
from ingestor.logging import configure_logging
from ingestor.tools.fetchers import run_loop, tune_gc

BODY = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>%d</title>'
    b"<item><guid>%d</guid></item></channel></rss>"
)
STATE_TOPIC = "bench.fetch-state"
#: the loopback addresses the feed server listens on (Linux routes all of 127.0.0.0/8 to lo)
SERVER_ADDRESSES = [f"127.0.0.{n}" for n in range(1, 33)]
#: fetching at least this share of --rate means the stage kept up: its ratio is a floor
KEPT_UP_SHARE = 0.97


#: What the bench server answers: the status lines and headers, formatted per response.
_NOT_MODIFIED = b"HTTP/1.1 304 Not Modified\r\nETag: %s\r\nContent-Length: 0\r\n\r\n"
_FAILED = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
_OK = b"HTTP/1.1 200 OK\r\nETag: %s\r\nContent-Type: application/rss+xml\r\nContent-Length: %d\r\n\r\n%s"
_BAD = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class FeedServer(asyncio.Protocol):
    """One keep-alive connection of the bench's feed server.

    Hand-written on purpose, and only for the bench: it answers the one request shape the
    fetchers and the bare loop send (``GET /f/<i>``, one at a time per connection, no body)
    with the least CPU it can, so that the server is not what the fetchers are measured
    against.  An aiohttp ``web.Application`` costs about 0.2 ms of CPU per request, which on
    2 shared cores is CPU taken from the fetchers (and caps the server near 4,600/s).
    """

    def __init__(self, counter: list[int], answered: Synchronized[int]) -> None:
        self._buffer = b""
        self._counter = counter
        self._answered = answered
        self._transport: Any = None  # an asyncio.Transport, or uvloop's (not a subclass)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
            self._answer(head)

    def _answer(self, head: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        line, _, headers = head.partition(b"\r\n")
        parts = line.split(b" ")
        path = parts[1] if len(parts) == 3 and parts[0] == b"GET" else b""
        if not path.startswith(b"/f/") or not path[3:].isdigit():
            transport.write(_BAD)
            transport.close()
            return
        self._counter[0] += 1
        if self._counter[0] % 64 == 0:
            self._answered.value += 64  # one process writes it: no lock needed
        i = int(path[3:])
        kind = i % 100
        headers = headers.lower()
        # as HTTP/1.1 asks of every server: close after answering a request that says so
        close = b"connection: close" in headers
        if kind == 1:
            self._send(_FAILED, close)
            return
        version = int(time.time() // 10) if kind in (2, 3, 4) else 0
        etag = b'"%d-%d"' % (i, version)
        sent = None
        at = headers.find(b"if-none-match:")
        if at >= 0:
            stop = headers.find(b"\r\n", at)
            sent = headers[at + 14 : stop if stop >= 0 else len(headers)].strip()
        if sent == etag:
            response = _NOT_MODIFIED % etag
        else:
            body = BODY % (i, version)
            response = _OK % (etag, len(body), body)
        if kind == 0:  # the slow feeds
            asyncio.get_running_loop().call_later(0.5, self._late, response, close)
        else:
            self._send(response, close)

    def _late(self, response: bytes, close: bool) -> None:
        if self._transport is not None:
            self._send(response, close)

    def _send(self, response: bytes, close: bool) -> None:
        if close:  # said in the response too, as servers do, so the client does not reuse it
            self._transport.write(response.replace(b"\r\n", b"\r\nConnection: close\r\n", 1))
            self._transport.close()
        else:
            self._transport.write(response)


def serve(port: int, answered: Synchronized[int]) -> None:
    """Per feed i: 1% slow (0.5 s), 1% 500, 3% change every 10 s, the rest never change."""
    counter = [0]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: FeedServer(counter, answered), SERVER_ADDRESSES, port, backlog=4096, reuse_address=True
        )
        async with server:
            await server.serve_forever()

    run_loop(main(), "uvloop")


class LoopbackResolver(AbstractResolver):
    """``h<n>.bench.test`` -> ``SERVER_ADDRESSES[n % 32]``; any other name -> 127.0.0.1."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        number = host.partition(".")[0][1:]
        address = SERVER_ADDRESSES[int(number) % len(SERVER_ADDRESSES)] if number.isdigit() else "127.0.0.1"
        return [
            ResolveResult(hostname=host, host=address, port=port, family=socket.AF_INET, proto=0,
                          flags=socket.AI_NUMERICHOST)
        ]  # fmt: skip

    async def close(self) -> None:
        return None


#: Seconds from the end of the seeding until the fetch processes own every feed, beyond the
#: time it takes to read back what was written: the processes start and join the group.
TAKEOVER_SECONDS = 30.0


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pss_mib() -> float | None:
    """The process's proportional share of its resident pages: a page it shares with the other
    fetch process (the interpreter's and the libraries' code, about 18 MiB each here) counts
    half, so the sum over the fetch processes is their physical memory; RSS counts it in each."""
    try:
        text = Path("/proc/self/smaps_rollup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return None


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fetch_settings(args: argparse.Namespace, address: str, port: int, group: str) -> Settings:
    interval = args.feeds / args.rate
    return load_settings(
        None,
        overrides={
            "kafka": {"bootstrap_servers": address},
            "topics": {"partitions": args.partitions},
            "fetch": {
                "allow_private_networks": True, "retries": 0, "jitter": 0.05, "startup_spread": interval,
                "global_concurrency": args.concurrency, "read_timeout": 5, "total_timeout": 10,
                "max_backoff": interval * 4, "state_topic": STATE_TOPIC, "sharding": True,
                "group_id": group, "processes": 1, "session_timeout": 30, "heartbeat_interval": 3,
            },
            "feeds": [],
        },
    )  # fmt: skip


def fetch_process(settings: Settings, loop: str, conn: multiprocessing.connection.Connection) -> None:
    """One fetch process as ``ingestor run`` runs it (its loop, its GC threshold), reporting to ``conn``."""
    configure_logging("ERROR", "json", stream=open(os.devnull, "w"))  # noqa: SIM115 - for the process
    tune_gc()

    async def main() -> None:
        connection = KafkaConnection(settings.kafka.bootstrap_servers, settings.kafka)
        stage = FetchStage(settings, connection, fetcher=Fetcher(settings.fetch, resolver=LoopbackResolver()))
        await stage.start()
        while not conn.poll():
            health = stage.health()
            conn.send((health.feeds, health.fetches, health.produced, cpu_seconds(), rss_mib(),
                       health.lateness_p99_seconds, health.outcomes, pss_mib(),
                       health.slots_skipped))  # fmt: skip
            await asyncio.sleep(1.0)
        await stage.stop()

    run_loop(main(), loop)  # type: ignore[arg-type]


async def seed_feeds(
    args: argparse.Namespace, connection: KafkaConnection, port: int
) -> tuple[list[FeedConfig], float]:
    """The definitions on the feeds topic; returns them and how long writing them took."""
    interval = args.feeds / args.rate
    hosts = max(1, args.feeds // args.feeds_per_host)
    feeds = [
        FeedConfig(id=f"f{i}", url=f"http://h{i % hosts}.bench.test:{port}/f/{i}", interval=interval,
                   min_interval=interval)
        for i in range(args.feeds)
    ]  # fmt: skip
    began = time.monotonic()
    await write_feeds(connection, "news.feeds", [(f.id, f) for f in feeds], placed={})  # a new topic
    return feeds, time.monotonic() - began


async def seed_state(
    args: argparse.Namespace, connection: KafkaConnection, feeds: list[FeedConfig], took: float
) -> float:
    """Warm state on the fetch-state topic, as a running fetcher leaves it; returns when the
    first feed is due (their due times are spread over one interval from then).  Written again
    before each event loop's processes start, so that the second does not take over what the
    first left when it stopped: the state of a fetcher down for longer than the interval.

    The first due time is after the fetch processes will have taken the feeds over: writing the
    state takes about as long as writing the definitions did (``took``), reading both back about
    as long again, and starting the processes and joining the group some seconds more.  Due
    times spread from the start of the seeding instead were mostly past by then, and the
    window measured the round after a catch-up, not a running fetcher."""
    interval = args.feeds / args.rate
    producer = await connection.start_producer()
    now, rand = time.time(), random.Random(7)
    first_due = now + 2 * took + TAKEOVER_SECONDS
    refresh = load_settings(None).fetch.state_refresh
    warmup = args.warmup if args.warmup is not None else interval + 5
    try:
        futures = []
        for i, feed in enumerate(feeds):
            due = first_due + interval * rand.random()
            # as a running fetcher leaves them at the window's start: each written (refreshed) at
            # some time over the last fetch.state_refresh, so the window writes them at its rate
            saved_at = now + warmup - refresh * rand.random()
            state = SavedState(url=feed.url, etag=f'"{i}-0"', last_modified=None, sha256=None,
                               failures=0, change_interval=None, last_change_at=None, next_due=due,
                               saved_at=saved_at)  # fmt: skip
            # in its feed's partition, as the stage writes it (co-located: ingestor/fetch/shard.py)
            partition = host_partition(feed.url, args.partitions)
            sent = await producer.send(STATE_TOPIC, encode(state), key=feed.id.encode(), partition=partition)
            futures.append(sent)
        for future in futures:
            await future
    finally:
        await producer.stop()
    return first_due


async def measure_fetchers(
    args: argparse.Namespace,
    address: str,
    port: int,
    answered: Any,
    loop: str,
    first_due: float | None = None,
) -> tuple[float, float]:
    """Run ``--processes`` fetch processes; print their numbers; return (fetches/s, CPU s per 1,000)."""
    ctx = multiprocessing.get_context("spawn")
    settings = fetch_settings(args, address, port, group=f"bench-fetch-{loop}-{os.getpid()}")
    pipes, procs = [], []
    for _ in range(args.processes):
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=fetch_process, args=(settings, loop, theirs), daemon=True)
        proc.start()
        pipes.append(ours)
        procs.append(proc)
    latest: list[tuple[Any, ...] | None] = [None] * len(pipes)

    def drain() -> list[tuple[Any, ...]]:
        for n, pipe in enumerate(pipes):
            while pipe.poll():
                latest[n] = pipe.recv()
        return [r for r in latest if r is not None]

    deadline = time.monotonic() + 600
    while sum(r[0] for r in drain()) < args.feeds or len(drain()) < len(pipes):
        if time.monotonic() > deadline:
            raise SystemExit(
                f"[{loop}] the fetch processes did not take all feeds: {[r[0] for r in drain()]}"
            )
        await asyncio.sleep(0.5)
    interval = args.feeds / args.rate
    if first_due is not None:  # how many of the seeded due times had passed (caught up at once)
        late = min(1.0, max(0.0, (time.time() - first_due) / interval))
        print(f"[{loop}] the fetch processes took all feeds over; {late:.0%} of them were overdue by then")
        await asyncio.sleep(max(0.0, first_due - time.time()))  # the warm-up counts from the first due
    await asyncio.sleep(args.warmup if args.warmup is not None else interval + 5)
    first, served0, t0 = drain(), answered.value, time.monotonic()
    await asyncio.sleep(args.seconds)
    last, served1, elapsed = drain(), answered.value, time.monotonic() - t0
    for pipe in pipes:
        pipe.send("stop")
    for proc in procs:
        proc.join(30)
    fetches = sum(b[1] - a[1] for a, b in zip(first, last, strict=True))
    cpu = sum(b[3] - a[3] for a, b in zip(first, last, strict=True))
    rss = [r[4] for r in last]
    p99 = [r[5] for r in last if r[5] is not None]
    outcomes: dict[str, int] = {}
    for a, b in zip(first, last, strict=True):
        for key, n in b[6].items():
            outcomes[key] = outcomes.get(key, 0) + n - a[6].get(key, 0)
    rate = fetches / elapsed
    per = 1000 * cpu / max(fetches, 1)
    print(f"[{loop}] fetches/s: {rate:.0f} by the fetchers (into the broker), "
          f"{(served1 - served0) / elapsed:.0f} answered by the server (target {args.rate:.0f})")  # fmt: skip
    pss = [r[7] for r in last if r[7] is not None]
    shared = (
        f" (PSS, pages shared between them counted once: {sum(pss):.0f} MiB)" if len(pss) == len(last) else ""
    )
    print(f"[{loop}] CPU s per 1,000 fetches (all fetch processes): {per:.2f}; RSS "
          f"{' + '.join(f'{m:.0f}' for m in rss)} = {sum(rss):.0f} MiB{shared}")  # fmt: skip
    print(f"[{loop}] p99 lateness (last 10k dispatches per process): {max(p99):.2f} s" if p99 else "p99: n/a")
    skipped = sum(b[8] - a[8] for a, b in zip(first, last, strict=True))
    print(f"[{loop}] outcomes in the window: {dict(sorted(outcomes.items()))}; "
          f"slots passed over (a feed too late for its next one): {skipped}")  # fmt: skip
    return rate, per


def bare_loop(port: int, feeds: int, concurrency: int, seconds: float, out: Any) -> None:
    """The floor: aiohttp alone, conditional GETs of the same URLs, no schedule, no broker."""

    async def main() -> None:
        done = 0
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker(k: int) -> None:
                nonlocal done
                i = k
                while time.monotonic() < stop:
                    headers = {"If-None-Match": f'"{i}-0"'}
                    async with session.get(f"http://127.0.0.1:{port}/f/{i}", headers=headers) as response:
                        await response.read()
                    done += 1
                    i = (i + concurrency * 7 + 1) % feeds
                    if i % 100 == 0:  # the slow feeds measure the server's sleep, not the client
                        i += 2

            stop = time.monotonic() + seconds
            cpu0 = cpu_seconds()
            await asyncio.gather(*(worker(2 + k) for k in range(concurrency)))
            out.put((done / seconds, 1000 * (cpu_seconds() - cpu0) / max(done, 1)))

    asyncio.run(main())


async def bare_loops(
    args: argparse.Namespace, port: int, answered: Any, clients: int
) -> tuple[float, float, float]:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    seconds = args.bare_seconds
    procs = [ctx.Process(target=bare_loop, args=(port, args.feeds, args.bare_concurrency, seconds, out))
             for _ in range(clients)]  # fmt: skip
    for proc in procs:
        proc.start()
    await asyncio.sleep(2.0)  # the interpreter starts; the loops count from their own start
    served0, t0 = answered.value, time.monotonic()
    await asyncio.sleep(seconds - 3.0)
    served = (answered.value - served0) / (time.monotonic() - t0)
    results = [await asyncio.to_thread(out.get) for _ in procs]
    for proc in procs:
        proc.join(10)
    return sum(r[0] for r in results), sum(r[1] for r in results) / len(results), served


async def run(args: argparse.Namespace) -> None:
    port = free_port("127.0.0.1")
    ctx = multiprocessing.get_context("spawn")
    answered = ctx.Value("q", 0, lock=False)
    server = ctx.Process(target=serve, args=(port, answered), daemon=True)
    server.start()
    broker = EmbeddedBroker(EmbeddedBrokerConfig())
    address = await broker.start()
    base = load_settings(None, overrides={"kafka": {"bootstrap_servers": address},
                                          "topics": {"partitions": args.partitions}})  # fmt: skip
    connection = KafkaConnection(address, base.kafka)
    await ensure_topics(connection, base.topics, compacted=[STATE_TOPIC])
    for _ in range(100):  # wait for the server process
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.1)
    started = time.monotonic()
    feeds, took = await seed_feeds(args, connection, port)
    first_due = await seed_state(args, connection, feeds, took)
    hosts = max(1, args.feeds // args.feeds_per_host)
    print(f"{args.feeds} feeds, {hosts} hosts, every {args.feeds / args.rate:.0f}s; {args.processes} fetch "
          f"processes; seeded the feeds and their state in {time.monotonic() - started:.0f}s")  # fmt: skip
    loops = ["asyncio", "uvloop"] if args.loop == "both" else [args.loop]
    ours = {}
    for n, loop in enumerate(loops):
        if n > 0:  # the state as a running fetcher leaves it, not as the previous loop's stop did
            first_due = await seed_state(args, connection, feeds, took)
        ours[loop] = await measure_fetchers(args, address, port, answered, loop, first_due)
    if args.bare_seconds > 0:
        rate, per, served = await bare_loops(args, port, answered, 1)
        print(f"bare aiohttp conditional-GET loop (1 process, {args.bare_concurrency} in flight): "
              f"{rate:.0f}/s ({served:.0f}/s answered by the server), {per:.3f} CPU s per 1,000")  # fmt: skip
        for loop, (our_rate, our_per) in ours.items():
            # Paced at --rate, the stage does what it is asked and no more; the bare loop runs flat out.
            paced = our_rate >= KEPT_UP_SHARE * args.rate
            note = f" (kept up with the {args.rate:.0f}/s asked: a floor; ask more to see the ceiling)"
            print(f"[{loop}] ratio, fetch stage / bare loop: {our_rate / rate:.2f} in fetches/s "
                  f"(goal >= 0.45){note if paced else ''}; {per / our_per:.2f} in CPU per fetch")  # fmt: skip
        if args.capacity_clients > 0:
            rate, _, served = await bare_loops(args, port, answered, args.capacity_clients)
            print(f"server capacity ({args.capacity_clients} bare loops at once, counted at the server): "
                  f"{served:.0f} requests/s")  # fmt: skip
    if args.reader_feeds > 0:
        n = args.reader_feeds
        theirs = reader_on_subset(port, n, args.reader_workers)
        if theirs is not None:
            mine = await ours_on_subset(address, port, n, args.concurrency, seconds=5)
            print(f"fetch stage polling the {n}-feed subset: {mine:.0f} feeds/s; "
                  f"reader: {theirs:.0f} feeds/s; ratio {mine / theirs:.1f}x (goal >= 5x)")  # fmt: skip
    await broker.stop()
    server.terminate()


async def ours_on_subset(address: str, port: int, n: int, concurrency: int, seconds: float) -> float:
    """The fetch stage polling ``/f/0..n-1`` on 127.0.0.1 back to back (interval 0.3 s, so it is
    never waiting on the schedule), validators warm; fetches/s over ``seconds`` after a warm-up.
    One host, so the per-host cap is lifted to the global one: reader has none."""
    settings = load_settings(
        None,
        overrides={
            "kafka": {"bootstrap_servers": address},
            "fetch": {
                "allow_private_networks": True, "retries": 0, "jitter": 0.05, "startup_spread": 0.3,
                "min_interval": 0.05, "global_concurrency": concurrency, "per_host_concurrency": concurrency,
                "read_timeout": 5, "total_timeout": 10, "state_topic": None, "sharding": False,
            },
            "feeds": [{"id": f"r{i}", "url": f"http://127.0.0.1:{port}/f/{i}", "interval": 0.3,
                       "min_interval": 0.3} for i in range(n)],
        },
    )  # fmt: skip
    connection = KafkaConnection(address, settings.kafka)
    stage = FetchStage(settings, connection, fetcher=Fetcher(settings.fetch, resolver=LoopbackResolver()))
    for i in range(n):
        stage._states[f"r{i}"].etag = f'"{i}-0"'
    await stage.start()
    await asyncio.sleep(2)
    fetches0, started = stage.health().fetches, time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (stage.health().fetches - fetches0) / (time.perf_counter() - started)
    await stage.stop()
    return rate


def reader_on_subset(port: int, n: int, workers: int, passes: int = 3) -> float | None:
    """lemon24/reader over the same feeds: a cold pass for validators, then timed warm passes."""
    try:
        from reader import make_reader
    except ImportError:
        print("reader comparison skipped: lemon24/reader is not installed (pip install reader)")
        return None
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        os.environ.pop(name, None)  # requests would honour them; only loopback may be contacted
    os.environ["NO_PROXY"] = "127.0.0.1"
    with tempfile.TemporaryDirectory() as tmp:
        reader = make_reader(str(Path(tmp) / "reader.sqlite"))
        for i in range(n):
            reader.add_feed(f"http://127.0.0.1:{port}/f/{i}")
        reader.update_feeds(workers=workers, scheduled=False)  # cold: every feed downloaded and parsed
        started = time.perf_counter()
        for _ in range(passes):  # warm: conditional requests, as ours
            reader.update_feeds(workers=workers, scheduled=False)
        elapsed = time.perf_counter() - started
        reader.close()
    return passes * n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feeds", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000, help="target fetches/s (sets the interval)")
    parser.add_argument("--seconds", type=float, default=20, help="measurement window")
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="default: one interval + 5 s",
    )
    parser.add_argument("--processes", type=int, default=len(os.sched_getaffinity(0)), help="fetch processes")
    parser.add_argument("--loop", choices=["uvloop", "asyncio", "both"], default="both")
    parser.add_argument("--partitions", type=int, default=12, help="of the feeds and fetch-state topics")
    parser.add_argument("--concurrency", type=int, default=200, help="fetch.global_concurrency per process")
    parser.add_argument("--feeds-per-host", type=int, default=20)
    parser.add_argument("--bare-seconds", type=float, default=10, help="0: skip the bare loop and capacity")
    parser.add_argument("--bare-concurrency", type=int, default=64)
    parser.add_argument("--capacity-clients", type=int, default=2, help="bare loops at once for capacity")
    parser.add_argument("--reader-feeds", type=int, default=0, help="N > 0: compare with lemon24/reader")
    parser.add_argument("--reader-workers", type=int, default=16)
    args = parser.parse_args()
    if 0 < args.bare_seconds < 5:  # the server counts from 2 s in until 1 s before the end
        parser.error("--bare-seconds is 0 (no bare loop) or at least 5")
    configure_logging("ERROR", "json", stream=open(os.devnull, "w"))  # noqa: SIM115 - for the process
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
