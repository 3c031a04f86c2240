"""The fetch stage's compact feed definition (issue 15): the same values as the model it was made
of, equal where the models are equal, and its options shared between feeds defined alike."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from pydantic import SecretStr

from ingestor.config import FeedConfig
from ingestor.fetch.feeds import decode_feed, encode_feed
from ingestor.fetch.feedspec import DEFAULTS, FeedOptions, FeedSpec, shared_options
from ingestor.secrets import SecretRef

DEFINITIONS: list[dict[str, Any]] = [
    {"id": "plain", "url": "https://news.example/rss"},
    {"id": "timed", "url": "https://news.example/rss", "interval": "5m", "min_interval": 60},
    {
        "id": "everything",
        "url": "https://user:pw@news.example/feed.xml",
        "timezone": "Europe/Kyiv",
        "interval": 120,
        "min_interval": 30,
        "format": "html",
        "language": "uk",
        "full_text": "always",
        "user_agent": "a-reader/1.0",
        "headers": {"X-Api-Key": {"env": "FEED_SECRET_KEY"}, "Accept-Language": "uk", "Cookie": "a=b"},
        "enabled": False,
        "proxy": "http://proxy.example:3128",
        "proxy_username": "p",
        "proxy_password": {"file": "/run/secrets/proxy"},
    },
]


@pytest.mark.parametrize("definition", DEFINITIONS, ids=lambda d: d["id"])
def test_a_spec_reads_like_its_model_and_gives_it_back(definition: dict[str, Any]) -> None:
    config = FeedConfig.model_validate(definition)
    spec = FeedSpec.of(config)
    for name in FeedConfig.model_fields:
        assert getattr(spec, name) == getattr(config, name), name
    assert dict(spec.headers) == config.headers and list(spec.headers) == list(config.headers)
    back = spec.to_config()
    assert back == config
    assert encode_feed(back) == encode_feed(config)  # what the feeds topic would get
    assert FeedSpec.of(back) == spec


def test_specs_are_equal_exactly_when_their_models_are() -> None:
    def spec(**fields: Any) -> FeedSpec:
        return FeedSpec.of(FeedConfig.model_validate({"id": "f", "url": "https://a.example/", **fields}))

    assert spec() == spec() and spec(interval=60) == spec(interval="1m")
    assert spec(headers={"A": "1", "B": "2"}) == spec(headers={"B": "2", "A": "1"})  # as dicts compare
    for change in (
        {"interval": 61},
        {"language": "en"},
        {"headers": {"A": "2"}},
        {"password": "other"},
        {"password": {"env": "FEED_SECRET_X"}},
        {"enabled": False},
    ):
        assert spec(headers={"A": "1"}, password="pw") != spec(
            **{"headers": {"A": "1"}, "password": "pw", **change}
        )
    assert FeedSpec.of(decode_feed("f", b'{"url":"https://a.example/"}')) == spec()


def test_feeds_defined_alike_share_one_options_object() -> None:
    def config(i: int, **fields: Any) -> FeedConfig:
        return FeedConfig.model_validate({"id": f"f{i}", "url": f"https://h{i}.example/rss", **fields})

    assert all(FeedSpec.of(config(i)).options is DEFAULTS for i in range(3))
    timed = [FeedSpec.of(config(i, interval=60, user_agent="x/1")) for i in range(3)]
    assert timed[0].options is timed[1].options is timed[2].options
    secret = [FeedSpec.of(config(i, password="pw")) for i in range(2)]
    assert secret[0].options is secret[1].options and isinstance(secret[0].password, SecretStr)
    assert FeedSpec.of(config(0, interval=61)).options is not timed[0].options


def test_shared_options_go_with_the_last_feed_that_had_them() -> None:
    options = shared_options(FeedOptions(language="xx-test", user_agent="gone/1"))
    assert shared_options(FeedOptions(language="xx-test", user_agent="gone/1")) is options
    gone = weakref.ref(options)
    del options
    gc.collect()
    assert gone() is None  # not kept alive by the table that shares them


def test_header_order_is_kept_for_sending_while_equality_ignores_it() -> None:
    ab = shared_options(FeedOptions(headers=(("A", SecretStr("1")), ("B", SecretRef(env="FEED_SECRET_B")))))
    ba = shared_options(FeedOptions(headers=(("B", SecretRef(env="FEED_SECRET_B")), ("A", SecretStr("1")))))
    assert ab == ba and hash(ab) == hash(ba)
    assert ab is not ba and [name for name, _ in ba.headers] == ["B", "A"]
