"""Every feed in the shared corpus goes through the parse stage: items or a classified error.

The corpus (the test suites of feedparser, miniflux, feed-rs, rss-parser and feedjira) is
kept outside the repository, at ../shared/corpus/feeds beside the checkout; it is read in
place, never copied in, and the test is skipped when it is not there.
"""

from __future__ import annotations

import mimetypes
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumers.parse import ParseError, RawDocument, parse_document
from ingestor.models import NewsItem

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "feeds"
FETCHED = datetime(2024, 11, 5, 12, 0, tzinfo=UTC)

_TYPES = {
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".rdf": "application/rdf+xml",
    ".json": "application/json",
    ".html": "text/html",
    ".htm": "text/html",
    ".txt": "text/plain",
}


def corpus_files(root: Path = CORPUS) -> list[Path]:
    """The corpus documents, without the licence and manifest files that sit beside them."""
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and not path.name.startswith("LICENSE") and path.suffix.lower() != ".md"
    )


def content_type_for(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return _TYPES.get(suffix) or mimetypes.guess_type(path.name)[0]


def test_every_corpus_file_yields_items_or_a_classified_error() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"feed corpus not found at {CORPUS}")
    files = corpus_files()
    assert files, f"no files under {CORPUS}"
    outcomes: Counter[str] = Counter()
    items_total = 0
    escaped: list[str] = []
    started = time.perf_counter()
    for path in files:
        doc = RawDocument(
            body=path.read_bytes(),
            url=f"https://corpus.invalid/{path.relative_to(CORPUS).as_posix()}",
            feed_id=path.relative_to(CORPUS).as_posix(),
            fetched_at=FETCHED,
            content_type=content_type_for(path),
            timezone="UTC",
        )
        try:
            items = parse_document(doc)
        except ParseError as error:
            outcomes[error.reason] += 1
            continue
        except Exception as error:  # the assertion below reports these with their files
            escaped.append(f"{path.relative_to(CORPUS)}: {type(error).__name__}: {error}")
            continue
        assert items, f"{path}: parse_document returned no items instead of raising no_items"
        for item in items:
            NewsItem.model_validate(item.model_dump())
            assert item.source == doc.feed_id
        outcomes["items"] += 1
        items_total += len(items)
    elapsed = time.perf_counter() - started

    summary = ", ".join(f"{reason}={count}" for reason, count in outcomes.most_common())
    print(f"\ncorpus: {len(files)} files in {elapsed:.1f}s; {summary}; {items_total} items total")
    assert not escaped, "exceptions escaped parse_document:\n" + "\n".join(escaped[:20])
    assert outcomes["items"] > 0
