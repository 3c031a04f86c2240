"""The feed registry: the compacted ``news.feeds`` topic (key feed id, value definition JSON,
null to remove; each in the partition of its URL's host: ``placement``), read and written by
``ingestor feeds`` and seeded from config.yaml.

Definitions are FeedConfig fields, so a feed added from the command line and one written in
config.yaml are the same thing, validated by the same model.  The topic, not a database,
is the registry: fetcher instances consume it as one consumer group, which is what shards
the feeds among them (see ``ingestor.fetch.registry``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import SecretStr, ValidationError

from ingestor.config import FeedConfig, Settings
from ingestor.fetch.placement import Definitions, host_partition, tombstone_partitions
from ingestor.kafka import KafkaConnection
from ingestor.secrets import CONFIG_PLACEHOLDER, SecretRef, origin_of, sensitive_header, shown, stored


class FeedRefused(ValueError):
    """A registry record that is not a usable feed definition (logged, never fatal)."""


def _definition(feed: FeedConfig, *, for_topic: bool) -> dict[str, Any]:
    data: dict[str, Any] = feed.model_dump(mode="json", exclude_defaults=True)
    data["id"], data["url"] = feed.id, feed.url
    form = stored if for_topic else shown
    for key in ("password", "proxy_password"):
        value = getattr(feed, key)
        if value is not None:
            data[key] = form(value)
    if feed.headers:
        headers: dict[str, Any] = {}
        for name, value in feed.headers.items():
            if isinstance(value, SecretRef):
                headers[name] = value.public()
            elif sensitive_header(name):
                headers[name] = form(value)
            else:
                headers[name] = value.get_secret_value()
        data["headers"] = headers
    return data


def encode_feed(feed: FeedConfig) -> bytes:
    """Only what differs from the defaults, so a default changed later applies to old records.

    Secrets are written as references only: a literal (from config.yaml) becomes
    ``{config: true}``, resolved by the owning fetcher from its own config file.
    """
    data = _definition(feed, for_topic=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


def shown_feed(feed: FeedConfig) -> dict[str, Any]:
    """The definition for people (``feeds list``, ``feeds status``, logs): literals as ``***``."""
    return _definition(feed, for_topic=False)


def literal_secrets(feed: FeedConfig) -> list[str]:
    """The fields of ``feed`` that hold a literal secret (which the topic must not receive)."""
    found = [key for key in ("password", "proxy_password") if isinstance(getattr(feed, key), SecretStr)]
    found += [
        f"headers.{name}"
        for name, value in feed.headers.items()
        if isinstance(value, SecretStr) and sensitive_header(name)
    ]
    return found


def bind_config_secrets(feed: FeedConfig, configured: FeedConfig | None) -> FeedConfig:
    """Replace ``{config: true}`` placeholders with this instance's config values.

    Only for the same feed id at the same origin (and, for the proxy password, the same proxy):
    a topic writer who points a config feed's id at another host gets no credential.
    """
    if configured is None or origin_of(feed.url) != origin_of(configured.url):
        return feed
    changes: dict[str, Any] = {}
    if feed.password == CONFIG_PLACEHOLDER:
        changes["password"] = configured.password
    if feed.proxy_password == CONFIG_PLACEHOLDER and feed.proxy == configured.proxy:
        changes["proxy_password"] = configured.proxy_password
    if any(value == CONFIG_PLACEHOLDER for value in feed.headers.values()):
        mine = {name.lower(): value for name, value in configured.headers.items()}
        changes["headers"] = {
            name: mine.get(name.lower(), value) if value == CONFIG_PLACEHOLDER else value
            for name, value in feed.headers.items()
        }
    return feed.model_copy(update=changes) if changes else feed


def decode_feed(key: str, value: bytes) -> FeedConfig:
    """The definition a record holds; the key is the feed id (a body naming another is refused)."""
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise FeedRefused(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise FeedRefused("not a JSON object")
    if data.setdefault("id", key) != key:
        raise FeedRefused(f"record key {key!r} but id {data['id']!r}")
    try:
        return FeedConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise FeedRefused(problems) from None


def seed_plan(configured: Iterable[FeedConfig], registered: dict[str, bytes]) -> list[FeedConfig]:
    """Config feeds the registry lacks or holds in another version: config.yaml wins at start-up."""
    wanted = []
    for feed in configured:
        current = registered.get(feed.id)
        try:
            # compared as stored: a config literal is a placeholder on the topic, by design
            same = current is not None and decode_feed(feed.id, current) == decode_feed(
                feed.id, encode_feed(feed)
            )
        except FeedRefused:
            same = False
        if not same:
            wanted.append(feed)
    return wanted


def feed_group_id(settings: Settings) -> str:
    """The fetchers' consumer group: two pipelines on one cluster (other topic names) never share it."""
    if settings.fetch.group_id:
        return settings.fetch.group_id
    topic = settings.topics.feeds
    return "ingestor-fetch" if topic == "news.feeds" else f"ingestor-fetch.{topic}"


