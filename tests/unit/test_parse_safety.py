"""A document must never make the parser read files, reach the network or exhaust memory."""

from __future__ import annotations

import dataclasses
import subprocess
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


# --- the screen decides with expat's view, so no comment, CDATA or encoding trick hides a DTD ---

ISOLATED_RUN = r"""
import resource, sys, time
limit = 500 * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from datetime import UTC, datetime
from consumers.parse import ParseError, RawDocument, parse_document
body = sys.stdin.buffer.read()
doc = RawDocument(
    body=body, url="https://feed.example/rss", feed_id="f", fetched_at=datetime(2024, 11, 5, tzinfo=UTC),
    content_type="application/rss+xml",
)
started = time.perf_counter()
try:
    items = parse_document(doc)
    outcome = "items " + str(max(len(i.body) + len(i.title) + len(i.summary or "") for i in items))
except ParseError as exc:
    outcome = exc.reason + " " + str(exc)
print(f"{time.perf_counter() - started:.3f} {outcome}")
"""


def parse_isolated(body: bytes, timeout: float = 20.0) -> tuple[float, str]:
    """parse_document in a child limited to 500 MB, so a regression cannot hang or exhaust the run.

    Returns the seconds parse_document took in the child and its outcome ("items <longest
    text>" or "<reason> <message>"); the child's start-up time is not counted.
    """
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", ISOLATED_RUN],
        input=body,
        capture_output=True,
        timeout=timeout,
        cwd=root,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    elapsed, outcome = result.stdout.decode().strip().split(" ", 1)
    return float(elapsed), outcome


def feed_with(prolog: str, description: str, *, title: str = "x") -> bytes:
    """An RSS feed with ``prolog`` between the XML declaration and the root element."""
    return (
        f'<?xml version="1.0"?>\n{prolog}\n<rss version="2.0"><channel><title>t</title>'
        "<link>https://x.example/</link><description>d</description><item>"
        f"<title>{title}</title><link>https://x.example/1</link><description>{description}</description>"
        "</item></channel></rss>"
    ).encode()


A_4K = "A" * 4000
#: The shape found in the wild: the DOCTYPE a regex screen saw was inside a comment.
COMMENT_THEN_DOCTYPE = f'<!-- <!DOCTYPE x> -->\n<!DOCTYPE rss [\n<!ENTITY a "{A_4K}">\n]>'


def feed_doc(body: bytes) -> RawDocument:
    """As served: with a feed's Content-Type, so a long DTD cannot make the sniffer call it text."""
    return dataclasses.replace(doc(body), content_type="application/rss+xml")


def assert_unsafe(body: bytes, match: str | None = None) -> ParseError:
    started = time.perf_counter()
    with pytest.raises(ParseError, match=match) as info:
        parse_document(feed_doc(body))
    assert info.value.reason == "unsafe", str(info.value)
    assert time.perf_counter() - started < 5.0
    return info.value


def test_the_600kb_comment_trick_from_the_wild_is_refused_fast_and_small() -> None:
    """600 KB that once became an 800 MB item: 198,000 references to a 4 KB entity."""
    body = feed_with(COMMENT_THEN_DOCTYPE, "&a;" * 198_000)
    assert 590_000 < len(body) < 610_000
    elapsed, outcome = parse_isolated(body)
    assert outcome.startswith("unsafe ") and "would add" in outcome, outcome
    assert elapsed < 5.0


def test_the_19kb_nested_entity_trick_is_refused() -> None:
    """The brief's second sample: a DOCTYPE-looking comment, then a nested-entity DTD."""
    doctype = (
        '<!-- <!DOCTYPE x> -->\n<!DOCTYPE rss [ <!ENTITY a "'
        + "lol" * 1000
        + '"> <!ENTITY b "'
        + "&a;" * 5000
        + '"> ]>'
    )
    body = feed_with(doctype, "&b;")
    assert 15_000 < len(body) < 25_000
    assert_unsafe(body, "entity &b; is")


def test_a_bracket_in_a_subset_comment_hides_nothing() -> None:
    prolog = f'<!DOCTYPE rss [ <!-- ] -->\n<!ENTITY a "{A_4K}">\n]>'
    assert_unsafe(feed_with(prolog, "&a;" * 2000), "would add")


