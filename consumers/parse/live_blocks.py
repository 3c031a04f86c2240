"""Live pages without structured data: repeated post blocks, each with a time (a ``<time>``,
or an element with a ``data-timestamp``).

Three detectors, most specific first:

* the ``block-{id}`` pattern (Guardian-style ``<article id="block-…">``);
* BBC-style ``lx-stream`` post lists (``.lx-stream-post``), whose times are often clock-only;
* a generic detector: the container whose children repeat the same tag and first class
  token and each carry a time.  Children that are mostly one link (teasers, "key
  events" menus) and lists inside comments, ``aside``, ``nav`` and ``footer`` do not count.

A post's headline is optional; a headline-less post becomes an item with an empty title
(its body carries the text; see docs/parsing.md).  Pinned copies of a post (the same id
shown again above the stream) are dropped in favour of the copy in the stream, so the
clock-only time rules see the real order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, tzinfo
from typing import Final

from selectolax.lexbor import LexborHTMLParser, LexborNode

from consumers.parse.dates import (
    CLOCK_RE,
    MAX_DATE_TEXT,
    clock_pattern,
    find_human_date,
    parse_clock,
    parse_machine_datetime,
)
from consumers.parse.fragments import Fragment
from consumers.parse.furniture import (
    is_audio_note,
    is_boilerplate_line,
    is_caption,
    parse_authors_line,
    split_names,
)
from consumers.parse.htmltext import html_to_text
from consumers.parse.timeresolve import earliest_not_before, latest_not_after

__all__ = [
    "STAMP_SEL",
    "Post",
    "block_fragments",
    "clean_paragraphs",
    "is_updated_marker",
    "post_from_node",
    "posts_to_fragments",
    "read_posts",
    "read_time",
]

# Runs of spaces and separators are possessive (``*+``) wherever what follows cannot start
# with the characters the run reads, so there is one way to match any text; and every
# pattern that reads page text runs on a capped length (see the callers).
_UPDATED_WORD: Final = (
    r"(?:last\s++updated|updated|upd\.?|edited|оновлено|обновлено|змінено|aktualisiert|actualizado|"
    r"mis\s++à\s++jour)"
)
_UPDATED_TEXT: Final = re.compile(
    rf"{_UPDATED_WORD}\s*+(?:at|о|в|um|a\s++las|à|:)?\s*+:?\s*+(?P<rest>.{{0,60}})", re.IGNORECASE
)
_UPDATED_HINTS: Final = ("upd", "edited", "оновл", "обновл", "змін", "aktualis", "actualiz", "mis à")
#: An "8:00 · Updated 8:15" line.  The separators before the word used to be read by three
#: overlapping runs (digits-and-separators, separators, spaces): a 31 KB paragraph of
#: "- - " was tried at every split of the run (n**2).  The first run covers what the
#: others read, so each run is possessive; and only lines under _MAX_UPDATED_LINE are tried.
_UPDATED_LINE: Final = re.compile(
    rf"^[\s·|,–—\-\d:.]*+(?:[AaPp]\.?[Mm]\.?)?[\s·|,–—-]*+[(\[]?\s*+{_UPDATED_WORD}\b.{{0,70}}$",
    re.IGNORECASE,
)
_MAX_UPDATED_LINE: Final = 80
_HAS_WORD: Final = re.compile(r"[^\W\d_]{3,}")
_CLOCK_ONLY: Final = re.compile(clock_pattern())
_CLOCK_LINE: Final = re.compile(rf"^\s*+{clock_pattern()}\s*+(?:[A-Z]{{2,5}}\s*+)?$")
#: A clock on a line of its own ("10:15", "8:36 a.m. EST") is short.
_MAX_CLOCK_LINE: Final = 40
#: An anchor-like id: a post prefix, or a digit with at least five id characters after it.
#: Read as "all id characters" plus two anchored checks: the old
#: ``[\w-]*\d[\w-]{5,}`` tried every digit against every length (n**2 on a long number).
_ID_CHARS: Final = re.compile(r"[\w-]+")
_POST_PREFIX: Final = re.compile(r"(?:post|block|entry|update|item|event|lb|live|msg)(?=[\w-])", re.I)
_DIGIT: Final = re.compile(r"\d")
_BY_PREFIX: Final = re.compile(r"^\s*+(?:by|von|por|par|від|автор[иы]?)(?:\s*+:)?\s+", re.IGNORECASE)
_HEADLINE_SEL: Final = "h1, h2, h3, h4, h5, [itemprop~=headline], [class*=headline], [class*=post-title]"
_AUTHOR_SEL: Final = (
    '[itemprop~=author], [rel~=author], [class*=byline], [class*=author], [class*="contributor"]'
)
_META_SEL: Final = (
    "[class*=share], [class*=social], [class*=pinned-label], [class*=permalink], [class*=tools]"
)
_EXCLUDED_ANCESTORS: Final = frozenset({"aside", "nav", "footer"})
_MAX_HEADLINE: Final = 300
_SPLIT: Final = "\ue0f5post\ue0f5"


@dataclass(slots=True)
class Post:
    """A post block as read from the markup, before clock-only times are resolved."""

    anchor: str | None
    title: str
    body: str
    published: datetime | None = None
    published_clock: time | None = None
    updated: datetime | None = None
    updated_clock: time | None = None
    authors: list[str] = field(default_factory=list)
    pinned: bool = False


def _classes(node: LexborNode) -> str:
    return ((node.attributes.get("class") or "") + " " + (node.attributes.get("id") or "")).lower()


def read_time(node: LexborNode, zone: tzinfo) -> tuple[datetime | None, time | None]:
    """A ``<time>`` (or date-bearing element) as an instant, or as a clock-only reading."""
    attr = (
        node.attributes.get("datetime")
        or node.attributes.get("content")
        or node.attributes.get("data-time")
        or node.attributes.get("data-timestamp")
    )
    if attr:
        stripped = attr.strip()
        clock_only = _CLOCK_ONLY.fullmatch(stripped) if len(stripped) <= _MAX_CLOCK_LINE else None
        if clock_only is not None:
            return None, parse_clock(clock_only)
        if attr.strip().isdigit() and len(attr.strip()) in (10, 13):
            # Unix seconds or milliseconds (data-timestamp style attributes).
            seconds = int(attr.strip()) / (1000 if len(attr.strip()) == 13 else 1)
            return datetime.fromtimestamp(seconds, tz=UTC), None
        when = parse_machine_datetime(attr, zone)
        if when is not None:
            return when, None
    # A stamp is short: read no more of the element's text than a date reader would.
    text = node.text(deep=True, separator=" ")[:MAX_DATE_TEXT]
    human = find_human_date(text)
    if human is not None and human.clock is not None:
        return human.to_datetime(zone), None
    m = CLOCK_RE.search(text)
    if m is not None:
        return None, parse_clock(m)
    return None, None


def is_updated_marker(node: LexborNode) -> bool:
    if re.search(r"updat|modif|edit", _classes(node)) or node.attributes.get("itemprop") == "dateModified":
        return True
    prev = node.prev
    parent = node.parent
    context = ""
    if prev is not None and prev.is_text_node:
        context = prev.text(deep=False)
    elif parent is not None and parent.tag not in ("article", "li", "section", "body"):
        context = parent.text(deep=True)[:80]
    return bool(re.search(_UPDATED_WORD, context, re.IGNORECASE))


def _anchor_of(node: LexborNode) -> str | None:
    for attr in ("id", "data-block-id", "data-post-id", "data-entry-id", "data-id"):
        value = node.attributes.get(attr)
        if value and value.strip():
            return value.strip()
    inner = node.css_first("[id]")
    if inner is not None:
        value = inner.attributes.get("id") or ""
        if _is_post_id(value):
            return value
    link = node.css_first('a[href^="#"]')
    if link is not None:
        href = (link.attributes.get("href") or "")[1:]
        if href and _is_post_id(href):
            return href
    return None


def _is_post_id(value: str) -> bool:
    """Whether ``value`` looks like a post's anchor ("post-123", "lb-abc", "a1b2c3d4")."""
    if _ID_CHARS.fullmatch(value) is None:
        return False
    return _POST_PREFIX.match(value) is not None or _DIGIT.search(value, 0, len(value) - 5) is not None