async def read_feeds(connection: KafkaConnection, topic: str, *, timeout: float = 30.0) -> dict[str, bytes]:
    """Every registered definition, raw (decode with ``decode_feed``)."""
    placed = await read_feeds_placed(connection, topic, timeout=timeout)
    return {key: value for key, (_, value) in placed.items()}


async def read_feeds_placed(
    connection: KafkaConnection, topic: str, *, timeout: float = 30.0
) -> dict[str, tuple[int, bytes]]:
    """Every registered definition with the partition it is held from, as a fetcher holds it:
    an id defined in two partitions (a move under way) resolves as ``placement.Definitions``
    says, not by which partition happens to be read last."""
    held: dict[str, tuple[int, bytes]] = {}
    definitions: Definitions[bytes] = Definitions()
    async with connection.reader() as reader:
        tps = await reader.partitions_of(topic)
        async for record in reader.read_to_end(tps, limit_s=timeout, quiet_s=0.0):
            if record.key is None:
                continue
            key = record.key.decode("utf-8", errors="replace")
            where = held.get(key)
            at = where[0] if where is not None else None
            if record.value is None:
                change = definitions.tombstone(key, record.partition, at)
            else:
                change = definitions.definition(key, record.partition, record.value, at)
            if change.remove:
                del held[key]
            elif change.value is not None:
                held[key] = (change.partition, change.value)
    return held


async def write_feeds(
    connection: KafkaConnection,
    topic: str,
    records: Iterable[tuple[str, FeedConfig | None]],
    *,
    placed: Mapping[str, int] | None = None,
) -> int:
    """Produce definitions (None: a tombstone, the feed is removed); acknowledged before returning.

    Each goes to the partition of its URL's host (``placement``), and then, once it is
    acknowledged, tombstones remove it from anywhere else it was: from the partitions in
    ``placed`` (what a writer that read the topic found: ``read_feeds_placed``), or, without it,
    from every other partition.
    """
    return await write_definitions(
        connection,
        topic,
        [(feed_id, encode_feed(feed) if feed is not None else None, feed.url if feed else None)
         for feed_id, feed in records],
        placed=placed,
    )  # fmt: skip


async def write_definitions(
    connection: KafkaConnection,
    topic: str,
    records: Iterable[tuple[str, bytes | None, str | None]],
    *,
    placed: Mapping[str, int] | None = None,
) -> int:
    """``write_feeds`` for encoded definitions: (id, value or None, URL or None)."""
    producer = await connection.start_producer()
    count = 0
    try:
        partitions = len(await producer.partitions_for(topic))
        futures = []
        tombstones: list[tuple[bytes, int]] = []
        for feed_id, value, url in records:
            key = feed_id.encode("utf-8")
            target = host_partition(url, partitions) if value is not None and url is not None else None
            if value is not None:
                futures.append(await producer.send(topic, value, key=key, partition=target))
            where = None if placed is None else placed.get(feed_id, -1)
            tombstones.extend((key, p) for p in tombstone_partitions(where, target, partitions))
            count += 1
        for future in futures:
            await future
        # only now: a reader that sees a tombstone has the definition's new place to read
        futures = [await producer.send(topic, None, key=key, partition=p) for key, p in tombstones]
        for future in futures:
            await future
    finally:
        await producer.stop()
    return count


def misplaced(registered: Mapping[str, tuple[int, bytes]], partitions: int) -> list[tuple[str, bytes, str]]:
    """The definitions not in their host's partition (written by id, before ``placement``):
    (id, value, URL); an unreadable one stays where it is."""
    moves = []
    for feed_id, (partition, value) in registered.items():
        try:
            url = decode_feed(feed_id, value).url
        except FeedRefused:
            continue
        if host_partition(url, partitions) != partition:
            moves.append((feed_id, value, url))
    return moves


async def seed_feeds(connection: KafkaConnection, topic: str, configured: list[FeedConfig]) -> list[str]:
    """Write the config feeds the registry lacks or holds differently; returns their ids.

    Several instances starting together may all write the same records: harmless, they are equal.
    """
    if not configured:
        return []
    registered = await read_feeds_placed(connection, topic)
    wanted = seed_plan(configured, {key: value for key, (_, value) in registered.items()})
    placed = {key: partition for key, (partition, _) in registered.items()}
    await write_feeds(connection, topic, [(f.id, f) for f in wanted], placed=placed)
    return [f.id for f in wanted]
