"""`ingestor`: run the daemon, parse saved documents, tail topics, replay, run a broker."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from ingestor.config import ConfigError
from ingestor.logging import configure_logging
from ingestor.terminal import escape_json_text, json_for_terminal, safe_for_terminal
from ingestor.tools.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    ToolFailed,
    add_connect_timeout,
    config_failed,
    duration_option,
    install_signal_handlers,
    run_tool,
    tool_connection,
    tool_settings,
)

if TYPE_CHECKING:
    pass

_CONTENT_TYPES = {
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".rdf": "application/rdf+xml",
    ".json": "application/json",
    ".html": "text/html",
    ".htm": "text/html",
    ".txt": "text/plain",
}


# ---- run ---------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    try:
        settings = tool_settings(args.config, required=args.config is not None)
    except ConfigError as exc:
        return config_failed(exc)
    logs = settings.logging.model_copy(
        update={
            "level": args.log_level or settings.logging.level,
            "format": args.log_format or settings.logging.format,
        }
    )
    settings = settings.model_copy(update={"logging": logs})  # fetch child processes log alike
    configure_logging(logs.level, logs.format)
    stages = args.stage or ["fetch", "parse", "dedup"]
    from ingestor.tools.daemon import run_until
    from ingestor.tools.fetchers import raise_descriptor_limit, run_loop, tune_gc

    async def main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(asyncio.get_running_loop(), stop)
        await run_until(settings, stages, stop)

    # The process that fetches runs fetch.event_loop; with fetch.processes > 1 that is the
    # children (ingestor/tools/fetchers.py), and this one, which only supervises them, asyncio.
    fetches_here = "fetch" in stages and settings.fetch.process_count == 1
    tune_gc()
    if "fetch" in stages:
        raise_descriptor_limit(settings.fetch)
    try:
        run_loop(main(), settings.fetch.event_loop if fetches_here else "asyncio")
    except ConfigError as exc:  # found only when used, e.g. an SSL file removed since start-up
        return config_failed(exc)
    except Exception as exc:
        structlog.get_logger("ingestor.cli").error("daemon_failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


# ---- parse -------------------------------------------------------------------------------------


def cmd_parse(args: argparse.Namespace) -> int:
    """Parse saved documents as the stage does: in a worker process, each within the deadline,
    so a hostile file ends with an error line (``parse_timeout``) instead of a hang."""
    from consumers.parse import ParseLimits, RawDocument
    from consumers.parse.workers import Parsed, WorkerError, WorkerPool, WorkerTimeout, parse_job
    from ingestor.config import ParseConfig

    configure_logging("ERROR", "json", stream=sys.stderr)
    defaults = ParseConfig()
    deadline = args.deadline if args.deadline is not None else defaults.deadline
    try:
        fetched_at = (
            datetime.fromisoformat(args.fetched_at.replace("Z", "+00:00"))
            if args.fetched_at
            else datetime.now(UTC)
        )
        if fetched_at.tzinfo is None:
            raise ValueError("needs an offset, e.g. 2024-11-04T12:00:00Z")
    except ValueError as exc:
        print(f"ingestor parse: --fetched-at {args.fetched_at!r}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        from ingestor.config import _check_timezone

        _check_timezone(args.timezone)
    except ValueError as exc:
        print(f"ingestor parse: --timezone: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    failed = 0
    out = sys.stdout.buffer
    limits = ParseLimits()
    pool = WorkerPool(1, memory_limit=defaults.worker_memory)
    try:
        for name in args.paths:
            path = Path(name)
            try:
                body = path.read_bytes()
            except OSError as exc:
                print(safe_for_terminal(f"{name}: unreadable: {exc.strerror or exc}"), file=sys.stderr)
                failed += 1
                continue
            doc = RawDocument(
                body=body,
                url=args.url or path.resolve().as_uri(),
                feed_id=args.feed_id,
                fetched_at=fetched_at,
                content_type=args.content_type or _CONTENT_TYPES.get(path.suffix.lower()),
                timezone=args.timezone,
                format=args.format,
                language=args.language,
            )
            try:
                outcome = pool.run_sync(parse_job, doc, limits, timeout=deadline)
            except WorkerError as exc:
                reason = "parse_timeout" if isinstance(exc, WorkerTimeout) else "parse_crashed"
                print(safe_for_terminal(f"{name}: {reason}: {exc}"), file=sys.stderr)
                failed += 1
                continue
            except Exception as exc:
                print(safe_for_terminal(f"{name}: crash: {type(exc).__name__}: {exc}"), file=sys.stderr)
                failed += 1
                continue
            if not isinstance(outcome, Parsed):
                # The message may quote the document: printed escaped (see ingestor.terminal).
                print(safe_for_terminal(f"{name}: {outcome.reason}: {outcome.message}"), file=sys.stderr)
                failed += 1
                continue
            for _item_id, value in outcome.items:
                out.write(escape_json_text(value.decode("utf-8", "replace")).encode("utf-8") + b"\n")
            out.flush()
    finally:
        pool.close_sync()
    return 1 if failed else 0


# ---- tail --------------------------------------------------------------------------------------


def _render_value(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return value.decode("utf-8", "replace")


def cmd_tail(args: argparse.Namespace) -> int:
    resolved = tool_connection(args, "tail")
    if isinstance(resolved, int):
        return resolved
    _, connection = resolved
    bootstrap = connection.bootstrap_servers

    async def main() -> int:
        printed = 0
        async with connection.reader() as reader:
            tps = await reader.partitions_of(args.topic)
            if not tps:
                print(f"ingestor tail: no topic {args.topic!r} on {bootstrap}", file=sys.stderr)
                return 1
            reader.assign(tps)
            if args.from_beginning:
                await reader.seek_to_beginning(*tps)
            else:
                await reader.seek_to_end(*tps)
            loop = asyncio.get_running_loop()
            idle_since = loop.time()
            while args.max is None or printed < args.max:
                batch = await reader.getmany(timeout_ms=200)
                records = sorted((r for rs in batch.values() for r in rs), key=lambda r: r.timestamp)
                for record in records:
                    line = {
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "timestamp": record.timestamp,
                        "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
                        "headers": {k: v.decode("utf-8", "replace") for k, v in record.headers or ()},
                        "value": _render_value(record.value),
                    }
                    sys.stdout.write(json_for_terminal(line) + "\n")
                    printed += 1
                    if args.max is not None and printed >= args.max:
                        break
                sys.stdout.flush()
                if records:
                    idle_since = loop.time()
                elif args.timeout is not None and loop.time() - idle_since >= args.timeout:
                    break
        return 0

    with contextlib.suppress(KeyboardInterrupt):
        return run_tool("tail", connection, main)
    return 0


# ---- dlq / replay ------------------------------------------------------------------------------


def _print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json_for_terminal(data) + "\n")
    sys.stdout.flush()


def cmd_dlq_list(args: argparse.Namespace) -> int:
    resolved = tool_connection(args, "dlq list")
    if isinstance(resolved, int):
        return resolved
    settings, connection = resolved
    from ingestor.tools.dlq import list_entries

    entries = run_tool(
        "dlq list",
        connection,
        lambda: list_entries(
            connection,
            settings.topics.dlq,
            max_entries=args.max,
            stage=args.stage,
            error_type=args.error_type,
        ),
    )
    for entry in entries:
        _print_json(entry.to_json())
    return 0


def cmd_dlq_replay(args: argparse.Namespace) -> int:
    resolved = tool_connection(args, "dlq replay")
    if isinstance(resolved, int):
        return resolved
    settings, connection = resolved
    from ingestor.tools.dlq import DlqEntry, replay

    def show(entry: DlqEntry, replayed: bool) -> None:
        _print_json({**entry.to_json(), "replayed": replayed})

    report = run_tool(
        "dlq replay",
        connection,
        lambda: replay(
            connection,
            settings.topics,
            stage=args.stage,
            error_type=args.error_type,
            dry_run=args.dry_run,
            on_entry=show,
        ),
    )
    print(json.dumps({"dry_run": args.dry_run, **report.to_json()}), file=sys.stderr)
    return 0


def _rfc3339(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"{text!r} needs a UTC offset, e.g. 2024-11-04T12:00:00Z")
    return value


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        since = _rfc3339(args.since)
        until = _rfc3339(args.until) if args.until else None
    except ValueError as exc:
        print(f"ingestor replay: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if until is not None and until < since:
        print("ingestor replay: --to is before --from", file=sys.stderr)
        return EXIT_CONFIG
    resolved = tool_connection(args, "replay")
    if isinstance(resolved, int):
        return resolved
    settings, connection = resolved
    from ingestor.tools.replay import replay_range

    try:
        report = run_tool(
            "replay",
            connection,
            lambda: replay_range(connection, settings, since=since, until=until),
            writes_to=[settings.topics.items],
        )
    except ToolFailed:
        raise
    except Exception as exc:
        print(safe_for_terminal(f"ingestor replay: failed: {type(exc).__name__}: {exc}"), file=sys.stderr)
        return 1
    _print_json(report.to_json())
    return 0


# ---- status ------------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    """Groups and lag, failing feeds, last publish, DLQ size: rich tables on a TTY, else JSON."""
    resolved = tool_connection(args, "status")
    if isinstance(resolved, int):
        return resolved
    settings, connection = resolved
    bootstrap = connection.bootstrap_servers
    from ingestor.tools.status import gather_status, render_table

    async def main() -> dict[str, Any]:
        try:
            async with asyncio.timeout(args.timeout):
                return await gather_status(settings, bootstrap)
        except TimeoutError:
            raise ToolFailed(
                f"ingestor status: {bootstrap}: no complete answer within {args.timeout:g} s"
            ) from None

    limit = min(connection.config.connect_timeout, args.timeout)
    try:
        status = run_tool("status", connection, main, connect_timeout=limit)
    except ToolFailed:
        raise
    except Exception as exc:
        print(
            safe_for_terminal(f"ingestor status: {bootstrap}: {type(exc).__name__}: {exc}"), file=sys.stderr
        )
        return 1
    if args.json or not sys.stdout.isatty():
        print(json_for_terminal(status, indent=2))
    else:
        render_table(status)
    return 0


# ---- broker / schema ---------------------------------------------------------------------------


def cmd_broker(args: argparse.Namespace) -> int:
    """Run only the embedded broker (for running the stages as separate processes)."""
    try:
        settings = tool_settings(args.config, required=args.config is not None)
    except ConfigError as exc:
        return config_failed(exc)
    configure_logging(settings.logging.level, args.log_format or settings.logging.format)
    from ingestor.kafka import EmbeddedBroker, KafkaConnection, ensure_topics

    embedded = settings.kafka.embedded.model_copy(
        update={k: v for k, v in {"port": args.port, "storage": args.storage}.items() if v is not None}
    )

    async def main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(asyncio.get_running_loop(), stop)
        broker = EmbeddedBroker(embedded)
        try:
            address = await broker.start()
            await ensure_topics(KafkaConnection(address, settings.kafka), settings.topics)
            print(address, file=sys.stderr, flush=True)
            await stop.wait()
        finally:
            await broker.stop()

    asyncio.run(main())
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from ingestor.models import json_schema

    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return 0


# ---- entry point -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ingestor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon until SIGTERM/SIGINT")
    run.add_argument("--config", help="config file (default ./config.yaml)")
    run.add_argument(
        "--stage",
        action="append",
        choices=["fetch", "parse", "dedup"],
        help="run only this stage (repeatable); default all three",
    )
    run.add_argument("--log-format", choices=["auto", "json", "console"])
    run.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.set_defaults(func=cmd_run)

    parse = sub.add_parser("parse", help="parse saved documents and print items as JSON lines")
    parse.add_argument("paths", nargs="+", metavar="PATH")
    parse.add_argument("--url", help="the document's URL (default: its file:// URI)")
    parse.add_argument("--timezone", default="UTC", help="the publisher's IANA time zone")
    parse.add_argument("--content-type", help="default: from the file extension, else sniffed")
    parse.add_argument("--fetched-at", help="RFC 3339 fetch time (default now)")
    parse.add_argument("--feed-id", default="local", help="the feed id items are attributed to")
    parse.add_argument("--format", default="auto", choices=["auto", "feed", "text", "html"])
    parse.add_argument("--language", help="language when the document does not say")
    parse.add_argument(
        "--deadline",
        type=duration_option,
        help="give up on a document still parsing after this (default: parse.deadline, 10s)",
    )
    parse.set_defaults(func=cmd_parse)

    tail = sub.add_parser("tail", help="print a topic's messages as JSON lines")
    tail.add_argument("topic")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--max", type=int, help="stop after N messages")
    tail.add_argument("--timeout", type=float, help="stop after SECONDS without a message")
    tail.add_argument("--config")
    tail.add_argument("--bootstrap-servers", help="override the config's brokers")
    add_connect_timeout(tail)
    tail.set_defaults(func=cmd_tail)

    dlq = sub.add_parser("dlq", help="inspect and replay the dead-letter topic")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_sub.add_parser("list", help="dead letters as JSON lines (source, stage, error, key)")
    dlq_list.add_argument("--max", type=int, help="at most N entries")
    dlq_replay = dlq_sub.add_parser("replay", help="re-send dead letters to their source topic, once each")
    dlq_replay.add_argument("--dry-run", action="store_true", help="only print what would be replayed")
    for tool in (dlq_list, dlq_replay):
        tool.add_argument("--stage", choices=["fetch", "parse", "dedup"], help="only this stage's refusals")
        tool.add_argument("--error-type", help="only this error type (e.g. crash, invalid_json)")
        tool.add_argument("--config")
        tool.add_argument("--bootstrap-servers", help="override the config's brokers")
        add_connect_timeout(tool)
    dlq_list.set_defaults(func=cmd_dlq_list)
    dlq_replay.set_defaults(func=cmd_dlq_replay)

    replay = sub.add_parser("replay", help="re-parse news.raw in a time range and produce the items again")
    replay.add_argument("--from", dest="since", required=True, metavar="RFC3339")
    replay.add_argument("--to", dest="until", metavar="RFC3339")
    replay.add_argument("--config")
    replay.add_argument("--bootstrap-servers", help="override the config's brokers")
    add_connect_timeout(replay)
    replay.set_defaults(func=cmd_replay)

    broker = sub.add_parser("broker", help="run only the embedded broker (prints its address)")
    broker.add_argument("--config")
    broker.add_argument("--port", type=int)
    broker.add_argument("--storage", help="memory://ingestor/ (kept in memory) or s3://bucket/")
    broker.add_argument("--log-format", choices=["auto", "json", "console"])
    broker.set_defaults(func=cmd_broker)

    status = sub.add_parser("status", help="consumer lag, failing feeds, last publish, DLQ size")
    status.add_argument("--config")
    status.add_argument("--bootstrap-servers", help="override the config's brokers")
    add_connect_timeout(status)
    status.add_argument("--json", action="store_true", help="JSON even on a terminal")
    status.add_argument("--timeout", type=float, default=60.0, help="give up after SECONDS")
    status.set_defaults(func=cmd_status)

    schema = sub.add_parser("schema", help="print the JSON Schema of published items")
    schema.set_defaults(func=cmd_schema)

    from ingestor.tools.demo import add_demo_parser

    add_demo_parser(sub)
    from ingestor.tools.feeds import add_feeds_parser

    add_feeds_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Every command's operator-facing failures end here as one line each, never a traceback:
    config problems exit 2, a broker that cannot be reached (or fails a tool) exits 1."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        return config_failed(exc)
    except ToolFailed as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
