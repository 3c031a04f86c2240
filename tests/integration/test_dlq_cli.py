"""`ingestor dlq list` / `dlq replay` on the real broker: poison refused by the real stages is
listed with its reason, replayed to its source topic with its original bytes and headers, and
never replayed twice, also when filters leave gaps between runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from consumers.dedup.service import DedupStage
from consumers.parse.service import ParseStage
from ingestor import headers as hdr
from ingestor.config import Settings
from ingestor.kafka import KafkaConnection, ensure_topics
from ingestor.tools.cli import main
from tests.conftest import make_settings
from tests.integration.daemon_process import write_config
from tests.integration.kafka_helpers import produce, read_topic


def _config(tmp_path: Path, settings: Settings) -> str:
    data = {
        "kafka": {"bootstrap_servers": settings.kafka.bootstrap_servers},
        "topics": settings.topics.model_dump(),
    }
    return str(write_config(tmp_path / "config.yaml", data))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]], str]:
    capsys.readouterr()  # drop what came before (e.g. the in-process stages' logs)
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


async def _poison(settings: Settings, broker_address: str) -> None:
    """Two refusals by parse (garbage, bad time zone) and one by dedup (invalid JSON)."""
    connection = KafkaConnection(broker_address, settings.kafka)
    await ensure_topics(connection, settings.topics)
    parse, dedup = ParseStage(settings, connection), DedupStage(settings, connection)
    await dedup.start()
    await parse.start()
    try:
        raw_headers = hdr.build([(hdr.URL, "https://example.org/feed.xml"), (hdr.FEED_TIMEZONE, "UTC")])
        await produce(broker_address, settings.topics.raw, [(b"feed-1", b"\x00\x01 not a feed", raw_headers)])
        bad_tz = hdr.build([(hdr.URL, "https://example.org/x"), (hdr.FEED_TIMEZONE, "Mars/Olympus")])
        await produce(broker_address, settings.topics.raw, [(b"feed-2", b"<rss/>", bad_tz)])
        await produce(broker_address, settings.topics.items, [(b"item-x", b"{not json", [("trace", b"t1")])])
        await read_topic(broker_address, settings.topics.dlq, expect=3, settle=0.5)
    finally:
        await parse.stop()
        await dedup.stop()


def test_dlq_list_and_replay_once(
    tmp_path: Path, broker_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(broker_address)
    asyncio.run(_poison(settings, broker_address))
    config = _config(tmp_path, settings)

    code, entries, _ = _run(capsys, "dlq", "list", "--config", config)
    assert code == 0
    assert sorted((e["stage"], e["error_type"], e["source_topic"], e["key"]) for e in entries) == sorted(
        [
            ("parse", "unsupported", settings.topics.raw, "feed-1"),
            ("parse", "bad_metadata", settings.topics.raw, "feed-2"),
            ("dedup", "invalid_json", settings.topics.items, "item-x"),
        ]
    )
    assert all(e["failed_at"] and e["error_message"] and e["source_offset"] is not None for e in entries)
    code, limited, _ = _run(capsys, "dlq", "list", "--config", config, "--max", "1")
    assert code == 0 and len(limited) == 1

    # A dry run shows the parse refusals and sends nothing.
    code, shown, err = _run(capsys, "dlq", "replay", "--config", config, "--stage", "parse", "--dry-run")
    assert code == 0 and len(shown) == 2 and not any(e["replayed"] for e in shown)
    assert json.loads(err.strip().splitlines()[-1])["selected"] == 2
    raw_before = asyncio.run(read_topic(broker_address, settings.topics.raw, settle=0.5))
    assert len(raw_before) == 2

    # Replay only parse's refusals: back on news.raw, original key, value and headers.
    code, replayed, _ = _run(capsys, "dlq", "replay", "--config", config, "--stage", "parse")
    assert code == 0 and len(replayed) == 2 and all(e["replayed"] for e in replayed)
    raw_after = asyncio.run(read_topic(broker_address, settings.topics.raw, expect=4, settle=0.5))
    assert len(raw_after) == 4
    originals = sorted((r.key, r.value, tuple(r.headers)) for r in raw_before)
    resent = sorted((r.key, r.value, tuple(r.headers)) for r in raw_after if r not in raw_before)
    assert len(resent) == 2 and resent == originals  # no dlq-* header survives

    # Same filter again: nothing. No filter: only the dedup refusal, which the gap left behind.
    code, second, _ = _run(capsys, "dlq", "replay", "--config", config, "--stage", "parse")
    assert code == 0 and second == []
    code, rest, err = _run(capsys, "dlq", "replay", "--config", config)
    assert code == 0 and [(e["stage"], e["key"]) for e in rest] == [("dedup", "item-x")]
    assert json.loads(err.strip().splitlines()[-1])["already_replayed"] == 2
    items = asyncio.run(read_topic(broker_address, settings.topics.items, expect=2, settle=0.5))
    assert [(r.key, r.value, list(r.headers)) for r in items][-1] == (
        b"item-x",
        b"{not json",
        [("trace", b"t1")],
    )
    code, last, _ = _run(capsys, "dlq", "replay", "--config", config)
    assert code == 0 and last == []
