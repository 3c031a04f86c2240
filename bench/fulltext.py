"""Full text: teaser entries to published full-text items, per second, and how good the text is.

Why: a teaser entry costs a page fetch, a robots.txt check, an extraction in a parse worker and
two more hops through the broker before it is published (docs/architecture.md, "Full text
behind feed entries").  This measures that whole path on real pages, and checks in the same
run that the text which reaches ``news.published`` is as good as the best generic extractor
given the same pages directly: a loss anywhere on the way (a wrong page, a truncated body, a
fallback to the teaser) shows up as a lower F1.

The site: ``bench/teaser_site.py`` serves the pages of the article-extraction dev set
(``--corpus``, default ``../shared/corpus/articles-dev/`` beside the checkout) at their own
paths on 127.0.0.1, behind one RSS feed of one-line teasers (``full_text: auto``).  The
pipeline: ``ingestor run``'s daemon in this process, all three stages on the embedded broker
(parse workers as in production: one per core unless ``--workers``).  After a warm-up entry
has gone all the way through (broker, groups and workers up), the other N entries are listed
in the feed at once and the clock runs:

* **entries/s**: N / (the last full-text item seen on ``news.published`` - the first time a
  feed body listing the entries was served); also each entry's latency from that moment to
  its item, p50 and max;
* **body precision / recall / F1** of the published items against the benchmark's ground
  truth, by the benchmark's own metric (``bench/articles.py``'s scoring, imported), next to
  ``trafilatura.extract`` run directly on the same pages in the same run (after the timed
  part, so it does not compete for the cores).  An entry published with the feed's text (a
  fallback) is scored with that text; one never published scores as empty.

The site shares one origin, so ``fetch.per_host_concurrency`` is raised to
``full_text.concurrency`` (``--concurrency``), as many sites at once would allow.

    python bench/fulltext.py                 # all 180 pages after the warm-up one, one feed
    python bench/fulltext.py --feeds 8       # the same entries spread over 8 feeds
    python bench/fulltext.py --limit 40      # a quick look
    python bench/fulltext.py --log run.log   # keep the daemon's JSON log lines (INFO)

The article pages of one feed are parsed concurrently (parse keeps them in order per entry,
not per feed: ``consumers/parse/service.py``, ``parse_order_key``), so one feed and several
feeds use the parse workers alike; the rate is bound by the extraction's CPU (100-700 ms per
page on these real pages, 2 cores).

Sample output (2 cores, nothing else running; all 180 published with the page's text):

    $ python bench/fulltext.py
    180 teaser entries in 1 feed(s) -> articles-dev pages on 127.0.0.1; embedded broker, all stages \
in one process, 2 parse worker(s), full_text.concurrency 16
    published: 180 of 180 (body_source page: 180)
    full-text entries/s: 25.0  (180 in 7.2 s)
    entry listed -> published: p50 4.28 s, max 7.19 s
    |                        |           pipeline |  trafilatura 2.3.1 |
    |------------------------|--------------------|--------------------|
    | body precision         |              0.962 |              0.944 |
    | body recall            |              0.969 |              0.978 |
    | body F1                |              0.966 |              0.961 |
    | pages with empty body  |                  0 |                  0 |

    $ python bench/fulltext.py --feeds 8
    ...
    full-text entries/s: 22.2  (180 in 8.1 s)
    entry listed -> published: p50 4.42 s, max 7.64 s
    (the same body table)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import trafilatura  # noqa: E402

from bench.articles import Output, Scores, load_evaluator, run_trafilatura, score  # noqa: E402
from bench.teaser_site import DEFAULT_CORPUS, TeaserSite, load_articles, make_entries  # noqa: E402
from ingestor.config import Settings, load_settings  # noqa: E402
from ingestor.logging import configure_logging  # noqa: E402


def bench_settings(feed_urls: list[str], args: argparse.Namespace) -> Settings:
    """The embedded broker, the teaser feeds polled every second, full text on for them."""
    return load_settings(
        None,
        overrides={
            "kafka": {"bootstrap_servers": "embedded"},
            "topics": {"partitions": 3, "replication_factor": 1, "create": True},
            "fetch": {
                "allow_private_networks": True,
                "startup_spread": 0,
                "min_interval": 0.5,
                "per_host_concurrency": args.concurrency,
            },
            "parse": {"workers": args.workers},
            "full_text": {"concurrency": args.concurrency, "deadline": args.deadline},
            "feeds": [
                {
                    "id": f"teasers-{k}",
                    "url": url,
                    "interval": 1,
                    "min_interval": 0.5,
                    "format": "feed",
                    "full_text": "auto",
                }
                for k, url in enumerate(feed_urls)
            ],
        },
    )


async def watch(connection: Any, topic: str, seen: dict[str, tuple[float, dict[str, Any]]]) -> None:
    """Every item on ``topic`` from its beginning: url -> (arrival, item), first arrival kept."""
    async with connection.reader() as reader:
        while not (tps := await reader.partitions_of(topic)):
            await asyncio.sleep(0.1)
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        while True:
            batch = await reader.getmany(timeout_ms=100)
            now = time.monotonic()
            for records in batch.values():
                for record in records:
                    with contextlib.suppress(ValueError, TypeError):
                        item = json.loads(record.value)
                        seen.setdefault(str(item.get("url")), (now, item))


async def wait_for(urls: set[str], seen: dict[str, Any], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while not urls <= seen.keys():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def run_pipeline(
    args: argparse.Namespace,
) -> tuple[TeaserSite, dict[str, tuple[float, dict[str, Any]]]]:
    from ingestor.tools.daemon import Daemon

    articles = load_articles(args.corpus)[: (args.limit + 1) if args.limit else None]
    site = TeaserSite(make_entries(articles), window=len(articles), feeds=args.feeds)
    base = await site.start()
    daemon = Daemon(bench_settings([base + path for path in site.feed_paths], args))
    seen: dict[str, tuple[float, dict[str, Any]]] = {}
    watcher: asyncio.Task[None] | None = None
    try:
        await daemon.start()
        assert daemon.connection is not None
        watcher = asyncio.create_task(watch(daemon.connection, daemon.settings.topics.published, seen))
        warm = site.add(1)
        if not await wait_for({site.url(e) for e in warm}, seen, args.deadline + 60):
            raise SystemExit("the warm-up entry was never published: is full text built and running?")
        site.add(len(site.entries))
        urls = {site.url(e) for e in site.entries[1:]}
        if not await wait_for(urls, seen, args.deadline + 60):
            print(f"only {len(urls & seen.keys())} of {len(urls)} entries published in time", file=sys.stderr)
        return site, seen
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await daemon.stop()
        await site.stop()


def report(args: argparse.Namespace, site: TeaserSite, seen: dict[str, tuple[float, dict[str, Any]]]) -> None:
    entries = site.entries[1:]
    start = min(site.first_listed[e.link_path] for e in entries)
    arrivals = {e.article.key: seen.get(site.url(e)) for e in entries}
    published = {key: hit for key, hit in arrivals.items() if hit is not None}
    sources: dict[str, int] = {}
    for _, item in published.values():
        name = str(item.get("body_source"))
        sources[name] = sources.get(name, 0) + 1
    last = max((at for at, item in published.values() if item.get("body_source") == "page"), default=start)
    full = sources.get("page", 0)
    latencies = sorted(
        seen[site.url(e)][0] - site.first_listed[e.link_path] for e in entries if site.url(e) in seen
    )

    evaluator = load_evaluator(args.corpus)
    truth = {e.article.key: {"url": e.article.url, "articleBody": e.article.truth} for e in entries}
    pipeline = {
        key: Output(body=str(hit[1].get("body") or "")) if hit else Output() for key, hit in arrivals.items()
    }
    alone = {e.article.key: run_trafilatura(e.article.html.decode("utf-8"), e.article.url) for e in entries}
    ours, theirs = score(evaluator, truth, pipeline), score(evaluator, truth, alone)

    workers = args.workers or len(os.sched_getaffinity(0))
    print("$ python bench/fulltext.py " + " ".join(sys.argv[1:]))
    print(
        f"{len(entries)} teaser entries in {args.feeds} feed(s) -> {args.corpus.name} pages on 127.0.0.1; "
        "embedded broker, "
        f"all stages in one process, {workers} parse worker(s), full_text.concurrency {args.concurrency}"
    )
    print(
        f"published: {len(published)} of {len(entries)} "
        + "("
        + ", ".join(f"body_source {k}: {v}" for k, v in sorted(sources.items()))
        + ")"
    )
    print(f"full-text entries/s: {full / max(last - start, 1e-9):.1f}  ({full} in {last - start:.1f} s)")
    if latencies:
        print(
            f"entry listed -> published: p50 {statistics.median(latencies):.2f} s, max {latencies[-1]:.2f} s"
        )
    print_body_table({"pipeline": ours, f"trafilatura {trafilatura.__version__}": theirs})


def print_body_table(columns: dict[str, Scores]) -> None:
    rows = [
        ("body precision", lambda s: f"{s.precision:.3f}"),
        ("body recall", lambda s: f"{s.recall:.3f}"),
        ("body F1", lambda s: f"{s.f1:.3f}"),
        ("pages with empty body", lambda s: f"{s.empty}"),
    ]
    names = list(columns)
    print(f"| {'':<22} | " + " | ".join(f"{n:>18}" for n in names) + " |")
    print(f"|{'-' * 24}|" + "|".join("-" * 20 for _ in names) + "|")
    for label, cell in rows:
        print(f"| {label:<22} | " + " | ".join(f"{cell(columns[n]):>18}" for n in names) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=0, help="time only the first N entries (after warm-up)")
    parser.add_argument("--feeds", type=int, default=1, help="spread the entries over N teaser feeds")
    parser.add_argument("--concurrency", type=int, default=16, help="full_text.concurrency (default 16)")
    parser.add_argument("--workers", type=int, default=None, help="parse workers (default: one per core)")
    parser.add_argument("--deadline", type=float, default=60.0, help="full_text.deadline in seconds")
    parser.add_argument("--log", type=Path, help="write the daemon's JSON log lines (INFO) to this file")
    args = parser.parse_args(argv)
    if not args.log:
        logging.disable(logging.WARNING)
    log = open(args.log or os.devnull, "w")  # noqa: SIM115 - for the process
    configure_logging("INFO" if args.log else "ERROR", "json", stream=log)
    site, seen = asyncio.run(run_pipeline(args))
    report(args, site, seen)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
