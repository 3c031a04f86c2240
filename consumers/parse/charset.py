"""Bytes to text, the way the publisher meant them.

Feeds and pages in the wild lie about their encoding: a prolog that says ISO-8859-1 over
UTF-8 bytes, a header that says UTF-8 over windows-1252, legacy Cyrillic and Chinese feeds
with no declaration at all.  We trust, in order, a byte-order mark, the Content-Type
charset, the document's own declaration, then a statistical detector; a declared
single-byte charset loses to bytes that are valid multi-byte UTF-8, because the reverse
mistake practically never happens by accident.
"""

from __future__ import annotations

import codecs
import re
from typing import Final, NamedTuple

from charset_normalizer import from_bytes

from .document import ParseError

_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

#: BOM-less UTF-16/32 recognised by how ``<`` and ``<?`` are laid out (XML spec, appendix F).
_NULL_PATTERNS: Final = (
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00?\x00", "utf-16-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
    (b"\x00<", "utf-16-be"),
)

#: Labels decoded with a superset codec, as browsers do (WHATWG Encoding Standard).
_SUPERSETS: Final = {
    "latin-1": "cp1252",
    "iso8859-1": "cp1252",
    "ascii": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "iso8859-9": "cp1254",
    "tis-620": "cp874",
    "iso8859-11": "cp874",
    "euc_kr": "cp949",
}

# ``\s*["']?\s*`` read the spaces around an absent quote in n ways, and a search retried
# them at every start: a header padded with spaces cost n**2.  Spaces are now read once
# (possessive), and the optional quote carries its own trailing spaces.
_CT_CHARSET: Final = re.compile(r"""charset\s*+=\s*+(?:["']\s*+)?([\w.:\-]+)""", re.IGNORECASE)
_XML_DECL: Final = re.compile(
    rb"""^\s*+<\?xml[^>]{0,200}?encoding\s*+=\s*+["']\s*+([\w.:\-]+)""", re.IGNORECASE
)
_META_CHARSET: Final = re.compile(
    rb"""<meta\b[^>]{0,400}?charset\s*+=\s*+(?:["']\s*+)?([\w.:\-]+)""", re.IGNORECASE
)
#: The declaration up to the spaces before "encoding".  Its lazy ``[^>]*?`` stops at the
#: first place those spaces can start; the lookbehind makes every later space of the run
#: fail at once instead of rescanning the run (n**2 on a padded declaration).
_XML_DECL_TEXT: Final = re.compile(r"""^(\s*+<\?xml[^>]*?)(?<!\s)\s+encoding\s*+=\s*+(["'])[^"']*\2""")
#: How much of a document's start may hold its XML declaration when we rewrite it (the
#: lazy ``[^>]*?`` still walks to the first ">", so it is not given a megabyte of padding).
_XML_DECL_SPAN: Final = 1024

#: How far into a document we look for a ``<meta charset>``: far enough for a long ``<head>``.
META_SCAN_BYTES: Final = 16 * 1024


class DecodedText(NamedTuple):
    text: str
    charset: str


def _codec(label: str) -> str | None:
    """A Python codec name for a charset label, or None when the label is unknown."""
    try:
        name = codecs.lookup(label.strip().strip("\"'")).name
    except (LookupError, ValueError):
        return None
    return _SUPERSETS.get(name, name)


def _is_single_byte(codec: str) -> bool:
    return codecs.lookup(codec).name not in (
        "utf-8",
        "utf-16",
        "utf-16-le",
        "utf-16-be",
        "utf-32",
        "utf-32-le",
        "utf-32-be",
        "gb18030",
        "big5",
        "big5hkscs",
        "cp949",
        "cp932",
        "shift_jis",
        "euc_jp",
        "iso2022_jp",
        "cp950",
    )


def _strict(body: bytes, codec: str) -> str | None:
    try:
        return body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        if codec == "cp1252":
            return body.decode("latin-1")
        return None


def charset_from_content_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    match = _CT_CHARSET.search(content_type)
    return match.group(1) if match else None


def declared_charset(body: bytes) -> str | None:
    """The charset the document names itself: XML declaration, else ``<meta>``."""
    match = _XML_DECL.match(body, 0, 512)
    if match is None:
        match = _META_CHARSET.search(body, 0, META_SCAN_BYTES)
    return match.group(1).decode("ascii") if match else None


def sniff_bom(body: bytes) -> tuple[str, int] | None:
    """The encoding a byte-order mark or a BOM-less UTF-16/32 start announces, and the BOM length."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return codec, len(bom)
    for pattern, codec in _NULL_PATTERNS:
        if body.startswith(pattern):
            return codec, 0
    return None


def decode(body: bytes, content_type: str | None = None) -> DecodedText:
    """Decode a document; raise ParseError("decode_error") when nothing sensible decodes it."""
    sniffed = sniff_bom(body)
    if sniffed is not None:
        bom_codec, skip = sniffed
        return DecodedText(body[skip:].decode(bom_codec, errors="replace"), bom_codec)

    candidates: list[str] = []
    for label in (charset_from_content_type(content_type), declared_charset(body)):
        named = _codec(label) if label else None
        # A UTF-16/32 label over bytes without a BOM or NUL pattern is a copy-paste error.
        if named and not named.startswith(("utf-16", "utf-32")):
            candidates.append(named)

    utf8: str | None = None
    text: str | None
    if candidates:
        if body.isascii():
            return DecodedText(body.decode("ascii"), candidates[0])
        for codec in candidates:
            if _is_single_byte(codec):
                if utf8 is None:
                    utf8 = _strict(body, "utf-8") or ""
                if utf8:
                    return DecodedText(utf8, "utf-8")
            text = _strict(body, codec)
            if text is not None:
                return DecodedText(text, codec)

    if utf8 is None:
        utf8 = _strict(body, "utf-8")
    if utf8:
        return DecodedText(utf8, "utf-8")

    best = from_bytes(body).best()
    if best is not None and best.encoding:
        codec = _codec(best.encoding) or best.encoding
        text = _strict(body, codec)
        if text is not None:
            return DecodedText(text, codec)
        return DecodedText(str(best), best.encoding)
    if candidates:
        return DecodedText(body.decode(candidates[0], errors="replace"), candidates[0])
    raise ParseError("decode_error", "no charset decodes the document")


def as_utf8_xml(text: str) -> bytes:
    """Text back to bytes for an XML parser, with the prolog saying what the bytes now are.

    Only the document's first :data:`_XML_DECL_SPAN` characters are searched for the
    declaration (a real one is under 100)."""
    head = _XML_DECL_TEXT.sub(r'\1 encoding="utf-8"', text[:_XML_DECL_SPAN], count=1)
    return (head + text[_XML_DECL_SPAN:]).encode("utf-8", "surrogatepass")
