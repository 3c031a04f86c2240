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
    "leading_text",
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
    text = leading_text(node, MAX_DATE_TEXT, separator=" ")
    human = find_human_date(text)
    if human is not None and human.clock is not None:
        return human.to_datetime(zone), None
    m = CLOCK_RE.search(text)
    if m is not None:
        return None, parse_clock(m)
    return None, None


#: How much of a stamp's parent is read for an "Updated" word, and in how many nodes at most.
_CONTEXT_CHARS: Final = 80
_MAX_TEXT_NODES: Final = 32


def leading_text(node: LexborNode, limit: int, *, separator: str = "") -> str:
    """``node.text(deep=True, separator=separator)[:limit]``, reading only the first
    :data:`_MAX_TEXT_NODES` nodes of ``node`` (itself included) and only until ``limit``
    characters are in.

    ``text(deep=True)`` reads all of a node however little is kept: for each of n stamps
    in one parent (or nested in one another) it read the whole parent, n**2 in all (28,000
    ``<time>`` in a 400 KB ``<div>`` took 20 s).  A stamp, or the label before it, is a
    few nodes long on any page; a text node is still read whole, so callers that come
    back to the same node keep what they read (see :func:`is_updated_marker`)."""
    parts: list[str] = []
    size = 0
    for seen, sub in enumerate(node.traverse(include_text=True)):
        if seen >= _MAX_TEXT_NODES:
            break
        if sub.is_text_node:
            text = sub.text(deep=False)
            size += len(text) + (len(separator) if parts else 0)
            parts.append(text)
            if size >= limit:
                break
    return separator.join(parts)[:limit]


def is_updated_marker(node: LexborNode, contexts: dict[int, str] | None = None) -> bool:
    """Whether the stamp ``node`` is the time of an update: by its class or ``itemprop``,
    or an "Updated" word in the text right before it (the text node before it, else the
    first 80 characters of its parent).  ``contexts`` keeps what was read of each parent,
    for callers that ask about many stamps (siblings share their parent)."""
    if re.search(r"updat|modif|edit", _classes(node)) or node.attributes.get("itemprop") == "dateModified":
        return True
    prev = node.prev
    parent = node.parent
    context = ""
    if prev is not None and prev.is_text_node:
        context = prev.text(deep=False)
    elif parent is not None and parent.tag not in ("article", "li", "section", "body"):
        known = contexts.get(parent.mem_id) if contexts is not None else None
        context = known if known is not None else leading_text(parent, _CONTEXT_CHARS)
        if contexts is not None:
            contexts[parent.mem_id] = context
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

    Each walk up stops at an ancestor an earlier walk has passed (its answer is known):
    walking every match to the root cost matches x depth (10,000 headlines 1,500 levels
    down took 4.5 s).
    """
    index = {node.mem_id: i for i, node in enumerate(nodes)}
    # Nodes known to have no post at or above them.
    clear: set[int] = set()
    for node in nodes:
        path: list[int] = []
        parent = node.parent
        while parent is not None and parent.mem_id not in clear:
            if parent.mem_id in index:
                return None
            path.append(parent.mem_id)
            parent = parent.parent
        clear.update(path)
    root = nodes[0].parser.root
    if root is None:
        return None

    def query(selector: str) -> list[list[LexborNode]]:
        groups: list[list[LexborNode]] = [[] for _ in nodes]
        # node -> index of the post at or above it (-1: none), for the nodes walked so far;
        # per run, since the runs between them remove nodes.
        owners: dict[int, int] = {}
        for match in root.css(selector):
            path: list[int] = []
            owner = -1
            current: LexborNode | None = match
            while current is not None:
                key = current.mem_id
                found = index.get(key)
                if found is None:
                    found = owners.get(key)
                if found is not None:
                    owner = found
                    break
                path.append(key)
                current = current.parent
            for key in path:
                owners[key] = owner
            if owner >= 0:
                groups[owner].append(match)
        return groups

    return query


@dataclass(slots=True)
class _Seen:
    """What reading one page's posts learnt about nodes posts share (their parents, the
    parents of their stamps), by ``mem_id``: read once, not once per post (a parent with a
    400 KB class above 3,000 posts took 3 s when each post lowered and searched it)."""

    pinned: dict[int, bool] = field(default_factory=dict)
    contexts: dict[int, str] = field(default_factory=dict)

    def parent_pinned(self, node: LexborNode) -> bool:
        parent = node.parent
        if parent is None:
            return False
        found = self.pinned.get(parent.mem_id)
        if found is None:
            found = self.pinned[parent.mem_id] = "pinned" in _classes(parent)
        return found


def _times(node: LexborNode, tnodes: list[LexborNode], zone: tzinfo, seen: _Seen) -> Post:
    """A post's anchor, pin and times (the body is filled in later)."""
    anchor = _anchor_of(node)
    pinned = "pinned" in _classes(node) or seen.parent_pinned(node)
    post = Post(anchor=anchor, title="", body="", pinned=pinned)
    for tnode in tnodes:
        when, clock = read_time(tnode, zone)
        if when is None and clock is None:
            continue
        if is_updated_marker(tnode, seen.contexts):
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
    seen = _Seen()
    posts = [_times(node, tnodes, zone, seen) for node, tnodes in zip(nodes, query(_TIME_SEL), strict=True)]

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


