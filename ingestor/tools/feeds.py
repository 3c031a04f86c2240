"""`ingestor feeds add|remove|list|import|status|place`: the feed registry from a shell.

Everything goes through Kafka (the feeds topic and the fetch-state topic), never through a
running fetcher, so it works from any machine that reaches the brokers, with any number of
fetchers running (or none): a definition written here is picked up by whichever instance
owns its partition, and ``status`` shows what the owner last persisted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from ingestor.config import FeedConfig, Settings
from ingestor.kafka import KafkaConnection
from ingestor.secrets import mask_url
from ingestor.terminal import json_for_terminal, safe_for_terminal
from ingestor.tools.common import add_connect_timeout, run_tool, tool_connection

T = TypeVar("T")

_LITERAL_REFUSED = (
    "refusing to write literal secrets ({fields}) to the feeds topic, which every reader of the "
    "topic sees and which keeps old values until compaction; give references instead "
    "(--password-env VAR or --password-file PATH, --header-env NAME=VAR or --header-file NAME=PATH, "
    "--proxy-password-env/--proxy-password-file; the fetchers read them, see docs/security.md)"
)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _out(data: Any) -> None:
    """One JSON line; feed definitions and OPML titles are others' text (see ingestor.terminal)."""
    sys.stdout.write(json_for_terminal(data) + "\n")


def _connect(args: argparse.Namespace, command: str) -> tuple[Settings, KafkaConnection] | int:
    resolved: tuple[Settings, KafkaConnection] | int = tool_connection(args, f"feeds {command}")
    return resolved


def _run(
    command: str, connection: KafkaConnection, work: Callable[[], Awaitable[T]], *, writes: str | None = None
) -> T:
    """The Kafka part of a ``feeds`` command: bounded connect, one-line failures (see run_tool);
    ``writes``: the feeds topic must exist already (a tool never gets it auto-created)."""
    return run_tool(f"feeds {command}", connection, work, writes_to=[writes] if writes else [])


def _reference(option: str, item: str, kind: str) -> tuple[str, dict[str, str]]:
    name, sep, where = item.partition("=")
    if not sep or not name.strip() or not where.strip():
        raise ValueError(f"{option} {item!r}: use NAME={'VAR' if kind == 'env' else 'PATH'}")
    return name.strip(), {kind: where.strip()}


def _definition(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in (
        "timezone",
        "interval",
        "min_interval",
        "format",
        "language",
        "user_agent",
        "username",
        "proxy",
        "proxy_username",
    ):
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    headers: dict[str, Any] = {}
    for header in getattr(args, "header", None) or ():
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"--header {name.strip() or header!r}: use NAME:VALUE")
        headers[name.strip()] = value.strip()
    for kind in ("env", "file"):
        for item in getattr(args, f"header_{kind}", None) or ():
            name, ref = _reference(f"--header-{kind}", item, kind)
            headers[name] = ref
    if headers:
        fields["headers"] = headers
    for field in ("password", "proxy_password"):
        for kind in ("env", "file"):
            where = getattr(args, f"{field}_{kind}", None)
            if where is not None:
                fields[field] = {kind: where}
    if getattr(args, "disabled", False):
        fields["enabled"] = False
    return fields


