"""``ingestor demo``: the whole pipeline against a simulated newsroom, watched from a terminal.

A newcomer should see the daemon do its job within a minute, with no Kafka and no internet:
the embedded broker, a loopback newsroom whose pages gain and correct posts while they
watch (and whose teaser feed's entries are published with their page's full text, marked
``[full text, N words]``), the three stages exactly as ``ingestor run`` starts them, and one
readable line per ``news.published`` event.  Events go to stdout and everything else (banner, newsroom
changes, logs) to stderr, so ``ingestor demo | jq`` style piping still sees only events.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from ingestor.config import FeedConfig, Settings, load_settings
from ingestor.tools.common import install_signal_handlers

if TYPE_CHECKING:
    from ingestor.kafka import KafkaConnection

log = structlog.get_logger("ingestor.demo")

FETCH_INTERVAL_S = 1.0
DEMO_PARTITIONS = 3


def add_demo_parser(sub: Any) -> None:
    """Register ``ingestor demo`` on the CLI's subparsers (kept here so cli.py stays small)."""
    demo = sub.add_parser("demo", help="run the pipeline against a simulated local newsroom")
    demo.add_argument("--duration", type=float, help="stop after SECONDS (default: until Ctrl-C)")
    demo.add_argument("--pace", type=float, default=3.0, help="seconds between newsroom changes (default 3)")
    demo.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    demo.set_defaults(func=cmd_demo)


def demo_settings(feeds: list[dict[str, object]]) -> Settings:
    """Settings for the demo: embedded broker, loopback feeds, short intervals.

    The environment still applies (``INGESTOR_KAFKA__EMBEDDED__STATE_DIR`` and the like), but
    the broker and the feeds are the demo's own whatever it says: the point is a run that
    needs nothing outside this machine.
    """
    settings = load_settings(
        None,
        overrides={
            "topics": {"partitions": DEMO_PARTITIONS, "replication_factor": 1, "create": True},
            "fetch": {"startup_spread": 0, "min_interval": 0.5, "default_interval": FETCH_INTERVAL_S},
        },
    )
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": "embedded"})
    fetch = settings.fetch.model_copy(update={"allow_private_networks": True})
    return settings.model_copy(
        update={"kafka": kafka, "fetch": fetch, "feeds": [FeedConfig.model_validate(f) for f in feeds]}
    )


# ---- the event printer ---------------------------------------------------------------------------


def _local_time(value: Any) -> str:
    if not isinstance(value, str):
        return "--:--:--"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "--:--:--"
    return moment.astimezone().strftime("%H:%M:%S")


def full_text_note(item: dict[str, Any], feeds: frozenset[str]) -> str:
    """``[full text, N words]`` for an entry of one of ``feeds`` (the newsroom's feeds, as
    opposed to its pages) published with its linked page's text, else ''.  A page's own
    article says ``body_source: page`` too; only a feed entry's is news here."""
    if item.get("body_source") != "page" or item.get("source") not in feeds or item.get("parent_id"):
        return ""
    return f"[full text, {len(str(item.get('body') or '').split())} words]"


class EventPrinter:
    """One line per published event: item time, event/version, kind, source, title, and for a
    feed entry that came with its page's text (full text), how much text that was."""

    def __init__(self, out: TextIO, feeds: frozenset[str] = frozenset()) -> None:
        self.out = out
        self.feeds = feeds  # the ids of the sources that are feeds (their entries may get full text)
        self.counts: Counter[str] = Counter()
        self.full_text = 0
        self._console: Any = None
        if out.isatty():
            from rich.console import Console

            self._console = Console(file=out, highlight=False)

    def show(self, item: dict[str, Any]) -> None:
        event = str(item.get("event", "?"))
        self.counts[event] += 1
        when = _local_time(item.get("updated_at") or item.get("published_at") or item.get("fetched_at"))
        tag = f"{event} v{item.get('version', '?')}"
        kind, source, title = (
            str(item.get("kind", "")),
            str(item.get("source", "")),
            str(item.get("title", "")),
        )
        note = full_text_note(item, self.feeds)
        self.full_text += bool(note)
        if self._console is None:
            lead = f"{note} " if note else ""
            self.out.write(f"{when}  {tag:<11} {kind:<12} {source:<18} {lead}{title}\n")
            self.out.flush()
            return
        from rich.markup import escape

        colour = "green" if event == "created" else "yellow"
        lead = f"[bold blue]{escape(note)}[/] " if note else ""
        self._console.print(
            f"[dim]{when}[/]  [bold {colour}]{tag:<11}[/] [cyan]{kind:<12}[/] "
            f"[magenta]{escape(source):<18}[/] {lead}{escape(title)}",
            no_wrap=True,
            overflow="ellipsis",  # one line per event, however narrow the terminal
        )