def test_entities_declared_after_a_comment_are_screened() -> None:
    prolog = '<!DOCTYPE rss [\n<!-- notes -->\n<!ENTITY a "ok">\n<!-- more -->\n<!ENTITY b "&a;&a;">\n]>'
    assert_unsafe(feed_with(prolog, "&b;"), "defined through another entity")


@pytest.mark.parametrize(
    "prolog",
    [
        # A declaration expat sees as a comment, that regex readers (feedparser's) take.
        f'<!DOCTYPE rss [\n<!ENTITY ok "fine">\n]>\n<!--\n<!ENTITY a "{A_4K}">\n-->',
        # Inside a processing instruction, with a DOCTYPE of its own.
        f'<?note <!DOCTYPE rss [\n<!ENTITY a "{A_4K}">\n]> ?>',
        # A CDATA section is not allowed in a prolog: expat stops, the loose parser reads on.
        f'<![CDATA[ <!DOCTYPE rss [\n<!ENTITY a "{A_4K}">\n]> ]]>',
        # Spellings no XML parser accepts, that a lenient one might.
        f'<!DOCTYPE rss [\n<! ENTITY a "{A_4K}">\n]>',
        f'<!DOCTYPE rss [\n<!entity a "{A_4K}">\n]>',
        f'<!DOCTYPE rss [\n<!\tENTITY a "{A_4K}">\n]>',
        # expat keeps the first declaration, feedparser the last.
        f'<!DOCTYPE rss [\n<!ENTITY a "x">\n<!ENTITY a "{A_4K}">\n]>',
        # A second DOCTYPE (malformed): nothing after expat's error is trusted.
        f'<!DOCTYPE rss>\n<!DOCTYPE rss [\n<!ENTITY a "{A_4K}">\n]>',
    ],
    ids=["in-comment", "in-pi", "in-cdata", "space", "lower-case", "tab", "redeclared", "second-doctype"],
)
def test_declarations_expat_did_not_accept_make_the_feed_unsafe(prolog: str) -> None:
    # A handful of references: the refusal comes from the hidden declaration itself.
    error = assert_unsafe(feed_with(prolog, "&a; &a;"))
    assert "did not accept" in str(error)


def test_malformed_feed_with_lenient_references_is_bounded() -> None:
    """sgmllib takes ``&a`` without ``;`` as a reference: those count towards the bound."""
    prolog = f'<!DOCTYPE rss [\n<!ENTITY a "{A_4K}">\n]>'
    body = feed_with(prolog, "&a " * 400 + "<broken")
    assert_unsafe(body, "would add")


def test_a_cdata_article_about_xml_in_a_well_formed_feed_is_fine() -> None:
    """After the root element no parser reads declarations: a post quoting a DTD is news."""
    quoted = '<![CDATA[<p>Never parse <code><!DOCTYPE x [<!ENTITY a "b">]></code> blindly.</p>]]>'
    (item,) = parse_document(feed_doc(feed_with("", quoted)))
    assert item.body.startswith("Never parse") and item.body.endswith("blindly.")


def test_character_references_cannot_smuggle_a_reference() -> None:
    assert_unsafe(feed_with('<!DOCTYPE rss [<!ENTITY a "ok"><!ENTITY b "&#x26;a;&#38;a;">]>', "&b;"))
    # A smuggled "%" in a general entity is plain text wherever it is used.
    (item,) = parse_document(feed_doc(feed_with('<!DOCTYPE rss [<!ENTITY p "&#37;q;">]>', "d", title="&p;")))
    assert item.title in {"%q;", "&p;"}


@pytest.mark.parametrize(
    "prolog",
    [
        "<!DOCTYPE rss [<!ENTITY % p \"&#60;!ENTITY a 'x'>\"> %p;]>",
        '<!DOCTYPE rss [<!NOTATION gif SYSTEM "image/gif"><!ENTITY pic SYSTEM "x.gif" NDATA gif>]>',
        f'<!DOCTYPE rss [<!ATTLIST item x CDATA "{A_4K}{A_4K}">]>',
    ],
    ids=["parameter-entity-declaring-an-entity", "unparsed-entity", "huge-attribute-default"],
)
def test_other_dtd_amplifiers_are_unsafe(prolog: str) -> None:
    assert_unsafe(feed_with(prolog, "d"))


