"""What the CLI prints from documents and messages cannot drive the operator's terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingestor.terminal import escape_json_text, json_for_terminal, safe_for_terminal

#: What a terminal may act on: C0, DEL, C1 (U+009B is an 8-bit CSI), separators, bidi controls.
UNSAFE = {
    chr(c)
    for c in (
        *range(0x20),
        *range(0x7F, 0xA0),
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    )
}


def test_escapes_controls_repr_style() -> None:
    assert (
        safe_for_terminal("a\x1b]0;owned\x07b\x9b2J\r\n\x7f\x00")
        == "a\\x1b]0;owned\\x07b\\x9b2J\\x0d\\x0a\\x7f\\x00"
    )
    assert safe_for_terminal("evil\u202etxt.exe") == "evil\\u202etxt.exe"
    assert safe_for_terminal("lone \ud800") == "lone \\ud800"


def test_keep_newlines_for_multiline_messages() -> None:
    assert safe_for_terminal("one\n\ttwo\x1b[2J", keep_newlines=True) == "one\n\ttwo\\x1b[2J"


def test_ordinary_text_is_untouched() -> None:
    text = "Київ: «обстріл» — 14 injured, café ✓ 🇺🇦 \\x1b stays as typed"
    assert safe_for_terminal(text) is text
    assert escape_json_text(json.dumps(text, ensure_ascii=False)) == json.dumps(text, ensure_ascii=False)


@given(st.text())
def test_safe_text_has_nothing_a_terminal_acts_on(text: str) -> None:
    shown = safe_for_terminal(text)
    assert not UNSAFE & set(shown)
    shown.encode("utf-8")


@given(
    st.recursive(
        st.text() | st.integers() | st.none(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    )
)
def test_terminal_json_is_the_same_data_and_safe(data: object) -> None:
    line = json_for_terminal(data)
    assert json.loads(line) == data
    assert not UNSAFE & set(line)
    line.encode("utf-8")


def test_json_dumps_alone_would_let_c1_and_bidi_through() -> None:
    # Why json_for_terminal exists: ensure_ascii=False escapes C0 only.
    raw = json.dumps({"t": "\x9b2J\u202e\x7f"}, ensure_ascii=False)
    assert "\x9b" in raw and "\u202e" in raw and "\x7f" in raw
    assert json_for_terminal({"t": "\x9b2J\u202e\x7f"}) == '{"t": "\\u009b2J\\u202e\\u007f"}'


@pytest.mark.skipif(sys.platform == "win32", reason="control characters in file names")
@pytest.mark.subprocess
def test_parse_errors_reach_stderr_escaped(tmp_path: Path) -> None:
    hostile = tmp_path / "feed\x1b]0;owned\x07\x9b2J.xml"
    hostile.write_bytes(b"")
    page = tmp_path / "page.html"
    page.write_text(
        '<html><head><meta property="og:title" content="Title&amp;#39;s \u202e"></head>'
        "<body><article><h1>Title's</h1>"
        + "".join(
            f"<p>Paragraph {n} of a story that is long enough to be read as an article body.</p>"
            for n in range(6)
        )
        + "</article></body></html>"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ingestor",
            "parse",
            str(hostile),
            str(page),
            "--url",
            "https://news.test/p",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert not UNSAFE - {"\n"} & set(result.stderr)
    assert "feed\\x1b]0;owned\\x07\\x9b2J.xml: empty" in result.stderr
    assert not UNSAFE - {"\n"} & set(result.stdout)
    (item,) = (json.loads(line) for line in result.stdout.splitlines())
    assert item["title"] == "Title's \u202e"  # the data is intact; only its printing is escaped


def test_tool_json_lines_are_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    from ingestor.tools.cli import _print_json

    _print_json({"error": "bad \x1b[2J\x9b title\u2028"})
    out = capsys.readouterr().out
    assert out == '{"error": "bad \\u001b[2J\\u009b title\\u2028"}\n'


def test_status_table_escapes_feed_urls_and_markup(capsys: pytest.CaptureFixture[str]) -> None:
    from ingestor.tools.status import render_table

    status = {
        "bootstrap_servers": "localhost:9092",
        "checked_at": "2024-11-05T00:00:00Z",
        "groups": [],
        "feeds": {
            "source": "news.fetch-state",
            "failing": [
                {
                    "feed": "opml[red]feed",
                    "failures": 3,
                    "last_attempt_at": None,
                    "next_due": None,
                    "url": "https://x.test/\x1b]8;;https://evil.test\x07[link=https://evil.test]x[/link]",
                }
            ],
            "never_fetched": ["new\x9bfeed"],
            "note": "note",
        },
        "published": {"last_publish_at": None, "messages": 0, "topic": "news.published"},
        "dlq": {"messages": 0, "topic": "news.dlq"},
    }
    render_table(status)
    out = capsys.readouterr().out
    assert not (UNSAFE - {"\n"}) & set(out)
    assert "opml[red]feed" in out and "new\\x9bfeed" in out
