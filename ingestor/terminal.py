"""Text from documents and messages, made safe to print on an operator's terminal.

The CLI prints what feeds, pages and Kafka messages contain: parse errors quoting a
document, items, DLQ entries, feed definitions.  A terminal acts on some characters
instead of showing them: ESC and the 8-bit CSI (U+009B) start control sequences that can
rewrite the screen, set the window title or, on some terminals, answer back as typed
input; carriage returns and backspaces overwrite what was printed; bidi overrides make a
line read differently from what it holds.  None of that may be in a document's power.

Two tools: :func:`safe_for_terminal` for plain text (a repr-style ``\\xNN`` escape per
character), and :func:`json_for_terminal` for JSON lines.  ``json.dumps`` already escapes
C0 controls inside strings, but with ``ensure_ascii=False`` (kept so Cyrillic stays
readable) it passes DEL, C1 controls, U+2028/U+2029, bidi controls and lone surrogates
through raw; those are escaped as ``\\uXXXX``, which any JSON reader decodes back to the
same string, so the output stays the same data.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

__all__ = ["escape_json_text", "json_for_terminal", "safe_for_terminal"]

#: Characters a terminal may act on, or that make a line display as something it is not:
#: C0 controls, DEL, C1 controls, line/paragraph separators, bidi embeddings, overrides and
#: isolates, and lone surrogates (which cannot even be encoded for output).
_UNSAFE_CLASS: Final = "\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE: Final = re.compile(f"[{_UNSAFE_CLASS}]")
_LINES: Final = re.compile(r"([\n\t])")
#: Inside serialised JSON, structural characters are ASCII and every C0 control is already
#: escaped, so what is left to escape can only sit inside strings.
_UNSAFE_IN_JSON: Final = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_for_terminal(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every character a terminal could act on written as ``\\xNN``/``\\uNNNN``.

    Single-line messages escape line breaks and tabs too, so a document cannot forge a
    second line of output; ``keep_newlines`` keeps ``\\n`` and ``\\t`` for multi-line
    messages (a configuration error listing its problems).
    """
    if _UNSAFE.search(text) is None:
        return text
    if keep_newlines:
        return "".join(
            part if part in ("\n", "\t") else _UNSAFE.sub(_escape, part) for part in _LINES.split(text)
        )
    return _UNSAFE.sub(_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def escape_json_text(text: str) -> str:
    """Serialised JSON with the characters :func:`json.dumps` leaves raw escaped as ``\\uXXXX``."""
    if _UNSAFE_IN_JSON.search(text) is None:
        return text
    return _UNSAFE_IN_JSON.sub(_json_escape, text)


def json_for_terminal(data: Any, *, indent: int | None = None) -> str:
    """``json.dumps(data, ensure_ascii=False)``, safe to print and still the same JSON."""
    return escape_json_text(json.dumps(data, ensure_ascii=False, indent=indent))
