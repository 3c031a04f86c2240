"""What one of the daemon's own log lines costs: routed through stdlib ``logging`` (before) and
written directly by structlog (``configure_logging`` as shipped).

    python bench/log_lines.py                      # 200,000 lines per run, 5 runs of each
    python bench/log_lines.py --lines 50000 --runs 3 --sink memory

The line is the dedup stage's ``item_published`` (eleven keys of short strings and ints, plus
``event``, ``level``, ``logger`` and ``ts``), logged at INFO through a module-level
``structlog.get_logger("consumers.dedup")`` as the stage does, in JSON mode.  Both
configurations are set up in this process, one after the other, and write to the same sink:
``/dev/null`` opened as a text file (``--sink devnull``; each line is flushed, so a ``write(2)``
per line as on a real stdout) or an in-memory stream that keeps nothing (``--sink memory``;
no system call, only the Python side).

* ``before``: the configuration before the direct route, built here: the same processors,
  ``structlog.stdlib.LoggerFactory`` + ``BoundLogger``, ``ProcessorFormatter.wrap_for_formatter``
  and a ``StreamHandler`` with ``ProcessorFormatter`` and ``RepeatedLibraryLines``;
* ``after``: ``ingestor.logging.configure_logging("INFO", "json", stream=...)``.

Prints, per configuration, the best and median of ``--runs`` runs in µs per line and lines/s,
then before/after (how many times faster the shipped configuration is), and whether the two
wrote the same line (apart from ``ts``).  A debug line below the level (``item_unchanged``)
is timed too: it is dropped in both, and costs what deciding that costs.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import structlog  # noqa: E402

from ingestor import logging as ingestor_logging  # noqa: E402

FIELDS: dict[str, Any] = {
    "stage": "dedup",
    "item": "9f1c2d3e4b5a69788796a5b4c3d2e1f0",
    "feed": "bbc-world",
    "kind": "article",
    "topic": "news.published",
    "partition": 7,
    "offset": 1_204_331,
    "status": "created",
    "version": 1,
    "title": "Harbour bridge reopens after three-week closure as repairs finish early",
    "duration_ms": 0.42,
}


class _NullText(io.TextIOBase):
    """An in-memory text stream that keeps nothing (``write`` and ``flush`` do no I/O)."""

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


class _LastLine(io.TextIOBase):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, s: str) -> int:
        self.lines.append(s)
        return len(s)


def configure_before(stream: Any, level: str = "INFO") -> None:
    """``configure_logging`` (JSON) as it was: every own event through stdlib ``logging``."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=ingestor_logging._shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            ingestor_logging._DICT_TRACEBACKS,
            structlog.processors.JSONRenderer(serializer=ingestor_logging._json_line, ensure_ascii=False),
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ingestor_logging.RepeatedLibraryLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *ingestor_logging._shared_processors(),
            structlog.processors.StackInfoRenderer(),
            ingestor_logging._DICT_TRACEBACKS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def configure_after(stream: Any, level: str = "INFO") -> None:
    ingestor_logging.configure_logging(level, "json", stream=stream)


CONFIGS: dict[str, Callable[[Any], None]] = {"before": configure_before, "after": configure_after}


def one_run(configure: Callable[[Any], None], stream: Any, lines: int, method: str) -> float:
    """Seconds for ``lines`` calls of ``log.<method>("item_published", **FIELDS)``."""
    configure(stream)
    log = structlog.get_logger("consumers.dedup")  # a fresh proxy, cached on its first use
    emit = getattr(log, method)
    emit("warm_up", **FIELDS)
    started = time.perf_counter()
    for _ in range(lines):
        emit("item_published", **FIELDS)
    return time.perf_counter() - started


def same_line() -> bool:
    rendered = []
    for configure in CONFIGS.values():
        sink = _LastLine()
        configure(sink)
        structlog.get_logger("consumers.dedup").info("item_published", **FIELDS)
        line = json.loads("".join(sink.lines))
        line.pop("ts")
        rendered.append(json.dumps(line))  # key order included
    return rendered[0] == rendered[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=200_000, help="lines per run (default 200,000)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each configuration, interleaved")
    parser.add_argument("--sink", choices=("devnull", "memory"), default="devnull")
    args = parser.parse_args()
    stream: Any = open(os.devnull, "w") if args.sink == "devnull" else _NullText()  # noqa: SIM115
    print(f"python {sys.version.split()[0]}, structlog {structlog.__version__}, sink {args.sink}")
    print(f"same line (apart from ts) before and after: {'yes' if same_line() else 'NO'}")
    for method, label, lines in (
        ("info", "item_published (info, written)", args.lines),
        ("debug", "item_unchanged-like (debug, dropped at INFO)", args.lines),
    ):
        seconds: dict[str, list[float]] = {name: [] for name in CONFIGS}
        for _ in range(args.runs):
            for name, configure in CONFIGS.items():
                seconds[name].append(one_run(configure, stream, lines, method) / lines)
        print(f"\n{label}, {lines:,} lines x {args.runs} runs")
        for name, per_line in seconds.items():
            best, median = min(per_line), statistics.median(per_line)
            print(
                f"  {name:<7} best {best * 1e6:6.2f} µs/line ({1 / best:10,.0f} lines/s)"
                f"   median {median * 1e6:6.2f} µs/line ({1 / median:10,.0f} lines/s)"
            )
        ratio = min(seconds["before"]) / min(seconds["after"])
        ratio_median = statistics.median(seconds["before"]) / statistics.median(seconds["after"])
        print(f"  before/after: {ratio:.2f}x (best), {ratio_median:.2f}x (median)")
    logging.getLogger().handlers[:] = []
    stream.close()


if __name__ == "__main__":
    main()
