"""structlog set-up: JSON lines for machines, a console renderer for people, one pipeline.

The standard library's loggers (aiokafka, aiohttp, asyncio) go through the same processors,
so that in JSON mode every line on stdout is JSON an on-call engineer can grep with jq.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal

import structlog
import structlog.tracebacks

from ingestor.terminal import escape_json_text, safe_for_terminal

LogFormat = Literal["auto", "json", "console"]

#: Tracebacks as JSON, without the frames' local variables: a local may hold a resolved
#: credential (a feed's Authorization header, a password read from a secret file).
_DICT_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)

#: Libraries that are chatty at INFO about things the pipeline already reports itself.
_QUIET_LIBRARIES = {"aiokafka": logging.WARNING, "aiohttp.access": logging.WARNING}


def _plain_tracebacks(sio: Any, exc_info: Any) -> None:
    """The console's tracebacks, without local variables (see ``_DICT_TRACEBACKS``)."""
    structlog.dev.plain_traceback(sio, exc_info)


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        structlog.stdlib.ExtraAdder(),
    ]


class RepeatedLibraryLines(logging.Filter):
    """One line per library message template per window, then the count of what was held back.

    While a broker is away aiokafka logs every reconnect attempt of every connection, several
    lines a second per process: a 30 s outage would bury the pipeline's own events
    (`broker_unreachable`, `stage_restarting`) under a thousand identical lines. The first line
    of a kind goes out at once; repeats within the window are counted, and the next line of that
    kind after the window carries ``repeated`` (how many were held back). The pipeline's own
    structlog events are never held back.
    """

    def __init__(self, window_s: float = 30.0) -> None:
        super().__init__()
        self._window_s = window_s
        self._windows: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):  # a structlog event (a dict): always
            return True
        key = (record.name, record.levelno, record.msg)
        now = time.monotonic()
        opened = self._windows.get(key)
        if opened is not None and now - opened[0] < self._window_s:
            self._windows[key] = (opened[0], opened[1] + 1)
            return False
        if opened is not None and opened[1]:
            record.repeated = opened[1]
        self._windows[key] = (now, 0)
        return True


class _CurrentStdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is when a line is emitted.

    Test runners and embedding tools swap ``sys.stdout``; a handler that kept the object it
    was built with would write to a closed stream after the swap.
    """

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _json_line(obj: Any, **kwargs: Any) -> str:
    """A JSON log line in which nothing a document put in a value can act on a terminal
    (``json.dumps`` leaves C1 controls, bidi overrides and U+2028 raw with ensure_ascii off)."""
    return escape_json_text(json.dumps(obj, **kwargs))


def _terminal_safe_values(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """For the console renderer: string values with terminal controls escaped."""
    return {
        key: safe_for_terminal(value, keep_newlines=key == "exception") if isinstance(value, str) else value
        for key, value in event.items()
    }


def configure_logging(level: str = "INFO", fmt: LogFormat = "auto", *, stream: Any = None) -> None:
    """Idempotent; call once per process before anything logs."""
    out = stream or sys.stdout
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json_line, ensure_ascii=False)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty(), exception_formatter=_plain_tracebacks)
    )
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    final.append(_DICT_TRACEBACKS if use_json else _terminal_safe_values)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[*final, renderer],
    )
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _CurrentStdoutHandler()
    )
    handler.setFormatter(formatter)
    handler.addFilter(RepeatedLibraryLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name, floor in _QUIET_LIBRARIES.items():
        logging.getLogger(name).setLevel(max(floor, logging.getLevelName(level)))
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info if not use_json else _DICT_TRACEBACKS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
