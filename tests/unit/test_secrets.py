"""Secret references, masking, and what the feeds topic may hold (issue 13).

Every secret here is a recognisable string, so a leak shows up as a plain substring.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from ingestor.config import ConfigError, FeedConfig, load_settings
from ingestor.fetch.feeds import (
    bind_config_secrets,
    decode_feed,
    encode_feed,
    literal_secrets,
    seed_plan,
    shown_feed,
)
from ingestor.secrets import (
    CONFIG_PLACEHOLDER,
    MASK,
    SecretPolicy,
    SecretRef,
    SecretUnavailable,
    mask_url,
    origin_of,
    sensitive_header,
)
from ingestor.tools.feeds import cmd_feeds_add, cmd_feeds_import

PASSWORD = "pw-S3CRET-one"
TOKEN = "tok-S3CRET-two"
KEY = "key-S3CRET-three"
PROXY_PASSWORD = "proxy-S3CRET-four"
ALL = (PASSWORD, TOKEN, KEY, PROXY_PASSWORD)


def config_feed(**kw: Any) -> FeedConfig:
    data: dict[str, Any] = {
        "id": "f",
        "url": f"https://reader:{PASSWORD}@feeds.example.com/rss",
        "headers": {"Authorization": f"Bearer {TOKEN}", "X-Api-Key": KEY, "Accept-Language": "de"},
        "proxy": f"http://proxyuser:{PROXY_PASSWORD}@proxy.internal:3128",
    }
    return FeedConfig.model_validate({**data, **kw})


def leaks(text: str) -> list[str]:
    return [secret for secret in ALL if secret in text]


# --- references ---------------------------------------------------------------------------


def test_reference_is_exactly_one_kind() -> None:
    assert SecretRef.model_validate({"env": "FEED_SECRET_X"}).describe() == "env FEED_SECRET_X"
    assert SecretRef.model_validate({"file": "/run/secrets/x"}).describe() == "file /run/secrets/x"
    for bad in ({}, {"env": "A", "file": "/x"}, {"env": "not a name"}, {"file": "relative/x"}, {"envv": "A"}):
        with pytest.raises(ValidationError):
            SecretRef.model_validate(bad)


def test_policy_resolves_env_within_patterns_only() -> None:
    policy = SecretPolicy(["FEED_SECRET_*"], [])
    env = {"FEED_SECRET_A": TOKEN, "AWS_SECRET_ACCESS_KEY": KEY}
    assert policy.resolve(SecretRef(env="FEED_SECRET_A"), environ=env) == TOKEN
    assert policy.resolve(SecretStr(PASSWORD)) == PASSWORD
    with pytest.raises(SecretUnavailable, match="FEED_SECRET_B is not set"):
        policy.resolve(SecretRef(env="FEED_SECRET_B"), environ=env)
    with pytest.raises(SecretUnavailable, match=r"not allowed by fetch\.secret_env") as refused:
        policy.resolve(SecretRef(env="AWS_SECRET_ACCESS_KEY"), environ=env)
    assert KEY not in str(refused.value)
    with pytest.raises(SecretUnavailable, match="config file"):
        policy.resolve(CONFIG_PLACEHOLDER)


def test_policy_reads_files_under_its_directories_only(tmp_path: Path) -> None:
    allowed = tmp_path / "secrets"
    allowed.mkdir()
    (allowed / "pw").write_text(PASSWORD + "\n")
    outside = tmp_path / "elsewhere"
    outside.write_text(KEY)
    (allowed / "escape").symlink_to(outside)  # a link out of the directory is outside it
    (allowed / "huge").write_bytes(b"x" * (65 * 1024))
    policy = SecretPolicy([], [allowed])
    assert policy.resolve(SecretRef(file=str(allowed / "pw"))) == PASSWORD  # one newline dropped
    for name, why in (
        (str(outside), "outside fetch.secret_dirs"),
        (str(allowed / "escape"), "outside fetch.secret_dirs"),
        (str(allowed / "missing"), "No such file"),
        (str(allowed / "huge"), "over"),
    ):
        with pytest.raises(SecretUnavailable, match=why) as refused:
            policy.resolve(SecretRef(file=name))
        assert not leaks(str(refused.value))


def test_process_secrets_resolve_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "sasl"
    secret_file.write_text(PASSWORD + "\n")
    monkeypatch.setenv("HUB_KEY_FOR_TEST", KEY)
    settings = load_settings(
        None,
        overrides={
            "kafka": {"sasl_password": {"file": str(secret_file)}},
            "fetch": {"websub": {"secret": {"env": "HUB_KEY_FOR_TEST"}}},
        },
    )
    assert settings.kafka.sasl_password == PASSWORD
    assert settings.fetch.websub.secret == KEY
    with pytest.raises(ConfigError, match=r"kafka\.sasl_password.*NOT_SET_ANYWHERE is not set"):
        load_settings(None, overrides={"kafka": {"sasl_password": {"env": "NOT_SET_ANYWHERE"}}})


def test_fetch_proxy_may_be_a_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXY_URL_FOR_TEST", f"http://u:{PROXY_PASSWORD}@proxy.internal:3128")
    settings = load_settings(None, overrides={"fetch": {"proxy": {"env": "PROXY_URL_FOR_TEST"}}})
    assert settings.fetch.proxy is not None and PROXY_PASSWORD in settings.fetch.proxy


# --- the feed model -----------------------------------------------------------------------


def test_userinfo_moves_out_of_the_urls() -> None:
    feed = config_feed()
    assert feed.url == "https://feeds.example.com/rss" and feed.username == "reader"
    assert isinstance(feed.password, SecretStr) and feed.password.get_secret_value() == PASSWORD
    assert feed.proxy == "http://proxy.internal:3128" and feed.proxy_username == "proxyuser"
    assert not leaks(repr(feed)) and not leaks(str(feed))
    with pytest.raises(ValidationError, match="both in the URL"):
        config_feed(username="other")


def test_invalid_url_message_masks_the_password() -> None:
    with pytest.raises(ValidationError) as refused:
        FeedConfig.model_validate({"id": "f", "url": f"ftp://u:{PASSWORD}@host/x", "username": "u"})
    assert not leaks("; ".join(e["msg"] for e in refused.value.errors()))


def test_mask_url_and_sensitive_names() -> None:
    assert mask_url(f"https://u:{PASSWORD}@h/x") == f"https://u:{MASK}@h/x"
    assert mask_url("https://h/x?a=1") == "https://h/x?a=1"
    assert sensitive_header("Authorization") and sensitive_header("x-api-key")
    assert (
        sensitive_header("Cookie")
        and sensitive_header("X-Auth-Token")
        and sensitive_header("Proxy-Authorization")
    )
    assert not sensitive_header("Accept-Language")
    assert origin_of("https://H.example.com/x") == ("https", "h.example.com", 443)
    assert origin_of("https://h.example.com:443/y") == origin_of("https://h.example.com/x")


# --- the feeds topic ----------------------------------------------------------------------


def test_topic_record_holds_references_never_literals() -> None:
    feed = config_feed(headers={"Authorization": f"Bearer {TOKEN}", "X-Token": {"env": "FEED_SECRET_T"}})
    record = encode_feed(feed)
    assert not leaks(record.decode())
    data = json.loads(record)
    assert data["password"] == {"config": True} and data["proxy_password"] == {"config": True}
    assert data["headers"] == {"Authorization": {"config": True}, "X-Token": {"env": "FEED_SECRET_T"}}
    decoded = decode_feed("f", record)
    assert decoded.password == CONFIG_PLACEHOLDER
    assert bind_config_secrets(decoded, feed) == feed  # the owner resolves them from its config


def test_plain_headers_stay_readable_sensitive_ones_are_masked() -> None:
    feed = config_feed()
    assert json.loads(encode_feed(feed))["headers"]["Accept-Language"] == "de"
    shown = shown_feed(feed)
    assert shown["password"] == MASK and shown["proxy_password"] == MASK
    assert shown["headers"] == {"Authorization": MASK, "X-Api-Key": MASK, "Accept-Language": "de"}
    assert not leaks(json.dumps(shown))


def test_config_secrets_are_bound_only_at_the_same_origin() -> None:
    feed = config_feed()
    moved = decode_feed("f", encode_feed(feed.model_copy(update={"url": "https://evil.example.net/rss"})))
    assert bind_config_secrets(moved, feed) == moved  # placeholders stay: unresolvable, nothing sent
    assert bind_config_secrets(moved, None) == moved
    other_proxy = decode_feed(
        "f", encode_feed(feed.model_copy(update={"proxy": "http://evil.example.net:1"}))
    )
    bound = bind_config_secrets(other_proxy, feed)
    assert bound.password == feed.password and bound.proxy_password == CONFIG_PLACEHOLDER


def test_seed_plan_compares_the_stored_form() -> None:
    feed = config_feed()
    assert seed_plan([feed], {"f": encode_feed(feed)}) == []
    legacy = json.dumps({"id": "f", "url": feed.url, "password": PASSWORD}).encode()  # written before refs
    assert seed_plan([feed], {"f": legacy}) == [feed]  # rewritten, compaction then drops the literal


def test_literal_secrets_are_found() -> None:
    assert literal_secrets(config_feed()) == [
        "password",
        "proxy_password",
        "headers.Authorization",
        "headers.X-Api-Key",
    ]
    by_ref = FeedConfig.model_validate(
        {
            "id": "f",
            "url": "https://h/x",
            "password": {"env": "FEED_SECRET_P"},
            "headers": {"Authorization": {"file": "/run/secrets/t"}, "Accept": "x"},
        }
    )
    assert literal_secrets(by_ref) == []


# --- the CLI refuses literals before it connects anywhere -----------------------------------


def cli_args(**kw: Any) -> argparse.Namespace:
    base: dict[str, Any] = {
        "id": "f",
        "url": "https://h.example.com/x",
        "config": None,
        "bootstrap_servers": None,
    }
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize(
    "kw",
    [
        {"header": [f"Authorization: Bearer {TOKEN}"]},
        {"header": [f"X-Api-Key:{KEY}"]},
        {"url": f"https://u:{PASSWORD}@h.example.com/x"},
        {"proxy": f"http://u:{PROXY_PASSWORD}@proxy:3128"},
    ],
)
def test_feeds_add_refuses_literal_secrets(kw: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_feeds_add(cli_args(**kw)) == 2
    out, err = capsys.readouterr()
    assert "refusing to write literal secrets" in err and "--header-env" in err
    assert not leaks(out + err)


def test_feeds_add_builds_references(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    written: list[Any] = []

    async def fake_write(_connection: object, _topic: str, records: list[Any]) -> int:
        written.extend(records)
        return len(records)

    monkeypatch.setattr("ingestor.fetch.feeds.write_feeds", fake_write)
    monkeypatch.setattr("ingestor.tools.feeds._connect", lambda args, command: (load_settings(None), None))
    monkeypatch.setattr(
        "ingestor.tools.feeds._run", lambda command, connection, work, writes=None: asyncio.run(work())
    )
    args = cli_args(
        header=["Accept-Language: de"],
        header_env=["Authorization=FEED_SECRET_TOKEN"],
        header_file=["X-Api-Key=/run/secrets/key"],
        username="reader",
        password_env="FEED_SECRET_PW",
        proxy="http://proxy:3128",
        proxy_username="pu",
        proxy_password_file="/run/secrets/proxy",
    )
    assert cmd_feeds_add(args) == 0
    ((_, feed),) = written
    assert json.loads(encode_feed(feed)) == {
        "id": "f",
        "url": "https://h.example.com/x",
        "headers": {
            "Accept-Language": "de",
            "Authorization": {"env": "FEED_SECRET_TOKEN"},
            "X-Api-Key": {"file": "/run/secrets/key"},
        },
        "username": "reader",
        "password": {"env": "FEED_SECRET_PW"},
        "proxy": "http://proxy:3128",
        "proxy_username": "pu",
        "proxy_password": {"file": "/run/secrets/proxy"},
    }
    assert json.loads(capsys.readouterr().out)["definition"]["password"] == {"env": "FEED_SECRET_PW"}


def test_feeds_import_skips_feeds_with_literal_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opml = tmp_path / "f.opml"
    opml.write_text(
        '<opml version="2.0"><body>'
        f'<outline text="a" xmlUrl="https://u:{PASSWORD}@a.example.com/rss"/>'
        '<outline text="b" xmlUrl="https://b.example.com/rss"/>'
        "</body></opml>"
    )
    args = argparse.Namespace(file=str(opml), dry_run=True, config=None, bootstrap_servers=None)
    assert cmd_feeds_import(args) == 1
    out, err = capsys.readouterr()
    assert [json.loads(line)["url"] for line in out.splitlines()] == ["https://b.example.com/rss"]
    assert "refusing to write literal secrets (password)" in err and not leaks(out + err)
