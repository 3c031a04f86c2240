"""structlog set-up: JSON lines for machines, a console renderer for people, one pipeline.

The standard library's loggers (aiokafka, aiohttp, asyncio) go through the same processors,
so that in JSON mode every line on stdout is JSON an on-call engineer can grep with jq.

The pipeline's own events (``structlog.get_logger(name)``) do not go through ``logging``:
structlog's processors render each one and the line is written straight to the stream. At
1,000 published items a second, building a ``LogRecord`` and passing it through
``Logger._log``, ``Handler.handle`` and ``ProcessorFormatter`` for every ``item_published``
line took about 12% of the main thread, on the pipeline's latency path. Library lines keep the
stdlib route (a ``StreamHandler`` with ``ProcessorFormatter`` and ``RepeatedLibraryLines``),
and both kinds render with the same renderer into the same shape.

What the direct route keeps from the stdlib one:

* the level comes from the stdlib logger of the same name at call time (the root level that
  ``configure_logging`` sets, unless someone set one on ``consumers.dedup`` or so), as
  ``structlog.stdlib.filter_by_level`` did. A filtering bound logger with the level fixed in
  its class (``make_filtering_bound_logger(level)``) would not do: module-level loggers are
  cached on first use and outlive a later ``configure_logging`` (tools and tests configure
  again with another level or stream), and ``structlog.testing.capture_logs``, which replaces
  the processors, would stop seeing events below the configured level;
* every line is one ``write`` (newline included) under the stdlib handler's lock, then a
  ``flush``, as ``StreamHandler.emit`` does: our lines and library lines never interleave,
  and a SIGKILLed daemon has lost no buffered line;
* without an explicit ``stream``, lines go to whatever ``sys.stdout`` is when they are
  written (see ``_CurrentStdoutHandler``); a failed write is reported on stderr the way
  ``Handler.handleError`` does it and never raises into the caller.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import traceback
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
    structlog events are never held back (they do not pass through this handler at all).
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


class _Output:
    """Where the own events' lines go: set by ``configure_logging``, read at every line.

    One per process, so that loggers cached before a later ``configure_logging`` write where
    it says. ``lock`` is the library handler's: our lines and library lines never interleave.
    """

    def __init__(self) -> None:
        self.stream: Any = None  # None: sys.stdout at the time of writing
        self.lock: threading.RLock | threading.Lock = threading.RLock()


_OUTPUT = _Output()


def _write_failed(line: str) -> None:
    """As ``logging.Handler.handleError``: a note on stderr, never an exception for the caller."""
    if logging.raiseExceptions and sys.stderr:
        try:
            sys.stderr.write("--- Logging error ---\n")
            traceback.print_exc(file=sys.stderr)
            sys.stderr.write(f"Message: {line!r}\n")
        except RecursionError:
            raise
        except Exception:
            pass


class _LineLogger:
    """The logger under our bound loggers: writes a rendered line to ``_OUTPUT``.

    It wraps the stdlib logger of the same name for its ``name`` (``add_logger_name``) and its
    level (``_filter_by_level``); nothing is ever logged through that stdlib logger.
    """

    __slots__ = ("name", "stdlib")

    def __init__(self, stdlib: logging.Logger) -> None:
        self.stdlib = stdlib
        self.name = stdlib.name

    def msg(self, line: str) -> None:
        out = _OUTPUT
        stream = sys.stdout if out.stream is None else out.stream
        try:
            with out.lock:
                stream.write(line + "\n")
                stream.flush()
        except RecursionError:
            raise
        except Exception:
            _write_failed(line)

    log = debug = info = warn = warning = notset = msg
    fatal = failure = err = error = critical = exception = msg


class _LineLoggerFactory:
    """``structlog.get_logger(name)`` -> a ``_LineLogger`` for the stdlib logger ``name``
    (without a name, the calling module's, as ``structlog.stdlib.LoggerFactory`` guesses it)."""

    def __init__(self) -> None:
        self._stdlib = structlog.stdlib.LoggerFactory(ignore_frame_names=[__name__])

    def __call__(self, *args: Any) -> _LineLogger:
        return _LineLogger(self._stdlib(*args))


_METHOD_LEVELS = {
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "exception": logging.ERROR,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "notset": logging.NOTSET,
}


def _filter_by_level(logger: _LineLogger, method_name: str, event_dict: Any) -> Any:
    """``structlog.stdlib.filter_by_level`` for a ``_LineLogger``: the stdlib logger's level."""
    stdlib = logger.stdlib
    if not stdlib.disabled and _METHOD_LEVELS.get(method_name, logging.NOTSET) >= stdlib.getEffectiveLevel():
        return event_dict
    raise structlog.DropEvent


#: The own events' processors: one list for the life of the process, refilled in place by
#: ``configure_logging``, because cached bound loggers (and ``capture_logs``) hold on to it.
_PROCESSORS: list[Any] = []


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
    _OUTPUT.stream = stream
    _OUTPUT.lock = handler.lock or threading.RLock()
    _PROCESSORS[:] = [
        _filter_by_level,
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        structlog.processors.StackInfoRenderer(),
        *([_DICT_TRACEBACKS] if use_json else [structlog.processors.format_exc_info, _terminal_safe_values]),
        renderer,
    ]
    structlog.configure(
        processors=_PROCESSORS,
        logger_factory=_LineLoggerFactory(),
        # Every method of every level: the level is _filter_by_level's, read at call time.
        wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
        cache_logger_on_first_use=True,
    )
