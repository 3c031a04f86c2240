"""A simulated newsroom on loopback for ``ingestor demo``: pages that change while you watch.

The demo has to show the pipeline's point (new fragments become ``created`` events, an
edited fragment becomes an ``updated`` event, an unchanged re-fetch becomes nothing) on a
machine with no internet, so the newsroom serves the same shapes the parsers meet in the
wild: a text capture of a live page (clock-only times, newest first), an HTML live blog with
schema.org ``LiveBlogPosting`` JSON-LD, an RSS feed and an Atom feed.  A teaser feed (one line
per story and a link) shows full text: the pipeline fetches each story's page and publishes
the entry once, with the page's text.  Every story is fictional and written for this demo.
"""

from __future__ import annotations

import hashlib
import html
import json
import zoneinfo
from collections import Counter
from collections.abc import Callable
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


#: (headline, paragraphs) of the stories behind the teaser feed: the feed carries a one-line
#: teaser and the link, the story's page the whole text, so full text (the pipeline fetching
#: each teaser's page) has something to show.  Fictional, written for this demo.
ARTICLES: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (
        "Night buses to run every 20 minutes from spring.",
        (
            "The city's four night bus lines will run every 20 minutes instead of every 40 from the "
            "first of April, the transport office said on Monday.",
            "The change follows a year of complaints from hospital staff, bakers and bar workers whose "
            "shifts end between midnight and five in the morning. A survey of 3,000 riders found that "
            "most waited longer for a night bus than the journey itself took.",
            "Twelve drivers will be hired for the extra trips, and two buses retired last year will "
            "return to service after an overhaul. The office puts the yearly cost at 1.4 million, paid "
            "from the parking fees raised in the old town since January.",
            "Line N2, which serves the hospital and the northern estates, will also gain a stop at the "
            "new fire station. Timetables go up at every stop in the last week of March.",
        ),
    ),
    (
        "Old tannery to become a school for 400 pupils.",
        (
            "The red-brick tannery by the river, empty for almost thirty years, will be rebuilt as a "
            "primary school for 400 pupils, the council decided on Thursday.",
            "Architects will keep the building's facade and its chimney, which locals use as a "
            "landmark, and add a glass hall for the gym and the canteen. The courtyard, now used as a "
            "car park, becomes a playground with a row of plane trees.",
            "Soil tests last summer found traces of the chemicals once used to treat leather. The site "
            "will be cleaned to a depth of two metres before work starts, which the council expects in "
            "the autumn.",
            "The school should open in September two years from now. Until then, pupils from the "
            "riverside district keep travelling to schools in the centre, a journey of up to forty "
            "minutes each way.",
        ),
    ),
    (
        "Volunteer lifeguards save a swimmer at the north beach.",
        (
            "Two volunteer lifeguards brought a swimmer back to shore at the north beach on Saturday "
            "afternoon after he was caught in a current beyond the breakwater.",
            "The man, a visitor in his fifties, had swum out further than the marked area when the tide "
            "turned. The lifeguards reached him on a rescue board within four minutes of the first "
            "call, the beach association said.",
            "He was checked by paramedics on the promenade and went home the same evening. The "
            "association asked swimmers to stay between the yellow flags, where the current is "
            "weakest and a lifeguard is always watching.",
            "The north beach is guarded by volunteers on weekends until the end of the season. The "
            "association is looking for ten more, and offers a free training course in May.",
        ),
    ),
    (
        "Market hall roof repaired before the winter fair.",
        (
            "Roofers finished replacing the market hall's leaking glass roof on Wednesday, a week "
            "before the winter fair opens its 120 stalls.",
            "Water had dripped onto the fish counters for three winters, and a storm in October broke "
            "a dozen panes above the main aisle. The new roof uses safety glass in steel frames that "
            "match the originals from 1912.",
            "Traders, who paid a share of the repair through their rents, said they were relieved. "
            "The cheese seller at the main entrance said she could finally stop covering her counter "
            "with plastic sheets every night.",
            "The winter fair runs for three weeks from next Thursday, with late opening on Fridays and "
            "a children's choir on the first Sunday.",
        ),
    ),
    (
        "Library lends out tools as well as books.",
        (
            "The central library now lends drills, ladders, sewing machines and a pressure washer, "
            "alongside its books, to anyone with a library card.",
            "The tool library started with 150 items donated by residents and a hardware shop that "
            "closed in the summer. Loans last a week and are free; a deposit is asked only for the "
            "three most expensive machines.",
            "Librarians said the idea came from readers who borrowed home repair books and then asked "
            "where they could find the tools. A volunteer checks every item when it comes back.",
            "In its first month the library lent the tools 430 times. The most popular item was a "
            "carpet cleaner, booked out until the new year.",
        ),
    ),
    (
        "Choir of retired teachers wins the regional contest.",
        (
            "A choir of 34 retired teachers won the regional choir contest on Sunday, ahead of eleven "
            "choirs from schools, churches and the music academy.",
            "The singers, whose average age is 71, rehearse twice a week in the staff room of the school "
            "where most of them once taught. Their programme mixed folk songs with a piece written for "
            "them by a former pupil.",
            "The jury praised the choir's clear diction and its quiet final chord, held for a full ten "
            "seconds. The prize is a recording day in the radio's studio.",
            "The choir will sing at the town hall on New Year's Eve. Its conductor said the group is "
            "always glad of new voices, especially tenors.",
        ),
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


def teaser(article: int) -> str:
    """What the teaser feed says about a story: its first sentence, cut off with an ellipsis."""
    first = ARTICLES[article][1][0]
    return first.split(", ", 1)[0].rstrip(".") + " …"


@dataclass
class Newsroom:
    """What the newsroom currently shows; ``tick()`` moves the news on by one step."""

    live_text: list[LiveEntry] = field(default_factory=list)
    live_html: list[LiveEntry] = field(default_factory=list)
    rss: list[FeedEntry] = field(default_factory=list)
    atom: list[FeedEntry] = field(default_factory=list)
    stories: list[FeedEntry] = field(default_factory=list)  # ``story`` indexes ARTICLES
    ticks: int = 0
    _next_story: int = 0
    _next_article: int = 0
    _next_slot: int = 0

    def _story(self) -> tuple[int, int]:
        story, slot = self._next_story % len(STORIES), self._next_slot
        self._next_story += 1
        self._next_slot += 1
        return story, slot

    def _add_article(self, now: datetime) -> str:
        entry = FeedEntry(self._next_slot, self._next_article % len(ARTICLES), now)
        self._next_article += 1
        self._next_slot += 1
        self.stories.insert(0, entry)
        return ARTICLES[entry.story][0]

    def article(self, slot: int) -> FeedEntry | None:
        """The teaser feed's entry whose page is ``/stories/<slot>``, if listed."""
        return next((e for e in self.stories if e.slot == slot), None)

    def seed(self, now: datetime) -> None:
        """A few posts already on every page when the demo starts."""
        for page in (self.live_text, self.live_html):
            for _ in range(2):
                story, slot = self._story()
                page.insert(0, LiveEntry(slot, story, now))
        for feed in (self.rss, self.atom):
            story, slot = self._story()
            feed.insert(0, FeedEntry(slot, story, now))
        self._add_article(now)

    def tick(self, now: datetime) -> list[str]:
        """One step: a new live post (the two pages take turns), a new feed entry every other
        step, a new teaser (whose page has the story) every third step, and from the second
        step on, every third step corrects an older live post.  Returns what changed, for the
        demo's own log."""
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
        if self.ticks % 3 == 0:
            changes.append(f"teaser (the story is on its page): {self._add_article(now)}")
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


def render_stories_rss(entries: list[FeedEntry], base: str) -> str:
    """The teaser feed: a headline, one line, and the link to the story's page."""
    items = "".join(
        "<item>"
        f"<title>{html.escape(ARTICLES[e.story][0])}</title>"
        f"<link>{base}{STORY_PREFIX}{e.slot}</link>"
        f'<guid isPermaLink="false">demo-story-{e.slot}</guid>'
        f"<pubDate>{format_datetime(e.published_at.astimezone(UTC), usegmt=True)}</pubDate>"
        f"<description>{html.escape(teaser(e.story))}</description>"
        "</item>"
        for e in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>Demo City Stories</title><link>{base}/</link>"
        f"<description>Teasers of fictional local stories; the stories are on their pages</description>"
        f"{items}</channel></rss>\n"
    )


def render_story_page(entry: FeedEntry, base: str) -> str:
    """A story's own page: site furniture around one article, as a news site serves it."""
    headline, paragraphs = ARTICLES[entry.story]
    url = f"{base}{STORY_PREFIX}{entry.slot}"
    when, clock = _iso(entry.published_at), _clock(entry.published_at)
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(headline)} | Demo City Stories</title>"
        f'<link rel="canonical" href="{url}">'
        f'<meta property="og:title" content="{html.escape(headline)}">'
        f'<meta property="article:published_time" content="{when}">'
        '<meta name="author" content="The Demo Desk"></head><body>'
        f'<header><nav><a href="{base}/">Home</a> · <a href="{base}/feeds/stories.rss">Stories</a>'
        "</nav></header>"
        f"<main><article><h1>{html.escape(headline)}</h1>"
        f'<p class="byline">By The Demo Desk · <time datetime="{when}">{clock}</time></p>'
        f"{body}</article></main>"
        "<footer><p>Demo City Stories is fictional, written for the ingestor demo.</p></footer>"
        "</body></html>\n"
    )


