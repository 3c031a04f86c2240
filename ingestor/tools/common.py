"""What every command shares: settings and a Kafka connection for a tool, one-line failures,
signal handling, option types.

Commands live in their own modules (cli, feeds, demo); they all import this, and this
imports no command, so the tools layer has no cycle.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import structlog
from aiokafka.errors import KafkaError

from ingestor.config import ConfigError, Settings, check_bootstrap_servers, load_settings, parse_duration
from ingestor.kafka import BrokerUnreachable, KafkaConnection
from ingestor.kafka.embedded import read_records
from ingestor.logging import configure_logging
from ingestor.terminal import safe_for_terminal

DEFAULT_CONFIG = Path("config.yaml")
EXIT_CONFIG = 2
EXIT_FAILED = 1
T = TypeVar("T")


def tool_settings(path: str | None, *, required: bool) -> Settings:
    """The config file named, else ./config.yaml if present, else defaults (when allowed)."""
    if path is None and not DEFAULT_CONFIG.exists() and not required:
        return load_settings(None)
    return load_settings(Path(path) if path else DEFAULT_CONFIG)


def config_failed(exc: ConfigError) -> int:
    """Every problem as one ``ingestor: config: <key or file>: <what>`` line; exit status 2."""
    for problem in exc.problems or [str(exc)]:
        print(f"ingestor: config: {safe_for_terminal(problem)}", file=sys.stderr)
    return EXIT_CONFIG


class ToolFailed(Exception):
    """A one-shot tool's failure, already worded: ``main`` prints it as one line and exits 1."""


def install_signal_handlers(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    log = structlog.get_logger("ingestor.cli")
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        if len(received) == 1:
            log.info("shutdown_requested", signal=signal.Signals(signum).name)
            stop.set()
        else:
            log.warning("shutdown_forced", signal=signal.Signals(signum).name)
            # The embedded broker dies with us (PR_SET_PDEATHSIG); nothing else to clean.
            os._exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


def duration_option(text: str) -> float:
    """A positive duration option (``10``, ``500ms``, ``30s``), worded as argparse expects."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than zero")
    return seconds


def bootstrap_for_tools(settings: Settings) -> str:
    if not settings.kafka.is_embedded:
        return settings.kafka.bootstrap_servers
    records = read_records(settings.kafka.embedded.state_dir)
    if not records:
        raise ConfigError(
            "kafka.bootstrap_servers is 'embedded' but no running `ingestor run` with an embedded broker "
            "was found on this machine; start one, or pass a config that names a broker"
        )
    return records[0].bootstrap_servers


def tool_connection(args: argparse.Namespace, command: str) -> tuple[Settings, KafkaConnection] | int:
    """Settings and a connection for a one-shot tool, or the exit status of a config error."""
    try:
        settings = tool_settings(args.config, required=args.config is not None)
        if args.bootstrap_servers:
            check_bootstrap_servers(args.bootstrap_servers)
        bootstrap = args.bootstrap_servers or bootstrap_for_tools(settings)
    except ConfigError as exc:
        return config_failed(exc)
    except ValueError as exc:
        print(safe_for_terminal(f"ingestor {command}: --bootstrap-servers: {exc}"), file=sys.stderr)
        return EXIT_CONFIG
    configure_logging("WARNING", "json", stream=sys.stderr)
    kafka = settings.kafka
    if getattr(args, "connect_timeout", None) is not None:
        kafka = kafka.model_copy(update={"connect_timeout": args.connect_timeout})
    # A tool never makes the brokers create a topic by asking about it (see ingestor/kafka/autocreate.py).
    return settings, KafkaConnection(bootstrap, kafka, auto_create_topics=False)


def run_tool(
    command: str,
    connection: KafkaConnection,
    work: Callable[[], Awaitable[T]],
    *,
    writes_to: Sequence[str] = (),
    connect_timeout: float | None = None,
) -> T:
    """A tool's Kafka work, with its failures worded as one line (``ToolFailed``, exit 1).

    First the brokers must answer within kafka.connect_timeout (``--connect-timeout``):
    aiokafka alone would retry or hang without saying why. Then the topics the tool writes
    to must exist: a producer asking about a missing one would otherwise wait out its
    timeout, or on an older aiokafka make the broker create it with its default layout.
    """
    limit = connect_timeout if connect_timeout is not None else connection.config.connect_timeout
    bootstrap = connection.bootstrap_servers

    async def main() -> T:
        await connection.wait_reachable(limit)
        missing = await connection.missing_topics(writes_to) if writes_to else []
        if missing:
            raise ToolFailed(
                safe_for_terminal(
                    f"ingestor {command}: no topic {', '.join(missing)} on {bootstrap}; `ingestor run` "
                    "creates the pipeline's topics (topics.create), or create them with kafka-topics"
                )
            )
        return await work()

    try:
        return asyncio.run(main())
    except BrokerUnreachable as exc:
        raise ToolFailed(safe_for_terminal(f"ingestor {command}: {exc}")) from None
    except (KafkaError, OSError, TimeoutError) as exc:
        detail = " ".join(str(exc).split()) or "no answer in time"
        raise ToolFailed(
            safe_for_terminal(f"ingestor {command}: {bootstrap}: {type(exc).__name__}: {detail}")
        ) from None


def add_connect_timeout(parser: argparse.ArgumentParser) -> None:
    """``--connect-timeout``, shared by every tool that talks to Kafka."""
    parser.add_argument(
        "--connect-timeout",
        type=duration_option,
        metavar="SECONDS",
        help="give up (exit 1) if no broker answers within this (default: kafka.connect_timeout, 15s)",
    )
