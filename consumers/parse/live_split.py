"""Feed entries that are live blogs: one entry whose HTML holds several time-stamped
updates becomes one ``live_update`` item per update.

Called by the feed shape for every entry with HTML content.  Two forms are recognised:
post blocks with a ``<time>`` (the HTML live-page detectors), and stamped paragraphs ("10:05"
or "1:10 AM" on a line of its own, then the update), read with the text-capture rules.  An
entry is a live blog only when at least two updates are found; otherwise ``[]`` and the
entry stays one item.
"""

from __future__ import annotations

import re
from typing import Final

from selectolax.lexbor import LexborHTMLParser

from consumers.parse.document import RawDocument
from consumers.parse.fragments import Fragment, build_items
from consumers.parse.furniture import is_boilerplate_line
from consumers.parse.htmltext import html_to_text
from consumers.parse.live_blocks import block_fragments, clean_paragraphs
from consumers.parse.text_capture import stamped_fragments
from consumers.parse.timeresolve import get_zone
from ingestor.models import NewsItem, content_hash

__all__ = ["split_live_entry"]

_MIN_UPDATES = 2
#: A clock reading as either reader could see it, kept looser than ``dates.CLOCK_RE`` (and
#: aware of the colon's entity forms) so that the cheap test never rejects an entry the full
#: readers would split.
_CLOCKISH: Final = re.compile(r"\d(?:[:.]|&#0*58;|&#[xX]0*3[aA];|&colon;)\d\d")


def _clock_count(html: str, enough: int) -> int:
    """How many clock-like readings ``html`` holds, counting no further than ``enough``."""
    count = 0
    for _ in _CLOCKISH.finditer(html):
        count += 1
        if count >= enough:
            break
    return count


def split_live_entry(doc: RawDocument, entry_item: NewsItem, html: str) -> list[NewsItem]:
    """The updates inside ``entry_item``'s HTML content as ``live_update`` items whose
    parent is the entry; ``[]`` when the content is not a live blog.

    When the entry has text beyond its updates (an intro), the list starts with the entry
    item itself, its body cut to that intro (and its hash recomputed); otherwise it holds
    the updates only (their ``parent_id`` is still the entry's id).

    Clock-only times resolve against the entry's ``updated_at`` (the newest update cannot be
    later than the entry's last change), else against the fetch time.  Fragment ids use the
    entry's URL (or the feed URL) plus each update's anchor, else its time and headline.
    """
    if not html or ("<" not in html and "\n" not in html):
        return []
    # Most entries are ordinary articles.  Each update needs its own ``<time>``/``data-timestamp`` (block
    # form) or its own clock stamp (stamped form), so an entry with fewer than two of either
    # is not a live blog, and this costs a substring count instead of two HTML parses.
    has_blocks = html.count("<time") + html.count("data-timestamp") >= _MIN_UPDATES
    if not has_blocks and _clock_count(html, _MIN_UPDATES) < _MIN_UPDATES:
        return []
    zone = get_zone(doc.timezone)
    reference = entry_item.updated_at or doc.fetched_at
    if reference > doc.fetched_at:
        reference = doc.fetched_at
    canonical = entry_item.url or doc.base_url
    frags: list[Fragment] = []
    intro: list[str] = []
    if has_blocks:
        tree = LexborHTMLParser(html)
        frags, nodes = block_fragments(tree, zone, reference)
        if len(frags) >= _MIN_UPDATES:
            for node in nodes:
                node.decompose()
            root = tree.body or tree.root
            intro = clean_paragraphs(html_to_text(root.html or "") if root is not None else "", "")
    if len(frags) < _MIN_UPDATES:
        head, frags = stamped_fragments(html_to_text(html), zone, reference)
        intro = [line for line in head if line and not is_boilerplate_line(line)]
    if len(frags) < _MIN_UPDATES:
        return []
    seen = {p for f in frags for p in f.body.split("\n\n")} | {f.title for f in frags}
    intro = [p for p in intro if p not in seen and p != entry_item.title]
    out: list[NewsItem] = []
    if intro:
        body = "\n\n".join(intro)
        out.append(
            entry_item.model_copy(
                update={
                    "body": body,
                    "content_hash": content_hash(
                        title=entry_item.title,
                        body=body,
                        authors=entry_item.authors,
                        url=entry_item.url,
                        summary=entry_item.summary,
                    ),
                }
            )
        )
    return out + build_items(
        doc,
        canonical,
        frags,
        default_language=entry_item.language,
        parent_id=entry_item.id,
        body_source="feed",
    )
