"""Every line is JSON in json mode, the libraries' own loggers included."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from ingestor.logging import configure_logging


def test_structlog_and_library_logs_share_one_json_stream() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    structlog.get_logger("ingestor.test").info("feed_fetched", stage="fetch", feed="f1", status=200)
    logging.getLogger("aiokafka.consumer").warning("Heartbeat failed for group %s", "g1")
    logging.getLogger("aiohttp.client").error("connection reset")
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("ingestor.test").exception("handler_crashed", stage="parse")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [
        "feed_fetched",
        "Heartbeat failed for group g1",
        "connection reset",
        "handler_crashed",
    ]
    assert lines[0]["feed"] == "f1" and lines[0]["level"] == "info" and "ts" in lines[0]
    assert lines[1]["logger"] == "aiokafka.consumer" and lines[1]["level"] == "warning"
    assert "exception" in lines[3]


def test_library_info_chatter_is_quiet_by_default() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    logging.getLogger("aiokafka.consumer.group_coordinator").info("Joined group")
    assert stream.getvalue() == ""


def test_a_library_repeating_itself_is_one_line_per_window(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("ingestor.logging.time.monotonic", lambda: now[0])
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    kafka = logging.getLogger("aiokafka")
    for tenth in range(650):  # 65 s of a broker away: every reconnect attempt logs
        now[0] = 1000.0 + tenth / 10
        kafka.error("Unable connect to node with id %s: %s", 111, "[Errno 111] Connect call failed")
        kafka.error("Unable to update metadata from %s", [111])
        structlog.get_logger("ingestor.consumer").warning("broker_unreachable", stage="dedup")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len([line for line in lines if line["event"] == "broker_unreachable"]) == 650  # ours: all
    connect = [line for line in lines if line["event"].startswith("Unable connect")]
    assert len(connect) == 3  # at 0 s, 30 s and 60 s
    assert "repeated" not in connect[0]
    assert connect[1]["repeated"] == connect[2]["repeated"] == 299
    assert len([line for line in lines if line["event"].startswith("Unable to update")]) == 3


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_document_text_in_a_log_value_cannot_drive_the_terminal(fmt: str) -> None:
    stream = io.StringIO()
    configure_logging("INFO", fmt, stream=stream)  # type: ignore[arg-type]
    hostile = "title\x1b]0;owned\x07\x9b2J\u202eevil\u2028line"
    structlog.get_logger("ingestor.test").warning("raw_parsed", error=hostile)
    out = stream.getvalue()
    assert not any(ch in out for ch in "\x1b\x07\x9b\u202e\u2028")
    if fmt == "json":
        assert json.loads(out)["error"] == hostile  # still the same data
