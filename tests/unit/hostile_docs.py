"""Generators of small hostile documents: text shaped to make a backtracking regex stall.

Each generator builds a document of about ``size`` characters of one adversarial class, so
that a test (or a benchmark run by hand) can parse the same shape at several sizes and see
whether the time grows linearly.  The classes are the ones found while auditing the parse
stage for issue 11 ("Parsing that no page can stall"):

* a date followed by many ``", -"`` groups (a date pattern with two ways to match the
  same characters), in a plain-text capture, a byline, an HTML ``<time>`` and a live entry
  of an RSS feed;
* long runs of short separators next to an "Updated" line (overlapping quantifiers that are
  tried at every split of the run, with the length check coming after the match);
* long runs of digits, colons and dots that look like clock times and dates;
* long runs of unusual whitespace (form feeds, vertical tabs, U+2028) that the text-capture
  cleaner does not collapse, after an "Updated", "Authors:" or capture-date word;
* an XML declaration padded with whitespace, and a Content-Type with a padded charset.

Only the shapes are adversarial; every document is otherwise ordinary, so the parser takes
its normal paths (text capture, HTML page, RSS feed) to reach the vulnerable code.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from consumers.parse.document import FeedFormat, RawDocument

#: Printed dates in the languages the date reader carries.
DATES: tuple[str, ...] = (
    "4 November 2024",
    "November 4, 2024",
    "4 Nov 2024",
    "4 листопада 2024",
    "4 ноября 2024",
    "3. März 2025",
    "4 de noviembre de 2024",
    "4 novembre 2024",
    "2024-11-04",
    "04.11.2024",
)
#: Groups that the old ``_TIME_AFTER`` could read in two ways (", -" is "," + " -" or ", -").
DATE_SEPARATORS: tuple[str, ...] = (", -", ", - ", " , -", ",  -", ",\t-", ", —", ", -|", ", ·-")
#: Short separators that pages repeat in rules and ornaments.
RUN_SEPARATORS: tuple[str, ...] = (". . . ", "- - ", "| ", "• ", " - ", "· ", "— ", "-", ", ")
#: Whitespace that ``str.split("\n")`` keeps inside a line and the capture cleaner keeps.
ODD_SPACES: tuple[str, ...] = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\u2003")
#: Digit runs that look like clock times or numeric dates.
TIMELIKE: tuple[str, ...] = ("1:00", "12:34:", "1.1.", "12.", "0:0", "10:15 ", "23.59.", "1:1", "2024.")

FETCHED = datetime(2024, 11, 5, 12, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Hostile:
    """One hostile document and how it is served."""

    body: bytes
    content_type: str
    format: FeedFormat = "auto"

    def raw(self) -> RawDocument:
        return RawDocument(
            body=self.body,
            url="https://hostile.example/page",
            feed_id="hostile",
            fetched_at=FETCHED,
            content_type=self.content_type,
            timezone="Europe/Kyiv",
            format=self.format,
        )


def _repeat_to(unit: str, size: int) -> str:
    """``unit`` repeated to about ``size`` characters (at least once)."""
    return unit * max(1, size // max(1, len(unit)))


def date_phrase(date: str, sep: str, groups: int, *, clock: bool = False, tail: str = "x") -> str:
    """A date, optionally its clock, then ``groups`` separator groups and a non-clock tail."""
    return date + (", 08:36" if clock else "") + sep * groups + tail


def _fit_groups(prefix: str, date: str, sep: str, limit: int) -> int:
    """How many ``sep`` groups fit after ``prefix + date`` in a line of ``limit`` characters."""
    return max(1, (limit - len(prefix) - len(date) - 10) // max(1, len(sep)))


# --- plain-text captures -------------------------------------------------------------------

CAPTURE_HEAD = (
    "date 2024-11-04 Skip to content\nHarbour cranes idle as dockworkers weigh new offer\n\n"
    "Dockworkers at the northern terminal left their cranes idle for a second day on Monday.\n\n"
)


def text_stamp_dates(size: int, date: str = DATES[0], sep: str = ", -", *, clock: bool = False) -> Hostile:
    """Stamp-length lines (under 90 characters) made of a date and separator groups."""
    line = date_phrase(date, sep, _fit_groups("", date, sep, 88), clock=clock)[:88] + "\n"
    body = CAPTURE_HEAD + _repeat_to(line + "Ferry service resumes after storm.\n", size)
    return Hostile(body.encode(), "text/plain; charset=utf-8")


def text_bylines(size: int, date: str = DATES[2], sep: str = ", -", *, clock: bool = False) -> Hostile:
    """Byline-length lines ("By X, 4 Nov 2024, - , - , -...") right under the headline."""
    prefix = "By Olena Hrytsenko, "
    line = prefix + date_phrase(date, sep, _fit_groups(prefix, date, sep, 290), clock=clock) + "\n"
    body = "date 2024-11-04\nHarbour cranes idle\n" + _repeat_to(line, size) + "\nThe terminal stayed shut.\n"
    return Hostile(body.encode(), "text/plain; charset=utf-8")


def text_long_date_line(size: int, date: str = DATES[0], sep: str = ", -", *, clock: bool = True) -> Hostile:
    """One line of ``size`` characters: a date (and clock) followed by separator groups."""
    line = date_phrase(date, sep, max(1, size // max(1, len(sep))), clock=clock)
    return Hostile((CAPTURE_HEAD + line + "\n").encode(), "text/plain; charset=utf-8")


def text_updated_spaces(size: int, space: str = "\x0c", word: str = "Updated") -> Hostile:
    """An entry whose first line is "Updated" and a long run of whitespace the cleaner keeps."""
    body = CAPTURE_HEAD + "1:10 AM\n" + word + space * size + "x\nFerry service resumes.\n"
    return Hostile(body.encode(), "text/plain; charset=utf-8")


def text_authors_spaces(size: int, space: str = "\x0c") -> Hostile:
    """An "Authors:" line whose names end in a long run of whitespace before more text."""
    body = CAPTURE_HEAD + "Authors: Olena Hrytsenko" + space * size + "x\n"
    return Hostile(body.encode(), "text/plain; charset=utf-8")


def text_capture_line_spaces(size: int, space: str = "\x0c") -> Hostile:
    """A first line that starts like a capture-date line and then runs on in whitespace."""
    body = "date" + space * size + "x\nHarbour cranes idle\n\nThe terminal stayed shut all day.\n"
    return Hostile(body.encode(), "text/plain; charset=utf-8")


def text_separator_run(size: int, sep: str = "- - ") -> Hostile:
    """An entry's first line of ``size`` characters of separators (an ornament line)."""
    body = CAPTURE_HEAD + "1:10 AM\n" + _repeat_to(sep, size) + "\nFerry service resumes.\n"
    return Hostile(body.encode(), "text/plain; charset=utf-8")