def clean_paragraphs(text: str, title: str) -> list[str]:
    """Paragraphs of ``text`` without furniture: share/subscribe lines, captions, audio notes,
    "Updated at" lines, bare clock lines, bylines and author lines, and the title repeated."""
    out: list[str] = []
    for para in text.split("\n\n"):
        line = para.strip()
        if not line or line == title:
            continue
        if is_boilerplate_line(line) or is_audio_note(line) or is_caption(line):
            continue
        if len(line) < _MAX_UPDATED_LINE and _UPDATED_LINE.match(line):
            continue
        if (len(line) <= _MAX_CLOCK_LINE and _CLOCK_LINE.match(line)) or parse_authors_line(line) is not None:
            continue
        if len(line) < 40 and _HAS_WORD.search(line) is None:  # "8:00 ·", "—", "1/3"
            continue
        if len(line) < 120 and _BY_PREFIX.match(line) and len(line.split()) <= 12:
            continue
        out.append(line)
    return out


#: What carries a post's time: ``<time>``, or an element with an epoch/ISO ``data-timestamp``
#: (publishers that render times with script often print them in a ``<span>``).
STAMP_SEL: Final = "time, [data-timestamp]"
_TIME_SEL: Final = f"{STAMP_SEL}, [itemprop=datePublished], [itemprop=dateModified]"

