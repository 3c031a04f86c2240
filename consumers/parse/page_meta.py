"""What an HTML page says about itself: canonical URL, JSON-LD objects, title, authors,
dates, language and lead image.

Every HTML shape needs the same facts to build ids (the canonical URL) and the page's own
article item, so they are read once here.  Text from JSON-LD and from ``content``
attributes comes out entity-decoded (:func:`consumers.parse.clean.clean_text`): JSON-LD
is not HTML, yet CMSs escape it as if it were (``Minister&#39;s``, even ``&amp;#39;``), and
the shapes compare these strings with the same text read from the markup.

Published and modified dates are kept apart at every source (JSON-LD, OpenGraph
``article:*``, microdata), never merged into one "date".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Final

from selectolax.lexbor import LexborHTMLParser

from consumers.parse.clean import clean_text, clean_url
from consumers.parse.dates import parse_machine_datetime
from consumers.parse.images import jsonld_image, pick_image
from consumers.parse.safety import json_depth_exceeds

__all__ = [
    "PageMeta",
    "iter_jsonld",
    "jsonld_types",
    "main_jsonld",
    "names_of",
    "page_image",
    "read_page_meta",
]

_ARTICLE_TYPES: Final = frozenset(
    {
        "Article",
        "NewsArticle",
        "ReportageNewsArticle",
        "AnalysisNewsArticle",
        "BlogPosting",
        "LiveBlogPosting",
        "WebPage",
        "OpinionNewsArticle",
        "BackgroundNewsArticle",
    }
)
_RANKED: Final = (
    frozenset({"LiveBlogPosting"}),
    _ARTICLE_TYPES - {"WebPage", "BlogPosting", "Article"},
    frozenset({"Article", "BlogPosting"}),
    frozenset({"WebPage"}),
)
_MAX_JSONLD_BYTES: Final = 8_000_000


@dataclass(slots=True)
class PageMeta:
    canonical: str
    title: str = ""
    description: str | None = None
    authors: list[str] = field(default_factory=list)
    published_at: datetime | None = None
    updated_at: datetime | None = None
    language: str | None = None
    categories: list[str] = field(default_factory=list)
    jsonld: list[dict[str, Any]] = field(default_factory=list)
    #: the page's lead image (absolute http(s)), see :func:`page_image`
    image: str | None = None


def jsonld_types(obj: dict[str, Any]) -> set[str]:
    """An object's schema.org types without prefixes ("schema:NewsArticle", full URLs)."""
    raw = obj.get("@type")
    values = raw if isinstance(raw, list) else [raw]
    out: set[str] = set()
    for value in values:
        if isinstance(value, str):
            out.add(value.rsplit("/", 1)[-1].rsplit(":", 1)[-1])
    return out


