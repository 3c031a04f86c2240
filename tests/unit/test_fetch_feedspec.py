"""The fetch stage's compact feed definition (issue 15): the same values as the model it was made
of, equal where the models are equal, and its options shared between feeds defined alike."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from yarl import URL

from ingestor.config import FeedConfig
from ingestor.fetch.feeds import decode_feed, encode_feed
from ingestor.fetch.feedspec import DEFAULTS, FeedOptions, FeedSpec, shared_options, start_url
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


_URL_PART = st.text(st.sampled_from("aZ09-._~%20/?&=+:@#[]!$'()*,;\\ éй\u0442"), max_size=12)


def _same(parsed: URL, expected: URL) -> None:
    assert parsed == expected
    assert str(parsed) == str(expected)
    assert (parsed.scheme, parsed.raw_host, parsed.host, parsed.explicit_port) == (
        expected.scheme,
        expected.raw_host,
        expected.host,
        expected.explicit_port,
    )
    assert (parsed.raw_path_qs, parsed.path, parsed.query) == (
        expected.raw_path_qs,
        expected.path,
        expected.query,
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/feed.xml",
        "http://h7.bench.test:8080/f/7",
        "http://EXAMPLE.com/a b?q=1 2#f",
        "http://пример.рф/путь?x=й",
        "http://a.com:80/x/../y",
        "https://a.com/x?c=%2F&d=%7e",
        "http://[::1]:80/x",
        "http://u:p@a.com/%D0%BF?x=%20",
    ],
)
def test_a_fetch_parses_a_feeds_url_as_yarl_does_with_or_without_the_shortcut(url: str) -> None:
    spec = FeedSpec("f", url)
    assert spec.url_canonical == (str(URL(url)) == url)
    _same(start_url(spec), URL(url))
    config = FeedConfig(id="f", url=url)  # (credentials in a URL move to username, password)
    _same(start_url(config), URL(config.url))


@settings(max_examples=300, deadline=None)
@given(host=st.sampled_from(["a.com", "A.Com", "xn--e1afmkfd.xn--p1ai", "пример.рф", "127.0.0.1", "[::1]"]),
       port=st.sampled_from(["", ":80", ":443", ":8080"]), path=_URL_PART, query=_URL_PART)  # fmt: skip
def test_the_shortcut_never_changes_what_is_fetched(host: str, port: str, path: str, query: str) -> None:
    url = f"http://{host}{port}/{path}?{query}"
    try:
        expected = URL(url)
    except ValueError:
        return  # not a URL a definition could hold
    _same(start_url(FeedSpec("f", url)), expected)


@pytest.mark.parametrize(
    ("fields", "plain"),
    [
        ({}, True),
        ({"user_agent": "bot/1", "interval": 60, "format": "html"}, True),  # sent, but nothing to resolve
        ({"headers": {"X-Token": "t"}}, False),
        ({"username": "u"}, False),
        ({"password": "p"}, False),
        ({"proxy": "http://127.0.0.1:3128"}, False),
    ],
)
def test_plain_says_whether_a_feed_has_anything_of_its_own_to_resolve_per_request(
    fields: dict[str, Any], plain: bool
) -> None:
    """The fetcher skips credentials and proxy work for plain feeds: a feed with any of them
    must never be plain, or its headers, auth or proxy would silently not be used."""
    spec = FeedSpec.of(FeedConfig(id="f", url="https://example.org/feed", **fields))
    assert spec.options.plain is plain