#: Finds a selector's matches inside each post: ``query(selector)[i]`` for post ``i``.
_Query = Callable[[str], list[list[LexborNode]]]


def _per_post_query(nodes: list[LexborNode]) -> _Query:
    return lambda selector: [node.css(selector) for node in nodes]


def _page_query(nodes: list[LexborNode]) -> _Query | None:
    """One selector run over the page, its matches grouped by the post that holds them.

    Five selector runs per post cost ~20 µs, two fifths of a 500-post page's budget; five
    runs over the page and a short walk up from each match cost a tenth of that.  ``None``
    when a post sits inside another (the per-post order of removals would then matter).
    """
    index = {node.mem_id: i for i, node in enumerate(nodes)}
    for node in nodes:
        parent = node.parent
        while parent is not None:
            if parent.mem_id in index:
                return None
            parent = parent.parent
    root = nodes[0].parser.root
    if root is None:
        return None

    def query(selector: str) -> list[list[LexborNode]]:
        groups: list[list[LexborNode]] = [[] for _ in nodes]
        for match in root.css(selector):
            owner: LexborNode | None = match
            while owner is not None:
                i = index.get(owner.mem_id)
                if i is not None:
                    groups[i].append(match)
                    break
                owner = owner.parent
        return groups

    return query


def _times(node: LexborNode, tnodes: list[LexborNode], zone: tzinfo) -> Post:
    """A post's anchor, pin and times (the body is filled in later)."""
    anchor = _anchor_of(node)
    pinned = "pinned" in _classes(node) or (node.parent is not None and "pinned" in _classes(node.parent))
    post = Post(anchor=anchor, title="", body="", pinned=pinned)
    for tnode in tnodes:
        when, clock = read_time(tnode, zone)
        if when is None and clock is None:
            continue
        if is_updated_marker(tnode):
            if post.updated is None and post.updated_clock is None:
                post.updated, post.updated_clock = when, clock
        elif post.published is None and post.published_clock is None:
            post.published, post.published_clock = when, clock
    if post.updated is None and post.updated_clock is None:
        head_text = node.text(deep=True, separator=" ")[:400]
        lowered = head_text.lower()
        # Plain substring tests first: the regex costs ~20 µs a post, the tests ~1 µs.
        hinted = any(hint in lowered for hint in _UPDATED_HINTS)
        m = _UPDATED_TEXT.search(head_text) if hinted else None
        if m is not None:
            human = find_human_date(m.group("rest"))
            clock_m = CLOCK_RE.search(m.group("rest"))
            if human is not None and human.clock is not None:
                post.updated = human.to_datetime(zone)
            elif clock_m is not None:
                post.updated_clock = parse_clock(clock_m)
    return post