def _excluded(node: LexborNode, marked: dict[int, bool]) -> bool:
    """Whether one of ``node``'s 30 nearest ancestors is an aside, nav or footer, or holds
    comments, related links or key events.

    ``marked`` keeps each ancestor's own answer for the caller's walk over candidate
    containers, which share their ancestors: reading an ancestor's class again for each
    of them cost the size of that class per container (with the signatures of
    :func:`_generic_posts`, a 400 KB class above 2,000 two-post containers took 4.5 s)."""
    parent = node.parent
    depth = 0
    while parent is not None and depth < 30:
        key = parent.mem_id
        found = marked.get(key)
        if found is None:
            cls = "" if parent.tag in _EXCLUDED_ANCESTORS else _classes(parent)
            found = marked[key] = parent.tag in _EXCLUDED_ANCESTORS or any(
                mark in cls for mark in ("comment", "related", "most-read", "key-events")
            )
        if found:
            return True
        parent = parent.parent
        depth += 1
    return False


def _signature(node: LexborNode) -> str:
    cls = (node.attributes.get("class") or "").split(maxsplit=1)
    return f"{node.tag}.{cls[0] if cls else ''}"


def _link_heavy(node: LexborNode, text_len: int) -> bool:
    linked = sum(len(a.text(deep=True).strip()) for a in node.css("a"))
    return text_len == 0 or linked / text_len > 0.7


