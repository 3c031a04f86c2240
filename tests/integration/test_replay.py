"""`ingestor replay` on the real broker: re-parsing a range that contains an edit publishes
nothing new, and a real change (the published text differs from what the parser makes of the
raw message now) comes out as exactly one `updated` event."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from consumers.dedup.service import DedupStage
from consumers.parse.service import ParseStage
from ingestor import headers as hdr
from ingestor.kafka import KafkaConnection, ensure_topics
from ingestor.models import format_utc
from ingestor.tools.cli import main
from tests.conftest import make_settings
from tests.integration.daemon_process import write_config
from tests.integration.kafka_helpers import produce, read_topic, values
from tests.integration.test_stages_on_broker import rss


def _headers(fetched_at: str) -> list[tuple[str, bytes]]:
    return hdr.build(
        [
            (hdr.URL, "https://example.org/feed.xml"),
            (hdr.CONTENT_TYPE, "application/rss+xml"),
            (hdr.FETCHED_AT, fetched_at),
            (hdr.FEED_TIMEZONE, "UTC"),
        ]
    )


def _now() -> str:
    return format_utc(datetime.now(UTC))


def _events(published: list[dict[str, Any]]) -> list[tuple[str, str, int, str]]:
    return [(p["title"], p["event"], p["version"], p["body"]) for p in published]


def test_replay_publishes_real_changes_only(
    tmp_path: Path, broker_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(broker_address)
    topics = settings.topics
    config = str(
        write_config(
            tmp_path / "config.yaml",
            {"kafka": {"bootstrap_servers": broker_address}, "topics": topics.model_dump()},
        )
    )

    def replay(since: str, until: str | None = None) -> dict[str, Any]:
        capsys.readouterr()
        code = main(["replay", "--config", config, "--from", since, *(["--to", until] if until else [])])
        out, err = capsys.readouterr()
        assert code == 0, err
        report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return report

    async def scenario() -> None:
        connection = KafkaConnection(broker_address, settings.kafka)
        await ensure_topics(connection, topics)
        parse, dedup = ParseStage(settings, connection), DedupStage(settings, connection)
        await dedup.start()
        await parse.start()
        try:
            # Before the range: the first fetch. In the range: an unchanged re-fetch plus a new
            # entry, then an edit of the first entry.
            await produce(
                broker_address, topics.raw, [(b"f", rss([("a", "Alpha", "one")]), _headers(_now()))]
            )
            await read_topic(broker_address, topics.published, expect=1, settle=0.2)
            await asyncio.sleep(0.05)
            since = _now()
            await asyncio.sleep(0.05)
            r1 = rss([("b", "Beta", "bee"), ("a", "Alpha", "one")])
            await produce(broker_address, topics.raw, [(b"f", r1, _headers(_now()))])
            r2_fetched = _now()
            r2 = rss([("b", "Beta", "bee"), ("a", "Alpha", "one, edited")])
            await produce(broker_address, topics.raw, [(b"f", r2, _headers(r2_fetched))])
            published = values(await read_topic(broker_address, topics.published, expect=3, settle=0.5))
            assert sorted(_events(published)) == [
                ("Alpha", "created", 1, "one"),
                ("Alpha", "updated", 2, "one, edited"),
                ("Beta", "created", 1, "bee"),
            ]
            await asyncio.sleep(0.05)
            until = _now()

            # Unchanged range (with an edit inside it): nothing new, and also not for the whole log.
            report = await asyncio.to_thread(replay, since, until)
            assert report["raw_messages"] == 2 and report["items_produced"] == 4 and report["refused"] == 0
            assert (await asyncio.to_thread(replay, "2000-01-01T00:00:00Z"))["raw_messages"] == 3
            await asyncio.sleep(1.0)
            again = values(await read_topic(broker_address, topics.published, settle=1.0))
            assert len(again) == 3, _events(again)

            # What an older, buggy parser made of r2 (same id and fetch time, other text) was
            # published as version 3; the replay turns the difference into one `updated`.
            alpha = next(p for p in published if p["title"] == "Alpha" and p["version"] == 2)
            wrong = {k: v for k, v in alpha.items() if k not in ("event", "version")}
            wrong.update(body="garbled", content_hash="sha256:" + "0" * 64)
            await produce(
                broker_address, topics.items, [(wrong["id"].encode(), json.dumps(wrong).encode(), [])]
            )
            await read_topic(broker_address, topics.published, expect=4, settle=0.3)
            report = await asyncio.to_thread(replay, since, until)
            assert report["raw_messages"] == 2
            final = values(await read_topic(broker_address, topics.published, expect=5, settle=1.5))
            assert sorted(_events(final)) == [
                ("Alpha", "created", 1, "one"),
                ("Alpha", "updated", 2, "one, edited"),
                ("Alpha", "updated", 3, "garbled"),
                ("Alpha", "updated", 4, "one, edited"),
                ("Beta", "created", 1, "bee"),
            ]
            assert next(p for p in final if p["version"] == 4)["fetched_at"] == r2_fetched
            await asyncio.to_thread(replay, since)  # and once more: settled
            await asyncio.sleep(1.0)
            assert len(await read_topic(broker_address, topics.published, settle=1.0)) == 5
        finally:
            await parse.stop()
            await dedup.stop()

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 60


def test_replay_rejects_bad_times(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--from", "yesterday"]) == 2
    assert main(["replay", "--from", "2024-11-04T12:00:00"]) == 2
    assert main(["replay", "--from", "2024-11-04T12:00:00Z", "--to", "2024-11-03T12:00:00Z"]) == 2
    assert "replay" in capsys.readouterr().err
