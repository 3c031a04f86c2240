"""`ingestor feeds add|remove|list|import|status`: the feed registry from a shell.

Everything goes through Kafka (the feeds topic and the fetch-state topic), never through a
running fetcher, so it works from any machine that reaches the brokers, with any number of
fetchers running (or none): a definition written here is picked up by whichever instance
owns its partition, and ``status`` shows what the owner last persisted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ingestor.config import FeedConfig, Settings
from ingestor.kafka import KafkaConnection


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _out(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")


def _connect(args: argparse.Namespace, command: str) -> tuple[Settings, KafkaConnection] | int:
    from ingestor.cli import _tool_connection

    resolved: tuple[Settings, KafkaConnection] | int = _tool_connection(args, f"feeds {command}")
    return resolved


def _definition(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in ("timezone", "interval", "min_interval", "format", "language", "user_agent"):
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    headers = {}
    for header in getattr(args, "header", None) or ():
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"--header {header!r}: use NAME:VALUE")
        headers[name.strip()] = value.strip()
    if headers:
        fields["headers"] = headers
    if getattr(args, "disabled", False):
        fields["enabled"] = False
    return fields


def cmd_feeds_add(args: argparse.Namespace) -> int:
    try:
        feed = FeedConfig.model_validate({"id": args.id, "url": args.url, **_definition(args)})
    except (ValidationError, ValueError) as exc:
        print(f"ingestor feeds add: {exc}", file=sys.stderr)
        return 2
    resolved = _connect(args, "add")
    if isinstance(resolved, int):
        return resolved
    settings, connection = resolved
    from ingestor.feeds import encode_feed, write_feeds

    asyncio.run(write_feeds(connection, settings.topics.feeds, [(feed.id, feed)]))
    _out({"added": feed.id, "definition": json.loads(encode_feed(feed))})
    return 0


def cmd_feeds_remove(args: argparse.Namespace) -> int:
    resolved = _connect(args, "remove")
    if isinstance(resolved, int):
        return resolved
    settings, connection = resolved
    from ingestor.feeds import read_feeds, write_feeds

    async def main() -> bool:
        known = await read_feeds(connection, settings.topics.feeds)
        await write_feeds(connection, settings.topics.feeds, [(args.id, None)])
        return args.id in known

    known = asyncio.run(main())
    _out({"removed": args.id, "was_registered": known})
    if any(f.id == args.id for f in settings.feeds):
        print(
            f"note: {args.id!r} is also in the config file; a fetcher starting with it re-adds it",
            file=sys.stderr,
        )
    return 0 if known else 1


def cmd_feeds_list(args: argparse.Namespace) -> int:
    resolved = _connect(args, "list")
    if isinstance(resolved, int):
        return resolved
    settings, connection = resolved
    from ingestor.feeds import FeedRefused, decode_feed, read_feeds

    registered = asyncio.run(read_feeds(connection, settings.topics.feeds))
    for feed_id in sorted(registered):
        try:
            feed = decode_feed(feed_id, registered[feed_id])
            _out(feed.model_dump(mode="json", exclude_defaults=True) | {"id": feed.id, "url": feed.url})
        except FeedRefused as exc:
            _out({"id": feed_id, "refused": str(exc)})
    return 0


def cmd_feeds_import(args: argparse.Namespace) -> int:
    from ingestor.fetch.opml import parse_opml

    defaults: dict[str, Any] = _definition(args)
    try:
        entries = parse_opml(Path(args.file).read_bytes(), defaults)
    except (OSError, ValueError) as exc:
        print(f"ingestor feeds import: {args.file}: {exc}", file=sys.stderr)
        return 2
    good = [e.feed for e in entries if e.feed is not None]
    for entry in entries:
        if entry.feed is None:
            print(f"ingestor feeds import: skipped {entry.url!r}: {entry.problem}", file=sys.stderr)
    if not args.dry_run and good:
        resolved = _connect(args, "import")
        if isinstance(resolved, int):
            return resolved
        settings, connection = resolved
        from ingestor.feeds import write_feeds

        asyncio.run(write_feeds(connection, settings.topics.feeds, [(f.id, f) for f in good]))
    for feed in good:
        _out({"id": feed.id, "url": feed.url, "imported": not args.dry_run})
    return 0 if len(good) == len(entries) else 1


def feed_status_document(feed_id: str, definition: dict[str, Any] | None, state: Any) -> dict[str, Any]:
    """What ``feeds status`` prints: the definition, then the state its owner last persisted."""
    doc: dict[str, Any] = {"feed": feed_id, "registered": definition is not None, "definition": definition}
    if state is None:
        doc["state"] = None
        return doc
    sub = state.websub
    doc["state"] = {
        "fetcher": state.instance,
        "saved_at": _iso(state.saved_at),
        "next_due": _iso(state.next_due),
        "failures": state.failures,
        "etag": state.etag,
        "last_modified": state.last_modified,
        "sha256": state.sha256,
        "websub": None
        if sub is None
        else {
            "hub": sub.hub,
            "topic": sub.topic,
            "lease_until": _iso(sub.lease_until),
            "pushes": sub.pushes,
            "polls": sub.polls,
        },
    }
    doc["attempts"] = [
        {
            "at": _iso(a.at),
            "via": a.via,
            "outcome": a.outcome,
            "status": a.status,
            "duration_ms": a.duration_ms,
            "bytes": a.bytes,
            "reason": a.reason,
            "next_due": _iso(a.next_due),
        }
        for a in reversed(state.attempts)
    ]
    return doc


def cmd_feeds_status(args: argparse.Namespace) -> int:
    resolved = _connect(args, "status")
    if isinstance(resolved, int):
        return resolved
    settings, connection = resolved
    from ingestor.feeds import read_feeds
    from ingestor.fetch.state import decode
    from ingestor.fetch.store import read_latest

    async def main() -> dict[str, Any]:
        registered = await read_feeds(connection, settings.topics.feeds)
        raw_state = None
        if settings.fetch.state_topic:
            raw_state = (await read_latest(connection, settings.fetch.state_topic)).get(args.id)
        definition = json.loads(registered[args.id]) if args.id in registered else None
        return feed_status_document(args.id, definition, decode(raw_state))

    doc = asyncio.run(main())
    print(json.dumps(doc, ensure_ascii=False, indent=2))
    return 0 if doc["registered"] or doc["state"] is not None else 1


def add_feeds_parser(sub: Any) -> None:
    feeds = sub.add_parser("feeds", help="manage the feed registry (the compacted feeds topic)")
    feeds_sub = feeds.add_subparsers(dest="feeds_command", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config")
        parser.add_argument("--bootstrap-servers", help="override the config's brokers")

    def definition(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--timezone", help="the publisher's IANA time zone")
        parser.add_argument("--interval", help="poll interval: seconds, '30s', '5m'")
        parser.add_argument("--min-interval", help="how far a busy feed may be narrowed")
        parser.add_argument("--format", choices=["auto", "feed", "text", "html"])
        parser.add_argument("--language")
        parser.add_argument("--user-agent")
        parser.add_argument("--header", action="append", metavar="NAME:VALUE", help="extra header (repeat)")

    add = feeds_sub.add_parser("add", help="register (or redefine) a feed")
    add.add_argument("id")
    add.add_argument("url")
    definition(add)
    add.add_argument("--disabled", action="store_true", help="registered but not fetched")
    add.set_defaults(func=cmd_feeds_add)

    remove = feeds_sub.add_parser("remove", help="unregister a feed (a tombstone)")
    remove.add_argument("id")
    remove.set_defaults(func=cmd_feeds_remove)

    listing = feeds_sub.add_parser("list", help="registered feeds as JSON lines")
    listing.set_defaults(func=cmd_feeds_list)

    opml = feeds_sub.add_parser("import", help="register every feed of an OPML file")
    opml.add_argument("file", metavar="FILE.opml")
    definition(opml)
    opml.add_argument("--dry-run", action="store_true", help="only print what would be registered")
    opml.set_defaults(func=cmd_feeds_import)

    status = feeds_sub.add_parser("status", help="a feed's last attempts and next due, from the state topic")
    status.add_argument("id")
    status.set_defaults(func=cmd_feeds_status)

    for parser in (add, remove, listing, opml, status):
        common(parser)
