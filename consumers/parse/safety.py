"""Refuse documents that could make the parser read files, reach the network or blow up.

feedparser hands XML to expat (and, on errors, to its own sgmllib-based loose parser).  It
already turns off external general entities and replaces the DOCTYPE, and expat >= 2.4
caps entity amplification, but both are implementation details of libraries we do not
control.  So before any parser sees a document we read its internal DTD subset ourselves
and refuse, as "unsafe", any entity that points outside the document (SYSTEM/PUBLIC),
any parameter entity, any entity defined in terms of another entity (the "billion laughs"
shape) and any subset with an absurd number of declarations.  A DOCTYPE's own external
identifier (the classic Netscape RSS 0.91 DTD) is common in real feeds and harmless: it is
never fetched, because feedparser drops the DOCTYPE and expat's external entity loading is
off, so it is allowed.
"""

from __future__ import annotations

import re
from typing import Final

from .document import ParseError

#: An internal DTD subset longer than this is not a feed's (and is screened only this far).
MAX_SUBSET_BYTES: Final = 256 * 1024
MAX_ENTITY_DECLARATIONS: Final = 64
MAX_ENTITY_VALUE_BYTES: Final = 4 * 1024
#: Total bytes entity references may add to a document ("quadratic blowup" bound).
MAX_ENTITY_EXPANSION_BYTES: Final = 1024 * 1024

_DOCTYPE: Final = re.compile(rb"""<!DOCTYPE\b(?:[^\[>"']|"[^"]*"|'[^']*')*([\[>])""", re.IGNORECASE)
_SUBSET_BODY: Final = re.compile(rb"""(?:[^\]"']|"[^"]*"|'[^']*')*""")
_ENTITY_DECL: Final = re.compile(rb"<!ENTITY\b")
_PARSED_ENTITY: Final = re.compile(
    rb"""<!ENTITY\s+(%\s+)?([^\s"'>]+)\s+(?:("[^"]*"|'[^']*')|(SYSTEM|PUBLIC)\b)""", re.IGNORECASE
)
_ENTITY_REF: Final = re.compile(rb"&([A-Za-z_:][\w.:\-]*);|%([A-Za-z_:][\w.:\-]*);")
_WIDE_STARTS: Final = frozenset(
    {b"\xff\xfe", b"\xfe\xff", b"<\x00", b"\x00<", b"\x00\x00\xfe\xff", b"\x00\x00\x00<"}
)
#: A character reference to "&" or "%" in an entity value becomes a reference on use.
_SMUGGLED_REF: Final = re.compile(rb"&#(?:0*3[78]|x0*2[56]);", re.IGNORECASE)
_PREDEFINED: Final = frozenset({b"lt", b"gt", b"amp", b"quot", b"apos"})


def _markup_view(body: bytes) -> bytes:
    """The document as single bytes, so UTF-16/32 documents are screened like UTF-8 ones."""
    if body[:2] in _WIDE_STARTS or body[:4] in _WIDE_STARTS:
        return body.replace(b"\x00", b"")
    return body


def _internal_subset(view: bytes) -> bytes | None:
    """The first DOCTYPE's internal subset: XML keywords are upper case, so find() will do."""
    start = view.find(b"<!DOCTYPE")
    if start < 0:
        return None
    doctype = _DOCTYPE.match(view, start)
    if doctype is None or doctype.group(1) != b"[":
        return None
    subset = _SUBSET_BODY.match(view, doctype.end(), doctype.end() + MAX_SUBSET_BYTES)
    return subset.group(0) if subset else None


def check_xml_safety(body: bytes) -> None:
    """Raise ParseError("unsafe") for external, parameter, nested or explosive entities."""
    view = _markup_view(body)
    subset = _internal_subset(view)
    if subset is None or b"<!ENTITY" not in subset:
        return
    declarations = _ENTITY_DECL.findall(subset)
    if len(declarations) > MAX_ENTITY_DECLARATIONS:
        raise ParseError("unsafe", f"DTD declares {len(declarations)} entities")
    parsed = list(_PARSED_ENTITY.finditer(subset))
    if len(parsed) != len(declarations):
        raise ParseError("unsafe", "DTD has an entity declaration we cannot verify")
    expansion = 0
    for match in parsed:
        name = match.group(2).decode("ascii", "replace")
        if match.group(1):
            raise ParseError("unsafe", f"parameter entity %{name} in DTD")
        if match.group(4):
            raise ParseError("unsafe", f"external entity &{name}; ({match.group(4).decode()}) in DTD")
        value = match.group(3)
        if len(value) > MAX_ENTITY_VALUE_BYTES:
            raise ParseError("unsafe", f"entity &{name}; is {len(value)} bytes long")
        if _SMUGGLED_REF.search(value):
            raise ParseError("unsafe", f"entity &{name}; smuggles a reference in a character reference")
        for ref in _ENTITY_REF.finditer(value):
            if ref.group(2) is not None or ref.group(1) not in _PREDEFINED:
                raise ParseError("unsafe", f"entity &{name}; is defined through another entity")
        expansion += len(value) * view.count(b"&" + match.group(2) + b";")
    if expansion > MAX_ENTITY_EXPANSION_BYTES:
        raise ParseError("unsafe", f"entity references would add {expansion} bytes")


#: Deeper than this, HTML is refused: lexbor's tree builder is quadratic in nesting depth
#: (100,000 nested ``<div>`` take ~14 s), and no real page nests more than a few hundred.
MAX_HTML_DEPTH: Final = 5_000
#: Elements whose end tag may be left out (or that have none): they do not nest when unclosed.
_SELF_CLOSING: Final = (
    "area|base|br|col|embed|hr|img|input|link|meta|source|track|wbr|p|li|dt|dd|option|optgroup"
    "|tr|td|th|thead|tbody|tfoot|colgroup|caption|rb|rt|rp|param|keygen|frame"
)
_NESTING_TAG: Final = re.compile(rf"<(/?)(?!(?:{_SELF_CLOSING})[\s/>])[A-Za-z]", re.IGNORECASE)


def check_html_nesting(html: str) -> None:
    """Raise ParseError("malformed") for HTML nested deeper than :data:`MAX_HTML_DEPTH`.

    The depth is estimated from start and end tags before any parser runs (a page with
    fewer tags than the limit cannot exceed it, so ordinary pages pay one ``str.count``)."""
    if html.count("<") <= MAX_HTML_DEPTH:
        return
    depth = deepest = 0
    for closing in _NESTING_TAG.findall(html):
        if closing:
            depth = depth - 1 if depth > 0 else 0
        else:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_HTML_DEPTH:
                    raise ParseError("malformed", f"HTML nested more than {MAX_HTML_DEPTH} levels deep")