def _post_markups(nodes: list[LexborNode], zone: tzinfo, body_nodes: list[LexborNode | None]) -> list[Post]:
    """Posts' meta, with ``body`` still the markup of what is left (see :func:`read_posts`).

    Mutates the nodes: headline, author, time and share parts are removed, in that order
    (each step sees what the one before left), so that they do not reach the body."""
    query = _page_query(nodes) or _per_post_query(nodes)
    posts = [_times(node, tnodes, zone) for node, tnodes in zip(nodes, query(_TIME_SEL), strict=True)]

    for post, heads, body_node in zip(posts, query(_HEADLINE_SEL), body_nodes, strict=True):
        head = heads[0] if heads else None
        if head is not None and (body_node is None or head.mem_id != body_node.mem_id):
            text = " ".join(head.text(deep=True).split())
            if 0 < len(text) <= _MAX_HEADLINE:
                post.title = text
                head.decompose()

    for post, anodes in zip(posts, query(_AUTHOR_SEL), strict=True):
        for anode in anodes:
            # A microdata Person: its name, not its profile link's text run into it.
            named = anode.css_first('[itemprop~="name"]') if "itemscope" in anode.attributes else None
            name = _BY_PREFIX.sub("", " ".join((named or anode).text(deep=True).split()))
            if name and len(name) <= 120 and not post.authors:
                post.authors = split_names(name)
            anode.decompose()
    for selector in (STAMP_SEL, _META_SEL):
        for found in query(selector):
            for extra in found:
                extra.decompose()

    for post, node, body_node in zip(posts, nodes, body_nodes, strict=True):
        source = body_node if body_node is not None else node
        post.body = source.html or ""
    return posts


def read_posts(
    nodes: list[LexborNode], zone: tzinfo, body_nodes: list[LexborNode | None] | None = None
) -> list[Post]:
    """Read post blocks.  Their bodies go through :func:`html_to_text` in one batch, joined
    by a separator paragraph: one parse of all bodies instead of one per post is what keeps
    a 500-post page well under the stage's time budget."""
    if not nodes:
        return []
    posts = _post_markups(nodes, zone, body_nodes if body_nodes is not None else [None] * len(nodes))
    joined = f"<p>{_SPLIT}</p>".join(f"<div>{post.body}</div>" for post in posts)
    texts = html_to_text(joined).split(_SPLIT)
    if len(texts) != len(posts):  # a body swallowed a separator (broken markup): go one by one
        texts = [html_to_text(post.body) for post in posts]
    for post, text in zip(posts, texts, strict=True):
        post.body = "\n\n".join(clean_paragraphs(text.strip(), post.title))
    return posts


def post_from_node(node: LexborNode, zone: tzinfo, *, body_node: LexborNode | None = None) -> Post:
    """Read one post block (see :func:`read_posts`, which does many at once)."""
    return read_posts([node], zone, [body_node])[0]


def _drop_pinned_copies(posts: list[Post]) -> list[Post]:
    """One post per anchor: a pinned copy gives way to the copy in the stream."""
    in_stream = {p.anchor for p in posts if p.anchor and not p.pinned}
    seen: set[str] = set()
    out: list[Post] = []
    for post in posts:
        if post.anchor:
            if post.pinned and post.anchor in in_stream:
                continue
            if post.anchor in seen:
                continue
            seen.add(post.anchor)
        out.append(post)
    return out