async def watch_published(connection: KafkaConnection, topic: str, printer: EventPrinter) -> None:
    """Read the published topic from its beginning, as a subscriber would, until cancelled."""
    async with connection.reader() as reader:
        while not (tps := await reader.partitions_of(topic)):
            await asyncio.sleep(0.2)
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        while True:
            batch = await reader.getmany(timeout_ms=250)
            for record in sorted((r for rs in batch.values() for r in rs), key=lambda r: r.timestamp):
                with contextlib.suppress(ValueError, TypeError):
                    printer.show(json.loads(record.value))


# ---- orchestration -------------------------------------------------------------------------------


def _note(err: TextIO, text: str) -> None:
    err.write(text + "\n")
    err.flush()


async def run_demo(
    stop: asyncio.Event, *, duration: float | None, pace: float, out: TextIO, err: TextIO
) -> EventPrinter:
    """Newsroom, pipeline and printer until ``stop`` is set or ``duration`` has passed; the
    printer keeps the counts."""
    from ingestor.demo.newsroom import Newsroom, NewsroomServer
    from ingestor.tools.daemon import Daemon

    started = datetime.now(UTC)
    newsroom = Newsroom()
    newsroom.seed(started)
    server = NewsroomServer(newsroom, started)
    base = await server.start()
    server.on_story_fetch = lambda path, n: _note(
        err, f"  newsroom: the pipeline fetched the story page {path}" + (f" ({n} times)" if n > 1 else "")
    )
    feeds = server.feeds(FETCH_INTERVAL_S)
    daemon = Daemon(demo_settings(feeds))
    printer = EventPrinter(out, frozenset(str(f["id"]) for f in feeds if f["format"] == "feed"))
    tasks: list[asyncio.Task[None]] = []
    try:
        _note(
            err,
            f"newsroom: {base} (a live text page, an HTML live blog, an RSS and an Atom feed, and a "
            "teaser feed whose stories the pipeline fetches from their pages: full text)",
        )
        _note(err, "starting the embedded broker and the pipeline ...")
        starting = asyncio.create_task(daemon.start())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            return printer
        stopping.cancel()
        starting.result()
        assert daemon.connection is not None
        topic = daemon.settings.topics.published
        _note(
            err,
            f"broker: {daemon.connection.bootstrap_servers}; showing {topic} "
            f"({'Ctrl-C' if duration is None else f'{duration:g}s, or Ctrl-C'} to stop)",
        )
        tasks.append(asyncio.create_task(watch_published(daemon.connection, topic, printer)))
        tasks.append(asyncio.create_task(_tick(newsroom, pace, stop, err)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
        await asyncio.sleep(0.3)  # let the printer catch the last events already published
        return printer
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await daemon.stop()
        await server.stop()


async def _tick(newsroom: Any, pace: float, stop: asyncio.Event, err: TextIO) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pace)
            return
        for change in newsroom.tick(datetime.now(UTC)):
            _note(err, f"  newsroom: {change}")


def cmd_demo(args: argparse.Namespace) -> int:
    from ingestor.logging import configure_logging

    configure_logging(args.log_level, "auto", stream=sys.stderr)

    async def main() -> EventPrinter:
        stop = asyncio.Event()
        install_signal_handlers(asyncio.get_running_loop(), stop)
        return await run_demo(stop, duration=args.duration, pace=args.pace, out=sys.stdout, err=sys.stderr)

    try:
        printer = asyncio.run(main())
    except Exception as exc:
        log.error("demo_failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    counts = printer.counts
    _note(
        sys.stderr,
        f"demo stopped: {sum(counts.values())} events "
        f"({counts.get('created', 0)} created, {counts.get('updated', 0)} updated; "
        f"{printer.full_text} with the full text of their page)",
    )
    return 0
