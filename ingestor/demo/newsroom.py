"""A simulated newsroom on loopback for ``ingestor demo``: pages that change while you watch.

The demo has to show the pipeline's point (new fragments become ``created`` events, an
edited fragment becomes an ``updated`` event, an unchanged re-fetch becomes nothing) on a
machine with no internet, so the newsroom serves the same shapes the parsers meet in the
wild: a text capture of a live page (clock-only times, newest first), an HTML live blog with
schema.org ``LiveBlogPosting`` JSON-LD, an RSS feed and an Atom feed.  Every story is
fictional and written for this demo.
"""

from __future__ import annotations

import hashlib
import html
import json
import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Final

from aiohttp import web

NEWSROOM_TZ: Final = "Europe/Kyiv"

#: (headline, body, edited body). Fictional, neutral, local-news register.
STORIES: Final[tuple[tuple[str, str, str], ...]] = (
    (
        "Harbour ferry adds an evening crossing.",
        "The harbour ferry will run a 9 PM crossing from Monday, the transport office said.",
        "The harbour ferry will run a 9 PM crossing from Monday and a 10 PM one at weekends, "
        "the transport office said.",
    ),
    (
        "City library extends opening hours.",
        "The central library will stay open until 10 PM on weekdays during the exam season.",
        "The central library will stay open until 10 PM on weekdays and until 6 PM on Sundays "
        "during the exam season.",
    ),
    (
        "Tram line 4 resumes after track work.",
        "Trams on line 4 are running again after two weeks of track replacement.",
        "Trams on line 4 are running again after two weeks of track replacement; "
        "the first trips ran without delays.",
    ),
    (
        "Regional orchestra announces spring season.",
        "The orchestra will give twelve concerts between March and June, including four for schools.",
        "The orchestra will give fourteen concerts between March and June, including four for schools.",
    ),
    (
        "New cycle lanes open on the river embankment.",
        "Three kilometres of protected cycle lanes opened along the embankment on Tuesday.",
        "Three kilometres of protected cycle lanes opened along the embankment on Tuesday, "
        "with bicycle parking at both ends.",
    ),
    (
        "Weather service forecasts a mild weekend.",
        "Temperatures are expected to reach 18 degrees on Saturday with light winds.",
        "Temperatures are expected to reach 19 degrees on Saturday with light winds and no rain.",
    ),
    (
        "Farmers' market moves to the old station square.",
        "The weekly market will be held at the old station square from next month.",
        "The weekly market will be held at the old station square from next month, on Saturdays from 8 AM.",
    ),
    (
        "Hospital opens a renovated children's ward.",
        "The ward has 40 beds and a playroom, the hospital's director said.",
        "The ward has 42 beds and a playroom, the hospital's director said.",
    ),
    (
        "Water supply restored in the northern district.",
        "Engineers repaired a burst main overnight and pressure is back to normal.",
        "Engineers repaired a burst main overnight; pressure is back to normal in every street.",
    ),
    (
        "University launches a public lecture series.",
        "Monthly lectures on astronomy, history and medicine will be free to attend.",
        "Monthly lectures on astronomy, history and medicine will be free to attend and streamed online.",
    ),
    (
        "Airport reports a record month for passengers.",
        "Some 410,000 passengers used the airport in October, the operator said.",
        "Some 412,000 passengers used the airport in October, the operator said in a corrected figure.",
    ),
    (
        "Museum returns a restored 18th-century clock to display.",
        "The clock was restored over eight months by the museum's own workshop.",
        "The clock, restored over eight months by the museum's own workshop, strikes again every hour.",
    ),
    (
        "School canteens add a vegetarian menu.",
        "Every school in the city will offer a vegetarian lunch option from next term.",
        "Every school in the city will offer a vegetarian lunch option from next term at the same price.",
    ),
    (
        "Bridge inspection finishes ahead of schedule.",
        "Inspectors found no structural problems, and the bridge stays open to traffic.",
        "Inspectors found no structural problems, and the bridge stays open to all traffic, "
        "including lorries.",
    ),
    (
        "Volunteers plant 2,000 trees in the city park.",
        "Residents and students planted oaks and limes over the weekend.",
        "Residents and students planted oaks, limes and maples over the weekend.",
    ),
    (
        "Post office trials Saturday parcel collection.",
        "Five branches will open on Saturday mornings for parcel collection until the end of the year.",
        "Seven branches will open on Saturday mornings for parcel collection until the end of the year.",
    ),
)