def text_timelike(size: int, unit: str = "1:00") -> Hostile:
    """Long lines of digits, colons and dots that look like clock times."""
    lines = _repeat_to(unit, min(size, 4000)) + "\n"
    body = CAPTURE_HEAD + "1:10 AM\nFerry service resumes.\n" + _repeat_to(lines, size)
    return Hostile(body.encode(), "text/plain; charset=utf-8")


def text_caption_parens(size: int, unit: str = "(a / b) ") -> Hostile:
    """A paragraph of parenthesised credits that ends like a photo caption."""
    body = CAPTURE_HEAD + _repeat_to(unit, size) + "(Photo via Wire)\n"
    return Hostile(body.encode(), "text/plain; charset=utf-8")


# --- HTML pages ----------------------------------------------------------------------------


def _page(body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><title>Live: harbour strike</title></head><body>'
        f"<main><h1>Live: harbour strike</h1>{body}</main></body></html>"
    )


def html_time_dates(size: int, date: str = DATES[2], sep: str = ", -", *, clock: bool = False) -> Hostile:
    """A live page whose posts carry a ``<time>`` with a date and separator groups."""
    stamp = html.escape(date_phrase(date, sep, _fit_groups("", date, sep, 200), clock=clock))
    post = (
        f'<div class="post"><time>{stamp}</time><h2>Ferry service resumes</h2>'
        "<p>Morning ferries left on schedule after a two-day pause, the operator said.</p></div>"
    )
    return Hostile(_page(_repeat_to(post, size)).encode(), "text/html; charset=utf-8")


