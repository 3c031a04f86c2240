"""Stamps read as little of the page as they need, and answer as they did when they read
all of it.

:func:`consumers.parse.live_blocks.leading_text` replaced ``text(deep=True)[:limit]`` in
``read_time`` and ``is_updated_marker`` (which read a whole parent for every stamp in it:
n**2), and :func:`~consumers.parse.live_blocks.block_fragments` finds the candidates holding
a stamp in one pass.  On markup of ordinary size they must give what the old code gave;
the old readings are kept here as the reference.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser, LexborNode

from consumers.parse.dates import MAX_DATE_TEXT
from consumers.parse.live_blocks import (
    _MAX_TEXT_NODES,
    _UPDATED_WORD,
    _classes,
    block_fragments,
    is_updated_marker,
    leading_text,
)

KYIV_NOON = datetime(2024, 11, 4, 12, tzinfo=UTC)


def _old_is_updated_marker(node: LexborNode) -> bool:
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


_TEXTS = st.sampled_from(
    ("Updated", "Updated: ", "upd.", "Оновлено о", "10:15", "4 Nov 2024", " ", "", "x" * 90, "By O", "&amp;")
)
_TAGS = st.sampled_from(("span", "b", "p", "div", "time", "li", "article", "script", "small"))


def _markup(depth: int) -> st.SearchStrategy[str]:
    leaf = _TEXTS | st.just("<time datetime='2024-11-04T10:00:00Z'>10:00</time>") | st.just("<br>")
    if depth == 0:
        return leaf
    child = _markup(depth - 1)
    element = st.builds(
        lambda tag, cls, parts: f"<{tag}{cls}>{''.join(parts)}</{tag}>",
        _TAGS,
        st.sampled_from(("", " class='updated'", " class='meta'", " itemprop='dateModified'")),
        st.lists(child, max_size=4),
    )
    return leaf | element


def _small(node: LexborNode) -> bool:
    return sum(1 for _ in node.traverse(include_text=True)) <= _MAX_TEXT_NODES


pages = st.lists(_markup(3), min_size=1, max_size=5).map(lambda parts: "<div>" + "".join(parts) + "</div>")


@settings(max_examples=300, deadline=None)
@given(pages)
def test_stamps_are_read_as_before(page: str) -> None:
    tree = LexborHTMLParser(page)
    contexts: dict[int, str] = {}
    for node in tree.css("time, div, span, p"):
        for limit, separator in ((MAX_DATE_TEXT, " "), (80, "")):
            whole = node.text(deep=True, separator=separator)[:limit]
            read = leading_text(node, limit, separator=separator)
            # What is read is where the whole text starts; all of it, unless the node's
            # first _MAX_TEXT_NODES nodes hold less than ``limit`` characters.
            assert whole.startswith(read)
            if _small(node) or len(read) == limit:
                assert read == whole
    for stamp in tree.css("time"):
        if stamp.parent is None or _small(stamp.parent):
            assert is_updated_marker(stamp) == _old_is_updated_marker(stamp)
            assert is_updated_marker(stamp, contexts) == _old_is_updated_marker(stamp)


def test_an_updated_label_in_the_parent_is_found() -> None:
    tree = LexborHTMLParser(
        "<div><p class='meta'><span>Updated</span><time datetime='2024-11-04T10:15:00Z'>10:15</time></p>"
        "<p class='meta'><span>By Olena</span><time datetime='2024-11-04T10:00:00Z'>10:00</time></p></div>"
    )
    contexts: dict[int, str] = {}
    assert [is_updated_marker(stamp, contexts) for stamp in tree.css("time")] == [True, False]
    assert len(contexts) == 2


def test_a_parent_is_read_for_its_first_nodes_only() -> None:
    """The one change: an "Updated" word after the parent's first 32 nodes is not seen
    (no page puts a stamp's label after dozens of empty elements)."""
    stamp = "<time datetime='2024-11-04T10:15:00Z'>10:15</time>"
    near = LexborHTMLParser(f"<p>{'<i></i>' * 20}<span>Updated</span>{stamp}</p>").css_first("time")
    far = LexborHTMLParser(f"<p>{'<i></i>' * 40}<span>Updated</span>{stamp}</p>").css_first("time")
    assert near is not None and far is not None
    assert is_updated_marker(near)
    assert not is_updated_marker(far) and _old_is_updated_marker(far)


def test_post_candidates_need_a_stamp_inside_them() -> None:
    """``block-`` elements are posts when they hold a stamp (or are one), as before."""
    page = (
        "<body>"
        '<div id="block-1"><p>No stamp in this one, only words about the ferries.</p></div>'
        '<div id="block-2"><div><span><time datetime="2024-11-04T10:02:00Z">10:02</time></span></div>'
        "<h2>Ferry service resumes</h2><p>Morning ferries left on schedule after a pause.</p></div>"
        '<div id="block-3" data-timestamp="1730714460"><h2>Crossing reopens</h2>'
        "<p>The northern crossing reopened to traffic this morning, officials said.</p></div>"
        "</body>"
    )
    fragments, containers = block_fragments(LexborHTMLParser(page), UTC, KYIV_NOON)
    assert [node.attributes.get("id") for node in containers] == ["block-2", "block-3"]
    assert [fragment.title for fragment in fragments] == ["Ferry service resumes", "Crossing reopens"]


def _chain(levels: int) -> str:
    """``block-`` posts each nine levels inside the one before (further apart than the
    eight levels within which an inner candidate gives way to the outer one)."""
    post = (
        '<div id="block-{n}"><time datetime="2024-11-04T10:0{n}:00Z">10:0{n}</time>'
        "<h2>Update {n}</h2><p>Ferries on the north line ran on schedule this morning.</p>" + "<i>" * 9
    )
    return "".join(post.format(n=n) for n in range(levels)) + ("</i>" * 9 + "</div>") * levels


def test_posts_nest_two_levels_deep_at_most() -> None:
    """Posts nested in posts (a wrapper whose id starts with "block-", say) are read as
    before up to two levels of them; deeper ones are dropped (each added a copy of all the
    posts inside it: 270 of them over 270 KB took 24 s)."""
    for levels, kept in ((1, 1), (2, 2), (3, 3), (4, 3), (6, 3)):
        tree = LexborHTMLParser(f"<body>{_chain(levels)}</body>")
        _fragments, containers = block_fragments(tree, UTC, KYIV_NOON)
        assert [node.attributes.get("id") for node in containers] == [f"block-{n}" for n in range(kept)]