def _problems(exc: ValidationError) -> str:
    """Pydantic's messages without the input values (which may be secrets)."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'feed'}: {e['msg']}" for e in exc.errors())


def cmd_feeds_add(args: argparse.Namespace) -> int:
    from ingestor.fetch.feeds import literal_secrets, shown_feed, write_feeds

    try:
        feed = FeedConfig.model_validate({"id": args.id, "url": args.url, **_definition(args)})
    except ValidationError as exc:
        print(f"ingestor feeds add: {_problems(exc)}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"ingestor feeds add: {exc}", file=sys.stderr)
        return 2
    literals = literal_secrets(feed)
    if literals:
        print(f"ingestor feeds add: {_LITERAL_REFUSED.format(fields=', '.join(literals))}", file=sys.stderr)
        return 2
    resolved = _connect(args, "add")
    if isinstance(resolved, int):
        return resolved
    settings, connection = resolved

    topic = settings.topics.feeds
    _run("add", connection, lambda: write_feeds(connection, topic, [(feed.id, feed)]), writes=topic)
    _out({"added": feed.id, "definition": shown_feed(feed)})
    return 0


def cmd_feeds_remove(args: argparse.Namespace) -> int:
    resolved = _connect(args, "remove")
    if isinstance(resolved, int):
        return resolved
    settings, connection = resolved
    from ingestor.fetch.feeds import read_feeds, write_feeds

    async def main() -> bool:
        # a tombstone in every partition: a definition moving host may be in two for a moment
        known = await read_feeds(connection, settings.topics.feeds)
        await write_feeds(connection, settings.topics.feeds, [(args.id, None)])
        return args.id in known

    known = _run("remove", connection, main, writes=settings.topics.feeds)
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
    from ingestor.fetch.feeds import FeedRefused, decode_feed, read_feeds, shown_feed

    registered = _run("list", connection, lambda: read_feeds(connection, settings.topics.feeds))
    for feed_id in sorted(registered):
        try:
            _out(shown_feed(decode_feed(feed_id, registered[feed_id])))
        except FeedRefused as exc:
            _out({"id": feed_id, "refused": str(exc)})
    return 0


def cmd_feeds_import(args: argparse.Namespace) -> int:
    from ingestor.fetch.feeds import literal_secrets
    from ingestor.fetch.opml import parse_opml

    try:
        defaults: dict[str, Any] = _definition(args)
        entries = parse_opml(Path(args.file).read_bytes(), defaults)
    except (OSError, ValueError, SyntaxError) as exc:  # lxml's XMLSyntaxError is a SyntaxError
        print(safe_for_terminal(f"ingestor feeds import: {args.file}: {exc}"), file=sys.stderr)
        return 2
    good = []
    for entry in entries:
        literals = literal_secrets(entry.feed) if entry.feed is not None else []
        if entry.feed is not None and not literals:
            good.append(entry.feed)
            continue
        problem = _LITERAL_REFUSED.format(fields=", ".join(literals)) if literals else entry.problem
        print(
            safe_for_terminal(f"ingestor feeds import: skipped {mask_url(entry.url)!r}: {problem}"),
            file=sys.stderr,
        )
    if not args.dry_run and good:
        resolved = _connect(args, "import")
        if isinstance(resolved, int):
            return resolved
        settings, connection = resolved
        from ingestor.fetch.feeds import read_feeds_placed, write_feeds

        topic = settings.topics.feeds

        async def write() -> int:
            # read first: tombstones only where a feed was (and moves host), not in every partition
            registered = await read_feeds_placed(connection, topic)
            placed = {key: partition for key, (partition, _) in registered.items()}
            return await write_feeds(connection, topic, [(f.id, f) for f in good], placed=placed)

        _run("import", connection, write, writes=topic)
    for feed in good:
        _out({"id": feed.id, "url": feed.url, "imported": not args.dry_run})
    return 0 if len(good) == len(entries) else 1


def cmd_feeds_place(args: argparse.Namespace) -> int:
    """Move definitions written by feed id (before feeds were placed by host) to their host's
    partition: once, after an upgrade; until then they are fetched where they are."""
    resolved = _connect(args, "place")
    if isinstance(resolved, int):
        return resolved
    settings, connection = resolved
    from ingestor.fetch.feeds import misplaced, read_feeds_placed, write_definitions
    from ingestor.fetch.store import partition_count

    topic = settings.topics.feeds

    async def main() -> tuple[int, int]:
        registered = await read_feeds_placed(connection, topic)
        moves = misplaced(registered, await partition_count(connection, topic))
        if moves and not args.dry_run:
            placed = {feed_id: registered[feed_id][0] for feed_id, _, _ in moves}
            await write_definitions(connection, topic, moves, placed=placed)
        return len(registered), len(moves)

    total, moved = _run("place", connection, main, writes=None if args.dry_run else topic)
    _out({"feeds": total, "misplaced": moved, "moved": 0 if args.dry_run else moved})
    return 0


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
    from ingestor.fetch.feeds import FeedRefused, decode_feed, read_feeds, shown_feed
    from ingestor.fetch.state import decode
    from ingestor.fetch.store import read_latest, saved_at

    async def main() -> dict[str, Any]:
        registered = await read_feeds(connection, settings.topics.feeds)
        raw_state = None
        if settings.fetch.state_topic:
            states = await read_latest(connection, settings.fetch.state_topic, newest=saved_at)
            raw_state = states.get(args.id)
        definition: dict[str, Any] | None = None
        if args.id in registered:
            try:  # shown masked: a record written before references existed may hold a literal
                definition = shown_feed(decode_feed(args.id, registered[args.id]))
            except FeedRefused as exc:
                definition = {"refused": str(exc)}
        return feed_status_document(args.id, definition, decode(raw_state))

    doc = _run("status", connection, main)
    print(json_for_terminal(doc, indent=2))
    return 0 if doc["registered"] or doc["state"] is not None else 1


def add_feeds_parser(sub: Any) -> None:
    feeds = sub.add_parser("feeds", help="manage the feed registry (the compacted feeds topic)")
    feeds_sub = feeds.add_subparsers(dest="feeds_command", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config")
        parser.add_argument("--bootstrap-servers", help="override the config's brokers")
        add_connect_timeout(parser)

    def definition(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--timezone", help="the publisher's IANA time zone")
        parser.add_argument("--interval", help="poll interval: seconds, '30s', '5m'")
        parser.add_argument("--min-interval", help="how far a busy feed may be narrowed")
        parser.add_argument("--format", choices=["auto", "feed", "text", "html"])
        parser.add_argument("--language")
        parser.add_argument("--user-agent")
        parser.add_argument(
            "--header",
            action="append",
            metavar="NAME:VALUE",
            help="extra header (repeat); a credential header (Authorization, *key*, *token*, Cookie...) "
            "must be given with --header-env or --header-file",
        )
        parser.add_argument(
            "--header-env",
            action="append",
            metavar="NAME=VAR",
            help="header whose value the fetchers read "
            "from their environment variable VAR (must match fetch.secret_env)",
        )
        parser.add_argument(
            "--header-file",
            action="append",
            metavar="NAME=PATH",
            help="header whose value the fetchers read from PATH (under fetch.secret_dirs)",
        )
        parser.add_argument("--username", help="HTTP basic auth user (sent to the feed's origin only)")
        password = parser.add_mutually_exclusive_group()
        password.add_argument("--password-env", metavar="VAR", help="basic auth password from env VAR")
        password.add_argument("--password-file", metavar="PATH", help="basic auth password from a file")
        parser.add_argument("--proxy", help="http(s) proxy URL for this feed (no password in it)")
        parser.add_argument("--proxy-username")
        proxy_password = parser.add_mutually_exclusive_group()
        proxy_password.add_argument("--proxy-password-env", metavar="VAR")
        proxy_password.add_argument("--proxy-password-file", metavar="PATH")

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

    place = feeds_sub.add_parser(
        "place", help="move feeds registered by id to their host's partition (once, after upgrading)"
    )
    place.add_argument("--dry-run", action="store_true", help="only count the feeds to move")
    place.set_defaults(func=cmd_feeds_place)

    for parser in (add, remove, listing, opml, status, place):
        common(parser)
