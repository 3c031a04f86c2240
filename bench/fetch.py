"""Fetch-stage benchmark: many simulated feeds on a loopback server, produced to the embedded broker.

    python bench/fetch.py --feeds 100000 --rate 1000 --seconds 30

The server runs in its own process (so the fetcher's CPU is measured alone) and serves
``/f/<i>``: mostly 304 to the right ETag, some 200 with a changing body, some slow, some 500.
Each feed has its own host name (all resolved to 127.0.0.1 by a static resolver, nothing
leaves loopback) so the per-host cap applies as it would in the wild.  Feeds start "warm"
(validators as the fetch-state topic would restore them) and their first fetches are spread
over one interval, so the window measures the steady state.

Prints sustained fetches/s, CPU seconds per 1,000 fetches, fetcher RSS, p99 lateness
against the schedule.  Then, in the same run, the comparison with lemon24/reader: its
``update_feeds(workers=N)`` over a 1,000-feed subset of the same server (a cold pass to get
validators, then timed conditional passes), and the fetch stage polling the same 1,000 URLs
with the same validators back to back (reader's passes each wait for their slowest feed;
the stage has no such barrier, which is part of what is compared): feeds/s for both and the
ratio.  reader is not a project dependency: ``pip install reader`` for that part, which is
skipped with a message otherwise.  Both sides fetch ``http://127.0.0.1:<port>/f/<i>`` only.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from ingestor.config import EmbeddedBrokerConfig, load_settings
from ingestor.fetch.http import Fetcher
from ingestor.fetch.service import FetchStage
from ingestor.kafka import KafkaConnection, ensure_topics
from ingestor.kafka.embedded import EmbeddedBroker, free_port
from ingestor.logging import configure_logging

BODY = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>%d</title>'
    b"<item><guid>%d</guid></item></channel></rss>"
)


def serve(port: int) -> None:
    """Per feed i: 1% slow (0.5 s), 1% 500, 3% change every 10 s, the rest never change."""

    async def handler(request: web.Request) -> web.Response:
        i = int(request.match_info["i"])
        kind = i % 100
        if kind == 0:
            await asyncio.sleep(0.5)
        if kind == 1:
            return web.Response(status=500)
        version = int(time.time() // 10) if kind in (2, 3, 4) else 0
        etag = f'"{i}-{version}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(
            body=BODY % (i, version), content_type="application/rss+xml", headers={"ETag": etag}
        )

    app = web.Application()
    app.router.add_get("/f/{i}", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=4096)


class LoopbackResolver(AbstractResolver):
    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET, proto=0,
                          flags=socket.AI_NUMERICHOST)
        ]  # fmt: skip

    async def close(self) -> None:
        return None


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(args: argparse.Namespace) -> None:
    port = free_port("127.0.0.1")
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(port,), daemon=True)
    server.start()
    broker = EmbeddedBroker(EmbeddedBrokerConfig())
    address = await broker.start()
    interval = args.feeds / args.rate
    hosts = max(1, args.feeds // args.feeds_per_host)
    feeds = [
        {"id": f"f{i}", "url": f"http://h{i % hosts}.bench.test:{port}/f/{i}", "interval": interval,
         "min_interval": interval}
        for i in range(args.feeds)
    ]  # fmt: skip
    settings = load_settings(
        None,
        overrides={
            "kafka": {"bootstrap_servers": address},
            "fetch": {
                "allow_private_networks": True, "retries": 0, "jitter": 0.05, "startup_spread": interval,
                "global_concurrency": args.concurrency, "read_timeout": 5, "total_timeout": 10,
                "max_backoff": interval * 4, "state_topic": None, "sharding": False,
            },
            "feeds": feeds,
        },
    )  # fmt: skip
    connection = KafkaConnection(address, settings.kafka)
    await ensure_topics(connection, settings.topics)
    for _ in range(100):  # wait for the server process
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.1)
    rss_before = rss_mib()
    stage = FetchStage(settings, connection, fetcher=Fetcher(settings.fetch, resolver=LoopbackResolver()))
    for i in range(args.feeds):  # warm validators, as the fetch-state topic restores them
        stage._states[f"f{i}"].etag = f'"{i}-0"'
    await stage.start()
    grown = rss_mib() - rss_before
    print(f"{args.feeds} feeds, {hosts} hosts, every {interval:.0f}s; RSS {rss_mib():.0f} MiB (+{grown:.0f})")
    await asyncio.sleep(args.warmup)
    fetches0, cpu0, t0 = stage.health().fetches, cpu_seconds(), time.monotonic()
    await asyncio.sleep(args.seconds)
    health = stage.health()
    fetches, cpu, elapsed = health.fetches - fetches0, cpu_seconds() - cpu0, time.monotonic() - t0
    await stage.stop()
    print(f"sustained fetches/s: {fetches / elapsed:.0f}  (target {args.rate})")
    print(f"CPU s per 1,000 fetches (fetcher process): {1000 * cpu / max(fetches, 1):.2f}")
    print(f"fetcher RSS: {rss_mib():.0f} MiB")
    p99 = health.lateness_p99_seconds
    print(f"p99 lateness (last 10k dispatches): {p99:.3f} s" if p99 is not None else "p99 lateness: n/a")
    print(f"outcomes: {health.outcomes}  produced: {health.produced}")
    if args.reader_feeds > 0:
        n = args.reader_feeds
        ours = await ours_on_subset(address, port, n, args.concurrency, seconds=5)
        print(f"fetch stage polling the {n}-feed subset (conditional, to the broker): {ours:.0f} feeds/s")
        theirs = reader_on_subset(port, n, args.reader_workers)
        if theirs is not None:
            print(f"reader update_feeds(workers={args.reader_workers}), same feeds: {theirs:.0f} feeds/s")
            print(f"ratio: {ours / theirs:.1f}x reader (goal >= 5x)")
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
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--feeds-per-host", type=int, default=20)
    parser.add_argument("--reader-feeds", type=int, default=1000, help="0: skip the reader comparison")
    parser.add_argument("--reader-workers", type=int, default=16)
    args = parser.parse_args()
    configure_logging("ERROR", "json", stream=open(os.devnull, "w"))  # noqa: SIM115 - for the process
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
