"""Every composed live page parses into exactly its expected items (see make_pages.py).

Documents go through ``parse_document``, the parse stage's own entry point, so sniffing and
decoding are exercised too.  Pairs of fetches check the id rules: same ids for unchanged
posts, a new content hash for an edited one, a new id for an inserted one.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from consumers.parse import RawDocument, parse_document
from ingestor.models import NewsItem, format_utc

PAGES = Path(__file__).resolve().parent / "pages"
#: Hand-composed pages in real publishers' shapes (make_pages.py rewrites ``pages/`` only).
SHAPES = Path(__file__).resolve().parent / "shapes"
FIXTURES = sorted(
    (p for folder in (PAGES, SHAPES) for p in folder.iterdir() if p.suffix in (".html", ".txt")),
    key=lambda p: p.stem,
)


def load(name: str) -> tuple[list[NewsItem], list[dict[str, Any]]]:
    page = next(p for p in FIXTURES if p.stem == name)
    meta_path = page.parent / f"{name}.meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    doc = RawDocument(
        body=page.read_bytes(),
        url=meta.get("url", f"https://news.example.test/{name}"),
        feed_id="accuracy",
        fetched_at=datetime.fromisoformat(meta.get("fetched_at", "2024-11-04T12:00:00Z")),
        content_type=meta.get("content_type"),
        timezone=meta.get("timezone", "UTC"),
    )
    expected = json.loads((page.parent / f"{name}.expected.json").read_text(encoding="utf-8"))
    return parse_document(doc), expected


def utc(value: datetime | None) -> str | None:
    return format_utc(value) if value is not None else None


def test_there_are_enough_pages() -> None:
    assert len(FIXTURES) >= 30


@pytest.mark.parametrize("name", [p.stem for p in FIXTURES])
def test_page(name: str) -> None:
    items, expected = load(name)
    got = [
        {
            "kind": i.kind,
            "title": i.title,
            "published_at": utc(i.published_at),
            "updated_at": utc(i.updated_at),
            "authors": i.authors,
            "language": i.language,
        }
        for i in items
    ]
    want = [
        {k: e[k] for k in ("kind", "title", "published_at", "updated_at", "authors", "language")}
        for e in expected
    ]
    assert got == want
    article_ids = {i.id for i in items if i.kind == "article"}
    for item, exp in zip(items, expected, strict=True):
        assert item.body.startswith(exp["body_start"]), (item.title, item.body[:80])
        assert item.body.endswith(exp["body_end"]), (item.title, item.body[-80:])
        assert "\n\n\n" not in item.body
        if "anchor" in exp:
            assert item.url is not None and item.url.endswith("#" + exp["anchor"])
        if item.kind == "live_update":
            assert item.parent_id is not None
            if article_ids:
                assert item.parent_id in article_ids
    assert len({i.id for i in items}) == len(items)


def _label(item: NewsItem) -> str:
    if item.url and "#" in item.url:
        return item.url.rsplit("#", 1)[1]
    return item.title


PAIRS = json.loads((PAGES / "pairs.json").read_text())


@pytest.mark.parametrize("pair", PAIRS, ids=[p["a"] for p in PAIRS])
def test_refetch_pair(pair: dict[str, Any]) -> None:
    before, _ = load(pair["a"])
    after, _ = load(pair["b"])
    old = {i.id: i for i in before}
    new = {i.id: i for i in after}
    assert sorted(_label(new[k]) for k in set(new) - set(old)) == sorted(pair["inserted"])
    assert sorted(_label(old[k]) for k in set(old) - set(new)) == sorted(pair["deleted"])
    edited = [_label(new[k]) for k in set(old) & set(new) if old[k].content_hash != new[k].content_hash]
    assert sorted(edited) == sorted(pair["edited"])
    # Re-parsing the same bytes gives the same ids and hashes (effectively-once output).
    again, _ = load(pair["b"])
    assert [(i.id, i.content_hash) for i in again] == [(i.id, i.content_hash) for i in after]
