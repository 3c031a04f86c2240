"""No secret value on the feeds topic, in ``feeds list/status``, ``ingestor status`` or the logs,
while the fetcher still sends each one to its feed (issue 13).

A config feed carries literals (URL userinfo, credential headers, proxy credentials): the
topic gets ``{config: true}`` placeholders, which the fetcher resolves from its own config.
A CLI feed carries environment references.  A CLI feed whose reference cannot be resolved
fails alone (outcome ``secret``, counted and logged) while the others keep being fetched.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ingestor.fetch.http import Fetcher
from ingestor.fetch.service import FetchStage
from ingestor.kafka import KafkaConnection, ensure_topics
from ingestor.logging import configure_logging
from tests.commands import run_ingestor as cli
from tests.conftest import make_settings
from tests.integration.daemon_process import write_config
from tests.integration.kafka_helpers import read_topic
from tests.integration.test_fetch_support import FeedServer, StaticResolver

pytestmark = pytest.mark.integration

PASSWORD = "pw-S3CRET-one"
TOKEN = "tok-S3CRET-two"
KEY = "key-S3CRET-three"
PROXY_PASSWORD = "proxy-S3CRET-four"
ENV_TOKEN = "envtok-S3CRET-five"
ENV_PASSWORD = "envpw-S3CRET-six"
REFUSED = "literal-S3CRET-seven"
SECRETS = (PASSWORD, TOKEN, KEY, PROXY_PASSWORD, ENV_TOKEN, ENV_PASSWORD, REFUSED)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


#: The same secrets as Basic credentials carry them.
ENCODED = tuple(
    basic(user, password).removeprefix("Basic ")
    for user, password in (("reader", PASSWORD), ("pu", PROXY_PASSWORD), ("u", ENV_PASSWORD))
)


def leaked(text: str) -> list[str]:
    """Secrets found in ``text``, in clear or base64-encoded as a Basic header carries them."""
    return [s for s in (*SECRETS, *ENCODED) if s in text]


async def until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_no_secret_on_the_topic_in_the_cli_or_in_the_logs(
    broker_address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FeedServer()
    base = await server.start()
    host = base.removeprefix("http://")
    monkeypatch.setenv("FEED_SECRET_TOKEN", ENV_TOKEN)
    monkeypatch.setenv("FEED_SECRET_PW", ENV_PASSWORD)
    feeds: list[dict[str, object]] = [
        {
            "id": "cfg",
            "url": f"http://reader:{PASSWORD}@{host}/etag?f=cfg",
            "headers": {"X-Api-Key": KEY, "X-Auth-Token": TOKEN, "Accept-Language": "de"},
            "proxy": f"http://pu:{PROXY_PASSWORD}@{host}",  # the fixture server also serves as a proxy
            "interval": 0.5,
        }
    ]
    settings = make_settings(
        broker_address,
        feeds=feeds,
        fetch={
            "group_id": f"{tmp_path.name}-fetch",
            "min_interval": 0.05,
            "jitter": 0,
            "startup_spread": 0.1,
            "retries": 0,
            "session_timeout": 6,
            "heartbeat_interval": 0.5,
            "shutdown_grace": 1,
        },
    )
    assert settings.fetch.state_topic
    connection = KafkaConnection(broker_address, settings.kafka)
    await ensure_topics(connection, settings.topics, compacted=[settings.fetch.state_topic])
    config = write_config(
        tmp_path / "config.yaml",
        {
            "kafka": {"bootstrap_servers": broker_address},
            "topics": settings.topics.model_dump(),
            "fetch": {"state_topic": settings.fetch.state_topic},
            "feeds": feeds,
        },
    )
    logs = io.StringIO()
    configure_logging("INFO", "json", stream=logs)
    stage = FetchStage(settings, connection, fetcher=Fetcher(settings.fetch, resolver=StaticResolver()))

    def seen(feed: str) -> list[dict[str, str]]:
        return [dict(r.headers) for r in list(server.requests) if r.query.get("f") == feed]

    await stage.start()
    try:
        refused = await asyncio.to_thread(
            cli,
            "feeds",
            "add",
            "bad",
            f"{base}/etag?f=bad",
            "--header",
            f"X-Api-Key: {REFUSED}",
            "--config",
            str(config),
        )
        assert refused.returncode == 2 and "refusing to write literal secrets" in refused.stderr
        added = await asyncio.to_thread(
            cli,
            "feeds",
            "add",
            "env",
            f"{base}/etag?f=env",
            "--header-env",
            "X-Auth-Token=FEED_SECRET_TOKEN",
            "--username",
            "u",
            "--password-env",
            "FEED_SECRET_PW",
            "--interval",
            "0.5",
            "--config",
            str(config),
        )
        assert added.returncode == 0, added.stderr
        broken = await asyncio.to_thread(
            cli,
            "feeds",
            "add",
            "broken",
            f"{base}/etag?f=broken",
            "--header-env",
            "Authorization=FEED_SECRET_MISSING",
            "--interval",
            "0.5",
            "--config",
            str(config),
        )
        assert broken.returncode == 0, broken.stderr

        # the fetcher still sends every secret, each to its own feed
        await until(lambda: len(seen("cfg")) >= 2 and len(seen("env")) >= 2)
        cfg = seen("cfg")[-1]
        assert cfg["X-Api-Key"] == KEY and cfg["X-Auth-Token"] == TOKEN and cfg["Accept-Language"] == "de"
        assert cfg["Authorization"] == basic("reader", PASSWORD)
        assert cfg["Proxy-Authorization"] == basic("pu", PROXY_PASSWORD)
        env = seen("env")[-1]
        assert env["X-Auth-Token"] == ENV_TOKEN and env["Authorization"] == basic("u", ENV_PASSWORD)
        # the unresolvable one fails alone: counted, logged, never sent
        await until(lambda: stage.health().outcomes.get("secret", 0) >= 2)
        assert seen("broken") == [] and seen("bad") == []

        listed = await asyncio.to_thread(cli, "feeds", "list", "--config", str(config))
        status = await asyncio.to_thread(cli, "feeds", "status", "cfg", "--config", str(config))
        overall = await asyncio.to_thread(cli, "status", "--config", str(config))
    finally:
        await stage.stop()
        await server.close()

    # what people see: where each secret is (the fetchers' config, an environment variable)
    in_config = {"config": True}
    listing = {doc["id"]: doc for doc in map(json.loads, listed.stdout.splitlines())}
    assert set(listing) == {"cfg", "env", "broken"}
    assert listing["cfg"]["password"] == in_config and listing["cfg"]["proxy_password"] == in_config
    assert listing["cfg"]["headers"] == {
        "X-Api-Key": in_config,
        "X-Auth-Token": in_config,
        "Accept-Language": "de",
    }
    assert listing["cfg"]["url"] == f"{base}/etag?f=cfg" and listing["cfg"]["proxy"] == base
    assert listing["env"]["password"] == {"env": "FEED_SECRET_PW"}
    assert json.loads(status.stdout)["definition"]["password"] == in_config

    records = await read_topic(broker_address, settings.topics.feeds)
    raw = b"".join((r.key or b"") + (r.value or b"") for r in records).decode("utf-8", "replace")
    assert records and '"password":{"config":true}' in raw
    state = await read_topic(broker_address, settings.fetch.state_topic)
    state_raw = b"".join(r.value or b"" for r in state).decode("utf-8", "replace")
    log_text = logs.getvalue()
    assert '"outcome": "secret"' in log_text and "FEED_SECRET_MISSING is not set" in log_text
    assert '"feed": "cfg"' in log_text  # the capture did see the fetches
    for where, text in {
        "feeds topic": raw,
        "fetch-state topic": state_raw,
        "feeds add (refused)": refused.stdout + refused.stderr,
        "feeds add": added.stdout + added.stderr,
        "feeds list": listed.stdout + listed.stderr,
        "feeds status": status.stdout + status.stderr,
        "ingestor status": overall.stdout + overall.stderr,
        "logs": log_text,
    }.items():
        assert not leaked(text), (where, leaked(text))
