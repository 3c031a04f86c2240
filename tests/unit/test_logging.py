"""Every line is JSON in json mode, the libraries' own loggers included."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from ingestor import logging as ingestor_logging
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


# ---- own events: rendered by structlog, written directly ---------------------------------------

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def _configure_stdlib_routed(fmt: str, stream: io.StringIO) -> None:
    """The configuration before own events were written directly: every structlog event became
    a stdlib ``LogRecord`` and went through the root handler's ``ProcessorFormatter``. The
    reference the direct route must render like."""
    use_json = fmt == "json"
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=ingestor_logging._json_line, ensure_ascii=False)
        if use_json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=ingestor_logging._plain_tracebacks
        )
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=ingestor_logging._shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            ingestor_logging._DICT_TRACEBACKS if use_json else ingestor_logging._terminal_safe_values,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel("DEBUG")
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *ingestor_logging._shared_processors(),
            structlog.processors.StackInfoRenderer(),
            ingestor_logging._DICT_TRACEBACKS if use_json else structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _log_some_events() -> None:
    log = structlog.get_logger("consumers.dedup")
    structlog.contextvars.bind_contextvars(run="r1")
    try:
        log.info("item_published", stage="dedup", item="i1", partition=3, offset=41, title="a\u2028b")
        log.debug("item_unchanged", stage="dedup", item="i1")
        log.warning("broker_unreachable", stage="dedup", error=None)
        try:
            raise ValueError("boom")
        except ValueError as exc:
            log.exception("handler_crashed", stage="dedup", secret_local="x")
            log.error("explicit_exc_info", exc_info=True)
            log.warning("exc_info_is_the_exception", exc_info=exc)
    finally:
        structlog.contextvars.clear_contextvars()


def _lines_without_time(text: str) -> list[str]:
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", "TS", text)
    return re.sub(r"line \d+|\"lineno\": \d+", "LINE", text).splitlines()


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_own_events_skip_the_stdlib_handler_and_render_as_they_did(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = io.StringIO()
    _configure_stdlib_routed(fmt, before)
    _log_some_events()

    records: list[str] = []
    make_record = logging.Logger.makeRecord

    def spy(self: logging.Logger, name: str, *args: Any, **kwargs: Any) -> logging.LogRecord:
        records.append(name)
        return make_record(self, name, *args, **kwargs)

    monkeypatch.setattr(logging.Logger, "makeRecord", spy)
    after = io.StringIO()
    configure_logging("DEBUG", fmt, stream=after)  # type: ignore[arg-type]
    _log_some_events()
    assert records == []  # no LogRecord, no handler: written directly
    assert _lines_without_time(after.getvalue()) == _lines_without_time(before.getvalue())
    logging.getLogger("aiokafka.conn").warning("a library line")
    assert records == ["aiokafka.conn"]  # library lines keep the stdlib route

    if fmt == "json":
        lines = [json.loads(line) for line in after.getvalue().splitlines()]
        published = lines[0]
        assert list(published) == [
            *("stage", "item", "partition", "offset", "title", "event", "run", "level", "logger", "ts")
        ]
        assert published["logger"] == "consumers.dedup" and published["level"] == "info"
        assert TS.match(published["ts"])
        assert "\u2028" not in after.getvalue().splitlines()[0]  # _json_line's escaping
        assert [line["level"] for line in lines[3:6]] == ["error", "error", "warning"]
        for line in lines[3:6]:
            (frames,) = line["exception"]
            assert frames["exc_type"] == "ValueError" and frames["exc_value"] == "boom"
            assert all("locals" not in frame for frame in frames["frames"])


def test_own_events_are_filtered_by_the_configured_level_even_when_cached() -> None:
    stream = io.StringIO()
    log = structlog.get_logger("ingestor.test.level")
    configure_logging("WARNING", "json", stream=stream)
    log.info("dropped")  # the first use: cached from here on, as module-level loggers are
    log.warning("kept_1")
    configure_logging("INFO", "json", stream=stream)  # a tool or a test configures again
    log.debug("dropped")
    log.info("kept_2")
    log.log(logging.INFO, "kept_3")
    logging.getLogger("ingestor.test.level").setLevel(logging.ERROR)  # a stdlib level: honoured
    try:
        log.warning("dropped")
        log.error("kept_4")
    finally:
        logging.getLogger("ingestor.test.level").setLevel(logging.NOTSET)
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == [
        "kept_1",
        "kept_2",
        "kept_3",
        "kept_4",
    ]


def test_capture_logs_still_sees_every_level() -> None:
    configure_logging("ERROR", "json", stream=io.StringIO())
    log = structlog.get_logger("ingestor.test.capture")
    log.error("cached_now")
    with capture_logs() as logs:
        log.debug("item_unchanged", item="i1")
        log.info("item_published", item="i1")
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [
        ("item_unchanged", "debug"),
        ("item_published", "info"),
    ]


def test_own_lines_go_to_the_current_sys_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging("INFO", "json")
    log = structlog.get_logger("ingestor.test.stdout")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", first)
    log.info("to_first")
    monkeypatch.setattr(sys, "stdout", second)
    log.info("to_second")
    logging.getLogger("aiohttp.client").warning("library to second")
    log.warning("also_to_second")
    assert [json.loads(line)["event"] for line in first.getvalue().splitlines()] == ["to_first"]
    lines = [json.loads(line) for line in second.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["to_second", "library to second", "also_to_second"]
    assert [line["logger"] for line in lines] == [
        "ingestor.test.stdout",
        "aiohttp.client",
        "ingestor.test.stdout",
    ]


class _Recording(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, s: str) -> int:
        self.calls.append(s)
        return super().write(s)

    def flush(self) -> None:
        self.calls.append("<flush>")


def test_each_own_line_is_one_write_and_a_flush() -> None:
    stream = _Recording()
    configure_logging("INFO", "json", stream=stream)
    structlog.get_logger("ingestor.test.write").info("feed_fetched", feed="f1")
    logging.getLogger("aiokafka").error("library line")
    structlog.get_logger("ingestor.test.write").info("feed_fetched", feed="f2")
    assert len(stream.calls) == 6
    for written in stream.calls[0::2]:
        assert written.endswith("\n") and written.count("\n") == 1
        json.loads(written)
    assert stream.calls[1::2] == ["<flush>"] * 3


def test_positional_arguments_are_interpolated() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    log = structlog.get_logger("ingestor.test.args")
    log.info("fetched %s in %d ms", "f1", 12)
    log.info("fetched %(feed)s", {"feed": "f2"})
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == [
        "fetched f1 in 12 ms",
        "fetched f2",
    ]


def test_a_failed_write_is_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    stream.close()
    structlog.get_logger("ingestor.test.closed").info("lost_line")  # must not raise
    assert "--- Logging error ---" in capsys.readouterr().err
