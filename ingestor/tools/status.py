"""`ingestor status`: what the pipeline looks like from the broker, for on-call at a glance.

Everything comes from Kafka, not from a running daemon, so it works against any instance (or
none): consumer groups and their lag, feeds the fetch-state topic records as failing, the
time of the newest message on news.published, and the DLQ's size.

Ends of partitions are read, not trusted: a broker's reported end can be short of its last
batch, so a partition's true end is found by fetching that batch, which also yields the newest
timestamp (``Reader.peek_ends``).  Groups and committed offsets are asked the way every broker
understands (``ingestor.kafka.groups``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ingestor.config import Settings
from ingestor.fetch.article_state import decode as decode_article
from ingestor.fetch.store import load_states, read_latest
from ingestor.kafka import KafkaConnection, committed_offsets, describe_groups


def _iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _iso_s(seconds: float | None) -> str | None:
    return _iso_ms(int(seconds * 1000)) if seconds is not None else None


async def gather_status(settings: Settings, bootstrap: str) -> dict[str, Any]:
    """The status document ``ingestor status --json`` prints."""
    connection = KafkaConnection(bootstrap, settings.kafka)
    topics = settings.topics
    async with connection.reader() as reader:
        by_topic = {
            t: await reader.partitions_of(t)
            for t in (topics.raw, topics.items, topics.published, topics.dlq, topics.article_requests)
        }
        ends = await reader.peek_ends([tp for tps in by_topic.values() for tp in tps])

    stage_groups = [
        ("parse", settings.parse.group_id, topics.raw),
        ("dedup", settings.dedup.group_id, topics.items),
        ("articles", settings.full_text.group_id, topics.article_requests),
    ]
    described, other_groups = await describe_groups(connection, [g for _, g, _ in stage_groups])
    groups = []
    for stage, group, topic in stage_groups:
        committed = await committed_offsets(connection, group, by_topic[topic])
        partitions = []
        for tp in by_topic[topic]:
            end = ends[tp]
            position = committed[tp]
            lag = max(0, end.end - (position if position is not None else end.begin))
            partitions.append({"partition": tp.partition, "committed": position, "end": end.end, "lag": lag})
        info = described.get(group, {})
        groups.append(
            {
                "stage": stage,
                "group": group,
                "topic": topic,
                "state": info.get("state", "unknown"),
                "members": info.get("members"),
                "lag": sum(p["lag"] for p in partitions),
                "partitions": partitions,
            }
        )

    published = [ends[tp] for tp in by_topic[topics.published]]
    newest = max((e.last_timestamp_ms for e in published if e.last_timestamp_ms is not None), default=None)
    return {
        "bootstrap_servers": bootstrap,
        "checked_at": _iso_s(datetime.now(UTC).timestamp()),
        "groups": groups,
        "other_groups": other_groups,
        "feeds": await _feeds(connection, settings),
        "articles": await _articles(connection, settings),
        "published": {
            "topic": topics.published,
            "messages": sum(e.messages for e in published),
            "last_publish_at": _iso_ms(newest),
        },
        "dlq": {"topic": topics.dlq, "messages": sum(ends[tp].messages for tp in by_topic[topics.dlq])},
    }


async def _feeds(connection: KafkaConnection, settings: Settings) -> dict[str, Any]:
    """Failing feeds as the fetch-state topic records them (failures in a row, next due)."""
    topic = settings.fetch.state_topic
    configured = [f.id for f in settings.feeds if f.enabled]
    if not topic:
        return {
            "source": None,
            "note": "fetch.state_topic is off: failing feeds are only in the feed_fetched log lines",
            "configured": len(configured),
            "failing": [],
            "never_fetched": [],
        }
    states = await load_states(connection, topic, timeout=10.0)
    failing = [
        {
            "feed": feed_id,
            "failures": state.failures,
            "url": state.url,
            "last_attempt_at": _iso_s(state.saved_at),
            "next_due": _iso_s(state.next_due),
        }
        for feed_id, state in sorted(states.items())
        if state.failures > 0
    ]
    return {
        "source": topic,
        "note": "reasons are not stored; see the feed_fetched log lines (docs/logging.md)",
        "configured": len(configured),
        "known": len(states),
        "failing": sorted(failing, key=lambda f: -int(f["failures"])),
        "never_fetched": sorted(set(configured) - set(states)),
    }


async def _articles(connection: KafkaConnection, settings: Settings) -> dict[str, Any]:
    """Entries waiting for their linked page, as the article-state topic records them."""
    topic = settings.full_text.state_topic
    async with connection.reader() as reader:
        exists = bool(await reader.partitions_of(topic))
    if not exists:
        return {"source": None, "pending": 0, "fallback": 0, "done": 0, "failed": 0, "oldest_pending_s": None}
    records = await read_latest(connection, topic, timeout=10.0)
    counts = dict.fromkeys(("pending", "fallback", "done", "failed"), 0)
    now = datetime.now(UTC).timestamp()
    oldest: float | None = None
    for value in records.values():
        state = decode_article(value)
        if state is None:
            continue
        counts[state.status] += 1
        if state.open:
            oldest = max(oldest or 0.0, now - state.first_seen)
    return {"source": topic, **counts, "oldest_pending_s": round(oldest, 1) if oldest is not None else None}


def _shown(value: Any) -> str:
    """A value for a rich cell: feed ids and URLs come from feed definitions and OPML files,
    so control characters are escaped (:mod:`ingestor.terminal`) and so is rich markup (a
    ``[link=…]`` in a URL must print as text, not become a hyperlink)."""
    from rich.markup import escape

    from ingestor.terminal import safe_for_terminal

    return escape(safe_for_terminal(str(value)))


def render_table(status: dict[str, Any]) -> None:
    """The same document as rich tables, for a terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]news-ingestor status[/] on {status['bootstrap_servers']} at {status['checked_at']}")
    groups = Table(title="Consumer groups")
    for column in ("stage", "group", "topic", "state", "members", "lag", "lag by partition"):
        groups.add_column(column, justify="right" if column in ("members", "lag") else "left")
    for g in status["groups"]:
        by_partition = " ".join(f"{p['partition']}:{p['lag']}" for p in g["partitions"] if p["lag"])
        groups.add_row(
            g["stage"],
            g["group"],
            g["topic"],
            g["state"],
            str(g["members"] if g["members"] is not None else "?"),
            f"[red]{g['lag']}[/]" if g["lag"] else "0",
            by_partition or "-",
        )
    console.print(groups)

    feeds = status["feeds"]
    table = Table(title=f"Failing feeds (from {feeds['source'] or 'nowhere'})")
    for column in ("feed", "failures", "last attempt", "next due", "url"):
        table.add_column(column)
    for f in feeds["failing"]:
        table.add_row(
            _shown(f["feed"]),
            str(f["failures"]),
            f["last_attempt_at"] or "-",
            f["next_due"] or "-",
            _shown(f["url"]),
        )
    console.print(
        table if feeds["failing"] else f"Failing feeds: none ({feeds['source'] or 'no state topic'})"
    )
    if feeds.get("never_fetched"):
        console.print(f"Never fetched: {', '.join(map(_shown, feeds['never_fetched']))}")
    console.print(f"[dim]{feeds['note']}[/]")

    articles = status.get("articles") or {}
    if articles.get("source"):
        age = articles["oldest_pending_s"]
        console.print(
            f"Article pages: [bold]{articles['pending']}[/] pending, {articles['fallback']} fallen back "
            f"and still tried{f' (oldest {age:.0f} s)' if age is not None else ''}; "
            f"{articles['done']} done, {articles['failed']} failed ({articles['source']})"
        )
    published, dlq = status["published"], status["dlq"]
    console.print(
        f"Last publish: [bold]{published['last_publish_at'] or 'never'}[/] "
        f"({published['messages']} messages on {published['topic']})"
    )
    colour = "red" if dlq["messages"] else "green"
    console.print(f"DLQ: [{colour}]{dlq['messages']}[/] messages on {dlq['topic']}")