def posts_to_fragments(posts: list[Post], zone: tzinfo, reference: datetime) -> list[Fragment]:
    """Resolve clock-only times (newest first, below ``reference`` or the post above) and
    turn posts into fragments, newest first."""
    posts = _drop_pinned_copies(posts)
    frags: list[Fragment] = []
    bound = reference
    for post in posts:
        published = post.published
        if published is None and post.published_clock is not None:
            published = latest_not_after(post.published_clock, zone, bound)
        if published is not None and published <= reference:
            bound = published
        updated = post.updated
        if updated is None and post.updated_clock is not None and published is not None:
            updated = earliest_not_before(post.updated_clock, zone, published)
        if updated is not None and published is not None and updated <= published:
            updated = None
        if not post.title and not post.body:
            continue
        frags.append(
            Fragment(
                title=post.title,
                body=post.body,
                published_at=published,
                updated_at=updated,
                anchor=post.anchor,
                authors=post.authors,
            )
        )
    return frags


def _excluded(node: LexborNode) -> bool:
    parent = node.parent
    depth = 0
    while parent is not None and depth < 30:
        if parent.tag in _EXCLUDED_ANCESTORS:
            return True
        cls = _classes(parent)
        if "comment" in cls or "related" in cls or "most-read" in cls or "key-events" in cls:
            return True
        parent = parent.parent
        depth += 1
    return False


def _signature(node: LexborNode) -> str:
    cls = (node.attributes.get("class") or "").split()
    return f"{node.tag}.{cls[0] if cls else ''}"


def _link_heavy(node: LexborNode, text_len: int) -> bool:
    linked = sum(len(a.text(deep=True).strip()) for a in node.css("a"))
    return text_len == 0 or linked / text_len > 0.7


def _generic_posts(root: LexborNode) -> tuple[list[LexborNode], LexborNode | None]:
    """The repeated children of the best container of ``<time>``-bearing blocks."""
    buckets: dict[tuple[int, str], dict[int, LexborNode]] = {}
    parents: dict[int, LexborNode] = {}
    for tnode in root.css(STAMP_SEL):
        child = tnode
        parent = tnode.parent
        for _ in range(12):
            if parent is None or parent.tag in ("body", "html"):
                break
            if child.mem_id != tnode.mem_id and child.tag != "time":
                key = (parent.mem_id, _signature(child))
                buckets.setdefault(key, {})[child.mem_id] = child
                parents[parent.mem_id] = parent
            child, parent = parent, parent.parent
    best: list[LexborNode] = []
    best_parent: LexborNode | None = None
    best_score = 0
    for (parent_id, _sig), children in buckets.items():
        if len(children) < 2:
            continue
        parent_node = parents[parent_id]
        if parent_node.tag in _EXCLUDED_ANCESTORS or _excluded(parent_node):
            continue
        kept: list[LexborNode] = []
        for child in children.values():
            text_len = len(child.text(deep=True).strip())
            if text_len >= 30 and not _link_heavy(child, text_len):
                kept.append(child)
        score = len(kept)
        if score >= 2 and score > best_score:
            best, best_parent, best_score = kept, parent_node, score
    return best, best_parent


def block_fragments(
    tree: LexborHTMLParser, zone: tzinfo, reference: datetime
) -> tuple[list[Fragment], list[LexborNode]]:
    """Fragments of a block-post live page and the nodes holding them (to cut from the
    page's own text); ``([], [])`` when the page has no repeated post blocks."""
    root = tree.body or tree.root
    if root is None:
        return [], []
    nodes = [n for n in root.css('[id^="block-"]') if n.css_first(STAMP_SEL) is not None]
    if len(nodes) < 1:
        nodes = [n for n in root.css("[class~=lx-stream-post]") if n.css_first(STAMP_SEL)]
    containers: list[LexborNode]
    if nodes:
        ids = {n.mem_id for n in nodes}
        nodes = [n for n in nodes if not any(a.mem_id in ids for a in _ancestors(n))]
        containers = list(nodes)
    else:
        nodes, parent = _generic_posts(root)
        containers = list(nodes)
        if parent is not None and len(nodes) < 2:
            return [], []
    if not nodes:
        return [], []
    return posts_to_fragments(read_posts(nodes, zone), zone, reference), containers


def _ancestors(node: LexborNode) -> list[LexborNode]:
    out: list[LexborNode] = []
    parent = node.parent
    while parent is not None and len(out) < 8:
        out.append(parent)
        parent = parent.parent
    return out
