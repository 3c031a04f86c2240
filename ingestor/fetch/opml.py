"""Feed definitions from an OPML subscription list (what every feed reader exports).

Pure: bytes in, FeedConfig out.  Ids are derived from the outline's title (else the feed's
host and path) so that importing the same file twice yields the same ids, and thus updates
rather than duplicates.  The XML parser resolves no entities and loads nothing from the
network: an OPML file is as untrusted as any feed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lxml import etree
from pydantic import ValidationError
from yarl import URL

from ingestor.config import FeedConfig

_NOT_ID = re.compile(r"[^A-Za-z0-9._:-]+")


@dataclass(frozen=True, slots=True)
class OpmlEntry:
    feed: FeedConfig | None
    title: str
    url: str
    problem: str | None = None


def slug(text: str) -> str:
    value = _NOT_ID.sub("-", text.strip().lower()).strip("-._:")
    return value[:80].rstrip("-._:")


def _id_for(title: str, url: str) -> str:
    base = slug(title)
    if not base:
        parsed = URL(url)
        base = slug(f"{parsed.host or ''}{parsed.path}")
    return base or "feed"


def parse_opml(data: bytes, defaults: dict[str, Any] | None = None) -> list[OpmlEntry]:
    """Every outline with an ``xmlUrl``, nested folders included; ``defaults`` fill the rest."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=True)
    root = etree.fromstring(data, parser=parser)
    if root is None:
        raise ValueError("not an OPML document")
    entries: list[OpmlEntry] = []
    used: set[str] = set()
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        if not url:
            continue
        title = (outline.get("title") or outline.get("text") or "").strip()
        feed_id = base = _id_for(title, url)
        n = 2
        while feed_id in used:
            feed_id, n = f"{base}-{n}", n + 1
        used.add(feed_id)
        fields: dict[str, Any] = {**(defaults or {}), "id": feed_id, "url": url}
        language = outline.get("language")
        if language and "language" not in (defaults or {}):
            fields["language"] = language
        try:
            entries.append(OpmlEntry(FeedConfig.model_validate(fields), title, url))
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            entries.append(OpmlEntry(None, title, url, problem))
    return entries