@dataclass
class LiveEntry:
    """One post on a live page; ``edited`` once the newsroom has corrected it."""

    slot: int
    story: int
    published_at: datetime
    updated_at: datetime | None = None

    @property
    def anchor(self) -> str:
        return f"post-{self.slot}"

    @property
    def title(self) -> str:
        return STORIES[self.story][0]

    @property
    def body(self) -> str:
        return STORIES[self.story][2 if self.updated_at else 1]


@dataclass
class FeedEntry:
    slot: int
    story: int
    published_at: datetime


@dataclass
class Newsroom:
    """What the newsroom currently shows; ``tick()`` moves the news on by one step."""

    live_text: list[LiveEntry] = field(default_factory=list)
    live_html: list[LiveEntry] = field(default_factory=list)
    rss: list[FeedEntry] = field(default_factory=list)
    atom: list[FeedEntry] = field(default_factory=list)
    ticks: int = 0
    _next_story: int = 0
    _next_slot: int = 0

    def _story(self) -> tuple[int, int]:
        story, slot = self._next_story % len(STORIES), self._next_slot
        self._next_story += 1
        self._next_slot += 1
        return story, slot

    def seed(self, now: datetime) -> None:
        """A few posts already on every page when the demo starts."""
        for page in (self.live_text, self.live_html):
            for _ in range(2):
                story, slot = self._story()
                page.insert(0, LiveEntry(slot, story, now))
        for feed in (self.rss, self.atom):
            story, slot = self._story()
            feed.insert(0, FeedEntry(slot, story, now))

    def tick(self, now: datetime) -> list[str]:
        """One step: a new live post (the two pages take turns), a new feed entry every other
        step, and from the second step on, every third step corrects an older live post.
        Returns what changed, for the demo's own log."""
        self.ticks += 1
        changes: list[str] = []
        page = self.live_text if self.ticks % 2 else self.live_html
        story, slot = self._story()
        page.insert(0, LiveEntry(slot, story, now))
        changes.append(f"live post: {STORIES[story][0]}")
        if self.ticks % 2 == 0:
            feed = self.rss if self.ticks % 4 == 0 else self.atom
            story, slot = self._story()
            feed.insert(0, FeedEntry(slot, story, now))
            changes.append(f"feed entry: {STORIES[story][0]}")
        if self.ticks % 3 == 2:
            edited = self._edit(now)
            if edited:
                changes.append(f"correction: {edited}")
        return changes

    def _edit(self, now: datetime) -> str | None:
        for page in (self.live_text, self.live_html) if self.ticks % 2 else (self.live_html, self.live_text):
            for entry in page[1:]:  # never the newest: a correction comes later
                if entry.updated_at is None:
                    entry.updated_at = now
                    return entry.title
        return None


# ---- rendering -----------------------------------------------------------------------------------


def _clock(moment: datetime) -> str:
    local = moment.astimezone(zoneinfo.ZoneInfo(NEWSROOM_TZ))
    return local.strftime("%I:%M %p").lstrip("0")


def render_text_capture(entries: list[LiveEntry], started: datetime) -> str:
    """The saved-page text shape: an article on top, then clock-stamped posts, newest first."""
    head = (
        "Skip to content\n"
        "Live: the city this week, as it happens\n\n"
        f"by The Demo Desk {_long_date(started)} {_clock(started)} 1 min read\n"
        "The old town hall at dawn, seen from the river. (Jane Roe/Demo Agency)\n"
        "This page follows the week's local news in the city: transport, services, culture "
        "and the weather. New posts appear at the top.\n\n"
        "Posts are written by the desk and corrected in place when the facts change.\n\n"
        "Authors: The Demo Desk\n"
    )
    posts = []
    for entry in entries:
        updated = _clock(entry.updated_at) if entry.updated_at else ""
        posts.append(
            f"{_clock(entry.published_at)}\u00a0 (Updated:\u00a0{updated})\n\n{entry.title}\n\n{entry.body}\n"
        )
    return head + "".join(posts)


