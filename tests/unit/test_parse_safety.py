"""A document must never make the parser read files, reach the network or exhaust memory."""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from consumers.parse import ParseError, RawDocument, parse_document
from consumers.parse.safety import check_xml_safety

_EVENTS: list[tuple[str, tuple[Any, ...]]] = []
_RECORDING = [False]
_WATCHED = ("open", "socket.connect", "socket.getaddrinfo", "urllib.Request", "subprocess.Popen")


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _RECORDING[0] and event in _WATCHED:
        _EVENTS.append((event, args))


sys.addaudithook(_audit)


@contextmanager
def io_events() -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    """Every file open and network call made inside the block."""
    _EVENTS.clear()
    _RECORDING[0] = True
    try:
        yield _EVENTS
    finally:
        _RECORDING[0] = False


def doc(body: bytes) -> RawDocument:
    return RawDocument(
        body=body, url="https://feed.example/rss", feed_id="f", fetched_at=datetime(2024, 11, 5, tzinfo=UTC)
    )


def rss(doctype: str, title: str) -> bytes:
    return (
        f'<?xml version="1.0"?>\n{doctype}\n<rss version="2.0"><channel><title>t</title><link>https://x.example/</link>'
        f"<description>d</description><item><title>{title}</title><link>https://x.example/1</link>"
        "<description>body</description></item></channel></rss>"
    ).encode()


BILLION_LAUGHS = rss(
    "<!DOCTYPE rss [\n"
    + '<!ENTITY lol "lol">\n'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n' for i in range(1, 10)
    )
    + "]>",
    "&lol9;",
)


def _measure(body: bytes) -> tuple[float, int, ParseError | None]:
    tracemalloc.start()
    started = time.perf_counter()
    error: ParseError | None = None
    try:
        parse_document(doc(body))
    except ParseError as exc:
        error = exc
    elapsed = time.perf_counter() - started
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak, error


def test_billion_laughs_is_refused_fast_with_bounded_memory() -> None:
    elapsed, peak, error = _measure(BILLION_LAUGHS)
    assert error is not None and error.reason == "unsafe"
    assert elapsed < 1.0
    assert peak < 20 * 1024 * 1024


def test_billion_laughs_in_utf16_is_refused() -> None:
    body = b"\xff\xfe" + BILLION_LAUGHS.decode().encode("utf-16-le")
    with pytest.raises(ParseError) as info:
        parse_document(doc(body))
    assert info.value.reason == "unsafe"


def test_billion_laughs_stays_bounded_even_without_our_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: expat's amplification limit and feedparser's loose parser hold too."""
    monkeypatch.setattr("consumers.parse.feed.check_xml_safety", lambda body: None)
    elapsed, peak, _error = _measure(BILLION_LAUGHS)
    assert elapsed < 5.0
    assert peak < 100 * 1024 * 1024


def test_quadratic_blowup_is_refused() -> None:
    value = "x" * 4000
    body = rss(f'<!DOCTYPE rss [<!ENTITY big "{value}">]>', "&big;" * 2000)
    with pytest.raises(ParseError, match="would add") as info:
        parse_document(doc(body))
    assert info.value.reason == "unsafe"


def test_external_entity_is_refused_and_the_file_is_never_opened(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    body = rss(f'<!DOCTYPE rss [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>', "&xxe;")
    with io_events() as events, pytest.raises(ParseError) as info:
        parse_document(doc(body))
    assert info.value.reason == "unsafe"
    assert not [e for e in events if str(secret) in repr(e[1])]


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE rss [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>',
        '<!DOCTYPE rss [<!ENTITY pub PUBLIC "-//X//Y//EN" "http://127.0.0.1:9/y.ent">]>',
        '<!DOCTYPE rss [<!ENTITY a "ok"><!ENTITY b "&a;&a;">]>',
        '<!DOCTYPE rss [<!ENTITY a "ok"><!ENTITY b "&#38;a;&#x26;a;">]>',
        "<!DOCTYPE rss [" + "".join(f'<!ENTITY e{i} "v">' for i in range(100)) + "]>",
    ],
    ids=["parameter-entity", "public-entity", "nested-entity", "smuggled-reference", "too-many"],
)
def test_dangerous_dtds_are_unsafe(doctype: str) -> None:
    with pytest.raises(ParseError) as info:
        check_xml_safety(rss(doctype, "x"))
    assert info.value.reason == "unsafe"


def test_external_doctype_is_never_fetched_or_read(tmp_path: Path) -> None:
    dtd = tmp_path / "feed.dtd"
    dtd.write_text('<!ENTITY injected "FROM-DISK">')
    body = rss(f'<!DOCTYPE rss SYSTEM "{dtd.as_uri()}">', "Local &amp; safe")
    with io_events() as events:
        items = parse_document(doc(body))
    assert [item.title for item in items] == ["Local & safe"]
    network = [e for e in events if e[0] != "open"]
    opened = [e for e in events if e[0] == "open" and str(tmp_path) in repr(e[1])]
    assert (network, opened) == ([], [])


def test_remote_doctype_makes_no_network_call() -> None:
    body = rss(
        '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "http://127.0.0.1:9/r.dtd">', "t"
    )
    with io_events() as events:
        assert len(parse_document(doc(body))) == 1
    assert [e for e in events if e[0] != "open"] == []


def test_harmless_internal_entities_still_work() -> None:
    doctype = '<!DOCTYPE rss [\n  <!ENTITY copy "&#169;">\n  <!ENTITY town "Harbour Town">\n]>'
    body = rss(doctype, "&town; news &copy;")
    assert [item.title for item in parse_document(doc(body))] == ["Harbour Town news ©"]


def test_markup_in_content_is_reduced_to_text_safely() -> None:
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>&lt;img src=x '
        b"onerror=alert(1)&gt;Hi</title><guid>g</guid><description><![CDATA[<script>alert(1)</script>"
        b'<iframe src="javascript:alert(2)"></iframe><p onclick="x()">Safe text</p>]]></description></item>'
        b"</channel></rss>"
    )
    (item,) = parse_document(doc(body))
    assert item.body == "Safe text"
    assert "<" not in item.title and "alert" not in item.body