def _generic_posts(root: LexborNode) -> tuple[list[LexborNode], LexborNode | None]:
    """The repeated children of the best container of ``<time>``-bearing blocks.

    An ancestor of many stamps is met once per stamp: its signature is read once (reading
    it per stamp cost the size of its class each time, n**2 under a long class)."""
    buckets: dict[tuple[int, str], dict[int, LexborNode]] = {}
    parents: dict[int, LexborNode] = {}
    signatures: dict[int, str] = {}
    for tnode in root.css(STAMP_SEL):
        child = tnode
        parent = tnode.parent
        for _ in range(12):
            if parent is None or parent.tag in ("body", "html"):
                break
            if child.mem_id != tnode.mem_id and child.tag != "time":
                signature = signatures.get(child.mem_id)
                if signature is None:
                    signature = signatures[child.mem_id] = _signature(child)
                key = (parent.mem_id, signature)
                buckets.setdefault(key, {})[child.mem_id] = child
                parents[parent.mem_id] = parent
            child, parent = parent, parent.parent
    best: list[LexborNode] = []
    best_parent: LexborNode | None = None
    best_score = 0
    marked: dict[int, bool] = {}
    # Weighing a list reads its blocks' text: blocks inside blocks of other lists are read
    # once per list around them (1,500 lists, each inside a block of the one before, over
    # 1.7 MB took 6 s).  Lists that deep are not weighed.
    blocks = {key for children in buckets.values() if len(children) >= 2 for key in children}
    blocks_at_or_above: dict[int, int] = {}
    for (parent_id, _sig), children in buckets.items():
        if len(children) < 2:
            continue
        parent_node = parents[parent_id]
        if parent_node.tag in _EXCLUDED_ANCESTORS or _excluded(parent_node, marked):
            continue
        first = next(iter(children.values()))
        if _marked_above(first, blocks, blocks_at_or_above) > _MAX_LIST_NESTING:
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
    stamped = _holding_stamps(root)
    nodes = [n for n in root.css('[id^="block-"]') if n.mem_id in stamped]
    if len(nodes) < 1:
        nodes = [n for n in root.css("[class~=lx-stream-post]") if n.mem_id in stamped]
    containers: list[LexborNode]
    if nodes:
        ids = {n.mem_id for n in nodes}
        nodes = [n for n in _shallow(nodes, ids) if not any(a.mem_id in ids for a in _ancestors(n))]
        containers = list(nodes)
    else:
        nodes, parent = _generic_posts(root)
        containers = list(nodes)
        if parent is not None and len(nodes) < 2:
            return [], []
    if not nodes:
        return [], []
    return posts_to_fragments(read_posts(nodes, zone), zone, reference), containers


def _holding_stamps(root: LexborNode) -> set[int]:
    """The ``mem_id`` of every node in ``root`` that is or holds a stamp.

    One walk up from each stamp, stopping at the first node an earlier walk marked: a
    ``css_first`` per candidate post read each one's whole subtree, depth x size for
    nested candidates (1,000 nested ``block-`` divs over 200 KB took 1.4 s)."""
    holding: set[int] = set()
    for stamp in root.css(STAMP_SEL):
        node: LexborNode | None = stamp
        while node is not None and node.mem_id not in holding:
            holding.add(node.mem_id)
            node = node.parent
    return holding


#: Post candidates with more candidates than this above them are dropped.
_MAX_POST_NESTING: Final = 2
#: Lists of stamped blocks inside more blocks of other lists than this are not weighed.
_MAX_LIST_NESTING: Final = 4


def _marked_above(node: LexborNode, ids: set[int], at_or_above: dict[int, int]) -> int:
    """How many nodes in ``ids`` are above ``node``.

    One walk up that stops at a node an earlier walk counted: ``at_or_above`` keeps each
    node's count (itself included) for the caller's other walks, so that all of them
    together cost the size of the tree, not its depth for each."""
    path: list[int] = []
    above = 0
    current = node.parent
    while current is not None:
        known = at_or_above.get(current.mem_id)
        if known is not None:
            above = known
            break
        path.append(current.mem_id)
        current = current.parent
    for key in reversed(path):  # from the top down
        above += key in ids
        at_or_above[key] = above
    return above


def _shallow(nodes: list[LexborNode], ids: set[int]) -> list[LexborNode]:
    """``nodes`` (the candidates, by ``mem_id`` in ``ids``) but those with more than
    :data:`_MAX_POST_NESTING` candidates above them.

    Candidates further apart than the eight levels :func:`_ancestors` reads are all kept
    as posts, and each post's body, selector runs and stamps then hold every post inside
    it: 270 candidates nested nine levels apart over 270 KB took 24 s."""
    at_or_above: dict[int, int] = {}
    return [node for node in nodes if _marked_above(node, ids, at_or_above) <= _MAX_POST_NESTING]


def _ancestors(node: LexborNode) -> list[LexborNode]:
    out: list[LexborNode] = []
    parent = node.parent
    while parent is not None and len(out) < 8:
        out.append(parent)
        parent = parent.parent
    return out
