"""Schema version 1 across the addition of ``image`` and ``body_source``: items written before
still read everywhere (parse's own models, dedup's reader, the shipped JSON Schema, the example
subscriber), new items validate, and a field added later passes through an older reader."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
from aiokafka import ConsumerRecord

from consumers.dedup.service import _parse_item
from ingestor.models import NewsItem, PublishedItem, item_from_json, item_to_json, published_from_json

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "ingestor" / "schemas" / "published-item.schema.json").read_text())
EXAMPLE = REPO / "examples" / "consume_published.py"

#: A news.published message exactly as version 1 was written before the two fields existed.
OLD_ITEM: dict[str, Any] = {
    "schema_version": 1,
    "id": "3f5c0c2a9d1e4b7f8a6e2d1c0b9a8f7e",
    "kind": "article",
    "source": "city-news",
    "url": "https://news.example/harbour",
    "title": "Harbour reopens",
    "body": "The harbour reopened on Monday.",
    "summary": None,
    "authors": ["Ann Writer"],
    "categories": [],
    "enclosures": [{"url": "https://news.example/a.mp3", "type": "audio/mpeg", "length": 10}],
    "language": "en",
    "published_at": "2024-11-04T08:36:00Z",
    "updated_at": None,
    "fetched_at": "2024-11-04T10:00:00Z",
    "parent_id": None,
    "content_hash": "sha256:" + "0" * 64,
    "event": "created",
    "version": 1,
}
NEW_ITEM = {**OLD_ITEM, "image": "https://news.example/harbour.jpg", "body_source": "page"}


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("consume_published", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _items_record(item: dict[str, Any]) -> ConsumerRecord[bytes, bytes]:
    value = json.dumps({k: v for k, v in item.items() if k not in ("event", "version")}).encode()
    return ConsumerRecord("news.items", 0, 0, 0, 0, item["id"].encode(), value, None, 0, len(value), [])


def test_an_item_written_before_the_new_fields_still_reads() -> None:
    published = published_from_json(json.dumps(OLD_ITEM))
    assert published.image is None and published.body_source is None
    item = item_from_json(json.dumps({k: v for k, v in OLD_ITEM.items() if k not in ("event", "version")}))
    assert item.id == OLD_ITEM["id"] and item.content_hash == OLD_ITEM["content_hash"]
    assert _parse_item(_items_record(OLD_ITEM)).body_source is None  # dedup's reader
    jsonschema.validate(OLD_ITEM, SCHEMA)


def test_new_items_validate_and_old_enums_are_still_checked() -> None:
    jsonschema.validate(NEW_ITEM, SCHEMA)
    assert published_from_json(json.dumps(NEW_ITEM)).body_source == "page"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**NEW_ITEM, "body_source": "guess"}, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**NEW_ITEM, "image": 42}, SCHEMA)


def test_a_field_added_later_passes_through_an_older_reader() -> None:
    """What makes a rolling upgrade safe in any order: a reader that does not know a field
    keeps it (dedup republishes ``model_dump`` of what it read), and a subscriber validating
    against this schema accepts it."""
    future = {**NEW_ITEM, "reading_time_s": 240}
    item = _parse_item(_items_record(future))
    assert item.model_dump(mode="json")["reading_time_s"] == 240
    assert json.loads(item_to_json(item))["reading_time_s"] == 240
    jsonschema.validate(future, SCHEMA)
    assert SCHEMA["additionalProperties"] is True


def test_the_example_subscriber_handles_old_and_new_items(capsys: pytest.CaptureFixture[str]) -> None:
    example = _example()
    validate = example.load_validator()
    for item in (OLD_ITEM, NEW_ITEM):
        validate(item)
        asyncio.run(example.print_item({"ce_type": "news.item.created", "ce_id": f"{item['id']}:1"}, item))
    assert capsys.readouterr().out.count("Harbour reopens") == 2
    with pytest.raises(jsonschema.ValidationError):
        validate({**NEW_ITEM, "kind": "rumour"})


def test_writers_still_name_their_fields() -> None:
    """Tolerant reading does not make a typo in our own code a silent new field: items the
    parser builds carry exactly the declared fields."""
    item = NewsItem.model_validate({k: v for k, v in NEW_ITEM.items() if k not in ("event", "version")})
    assert item.model_extra == {}
    assert set(json.loads(item_to_json(item))) == set(NewsItem.model_fields)
    assert set(PublishedItem.model_fields) - set(NewsItem.model_fields) == {"event", "version"}
