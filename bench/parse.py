"""How much the parse stage costs next to feedparser itself, and how fast large live pages go.

Runs, in one process and over the same corpus files:

* ``parse_document`` (the stage: sniffing, decoding, safety screen, feedparser, text
  cleaning, dates, ids, item validation);
* a bare ``feedparser.parse`` loop with feedparser's defaults (what a plain feed reader pays);
* ``feedparser.parse`` configured as the stage uses it (no sanitizer, no URI rewriting), so the
  stage's own share of the time is visible too;

then 500-fragment live pages of every shape side by side (JSON-LD, microdata, Guardian-like
blocks, BBC-like clock-only blocks, generic blocks, text capture; built by
``tests/accuracy/large_pages.py``), each with ms per page, items/s, MB/s and its time
relative to bare feedparser on the same number of bytes.  Goal: the stage adds at most 25%
to feedparser's time on feeds, and a 500-fragment live page parses in under 50 ms.

    python bench/parse.py            # full run
    python bench/parse.py --quick    # one pass, fewer page repeats
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consumers.parse import ParseError, RawDocument, parse_document, sniff  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "feeds"
FETCHED = datetime(2024, 11, 5, 12, 0, tzinfo=UTC)
CONTENT_TYPES = {".json": "application/json", ".atom": "application/atom+xml", ".rss": "application/rss+xml"}


@dataclass
class Run:
    seconds: float
    items: int
    nbytes: int

    def line(self, label: str) -> str:
        mb = self.nbytes / 1e6
        return (
            f"  {label:<42} {self.seconds * 1000:9.1f} ms  {self.items / self.seconds:10.0f} items/s"
            f"  {mb / self.seconds:7.2f} MB/s"
        )


def feed_files() -> list[tuple[Path, bytes]]:
    files = []
    for path in sorted(CORPUS.rglob("*")):
        if not path.is_file() or path.name.startswith("LICENSE") or path.suffix.lower() == ".md":
            continue
        body = path.read_bytes()
        if sniff(body, CONTENT_TYPES.get(path.suffix.lower(), "application/xml")) == "feed":
            files.append((path, body))
    return files


def run_stage(files: list[tuple[Path, bytes]]) -> Run:
    items = 0
    started = time.perf_counter()
    for path, body in files:
        doc = RawDocument(
            body=body,
            url="https://corpus.invalid/feed",
            feed_id=path.name,
            fetched_at=FETCHED,
            content_type=CONTENT_TYPES.get(path.suffix.lower(), "application/xml"),
        )
        with contextlib.suppress(ParseError):
            items += len(parse_document(doc))
    return Run(time.perf_counter() - started, items, sum(len(b) for _, b in files))


def run_feedparser(files: list[tuple[Path, bytes]], **options: bool) -> Run:
    entries = 0
    started = time.perf_counter()
    for _path, body in files:
        entries += len(feedparser.parse(io.BytesIO(body), **options).entries)
    return Run(time.perf_counter() - started, entries, sum(len(b) for _, b in files))


def best_of(rounds: int, fn: Callable[[], Run]) -> Run:
    runs = []
    for _ in range(rounds):
        gc.collect()
        runs.append(fn())
    return min(runs, key=lambda r: r.seconds)


# --- synthetic live pages ------------------------------------------------------------------

WORDS = [
    *("council", "harbour", "ferry", "bridge", "storm", "power", "school", "market", "road", "rail"),
    *("tram", "river", "station", "officials", "residents", "crews", "repairs", "schedule", "warning"),
    *("district", "centre", "north", "south", "east", "west"),
]


def sentence(i: int, n: int = 14) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)).capitalize() + "."


def jsonld_page(count: int) -> str:
    start = datetime(2024, 11, 4, 23, 59, tzinfo=UTC)
    updates = [
        {
            "@type": "BlogPosting",
            "headline": f"Update {i}: {sentence(i, 6)}",
            "articleBody": f"{sentence(i)} {sentence(i + 1)}",
            "datePublished": (start - timedelta(minutes=2 * i)).isoformat(),
            "dateModified": (start - timedelta(minutes=2 * i - 1)).isoformat(),
            "url": f"https://live.example/storm#post-{i}",
        }
        for i in range(count)
    ]
    data = {
        "@context": "https://schema.org",
        "@type": "LiveBlogPosting",
        "headline": "Storm live",
        "url": "https://live.example/storm",
        "liveBlogUpdate": updates,
    }
    posts = "".join(
        f'<article id="post-{i}"><h2>{u["headline"]}</h2><p>{u["articleBody"]}</p></article>'
        for i, u in enumerate(updates)
    )
    return (
        '<!doctype html><html><head><title>Storm live</title><link rel="canonical" href="https://live.example/storm">'
        f'<script type="application/ld+json">{json.dumps(data)}</script></head>'
        f"<body><main>{posts}</main></body></html>"
    )


def blocks_page(count: int) -> str:
    start = datetime(2024, 11, 4, 23, 59, tzinfo=UTC)
    posts = []
    for i in range(count):
        stamp = start - timedelta(minutes=2 * i)
        headline = f"<h2>{sentence(i, 5)}</h2>" if i % 3 else ""
        posts.append(
            f'<div id="block-{i:05d}" class="block"><time datetime="{stamp.isoformat()}">'
            f"{stamp:%H:%M}</time>{headline}<p>{sentence(i)}</p><p>{sentence(i + 2)}</p>"
            '<div class="share">Share</div></div>'
        )
    return (
        '<!doctype html><html><head><title>Live</title><link rel="canonical" href="https://live.example/blocks">'
        f'</head><body><nav>Home</nav><div id="liveblog-body">{"".join(posts)}</div></body></html>'
    )


def text_capture(count: int) -> str:
    lines = [
        "date 2024-11-04 Skip to content",
        "Harbour storm closes ferries for the night",
        "",
        "by Test Writer November 4, 2024 8:36 AM 2 min read",
        "",
        sentence(1),
        "",
        sentence(2),
        "",
        "Authors: Test Writer",
    ]
    minute = 23 * 60 + 59
    for i in range(count):
        clock = minute - 2 * (i % 700)
        hour, mins = divmod(clock, 60)
        stamp = f"{(hour - 1) % 12 + 1}:{mins:02d} {'AM' if hour < 12 else 'PM'}"
        lines += [f"{stamp}\u00a0(Updated:\u00a0)", "", f"{sentence(i, 6)}", "", sentence(i + 3), ""]
    return "\n".join(lines)


_SHAPE_LABELS = {
    "guardian": "Guardian-like block-{id} posts",
    "jsonld": "JSON-LD LiveBlogPosting",
    "microdata": "microdata liveBlogUpdate",
    "bbc": "BBC-like lx-stream, clock-only",
    "generic": "generic repeated blocks",
    "text": "text capture",
}


def live_pages() -> list[tuple[str, str, str, str]]:
    """(label, page, content type, zone) for every 500-fragment shape, plus this file's own
    pages (a second JSON-LD/blocks flavour and a 1000-post stress page)."""
    sys.path.insert(0, str(ROOT / "tests" / "accuracy"))
    from large_pages import LARGE_PAGES  # type: ignore[import-not-found]

    pages = [
        (f"{_SHAPE_LABELS.get(name, name)}, 500", build(), ctype, "Europe/London")
        for name, (build, ctype) in LARGE_PAGES.items()
    ]
    pages += [
        ("JSON-LD + matching blocks (bench), 500", jsonld_page(500), "text/html", "Europe/Kyiv"),
        ("<time> blocks (bench), 500", blocks_page(500), "text/html", "Europe/Kyiv"),
        ("text capture 12h (bench), 500", text_capture(500), "text/plain", "Europe/Kyiv"),
        ("<time> blocks (bench), 1000 [not a goal]", blocks_page(1000), "text/html", "Europe/Kyiv"),
    ]
    return pages


def bench_pages(repeats: int, feed_seconds_per_mb: float) -> None:
    print(f"\nlive pages (median of {repeats}; goal: a 500-fragment page in < 50 ms):")
    print(f"  {'page':<42} {'ms/page':>9}     {'items/s':>10}  {'MB/s':>7}  vs feedparser/MB")
    for label, page, content_type, zone in live_pages():
        body = page.encode("utf-8")
        doc = RawDocument(
            body=body,
            url="https://live.example/page",
            feed_id="live",
            fetched_at=FETCHED,
            content_type=content_type,
            timezone=zone,
        )
        times = []
        items = 0
        error = ""
        parse_document(doc)  # warm
        for _ in range(repeats):
            gc.collect()
            started = time.perf_counter()
            try:
                items = len(parse_document(doc))
            except ParseError as exc:
                error = f" ({exc.reason}: {exc.message[:60]})"
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        verdict = "ok" if median < 0.050 or "not a goal" in label else "SLOW"
        # How long bare feedparser would take for this many bytes of feed, for scale.
        relative = median / (feed_seconds_per_mb * len(body) / 1e6)
        print(
            f"  {label:<42} {median * 1000:9.1f} ms  {items / median:10.0f} items/s"
            f"  {len(body) / 1e6 / median:7.2f} MB/s  {relative:5.2f}x  items={items} [{verdict}]{error}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one pass over the corpus, fewer page repeats")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if not CORPUS.is_dir():
        print(f"corpus not found at {CORPUS}", file=sys.stderr)
        return 1
    files = feed_files()
    rounds = 1 if args.quick else 3
    total = sum(len(b) for _, b in files)
    print(f"feeds: {len(files)} corpus files, {total / 1e6:.1f} MB, best of {rounds}")
    run_stage(files[:50])  # warm imports and caches
    stage = best_of(rounds, lambda: run_stage(files))
    bare = best_of(rounds, lambda: run_feedparser(files))
    lean = best_of(rounds, lambda: run_feedparser(files, sanitize_html=False, resolve_relative_uris=False))
    print(stage.line("parse_document (the stage)"))
    print(bare.line("feedparser.parse, defaults"))
    print(lean.line("feedparser.parse, as the stage calls it"))
    ratio = stage.seconds / bare.seconds
    verdict = "meets" if ratio <= 1.25 else "MISSES"
    print(f"  ratio stage / bare feedparser: {ratio:.2f}  ({verdict} the <= 1.25 goal)")
    print(
        f"  ratio stage / feedparser as called: {stage.seconds / lean.seconds:.2f}"
        "  (the stage's own work on top)"
    )
    bench_pages(5 if args.quick else 20, bare.seconds / (total / 1e6))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
