"""examples/consume_published.py against a real broker: reads CloudEvents headers, validates
against the shipped schema, and commits only what it handled."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from consumers.dedup.service import cloudevents_headers
from ingestor.headers import build
from ingestor.models import PublishedItem, content_hash, item_to_json
from tests.integration.kafka_helpers import create_topic, produce

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "consume_published.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("consume_published", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _published(n: int, event: str, version: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    title, body = f"Ferry timetable change {n}", "The evening crossing moves to 9 PM."
    item = PublishedItem(
        id=f"demo-{n}",
        kind="article",
        source="demo-city-rss",
        url=f"http://127.0.0.1/news/{n}",
        title=title,
        body=body,
        published_at=datetime(2024, 11, 4, 9, 15, tzinfo=UTC),
        fetched_at=datetime(2024, 11, 4, 9, 16, tzinfo=UTC),
        content_hash=content_hash(title=title, body=body, authors=[], url=f"http://127.0.0.1/news/{n}"),
        event=event,  # type: ignore[arg-type]
        version=version,
    )
    return item.id.encode(), item_to_json(item), build(cloudevents_headers(item, event, version))


def test_example_consumer_validates_and_commits_after_handling(broker_address: str) -> None:
    example = _example()
    topic, group = f"t{uuid.uuid4().hex[:8]}.published", f"g{uuid.uuid4().hex[:8]}"
    seen: list[tuple[str, str, str]] = []

    async def handle(headers: dict[str, str], item: dict[str, Any]) -> None:
        seen.append((headers["ce_type"], headers["ce_id"], item["title"]))

    async def scenario() -> None:
        await create_topic(broker_address, topic)
        await produce(broker_address, topic, [_published(1, "created", 1), _published(1, "updated", 2)])
        validate = example.load_validator()
        kwargs = {"topic": topic, "group_id": group, "handle": handle, "validate": validate}
        # Short group timeouts: the embedded broker makes a new member wait out the old one.
        kwargs |= {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500, "rebalance_timeout_ms": 3000}
        assert await example.consume(broker_address, max_messages=1, **kwargs) == 1
        # A restart of the same group resumes after what was handled: the second event, not the first.
        assert await example.consume(broker_address, max_messages=1, **kwargs) == 1

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert seen == [
        ("news.item.created", "demo-1:1", "Ferry timetable change 1"),
        ("news.item.updated", "demo-1:2", "Ferry timetable change 1"),
    ]


def test_example_validator_refuses_an_item_off_the_contract() -> None:
    import jsonschema  # type: ignore[import-untyped,unused-ignore]

    _, value, _ = _published(2, "created", 1)
    validate = _example().load_validator()
    item = json.loads(value)
    validate(item)
    item["version"] = 0
    with pytest.raises(jsonschema.ValidationError):
        validate(item)
