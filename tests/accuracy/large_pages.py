"""Large live pages (500 posts) in each shape, for timing: ``python tests/accuracy/large_pages.py``
prints the parse time of each; bench/parse.py can import ``LARGE_PAGES``."""

# ruff: noqa: E501  (HTML templates read better unwrapped)

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_text import HEADLINES, PARAGRAPHS

H, P = HEADLINES["en"], PARAGRAPHS["en"]
base = datetime(2024, 11, 4, 20, tzinfo=UTC)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def guardian() -> str:
    blocks = []
    for i in range(500):
        t = base - timedelta(minutes=7 * i)
        head = f"<h2>{H[i % len(H)]}</h2>" if i % 3 else ""
        blocks.append(
            f'<article id="block-{i:05d}" class="block"><p class="block-time"><time datetime="{t.isoformat()}">{t:%H:%M}</time></p>{head}<div class="block-body"><p>{P[i % len(P)]}</p><p>{P[(i + 5) % len(P)]}</p></div><div class="share">Share</div></article>'
        )
    return f'<html><head><link rel="canonical" href="https://x.test/live"><title>Live</title></head><body><main><article><h1>Live</h1><div class="blocks">{"".join(blocks)}</div></article></main></body></html>'


def jsonld() -> str:
    ups = []
    for i in range(500):
        t = base - timedelta(minutes=7 * i)
        ups.append(
            {
                "@type": "BlogPosting",
                "headline": H[i % len(H)],
                "articleBody": P[i % len(P)] + "\n\n" + P[(i + 3) % len(P)],
                "datePublished": t.isoformat(),
                "url": f"https://x.test/live#p{i}",
            }
        )
    ld = json.dumps(
        {
            "@context": "https://schema.org",
            "@type": "LiveBlogPosting",
            "headline": "Live",
            "liveBlogUpdate": ups,
        }
    )
    return f'<html><head><script type="application/ld+json">{ld}</script></head><body><h1>Live</h1></body></html>'


def bbc() -> str:
    items = []
    for i in range(500):
        t = base - timedelta(minutes=7 * i)
        items.append(
            f'<li class="lx-stream__post-container"><article id="post_{i}" class="lx-stream-post"><header><time class="lx-stream-post__meta-time"><span>{t:%H:%M}</span></time><h3>{H[i % len(H)]}</h3></header><div><p>{P[i % len(P)]}</p></div></article></li>'
        )
    return f'<html><body><ol class="lx-stream__feed">{"".join(items)}</ol></body></html>'


def microdata() -> str:
    items = []
    for i in range(500):
        t = base - timedelta(minutes=7 * i)
        items.append(
            f'<div itemprop="liveBlogUpdate" itemscope itemtype="https://schema.org/BlogPosting" id="u{i}"><meta itemprop="datePublished" content="{t.isoformat()}"><link itemprop="url" href="https://x.test/live#u{i}"><h3 itemprop="headline">{H[i % len(H)]}</h3><div itemprop="articleBody"><p>{P[i % len(P)]}</p><p>{P[(i + 2) % len(P)]}</p></div></div>'
        )
    return f'<html><head><link rel="canonical" href="https://x.test/live"><title>Live</title></head><body><main itemscope itemtype="https://schema.org/LiveBlogPosting"><h1 itemprop="headline">Live</h1>{"".join(items)}</main></body></html>'


def generic() -> str:
    items = []
    for i in range(500):
        t = base - timedelta(minutes=7 * i)
        items.append(
            f'<div class="update-card"><div class="meta"><time datetime="{t.isoformat()}">{t:%H:%M}</time></div><h4>{H[i % len(H)]}</h4><p>{P[i % len(P)]}</p></div>'
        )
    return f'<html><body><section class="updates">{"".join(items)}</section></body></html>'


def text() -> str:
    lines = ["date 2024-11-04 Skip to content"]
    for i in range(500):
        t = base - timedelta(minutes=7 * i)
        lines += [f"{t:%H:%M}", "", H[i % len(H)], "", P[i % len(P)], ""]
    return "\n".join(lines)


#: name -> (builder, content type) for a 500-post page of that shape.
LARGE_PAGES: dict[str, tuple[Callable[[], str], str]] = {
    "guardian": (guardian, "text/html; charset=utf-8"),
    "jsonld": (jsonld, "text/html; charset=utf-8"),
    "microdata": (microdata, "text/html; charset=utf-8"),
    "bbc": (bbc, "text/html; charset=utf-8"),
    "generic": (generic, "text/html; charset=utf-8"),
    "text": (text, "text/plain; charset=utf-8"),
}

if __name__ == "__main__":
    from consumers.parse import RawDocument, parse_document

    for name, (build, ctype) in LARGE_PAGES.items():
        page = build()
        doc = RawDocument(
            body=page.encode(),
            url="https://x.test/live",
            feed_id="b",
            fetched_at=base,
            content_type=ctype,
            timezone="Europe/London",
        )
        best = min(_timed(lambda d=doc: parse_document(d)) for _ in range(7))  # type: ignore[misc]
        print(f"{name:9s} {len(page) / 1e3:7.0f} kB  {len(parse_document(doc))} items  {best * 1000:6.1f} ms")
