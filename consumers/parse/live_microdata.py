"""Live pages marked up with schema.org microdata: ``itemprop="liveBlogUpdate"`` items.

The microdata carries the same fields as the JSON-LD form (headline, articleBody,
datePublished, dateModified, url); where a property is missing the post is read like a
plain block (:func:`consumers.parse.live_blocks.post_from_node`), so both paths agree on
what a body is.

Values from attributes (``content``, ``href``) are entity-decoded
(:mod:`consumers.parse.clean`); the text read from the markup is decoded once more too,
for publishers that escape a headline twice (``&amp;#39;``), so the post's headline is the
one its JSON-LD twin and its next fetch will see.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from urllib.parse import urldefrag, urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

from consumers.parse.clean import clean_text
from consumers.parse.dates import parse_machine_datetime
from consumers.parse.fragments import Fragment
from consumers.parse.live_blocks import posts_to_fragments, read_posts

__all__ = ["microdata_fragments"]


def _prop_value(node: LexborNode) -> str | None:
    attrs = node.attributes
    for key in ("content", "datetime", "href", "src"):
        value = attrs.get(key)
        if value and (value := clean_text(value)):
            return value
    text = clean_text(node.text(deep=True))
    return text or None


def _meta_headline(item: LexborNode) -> str:
    """A headline given only as ``<meta itemprop="headline" content="…">`` (no visible text)."""
    node = _own_prop(item, "headline")
    if node is None or node.tag != "meta":
        return ""
    return clean_text(node.attributes.get("content") or "")


def _own_prop(item: LexborNode, name: str) -> LexborNode | None:
    """The first ``name`` property of ``item`` itself.  Nested items (an author Person, an
    embedded VideoObject or ImageObject) carry their own ``url`` and ``datePublished``, which
    must not be read as the post's."""
    for node in item.css(f'[itemprop~="{name}"]'):
        if node.mem_id == item.mem_id:
            continue
        scope = node.parent
        while scope is not None and scope.mem_id != item.mem_id and "itemscope" not in scope.attributes:
            scope = scope.parent
        if scope is not None and scope.mem_id == item.mem_id:
            return node
    return None


def microdata_fragments(
    tree: LexborHTMLParser, canonical: str, zone: tzinfo, reference: datetime
) -> tuple[list[Fragment], list[LexborNode]]:
    """Fragments from ``liveBlogUpdate`` microdata items and the nodes holding them."""
    root = tree.body or tree.root
    if root is None:
        return [], []
    nodes = root.css('[itemprop~="liveBlogUpdate"]')
    if not nodes:
        return [], []
    facts = []
    meta_headlines = [_meta_headline(node) for node in nodes]
    body_nodes: list[LexborNode | None] = []
    for node in nodes:
        url_node = _own_prop(node, "url")
        url = _prop_value(url_node) if url_node is not None else None
        pub_node = _own_prop(node, "datePublished")
        mod_node = _own_prop(node, "dateModified")
        published = parse_machine_datetime(_prop_value(pub_node), zone) if pub_node is not None else None
        modified = parse_machine_datetime(_prop_value(mod_node), zone) if mod_node is not None else None
        body_nodes.append(_own_prop(node, "articleBody"))
        if url_node is not None:
            url_node.decompose()
        facts.append((url, published, modified))
    posts = read_posts(list(nodes), zone, body_nodes)
    for post, (url, published, modified), headline in zip(posts, facts, meta_headlines, strict=True):
        post.title = clean_text(post.title) or headline
        post.body = clean_text(post.body, multiline=True)
        if post.anchor is None and url:
            _base, anchor = urldefrag(urljoin(canonical, url))
            post.anchor = anchor or None
        if published is not None:
            post.published, post.published_clock = published, None
        if modified is not None:
            post.updated, post.updated_clock = modified, None
    return posts_to_fragments(posts, zone, reference), list(nodes)