def _wide(body: bytes, codec: str, bom: bytes) -> bytes:
    text = body.decode().replace('<?xml version="1.0"?>', f'<?xml version="1.0" encoding="{codec}"?>')
    return bom + text.encode(codec)


@pytest.mark.parametrize(
    ("codec", "bom"),
    [
        ("utf-16-le", b"\xff\xfe"),
        ("utf-16-be", b"\xfe\xff"),
        ("utf-16-le", b""),
        ("utf-32-le", b"\xff\xfe\x00\x00"),
        ("utf-32-be", b"\x00\x00\xfe\xff"),
    ],
    ids=["utf16le-bom", "utf16be-bom", "utf16le-no-bom", "utf32le-bom", "utf32be-bom"],
)
def test_wide_encodings_hide_nothing(codec: str, bom: bytes) -> None:
    hidden = _wide(feed_with(COMMENT_THEN_DOCTYPE, "&a;" * 2000), codec, bom)
    assert_unsafe(hidden)
    with pytest.raises(ParseError) as info:
        check_xml_safety(hidden)  # the screen alone, given the raw bytes, sees it too
    assert info.value.reason == "unsafe"


def test_nul_bytes_hide_no_declaration() -> None:
    body = feed_with(f'<!DOCTYPE rss [\n<!\x00ENTITY a "{A_4K}">\n]>', "&a;" * 10)
    with pytest.raises(ParseError, match="NUL") as info:
        check_xml_safety(body)
    assert info.value.reason == "unsafe"


@pytest.mark.parametrize("declared", ["UTF-16", "ISO-8859-1", "EBCDIC-US", "UTF-7"])
def test_an_xml_declaration_naming_another_encoding_changes_nothing(declared: str) -> None:
    body = feed_with(COMMENT_THEN_DOCTYPE, "&a;" * 2000).replace(
        b'<?xml version="1.0"?>', f'<?xml version="1.0" encoding="{declared}"?>'.encode()
    )
    assert_unsafe(body)


def test_utf7_markup_is_either_refused_or_inert() -> None:
    """``+ADw-`` is ``<`` in UTF-7: whichever way the bytes are read, nothing expands."""
    payload = f"+ADw-!DOCTYPE rss +AFs-+ADw-!ENTITY a +ACI-{A_4K}+ACI-+AD4-+AF0-+AD4-"
    body = feed_with(payload, "&a;" * 2000).replace(
        b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="UTF-7"?>'
    )
    try:
        items = parse_document(feed_doc(body))
    except ParseError as exc:
        assert exc.reason in {"unsafe", "malformed", "no_items", "not_a_feed"}
    else:
        assert max(len(item.body) for item in items) < 20_000


@pytest.mark.parametrize(
    "prolog",
    [
        '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"\n'
        '  "http://my.netscape.com/publish/formats/rss-0.91.dtd">',
        '<!DOCTYPE rss [\n  <!ENTITY amp "&#38;#38;">\n  <!ENTITY copy "&#169;">\n]>',
        "<!-- AT&T <!DOCTYPE notes> -->\n<!DOCTYPE rss [\n<!-- site entities -->\n"
        '<!ENTITY site "Harbour">\n]>',
    ],
    ids=["netscape-0.91", "predefined-redeclared", "comments-around"],
)
def test_real_world_doctypes_still_parse(prolog: str) -> None:
    items = parse_document(feed_doc(feed_with(prolog, "Body &amp; more", title="News")))
    assert [(item.title, item.body) for item in items] == [("News", "Body & more")]


def test_the_screen_is_linear_in_the_input() -> None:
    item = (
        "<item><title>Storm &amp; rain</title><link>https://x.example/{i}</link>"
        "<description><![CDATA[<p>Crews restored power.</p>]]></description></item>"
    )
    small = feed_with(
        '<!DOCTYPE rss [<!ENTITY s "Harbour">]>', "&s;" + "".join(item.format(i=i) for i in range(2_000))
    )
    large = small.replace(
        b"</channel>", b"".join(item.format(i=i).encode() for i in range(2_000, 40_000)) + b"</channel>"
    )

    def screen_time(body: bytes) -> float:
        started = time.perf_counter()
        for _ in range(3):
            check_xml_safety(body)
        return (time.perf_counter() - started) / 3

    ratio = len(large) / len(small)
    assert screen_time(large) < max(0.5, 3 * ratio * screen_time(small))