# ---- serving -------------------------------------------------------------------------------------

#: path -> (feed id, content type, config ``format``, config ``full_text``).  Only the teaser
#: feed asks for full text: the other feeds carry their whole (short) story, and their links
#: lead to no page.
PATHS: Final[dict[str, tuple[str, str, str, str]]] = {
    "/live/city.txt": ("demo-city-live", "text/plain; charset=utf-8", "text", "never"),
    "/live/harbour": ("demo-harbour-live", "text/html; charset=utf-8", "html", "never"),
    "/feeds/city.rss": ("demo-city-rss", "application/rss+xml; charset=utf-8", "feed", "never"),
    "/feeds/science.atom": ("demo-science-atom", "application/atom+xml; charset=utf-8", "feed", "never"),
    "/feeds/stories.rss": ("demo-city-stories", "application/rss+xml; charset=utf-8", "feed", "auto"),
}
STORY_PREFIX: Final = "/stories/"
STORY_TYPE: Final = "text/html; charset=utf-8"


class NewsroomServer:
    """The newsroom over HTTP on 127.0.0.1, with ETags so unchanged pages cost a 304."""

    def __init__(self, newsroom: Newsroom, started: datetime) -> None:
        self.newsroom = newsroom
        self.started = started
        self.base = ""
        self._runner: web.AppRunner | None = None
        self.story_fetches: Counter[str] = Counter()  # story page path -> requests
        self.on_story_fetch: Callable[[str, int], None] | None = None  # (path, requests so far)

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
        if path == "/feeds/stories.rss":
            return render_stories_rss(room.stories, self.base)
        slot = path.removeprefix(STORY_PREFIX)
        if path.startswith(STORY_PREFIX) and slot.isascii() and slot.isdigit() and len(slot) < 9:
            entry = room.article(int(slot))
            return render_story_page(entry, self.base) if entry is not None else None
        return None

    @staticmethod
    def content_type(path: str) -> str:
        return PATHS[path][1] if path in PATHS else STORY_TYPE

    async def _serve(self, request: web.Request) -> web.Response:
        text = self.render(request.path)
        if text is None:
            return web.Response(status=404, text="not found")
        if request.path.startswith(STORY_PREFIX):
            self.story_fetches[request.path] += 1
            if self.on_story_fetch is not None:
                self.on_story_fetch(request.path, self.story_fetches[request.path])
        body = text.encode("utf-8")
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(
            body=body,
            headers={
                "ETag": etag,
                "Content-Type": self.content_type(request.path),
                "Cache-Control": "no-cache",
            },
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
                "full_text": full_text,
            }
            for path, (feed_id, _, fmt, full_text) in PATHS.items()
        ]
