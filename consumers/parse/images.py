"""An item's lead image: one absolute http(s) URL, or ``None``.

Feeds and pages name images in many places, often several at once (a thumbnail and the
full picture, three crops of one photo, an author's avatar after the story's picture), so
each source is read in tiers, from the most deliberate declaration to the least, and the
first tier that names a usable URL wins.  Within a tier the largest *declared* size wins
(a 460-pixel rendition over a 140-pixel one); when nothing declares a size, the first one
listed does, which is what publishers put first.  Nothing is downloaded or measured.

Every URL goes through :func:`consumers.parse.clean.clean_url`, like any other link: a
relative one is resolved against the document, and ``javascript:``/``data:`` URLs, hosts
missing, or oversized "URLs" are no image.  Counts are capped, so a feed entry with ten
thousand ``media:content`` elements costs no more than one with a few.

The image is not part of the content hash (:func:`ingestor.models.content_hash`): a
publisher swapping a picture's rendition must not read as an edit of the story.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import Any, Final
from urllib.parse import urlsplit

from consumers.parse.clean import clean_url

__all__ = ["feed_entry_image", "json_feed_image", "jsonld_image", "pick_image"]

#: Candidates looked at per tier; the rest are ignored (hostile or broken documents).
MAX_CANDIDATES: Final = 64
#: A declared width or height above this is a typo or a lie, not a bigger picture.
_MAX_DECLARED: Final = 100_000
#: What an image URL's path ends in when the feed declares neither a type nor a medium.
_IMAGE_SUFFIXES: Final = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")
#: JSON-LD nesting followed for an ``image`` value (a list of ImageObjects is depth 2).
_MAX_JSONLD_DEPTH: Final = 3

Candidate = tuple[Any, int]


def _declared(value: Any) -> int:
    """A declared pixel size as an int; 0 when missing or unreadable."""
    if isinstance(value, Mapping):  # schema.org QuantitativeValue: {"value": 1200, "unitCode": "E37"}
        value = value.get("value")
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float):
        size = int(value)
    elif isinstance(value, str):
        digits = value.strip().removesuffix("px").strip()
        if not digits.isdigit() or len(digits) > 6:
            return 0
        size = int(digits)
    else:
        return 0
    return size if 0 < size <= _MAX_DECLARED else 0


def pick_image(candidates: Iterable[Candidate], base: str | None = None) -> str | None:
    """The largest declared of ``(url, size)`` candidates, the first on a tie (or when none
    declares a size), as a clean absolute http(s) URL; ``None`` when none is usable."""
    best: str | None = None
    best_size = -1
    for url, size in islice(candidates, MAX_CANDIDATES):
        cleaned = clean_url(url, base) if isinstance(url, str) else None
        if cleaned is not None and size > best_size:
            best, best_size = cleaned, size
    return best


def _first(*tiers: Iterable[Candidate], base: str | None) -> str | None:
    for tier in tiers:
        chosen = pick_image(tier, base)
        if chosen is not None:
            return chosen
    return None


def _looks_like_image_path(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    try:
        path = urlsplit(url.strip()).path.lower()
    except ValueError:
        return False
    return path.endswith(_IMAGE_SUFFIXES)


def _is_image_type(mime: Any) -> bool:
    return isinstance(mime, str) and mime.strip().lower().startswith("image/")


def _mappings(values: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(values, list | tuple):
        for value in islice(values, MAX_CANDIDATES):
            if isinstance(value, Mapping):
                yield value


def _size_of(entry: Mapping[str, Any]) -> int:
    return _declared(entry.get("width")) or _declared(entry.get("height"))


def _media_content(entry: Mapping[str, Any]) -> Iterator[Candidate]:
    """``media:content`` that is a picture: ``medium="image"``, an ``image/*`` type, or, when
    it declares neither, a URL whose path names an image file (the Guardian's renditions)."""
    for media in _mappings(entry.get("media_content")):
        medium = str(media.get("medium") or "").strip().lower()
        mime = media.get("type")
        if (
            medium == "image"
            or _is_image_type(mime)
            or (not medium and not mime and _looks_like_image_path(media.get("url")))
        ):
            yield media.get("url"), _size_of(media)


def _thumbnails(entry: Mapping[str, Any]) -> Iterator[Candidate]:
    for thumb in _mappings(entry.get("media_thumbnail")):
        yield thumb.get("url"), _size_of(thumb)


def _image_enclosures(links: Any) -> Iterator[Candidate]:
    for link in _mappings(links):
        if link.get("rel", "enclosure") == "enclosure" and _is_image_type(link.get("type")):
            yield link.get("href") or link.get("url"), 0


def _itunes_image(entry: Mapping[str, Any]) -> Iterator[Candidate]:
    image = entry.get("image")
    if isinstance(image, Mapping):
        yield image.get("href") or image.get("url"), 0


def feed_entry_image(entry: Mapping[str, Any], base: str) -> str | None:
    """An RSS/Atom entry's image as feedparser exposes it: ``media:content`` pictures, then
    ``media:thumbnail``, then image enclosures, then an ``itunes:image``."""
    return _first(
        _media_content(entry),
        _thumbnails(entry),
        _image_enclosures(entry.get("links")),
        _itunes_image(entry),
        base=base,
    )


def json_feed_image(entry: Mapping[str, Any], base: str) -> str | None:
    """A JSON Feed item's ``image``, else its ``banner_image``, else an image attachment."""
    return _first(
        [(entry.get("image"), 0)],
        [(entry.get("banner_image"), 0)],
        (
            (a.get("url"), 0)
            for a in _mappings(entry.get("attachments"))
            if _is_image_type(a.get("mime_type"))
        ),
        base=base,
    )


def _jsonld_candidates(
    value: Any, objects: Mapping[str, Mapping[str, Any]], depth: int = 0
) -> Iterator[Candidate]:
    """``(url, size)`` from a JSON-LD ``image``: a URL, an ImageObject (``url`` or
    ``contentUrl``, itself possibly a list), a reference to one elsewhere in the page's graph
    (``{"@id": "…#primaryimage"}``, as Yoast writes it), or a list of these."""
    if depth > _MAX_JSONLD_DEPTH:
        return
    if isinstance(value, str):
        yield value, 0
    elif isinstance(value, list):
        for element in islice(value, MAX_CANDIDATES):
            yield from _jsonld_candidates(element, objects, depth + 1)
    elif isinstance(value, Mapping):
        for key in ("url", "contentUrl"):
            inner = value.get(key)
            urls = inner if isinstance(inner, list) else [inner]
            found = [u for u in islice(urls, MAX_CANDIDATES) if isinstance(u, str) and u.strip()]
            if found:
                size = _size_of(value)
                yield from ((url, size) for url in found)
                return
        ref = value.get("@id")
        target = objects.get(ref) if isinstance(ref, str) else None
        if target is not None and target is not value:
            yield from _jsonld_candidates(target, objects, depth + 1)


def jsonld_image(
    value: Any, base: str | None, objects: Mapping[str, Mapping[str, Any]] | None = None
) -> str | None:
    """The image a JSON-LD object names (a page's, or one live update's); see ``pick_image``.
    ``objects`` maps ``@id`` to the page's other JSON-LD objects, to follow references."""
    return pick_image(_jsonld_candidates(value, objects or {}), base)