def html_long_time(size: int, date: str = DATES[2], sep: str = ", -", *, clock: bool = False) -> Hostile:
    """An article whose one ``<time>`` holds ``size`` characters of date and separators."""
    stamp = html.escape(date_phrase(date, sep, max(1, size // max(1, len(sep))), clock=clock))
    body = (
        f"<article><h1>Harbour cranes idle</h1><time>{stamp}</time>"
        "<p>Dockworkers at the northern terminal left their cranes idle for a second day.</p>"
        "<p>Union stewards said members would vote on the revised offer by Friday.</p></article>"
    )
    return Hostile(_page(body).encode(), "text/html; charset=utf-8")


def html_byline(size: int, date: str = DATES[2], sep: str = ", -") -> Hostile:
    """An article with a byline element "By X, 4 Nov 2024, - , - , -..." short enough to be
    read (under 200 characters), then paragraphs up to ``size``."""
    prefix = "By Olena Hrytsenko, "
    byline = html.escape(prefix + date_phrase(date, sep, _fit_groups(prefix, date, sep, 190)))
    para = "<p>Dockworkers at the northern terminal left their cranes idle for a second day.</p>"
    body = (
        f'<article><h1>Harbour cranes idle</h1><span class="byline">{byline}</span>'
        f"{_repeat_to(para, size)}</article>"
    )
    return Hostile(_page(body).encode(), "text/html; charset=utf-8")


def html_updated_separators(size: int, sep: str = "- - ", *, live: bool = True) -> Hostile:
    """A ``<p>`` of ``size`` characters of short separators right after an "Updated: 10:15"
    line, inside two live posts (``live``) or an ordinary article."""
    run = html.escape(_repeat_to(sep, size))
    if live:
        post = (
            '<article id="block-{n}"><time datetime="2024-11-04T10:0{n}:00Z">10:0{n}</time>'
            "<h2>Ferry service resumes</h2><p>Updated: 10:15</p><p>{run}</p>"
            "<p>Morning ferries left on schedule after a two-day pause.</p></article>"
        )
        body = post.format(n=2, run=run) + post.format(n=1, run="Earlier update text, short.")
    else:
        body = (
            "<article><h1>Harbour cranes idle</h1><p>Updated: 10:15</p>"
            f"<p>{run}</p><p>Dockworkers at the northern terminal left their cranes idle.</p></article>"
        )
    return Hostile(_page(body).encode(), "text/html; charset=utf-8")


def html_timelike(size: int, unit: str = "1:00") -> Hostile:
    """Live posts whose ``<time>`` and paragraphs are long runs of time-like digits."""
    run = _repeat_to(unit, max(8, size // 4))
    post = (
        '<article id="block-{n}"><time>{run}</time><h2>Update {n}</h2><p>{run}</p>'
        "<p>Morning ferries left on schedule after a two-day pause.</p></article>"
    )
    body = post.format(n=2, run=run) + post.format(n=1, run=run)
    return Hostile(_page(body).encode(), "text/html; charset=utf-8")


def html_post_ids(size: int, unit: str = "1") -> Hostile:
    """Posts whose inner element id is a long run of id characters that is not an anchor."""
    ident = _repeat_to(unit, size) + "!"
    post = (
        '<div class="post"><span id="{ident}">x</span><time datetime="2024-11-04T10:0{n}:00Z">10:0{n}</time>'
        "<p>Morning ferries left on schedule after a two-day pause, the operator said.</p></div>"
    )
    body = post.format(n=2, ident=ident) + post.format(n=1, ident=ident)
    return Hostile(_page(body).encode(), "text/html; charset=utf-8")


# --- feeds ---------------------------------------------------------------------------------


def _rss(items: str, prolog: str = '<?xml version="1.0" encoding="utf-8"?>') -> str:
    return (
        f'{prolog}<rss version="2.0"><channel><title>Harbour news</title>'
        f"<link>https://hostile.example/</link>{items}</channel></rss>"
    )


#: One feed entry's content is at most this long, so a big feed has entries of realistic
#: number (feedparser's per-entry cost is not what these documents probe).
_ENTRY_CONTENT: int = 32_000


def _rss_items(content_unit: str, size: int, *, wrap: tuple[str, str] = ("", "")) -> str:
    content = wrap[0] + _repeat_to(content_unit, min(size, _ENTRY_CONTENT)) + wrap[1]
    item = (
        "<item><title>Live: harbour strike</title><link>https://hostile.example/live/{n}</link>"
        f"<guid>live-{{n}}</guid><description>{html.escape(content)}</description></item>"
    )
    count = max(1, size // len(item))
    return "".join(item.replace("{n}", str(i)) for i in range(count))


def rss_live_entry(size: int, date: str = DATES[0], sep: str = ", -", *, clock: bool = False) -> Hostile:
    """An RSS feed whose entries are live blogs of stamped paragraphs, each update holding a
    stamp-length line of a date and separator groups."""
    line = date_phrase(date, sep, _fit_groups("", date, sep, 88), clock=clock)[:88]
    unit = f"<p>10:05</p><p>Ferry service resumes.</p><p>{html.escape(line)}</p>"
    return Hostile(_rss(_rss_items(unit, size)).encode(), "application/rss+xml; charset=utf-8")


def rss_time_entry(size: int, date: str = DATES[2], sep: str = ", -", *, clock: bool = False) -> Hostile:
    """An RSS feed whose entries hold ``<time>`` blocks with a date and separator groups."""
    stamp = date_phrase(date, sep, _fit_groups("", date, sep, 200), clock=clock)
    unit = f'<div class="upd"><time>{html.escape(stamp)}</time><p>Morning ferries left on time.</p></div>'
    items = _rss_items(unit, size, wrap=('<div class="live">', "</div>"))
    return Hostile(_rss(items).encode(), "application/rss+xml; charset=utf-8")


def rss_padded_prolog(size: int, space: str = " ") -> Hostile:
    """An RSS feed whose XML declaration is padded with ``size`` whitespace characters."""
    item = "<item><title>Ferry service resumes</title><link>https://hostile.example/a</link></item>"
    return Hostile(_rss(item, '<?xml version="1.0"' + space * size + "?>").encode(), "application/rss+xml")


def rss_author_spaces(size: int, space: str = " ") -> Hostile:
    """An RSS entry whose author is a name, a long run of whitespace, then more text: the
    name-then-email pattern can split that run in quadratically many ways."""
    author = "Olena" + space * max(1, size - 200) + "x"
    item = (
        "<item><title>Ferry service resumes</title><link>https://hostile.example/a</link>"
        f"<author>{html.escape(author)}</author></item>"
    )
    return Hostile(_rss(item).encode(), "application/rss+xml; charset=utf-8")


def padded_content_type(size: int, space: str = " ") -> Hostile:
    """A page served with a Content-Type whose charset value is ``size`` spaces of padding."""
    body = _page("<article><h1>Harbour</h1><p>Dockworkers left their cranes idle for a day.</p></article>")
    return Hostile(body.encode(), "text/html; charset=" + space * size + "!")


def benign_documents() -> list[Hostile]:
    """One ordinary document of each shape (text capture, article page, live feed)."""
    article = _page(
        "<article><h1>Harbour cranes idle</h1><p>Dockworkers at the northern terminal left "
        "their cranes idle for a second day.</p><p>Union stewards said members would vote.</p></article>"
    )
    text = CAPTURE_HEAD + "1:10 AM\nFerry service resumes.\n\nMorning ferries left on schedule.\n"
    unit = "<p>10:05</p><p>Ferry service resumes.</p><p>Morning ferries left on schedule.</p>"
    return [
        Hostile(text.encode(), "text/plain; charset=utf-8"),
        Hostile(article.encode(), "text/html; charset=utf-8"),
        Hostile(_rss(_rss_items(unit, 2_000)).encode(), "application/rss+xml; charset=utf-8"),
    ]


#: Every class, by name: ``generator(size)`` builds a document of about ``size`` characters.
CLASSES: dict[str, Callable[[int], Hostile]] = {
    "text_stamp_dates": text_stamp_dates,
    "text_bylines": text_bylines,
    "text_long_date_line": text_long_date_line,
    "text_updated_spaces": text_updated_spaces,
    "text_authors_spaces": text_authors_spaces,
    "text_capture_line_spaces": text_capture_line_spaces,
    "text_separator_run": text_separator_run,
    "text_timelike": text_timelike,
    "text_caption_parens": text_caption_parens,
    "html_time_dates": html_time_dates,
    "html_long_time": html_long_time,
    "html_byline": html_byline,
    "html_updated_separators": html_updated_separators,
    "html_timelike": html_timelike,
    "html_post_ids": html_post_ids,
    "rss_live_entry": rss_live_entry,
    "rss_time_entry": rss_time_entry,
    "rss_padded_prolog": rss_padded_prolog,
    "rss_author_spaces": rss_author_spaces,
    "padded_content_type": padded_content_type,
}
