"""What parsing in killable worker processes costs, and what it gains on several cores.

The parse stage runs every document in a pebble worker process with a deadline, so a page
that stalls a parser cannot stall the daemon.  That costs a round trip per document (the
document pickled in, the items' JSON out); with one worker per core it also parses on every
core.  This runs the same documents, in one run, three ways:

* **in-process**: ``parse_job`` called in a plain loop (the baseline: what the stage did
  before it had workers, minus the event loop);
* **1 worker**: one document at a time through a one-worker pool (the round-trip cost);
* **N workers**: N documents in flight on an N-worker pool (what the stage does, since the
  consume loop hands a batch's records of different feeds to the pool concurrently).

Documents: the feed files of the robustness corpus (``--corpus``, default
``../shared/corpus/feeds`` beside the checkout) plus generated 500-post live pages.

    python bench/parse_workers.py [--workers N] [--limit FILES]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consumers.parse import ParseLimits, RawDocument  # noqa: E402
from consumers.parse.workers import WorkerPool, parse_job  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "accuracy"))
from large_pages import LARGE_PAGES  # type: ignore[import-not-found]  # noqa: E402

FETCHED = datetime(2025, 1, 1, tzinfo=UTC)


def _documents(corpus: Path, limit: int) -> list[RawDocument]:
    docs = [
        RawDocument(
            body=path.read_bytes(),
            url=f"https://bench.example/{path.name}",
            feed_id=path.stem,
            fetched_at=FETCHED,
        )
        for path in sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix not in (".md", ""))[
            :limit
        ]
    ]
    for name, (build, content_type) in LARGE_PAGES.items():
        page = RawDocument(
            body=build().encode(),
            url=f"https://bench.example/{name}",
            feed_id=name,
            fetched_at=FETCHED,
            content_type=content_type,
        )
        docs += [page] * 4
    return docs


async def _through_pool(docs: list[RawDocument], workers: int, in_flight: int) -> float:
    pool = WorkerPool(workers, memory_limit=None)
    await pool.start()
    limits = ParseLimits()
    slots = asyncio.Semaphore(in_flight)

    async def one(doc: RawDocument) -> None:
        async with slots:
            await pool.run(parse_job, doc, limits, timeout=30.0)

    await asyncio.gather(*(one(doc) for doc in docs[:20]))  # warm every worker
    started = time.perf_counter()
    await asyncio.gather(*(one(doc) for doc in docs))
    elapsed = time.perf_counter() - started
    await pool.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "feeds")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--limit", type=int, default=1500)
    args = parser.parse_args()
    docs = _documents(args.corpus, args.limit)
    megabytes = sum(len(d.body) for d in docs) / 1e6
    limits = ParseLimits()
    for doc in docs[:20]:
        parse_job(doc, limits)
    started = time.perf_counter()
    for doc in docs:
        parse_job(doc, limits)
    baseline = time.perf_counter() - started
    one = asyncio.run(_through_pool(docs, 1, 1))
    many = asyncio.run(_through_pool(docs, args.workers, args.workers))
    print(f"{len(docs)} documents, {megabytes:.1f} MB, {os.cpu_count()} cores\n")
    print(f"{'mode':<22}{'seconds':>9}{'docs/s':>9}{'vs in-process':>15}")
    for name, seconds in (("in-process", baseline), ("1 worker", one), (f"{args.workers} workers", many)):
        print(f"{name:<22}{seconds:>9.2f}{len(docs) / seconds:>9.0f}{baseline / seconds:>14.2f}x")


if __name__ == "__main__":
    main()
