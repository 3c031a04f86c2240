"""Refuse XML documents that could make the parser read files, reach the network or blow up.

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

#: Where a DOCTYPE may start: in the prolog, before the root element.
PROLOG_SCAN_BYTES: Final = 64 * 1024
MAX_ENTITY_DECLARATIONS: Final = 64
MAX_ENTITY_VALUE_BYTES: Final = 16 * 1024

_DOCTYPE: Final = re.compile(rb"""<!DOCTYPE\b(?:[^\[>"']|"[^"]*"|'[^']*')*([\[>])""", re.IGNORECASE)
_SUBSET_BODY: Final = re.compile(rb"""(?:[^\]"']|"[^"]*"|'[^']*')*""")
_ROOT_ELEMENT: Final = re.compile(rb"<[A-Za-z_]")
_ENTITY_DECL: Final = re.compile(rb"<!ENTITY\b", re.IGNORECASE)
_PARSED_ENTITY: Final = re.compile(
    rb"""<!ENTITY\s+(%\s+)?([^\s"'>]+)\s+(?:("[^"]*"|'[^']*')|(SYSTEM|PUBLIC)\b)""", re.IGNORECASE
)
_ENTITY_REF: Final = re.compile(rb"&([A-Za-z_:][\w.:\-]*);|%([A-Za-z_:][\w.:\-]*);")
_PREDEFINED: Final = frozenset({b"lt", b"gt", b"amp", b"quot", b"apos"})


def _ascii_view(body: bytes) -> bytes:
    """The document's markup as single bytes, so UTF-16/32 documents are screened too."""
    head = body[: PROLOG_SCAN_BYTES * 4]
    if head[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff") or head[:4] in (b"<\x00\x00\x00", b"\x00\x00\x00<"):
        return head.replace(b"\x00", b"")[:PROLOG_SCAN_BYTES]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or head[:2] in (b"<\x00", b"\x00<"):
        return head.replace(b"\x00", b"")[:PROLOG_SCAN_BYTES]
    return head[:PROLOG_SCAN_BYTES]


def _internal_subset(head: bytes) -> bytes | None:
    doctype = _DOCTYPE.search(head)
    if doctype is None:
        return None
    root = _ROOT_ELEMENT.search(head)
    if root is not None and root.start() < doctype.start():
        return None  # a DOCTYPE after the root element is not a DTD, just bad markup
    if doctype.group(1) != b"[":
        return None
    body = _SUBSET_BODY.match(head, doctype.end())
    return body.group(0) if body else None


def check_xml_safety(body: bytes) -> None:
    """Raise ParseError("unsafe") for external, parameter or nested entity declarations."""
    if b"<!" not in body[: PROLOG_SCAN_BYTES * 4] and b"<\x00!" not in body[: PROLOG_SCAN_BYTES * 4]:
        return
    head = _ascii_view(body)
    subset = _internal_subset(head)
    if subset is None or not _ENTITY_DECL.search(subset):
        return
    declarations = _ENTITY_DECL.findall(subset)
    if len(declarations) > MAX_ENTITY_DECLARATIONS:
        raise ParseError("unsafe", f"DTD declares {len(declarations)} entities")
    parsed = list(_PARSED_ENTITY.finditer(subset))
    if len(parsed) != len(declarations):
        raise ParseError("unsafe", "DTD has an entity declaration we cannot verify")
    for match in parsed:
        name = match.group(2).decode("ascii", "replace")
        if match.group(1):
            raise ParseError("unsafe", f"parameter entity %{name} in DTD")
        if match.group(4):
            raise ParseError("unsafe", f"external entity &{name}; ({match.group(4).decode()}) in DTD")
        value = match.group(3)
        if len(value) > MAX_ENTITY_VALUE_BYTES:
            raise ParseError("unsafe", f"entity &{name}; is {len(value)} bytes long")
        for ref in _ENTITY_REF.finditer(value):
            if ref.group(2) is not None or ref.group(1) not in _PREDEFINED:
                raise ParseError("unsafe", f"entity &{name}; is defined through another entity")
