"""A subscriber of ``news.published``: the smallest consumer that keeps the pipeline's promises.

Copy it as a starting point.  What matters in it:

* a consumer group, so several copies of your service share the partitions;
* ``enable_auto_commit=False`` and a commit only after ``handle()`` returned, so a crash
  makes you see a message again rather than never (at-least-once; make ``handle`` idempotent
  on ``ce_id``, which is ``<item id>:<version>``);
* the CloudEvents headers (``ce_type`` says ``news.item.created`` or ``news.item.updated``)
  tell you what happened without parsing the value;
* optional validation against the JSON Schema the repo ships, so a contract break is loud;
* it never makes the broker create ``news.published``: it waits until the daemon has created
  the topic, and only then subscribes (see ``wait_for_topic``).

Run it next to ``ingestor demo`` (``--bootstrap-servers`` as the demo prints it)::

    python examples/consume_published.py --bootstrap-servers 127.0.0.1:PORT --validate
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from aiokafka import AIOKafkaConsumer

SCHEMA = Path(__file__).resolve().parents[1] / "ingestor" / "schemas" / "published-item.schema.json"

Handler = Callable[[dict[str, str], dict[str, Any]], Awaitable[None]]


def load_validator(path: Path = SCHEMA) -> Callable[[dict[str, Any]], None]:
    """A function that raises ``jsonschema.ValidationError`` for an item off the contract."""
    import jsonschema  # type: ignore[import-untyped,unused-ignore]  # optional: only for --validate

    schema = json.loads(path.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    return cast(Callable[[dict[str, Any]], None], validator.validate)


async def print_item(headers: dict[str, str], item: dict[str, Any]) -> None:
    """Your code goes here.  This one prints what happened."""
    print(f"{headers.get('ce_type', '?'):<18} {headers.get('ce_id', '?')}  {item.get('title', '')}")


async def wait_for_topic(consumer: AIOKafkaConsumer, topic: str, *, poll_s: float = 5.0) -> None:
    """Return once the cluster has ``topic``, asking only for the list of all topics.

    Subscribing to a topic that does not exist yet makes a broker with
    ``auto.create.topics.enable`` (Kafka's default) create it, with the broker's default
    partition count rather than the one the pipeline needs; the ingestor daemon then refuses
    to start.  Listing every topic creates none.  (aiokafka has no switch for this: once
    subscribed, its requests name the topic, so keep auto-creation off on real clusters.)
    """
    told = False
    while topic not in await consumer.topics():
        if not told:
            print(f"waiting for {topic}: the ingestor daemon creates it when it starts", file=sys.stderr)
            told = True
        await asyncio.sleep(poll_s)


async def consume(
    bootstrap_servers: str,
    *,
    topic: str = "news.published",
    group_id: str = "example-subscriber",
    handle: Handler = print_item,
    validate: Callable[[dict[str, Any]], None] | None = None,
    max_messages: int | None = None,
    topic_poll_s: float = 5.0,
    **client_options: Any,
) -> int:
    """Handle messages until cancelled (or ``max_messages``); returns how many were handled.

    ``client_options`` go to AIOKafkaConsumer as they are: TLS/SASL settings for a secured
    cluster (``security_protocol``, ``ssl_context``, ``sasl_mechanism``, ...), timeouts."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,  # commit only what was handled
        auto_offset_reset="earliest",  # a new group starts from the first event kept
        **client_options,
    )
    await consumer.start()
    handled = 0
    try:
        await wait_for_topic(consumer, topic, poll_s=topic_poll_s)
        consumer.subscribe([topic])
        async for record in consumer:
            headers = {k: v.decode("utf-8", "replace") for k, v in record.headers or ()}
            item = json.loads(record.value) if record.value is not None else {}
            if validate is not None:
                validate(item)
            await handle(headers, item)
            await consumer.commit()  # after handling: at-least-once
            handled += 1
            if max_messages is not None and handled >= max_messages:
                break
    finally:
        await consumer.stop()
    return handled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="news.published")
    parser.add_argument("--group-id", default="example-subscriber")
    parser.add_argument("--validate", action="store_true", help="check each item against the JSON Schema")
    args = parser.parse_args()
    validate = load_validator() if args.validate else None
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop without a traceback
        asyncio.run(
            consume(args.bootstrap_servers, topic=args.topic, group_id=args.group_id, validate=validate)
        )


if __name__ == "__main__":
    main()
