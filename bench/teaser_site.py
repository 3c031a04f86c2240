"""A loopback news site for full text: real article pages behind a teaser feed that grows.

Full text (docs/architecture.md, "Full text behind feed entries") is proven and measured on
the same site: the end-to-end test (tests/integration/test_full_text.py) and the bench
(bench/fulltext.py) both import this module, so what the test asserts is what the bench
times.  It lives under bench/ because a bench must not import the test suite; the daemon's
own code never imports it.

What it serves, on 127.0.0.1 only:

* the pages of the article-extraction dev set (``../shared/corpus/articles-dev/``, read in
  place, never copied into the repository), each at its own URL's path and query;
* ``/feed.rss``: an RSS feed listing the entries published so far (``add``), newest first,
  each a title, a one-line teaser ending in an ellipsis, and the link to its page, with an
  ETag so unchanged polls cost a 304 (with ``feeds=K``, K feeds ``/feed-0.rss`` ...
  ``/feed-<K-1>.rss``, entry n in feed n mod K);
* ``/robots.txt`` disallowing ``/private/``: an entry may link there (its page is served, so
  a request would succeed: only robots.txt keeps the fetcher out);
* an entry may link to ``/gone/...``, which answers 404.

Every request is counted per path (``hits``), the requests still being answered are known
(``open``), and the first time a feed body listing an entry was served is kept
(``first_listed``): that is when a poller could first have seen the entry, the start of the
bench's clock.

The teaser is the first words of the ground-truth body (a lede, as real feeds carry), the
title the words of the URL's slug; neither is read from the page itself.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import html
import json
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "articles-dev"

FEED_PATH = "/feed.rss"
ROBOTS_PATH = "/robots.txt"
DISALLOWED_PREFIX = "/private/"
MISSING_PREFIX = "/gone/"
TEASER_WORDS = 24
TEASER_CHARS = 160

Fate = Literal["page", "missing", "disallowed"]


@dataclass(frozen=True)
class Article:
    """One page of the dev set: its key in the ground truth, original URL, bytes and truth."""

    key: str
    url: str
    html: bytes
    truth: str

    @property
    def path(self) -> str:
        """The original URL's path and query (the fragment never reaches a server)."""
        parts = urlsplit(self.url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def load_articles(corpus: Path = DEFAULT_CORPUS, keys: Sequence[str] | None = None) -> list[Article]:
    """The dev set's pages, in key order (or ``keys``' order), decompressed in memory."""
    truth = json.loads((corpus / "ground-truth.json").read_text("utf-8"))
    chosen = list(keys) if keys is not None else sorted(truth)
    return [
        Article(
            key=key,
            url=truth[key]["url"],
            html=gzip.decompress((corpus / "html" / f"{key}.html.gz").read_bytes()),
            truth=truth[key].get("articleBody", ""),
        )
        for key in chosen
    ]


def teaser_of(text: str) -> str:
    """The first words of a body, at most one line, ending in an ellipsis (a feed's teaser)."""
    words: list[str] = []
    length = 0
    for word in text.split():
        if len(words) >= TEASER_WORDS or length + len(word) > TEASER_CHARS:
            break
        words.append(word)
        length += len(word) + 1
    if not words:  # one unbroken run of text (a script without spaces)
        words = [text.strip()[:TEASER_CHARS]]
    return " ".join(words) + " …"


_SLUG_SPLIT = re.compile(r"[-_+]")


def title_of(url: str, fallback: str) -> str:
    """The longest run of words in the URL's path, as a headline; ``fallback`` without one."""
    best: list[str] = []
    for segment in urlsplit(url).path.split("/"):
        segment = segment.rsplit(".", 1)[0] if "." in segment[-6:] else segment
        words = [w for w in _SLUG_SPLIT.split(segment) if w.isalpha()]
        if len(words) > len(best):
            best = words
    if len(best) < 3:
        return fallback
    return " ".join(best).capitalize()


@dataclass(frozen=True)
class Entry:
    """One feed entry: what the feed says about it, and where its link leads."""

    article: Article
    title: str
    teaser: str
    link_path: str
    fate: Fate


def make_entries(
    articles: Sequence[Article], *, missing_at: int | None = None, disallowed_at: int | None = None
) -> list[Entry]:
    """One entry per article, in order.  The entry at ``missing_at`` links to a page that
    answers 404, the one at ``disallowed_at`` to its page moved under ``/private/``."""
    entries = []
    for n, article in enumerate(articles):
        fate: Fate = "missing" if n == missing_at else "disallowed" if n == disallowed_at else "page"
        prefix = {"page": "", "missing": MISSING_PREFIX[:-1], "disallowed": DISALLOWED_PREFIX[:-1]}[fate]
        entries.append(
            Entry(
                article=article,
                title=title_of(article.url, f"Story {n + 1}"),
                teaser=teaser_of(article.truth),
                link_path=prefix + article.path,
                fate=fate,
            )
        )
    paths = [e.link_path for e in entries]
    if len(set(paths)) != len(paths):
        raise ValueError("two entries link to the same path")
    return entries


@dataclass
class TeaserSite:
    """The site over HTTP on 127.0.0.1; ``add(n)`` lists the next ``n`` entries in the feed."""

    entries: list[Entry]
    window: int = 100  # a feed shows its newest ``window`` entries, as real feeds do
    feeds: int = 1
    page_delay: float = 0.0  # seconds before a page is answered (to have fetches in flight)
    listed: int = 0
    hits: Counter[str] = field(default_factory=Counter)
    open: Counter[str] = field(default_factory=Counter)
    first_listed: dict[str, float] = field(default_factory=dict)  # link path -> time.monotonic()
    base: str = ""
    _listed_at: list[datetime] = field(default_factory=list)
    _pages: dict[str, bytes] = field(default_factory=dict)
    _feed_index: dict[str, int] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    def __post_init__(self) -> None:
        self._pages = {e.link_path: e.article.html for e in self.entries if e.fate != "missing"}
        self._feed_index = {path: k for k, path in enumerate(self.feed_paths)}
        if not self._feed_index.keys().isdisjoint(self._pages) or ROBOTS_PATH in self._pages:
            raise ValueError("an article's path collides with the feed or robots.txt")

    def add(self, n: int) -> list[Entry]:
        """List the next ``n`` entries (fewer when the site has no more); returns them."""
        new = self.entries[self.listed : self.listed + n]
        now = datetime.now(UTC)
        self._listed_at.extend(now for _ in new)
        self.listed += len(new)
        return new

    def url(self, entry: Entry) -> str:
        return self.base + entry.link_path

    def page_hits(self) -> dict[str, int]:
        """Requests per entry link (0 for the never-requested)."""
        return {e.link_path: self.hits[e.link_path] for e in self.entries}

    @property
    def feed_paths(self) -> list[str]:
        return [FEED_PATH] if self.feeds == 1 else [f"/feed-{k}.rss" for k in range(self.feeds)]

    def _shown(self, feed: int) -> list[int]:
        """The entries feed ``feed`` lists now, newest first."""
        mine = [n for n in range(self.listed) if n % self.feeds == feed]
        return mine[::-1][: self.window]

    def render_feed(self, feed: int = 0) -> str:
        shown = self._shown(feed)
        items = "".join(
            "<item>"
            f"<title>{html.escape(self.entries[n].title)}</title>"
            f"<link>{html.escape(self.url(self.entries[n]))}</link>"
            f'<guid isPermaLink="true">{html.escape(self.url(self.entries[n]))}</guid>'
            f"<pubDate>{format_datetime(self._listed_at[n], usegmt=True)}</pubDate>"
            f"<description>{html.escape(self.entries[n].teaser)}</description>"
            "</item>"
            for n in shown
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
            f"<title>Loopback teasers</title><link>{self.base}/</link>"
            f"<description>Real article pages behind one-line teasers</description>{items}"
            "</channel></rss>\n"
        )

    async def _feed(self, request: web.Request, feed: int) -> web.Response:
        body = self.render_feed(feed).encode("utf-8")
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        now = time.monotonic()
        for n in self._shown(feed):
            self.first_listed.setdefault(self.entries[n].link_path, now)
        return web.Response(
            body=body, headers={"ETag": etag, "Content-Type": "application/rss+xml; charset=utf-8"}
        )

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path
        self.hits[path] += 1
        if path in self._feed_index:
            return await self._feed(request, self._feed_index[path])
        if path == ROBOTS_PATH:
            return web.Response(text=f"User-agent: *\nDisallow: {DISALLOWED_PREFIX}\n")
        page = self._pages.get(path)
        if page is None:
            return web.Response(status=404, text="not found")
        self.open[path] += 1
        try:
            if self.page_delay:
                await asyncio.sleep(self.page_delay)
            return web.Response(body=page, headers={"Content-Type": "text/html; charset=utf-8"})
        finally:
            self.open[path] -= 1
            if not self.open[path]:
                del self.open[path]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.base = f"http://{host}:{self._runner.addresses[0][1]}"
        return self.base

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
