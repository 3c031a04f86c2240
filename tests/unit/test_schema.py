"""The JSON Schema file in the repo is the one the code produces, and items validate against it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from ingestor.models import NewsItem, PublishedItem, content_hash, json_schema, stable_id

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "ingestor" / "schemas" / "published-item.schema.json"


def test_schema_file_is_current() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), "run: ingestor schema > " + str(SCHEMA_FILE)


def test_published_item_validates_and_times_are_utc_z() -> None:
    item = NewsItem(
        id=stable_id("feed", "guid-1"),
        kind="live_update",
        source="feed",
        url="https://example.org/#p1",
        title="T",
        body="B",
        authors=["A"],
        published_at=datetime.fromisoformat("2024-11-04T01:10:00+02:00"),
        fetched_at=datetime(2024, 11, 4, 12, tzinfo=UTC),
        content_hash=content_hash(title="T", body="B", authors=["A"], url=None),
    )
    data = json.loads(PublishedItem(**item.model_dump(), event="created", version=1).model_dump_json())
    jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text()))
    assert data["published_at"] == "2024-11-03T23:10:00Z"
    assert data["updated_at"] is None


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValidationError):
        NewsItem(id="x", kind="article", source="s", fetched_at=datetime(2024, 1, 1), content_hash="h")