def _long_date(moment: datetime) -> str:
    local = moment.astimezone(zoneinfo.ZoneInfo(NEWSROOM_TZ))
    return f"{local:%B} {local.day}, {local.year}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def render_live_html(entries: list[LiveEntry], base: str, started: datetime) -> str:
    """An HTML live blog whose posts are described by schema.org LiveBlogPosting JSON-LD."""
    url = f"{base}/live/harbour"
    data = {
        "@context": "https://schema.org",
        "@type": "LiveBlogPosting",
        "headline": "Live: harbour festival weekend",
        "url": url,
        "datePublished": _iso(started),
        "coverageStartTime": _iso(started),
        "liveBlogUpdate": [
            {
                "@type": "BlogPosting",
                "headline": entry.title,
                "articleBody": entry.body,
                "datePublished": _iso(entry.published_at),
                **({"dateModified": _iso(entry.updated_at)} if entry.updated_at else {}),
                "url": f"{url}#{entry.anchor}",
                "author": {"@type": "Organization", "name": "The Demo Desk"},
            }
            for entry in entries
        ],
    }
    posts = "\n".join(
        f'<article id="{entry.anchor}"><time datetime="{_iso(entry.published_at)}">'
        f"{_clock(entry.published_at)}</time><h2>{html.escape(entry.title)}</h2>"
        f"<p>{html.escape(entry.body)}</p></article>"
        for entry in entries
    )
    script = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Live: harbour festival weekend</title>"
        f'<link rel="canonical" href="{url}">'
        f'<script type="application/ld+json">{script}</script></head>'
        "<body><main><h1>Live: harbour festival weekend</h1>"
        f"{posts}</main></body></html>\n"
    )


def render_rss(entries: list[FeedEntry], base: str) -> str:
    items = "".join(
        "<item>"
        f"<title>{html.escape(STORIES[e.story][0])}</title>"
        f"<link>{base}/news/{e.slot}</link>"
        f'<guid isPermaLink="false">demo-city-{e.slot}</guid>'
        f"<pubDate>{format_datetime(e.published_at.astimezone(UTC), usegmt=True)}</pubDate>"
        f"<description>{html.escape(STORIES[e.story][1])}</description>"
        "</item>"
        for e in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>Demo City News</title><link>{base}/</link>"
        f"<description>Fictional local news for the ingestor demo</description>{items}"
        "</channel></rss>\n"
    )


def render_atom(entries: list[FeedEntry], base: str) -> str:
    updated = _iso(entries[0].published_at) if entries else "2024-01-01T00:00:00Z"
    items = "".join(
        "<entry>"
        f"<title>{html.escape(STORIES[e.story][0])}</title>"
        f'<link href="{base}/science/{e.slot}"/>'
        f"<id>urn:demo:science:{e.slot}</id>"
        f"<updated>{_iso(e.published_at)}</updated>"
        f"<published>{_iso(e.published_at)}</published>"
        "<author><name>The Demo Desk</name></author>"
        f"<summary>{html.escape(STORIES[e.story][1])}</summary>"
        "</entry>"
        for e in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Demo Science Desk</title><id>urn:demo:science</id><updated>{updated}</updated>"
        f'<link href="{base}/"/>{items}</feed>\n'
    )


# ---- serving -------------------------------------------------------------------------------------

#: path -> (feed id, content type, config ``format``)
PATHS: Final[dict[str, tuple[str, str, str]]] = {
    "/live/city.txt": ("demo-city-live", "text/plain; charset=utf-8", "text"),
    "/live/harbour": ("demo-harbour-live", "text/html; charset=utf-8", "html"),
    "/feeds/city.rss": ("demo-city-rss", "application/rss+xml; charset=utf-8", "feed"),
    "/feeds/science.atom": ("demo-science-atom", "application/atom+xml; charset=utf-8", "feed"),
}


class NewsroomServer:
    """The newsroom over HTTP on 127.0.0.1, with ETags so unchanged pages cost a 304."""

    def __init__(self, newsroom: Newsroom, started: datetime) -> None:
        self.newsroom = newsroom
        self.started = started
        self.base = ""
        self._runner: web.AppRunner | None = None

    def render(self, path: str) -> str | None:
        room = self.newsroom
        if path == "/live/city.txt":
            return render_text_capture(room.live_text, self.started)
        if path == "/live/harbour":
            return render_live_html(room.live_html, self.base, self.started)
        if path == "/feeds/city.rss":
            return render_rss(room.rss, self.base)
        if path == "/feeds/science.atom":
            return render_atom(room.atom, self.base)
        return None

    async def _serve(self, request: web.Request) -> web.Response:
        text = self.render(request.path)
        if text is None:
            return web.Response(status=404, text="not found")
        body = text.encode("utf-8")
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(
            body=body,
            headers={"ETag": etag, "Content-Type": PATHS[request.path][1], "Cache-Control": "no-cache"},
        )

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = self._runner.addresses
        self.base = f"http://{host}:{sockets[0][1]}"
        return self.base

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def feeds(self, interval: float) -> list[dict[str, object]]:
        """Feed definitions for the pipeline's config, one per newsroom path."""
        return [
            {
                "id": feed_id,
                "url": f"{self.base}{path}",
                "timezone": NEWSROOM_TZ,
                "interval": interval,
                "min_interval": interval,
                "format": fmt,
                "language": "en",
            }
            for path, (feed_id, _, fmt) in PATHS.items()
        ]
