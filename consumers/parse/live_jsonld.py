"""Live pages with schema.org ``LiveBlogPosting`` in JSON-LD.

``liveBlogUpdate`` holds the posts (a BlogPosting, or a list of them; also inside
``@graph`` or a top-level array, flattened by :mod:`consumers.parse.page_meta`).  A post's
anchor is the fragment of its ``url`` (or ``@id``), which is also the element id the page
uses, so the JSON-LD and block readers give the same post the same id.

Headlines and bodies are entity-decoded here, not only when the item is finished: CMSs
escape JSON-LD as if it were HTML (``&#39;``, ``&#8217;``, and twice over, ``&amp;#39;``),
and the page compares these strings with the same posts read from its markup (to keep
them out of the page's own intro, to tell an auto-filled headline from a real one).
"""

from __future__ import annotations

import re
from datetime import tzinfo
from typing import Any, Final
from urllib.parse import urldefrag, urljoin

from consumers.parse.clean import clean_text, clean_url, decode_entities
from consumers.parse.dates import parse_machine_datetime
from consumers.parse.fragments import Fragment
from consumers.parse.furniture import is_audio_note, is_boilerplate_line, is_caption
from consumers.parse.htmltext import html_to_text, normalize_text
from consumers.parse.images import jsonld_image
from consumers.parse.page_meta import jsonld_types, names_of
from consumers.parse.safety import check_html_nesting

__all__ = ["jsonld_fragments"]

#: Markup, as opposed to a lone "<" in prose ("a < b").
_TAG_LIKE: Final = re.compile(r"<(?:[A-Za-z][\w:-]*[\s/>]|/[A-Za-z]|!--)")


def _text(value: Any) -> str:
    if isinstance(value, list):
        value = " ".join(v for v in value if isinstance(v, str))
    return value.strip() if isinstance(value, str) else ""


def _body(raw: str, title: str) -> str:
    """Plain text of an ``articleBody``: HTML, escaped HTML (``&lt;p&gt;``) or plain text,
    each possibly with entities escaped once more than the markup needed."""
    if "&" in raw and _TAG_LIKE.search(raw) is None:
        raw = decode_entities(raw)
    if _TAG_LIKE.search(raw) is not None:
        # inside a <script>, so the page's own nesting guard never saw this markup
        check_html_nesting(raw, "HTML in a JSON-LD articleBody")
        text = html_to_text(raw)
    else:
        text = normalize_text(raw)
    text = clean_text(text, multiline=True)
    paragraphs = [
        p
        for p in text.split("\n\n")
        if p and not (is_boilerplate_line(p) or is_audio_note(p) or is_caption(p))
    ]
    if paragraphs and title and paragraphs[0] == title:
        paragraphs = paragraphs[1:]
    return "\n\n".join(paragraphs)


def _headline(headline: str, body: str) -> str:
    """An auto-filled headline (the body's opening cut with an ellipsis) is no headline."""
    stem = headline.rstrip(".…").rstrip()
    if headline.endswith(("…", "...")) and stem and body.startswith(stem):
        return ""
    return " ".join(headline.split())


def _update_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    found: list[dict[str, Any]] | None = None
    for obj in objects:
        if "LiveBlogPosting" not in jsonld_types(obj):
            continue
        updates = obj.get("liveBlogUpdate")
        if isinstance(updates, dict):
            updates = [updates]
        if isinstance(updates, list):
            found = (found or []) + [u for u in updates if isinstance(u, dict)]
    return found


def jsonld_fragments(objects: list[dict[str, Any]], canonical: str, zone: tzinfo) -> list[Fragment]:
    """Fragments of every LiveBlogPosting's updates, newest first; ``[]`` when none."""
    updates = _update_objects(objects)
    if not updates:
        return []
    base = urldefrag(canonical)[0]
    frags: list[Fragment] = []
    for update in updates:
        raw_body = _text(update.get("articleBody")) or _text(update.get("text"))
        raw_head = clean_text(_text(update.get("headline")) or _text(update.get("name")))
        body = _body(raw_body, raw_head)
        title = _headline(raw_head, body)
        if not title and not body:
            continue
        published = parse_machine_datetime(_text(update.get("datePublished")), zone)
        updated = parse_machine_datetime(_text(update.get("dateModified")), zone)
        if updated is not None and published is not None and updated <= published:
            updated = None
        anchor: str | None = None
        key: str | None = None
        url: str | None = None
        for ref in (_text(update.get("url")), _text(update.get("@id"))):
            if not ref:
                continue
            absolute = urljoin(canonical, ref)
            ref_base, fragment = urldefrag(absolute)
            if fragment:
                anchor = fragment
                break
            if ref_base != base:
                if clean_url(ref_base) is None:  # javascript:, data:...: no address of its own
                    continue
                key, url = ref_base, ref_base
                break
        frags.append(
            Fragment(
                title=title,
                body=body,
                published_at=published,
                updated_at=updated,
                anchor=anchor,
                url=url if anchor is None else None,
                key=key,
                authors=names_of(update.get("author")),
                image=jsonld_image(update.get("image"), canonical),
            )
        )
    return frags