def iter_jsonld(data: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    """Every typed object in a JSON-LD payload: top-level arrays, ``@graph`` and
    ``mainEntity`` wrappers flattened (bounded depth, so hostile nesting cannot recurse
    without end)."""
    if depth > 6:
        return
    if isinstance(data, list):
        for entry in data:
            yield from iter_jsonld(entry, depth + 1)
        return
    if not isinstance(data, dict):
        return
    if "@type" in data:
        yield data
    for key in ("@graph", "mainEntity", "mainEntityOfPage"):
        inner = data.get(key)
        if isinstance(inner, list | dict):
            yield from iter_jsonld(inner, depth + 1)


def names_of(value: Any) -> list[str]:
    """Author names from a JSON-LD ``author``: a string, a Person/Organization, or a list."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        name: Any = item.get("name") if isinstance(item, dict) else item
        if isinstance(name, list):
            name = name[0] if name else None
        if isinstance(name, str) and (name := clean_text(name)) and len(name) < 120 and name not in out:
            out.append(name)
    return out


def main_jsonld(objects: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The object describing the page itself: a live blog or news article before a generic
    Article, before a WebPage."""
    best: dict[str, Any] | None = None
    best_rank = len(_RANKED)
    for obj in objects:
        types = jsonld_types(obj)
        for rank, group in enumerate(_RANKED):
            if types & group and rank < best_rank:
                best, best_rank = obj, rank
                break
    return best


def _load_jsonld(tree: LexborHTMLParser) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for node in tree.css(
        'script[type="application/ld+json"], script[type="application/ld+json; charset=utf-8"]'
    ):
        text = node.text(deep=True)
        if not text or len(text) > _MAX_JSONLD_BYTES:
            continue
        text = text.strip().removeprefix("<!--").removesuffix("-->").strip()
        if json_depth_exceeds(text):
            continue  # hostile or broken; the page's other declarations still count
        try:
            data = json.loads(text, strict=False)
        except (ValueError, RecursionError):
            continue
        out.extend(iter_jsonld(data))
    return out


def _meta(tree: LexborHTMLParser, *keys: str) -> str | None:
    for key in keys:
        for attr in ("property", "name", "itemprop"):
            node = tree.css_first(f'meta[{attr}="{key}"]')
            if node is not None:
                value = node.attributes.get("content")
                if value and (value := clean_text(value)):
                    return value
    return None


def _absolute(base: str, href: str | None) -> str | None:
    """``href`` resolved against ``base`` when it is an http(s) URL: a ``javascript:`` or
    ``data:`` canonical must not become the base of every id on the page."""
    return clean_url(href, base)


def _text_of(value: Any) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    return clean_text(value) if isinstance(value, str) else ""


def page_image(
    tree: LexborHTMLParser, main: dict[str, Any] | None, objects: list[dict[str, Any]], base: str
) -> str | None:
    """The page's lead image: ``og:image`` (what the publisher picked for sharing), else the
    main JSON-LD object's ``image`` (the largest declared of its renditions, references into
    the page's graph followed), else its ``thumbnailUrl``, else ``twitter:image``."""
    og = _meta(tree, "og:image", "og:image:secure_url", "og:image:url")
    if og is not None and (image := pick_image([(og, 0)], base)) is not None:
        return image
    if main is not None:
        by_id = {obj["@id"]: obj for obj in objects if isinstance(obj.get("@id"), str)}
        image = jsonld_image(main.get("image"), base, by_id) or jsonld_image(main.get("thumbnailUrl"), base)
        if image is not None:
            return image
    twitter = _meta(tree, "twitter:image", "twitter:image:src")
    return pick_image([(twitter, 0)], base) if twitter is not None else None


def read_page_meta(tree: LexborHTMLParser, base_url: str, zone: tzinfo) -> PageMeta:
    """Page-level facts, structured data first, then OpenGraph/meta, then visible markup."""
    canonical_node = tree.css_first('link[rel="canonical"]')
    canonical = (
        _absolute(base_url, canonical_node.attributes.get("href") if canonical_node else None)
        or _absolute(base_url, _meta(tree, "og:url"))
        or base_url
    )
    meta = PageMeta(canonical=canonical)
    meta.jsonld = _load_jsonld(tree)
    main = main_jsonld(meta.jsonld)
    if main is not None:
        meta.title = _text_of(main.get("headline")) or _text_of(main.get("name"))
        meta.description = _text_of(main.get("description")) or None
        meta.authors = names_of(main.get("author"))
        meta.published_at = parse_machine_datetime(
            _text_of(main.get("datePublished")) or _text_of(main.get("coverageStartTime")), zone
        )
        meta.updated_at = parse_machine_datetime(_text_of(main.get("dateModified")), zone)
        lang = main.get("inLanguage")
        if isinstance(lang, str):
            meta.language = lang
        section = main.get("articleSection")
        if isinstance(section, str):
            meta.categories = [clean_text(section)]
        elif isinstance(section, list):
            meta.categories = [clean_text(s) for s in section if isinstance(s, str)]
        meta.categories = [c for c in meta.categories if c]
    if not meta.title:
        meta.title = _meta(tree, "og:title", "twitter:title") or ""
    if not meta.title:
        h1 = tree.css_first("h1")
        title_node = tree.css_first("title")
        meta.title = (h1.text(deep=True) if h1 else "") or (title_node.text() if title_node else "")
    meta.title = clean_text(meta.title)
    meta.description = meta.description or _meta(tree, "og:description", "description")
    if meta.published_at is None:
        meta.published_at = parse_machine_datetime(
            _meta(tree, "article:published_time", "datePublished", "pubdate"), zone
        )
    if meta.updated_at is None:
        meta.updated_at = parse_machine_datetime(
            _meta(tree, "article:modified_time", "og:updated_time", "dateModified"), zone
        )
    if not meta.authors:
        author = _meta(tree, "author", "article:author")
        if author and not author.startswith("http"):
            meta.authors = [author]
    if meta.language is None:
        html_node = tree.css_first("html")
        lang_attr = html_node.attributes.get("lang") if html_node is not None else None
        meta.language = lang_attr or _meta(tree, "og:locale")
    if meta.language:
        meta.language = meta.language.replace("_", "-").split("-")[0].lower() or None
    meta.image = page_image(tree, main, meta.jsonld, base_url)
    return meta
