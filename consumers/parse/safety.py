"""Refuse documents that could make a parser read files, reach the network, blow up or stall.

**XML: decide with a real parser's view of the document.**  feedparser reads a feed twice
over: with expat (through SAX) and, when that fails, with its own sgmllib-based loose
parser.  Both take entity definitions from the DTD after feedparser rewrites it with
regexes, and the loose parser expands every "safe looking" entity at each reference, with
no limit: one 600 KB feed whose DOCTYPE a comment hid from a regex screen became an 800 MB
item.  So the screen does not read the DTD with regexes.  It runs expat itself over the
exact bytes the feed parsers will read (:func:`check_xml_safety` is called with them) and
keeps only what expat reports:

* every entity declaration expat reports must be an internal general entity (no
  parameter entity, no SYSTEM/PUBLIC entity, no unparsed entity), at most
  :data:`MAX_ENTITY_DECLARATIONS` of them, each at most :data:`MAX_ENTITY_VALUE_BYTES`
  long, whose replacement text (after expat has expanded character references, so
  ``&#38;`` cannot smuggle an ``&`` past us) holds no ``&`` except a predefined or
  numeric character reference: no entity can be defined through another one;
* the references those entities could get, counted in the raw bytes the way the most
  lenient reader would (``&name`` followed by anything but a letter or digit, any case,
  including inside comments and CDATA), times their length, may add at most
  :data:`MAX_ENTITY_EXPANSION_BYTES`;
* attribute defaults (``<!ATTLIST``), which expat copies onto every element, are at most
  :data:`MAX_ENTITY_VALUE_BYTES` long;
* **every** ``<!ENTITY`` in the bytes (any case, any whitespace after ``<!``) must be a
  declaration expat accepted.  A declaration in a comment, a CDATA section, a processing
  instruction, after a ``]`` that fooled someone, or in markup expat could not parse is
  one expat did not accept, and any regex-driven reader (feedparser's DOCTYPE rewrite
  included) might still take it: the document is refused.  The one exception is a
  well-formed document's body (after the root element's start and after the first
  ``<`` + letter), which no parser reads declarations from.  Redeclarations of the five
  predefined entities with a short value (``<!ENTITY amp "&#38;#38;">``) are tolerated:
  no parser lets them change what ``&amp;`` means.

When expat cannot parse the document (malformed XML, which then goes to the loose
parser), nothing after expat's error is trusted: any ``<!ENTITY`` it did not accept makes
the document unsafe.  UTF-16/32 bytes are transcoded to UTF-8 before the screen, and
entity openers hidden by NUL bytes are looked for too, so no encoding hides a declaration;
expat is told the bytes are UTF-8, whatever the XML declaration says, as the loose parser
assumes.

A DOCTYPE's own external identifier (the Netscape RSS 0.91 DTD) is common in real feeds
and harmless: expat's parameter-entity parsing is off, so it is never read, and
feedparser replaces the DOCTYPE anyway.  Harmless internal entities (``<!ENTITY copy
"&#169;">``) keep working.  The screen is one expat pass plus a few byte scans: linear in
the input, and it keeps no tree.

**HTML: count nesting the way the tree builder nests.**  lexbor's tree builder is
quadratic in nesting depth, so every HTML fragment (a page, and the HTML in every feed
entry and JSON Feed ``content_html``) is refused as "malformed" before lexbor sees it when
the tree it would build is deeper than :data:`MAX_HTML_DEPTH`.  The depth is not guessed
from tag counts (stray end tags and ruby tags talked the old estimate down): a linear
scan follows the HTML5 tree-construction rules that decide nesting and yields an upper
bound of the real depth (see :class:`_HtmlDepth`; the tests hold it to lexbor's tree).
"""

from __future__ import annotations

import bisect
import re
from typing import Final
from xml.parsers import expat

from .charset import as_utf8_xml, sniff_bom
from .document import ParseError

MAX_ENTITY_DECLARATIONS: Final = 64
MAX_ENTITY_VALUE_BYTES: Final = 4 * 1024
#: Total bytes entity references may add to a document ("quadratic blowup" bound).
MAX_ENTITY_EXPANSION_BYTES: Final = 1024 * 1024

#: How any lenient reader could spell the start of an entity declaration.
_ENTITY_OPEN: Final = re.compile(rb"<!\s*entity", re.IGNORECASE)
_XML_SPACE: Final = rb"[\x20\t\r\n]+"
#: Replacement text may keep these references: each is one character wherever it is used.
_HARMLESS_REF: Final = re.compile(r"&(?:lt|gt|amp|quot|apos|#[0-9]+|#x[0-9A-Fa-f]+);")
#: A redeclared predefined entity: no parser lets it change what ``&amp;`` and co. mean.
_PREDEFINED_REDECLARED: Final = re.compile(
    rb"<!ENTITY[\x20\t\r\n]+(?:lt|gt|amp|quot|apos)[\x20\t\r\n]+(?:\"[^\"<>]{0,16}\"|'[^'<>]{0,16}')[\x20\t\r\n]*>"
)
_FIRST_LETTER_TAG: Final = re.compile(rb"<[A-Za-z]")


def _utf8_view(body: bytes) -> bytes:
    """UTF-16/32 documents as the UTF-8 bytes the feed parsers would be given."""
    sniffed = sniff_bom(body)
    if sniffed is not None and sniffed[0].startswith(("utf-16", "utf-32")):
        codec, skip = sniffed
        return as_utf8_xml(body[skip:].decode(codec, errors="replace"))
    return body


class _XmlScreen:
    """One expat pass over a document, remembering what expat accepted and where."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        #: (name, replacement text length in bytes, expat's byte index of the value).
        self.entities: list[tuple[str, int, int]] = []
        self.root_start: int | None = None
        self.well_formed = False
        parser = expat.ParserCreate(encoding="utf-8")
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.EntityDeclHandler = self._entity
        parser.UnparsedEntityDeclHandler = self._unparsed
        parser.AttlistDeclHandler = self._attlist
        parser.ExternalEntityRefHandler = self._external_ref
        parser.EndDoctypeDeclHandler = self._check_expansion
        parser.StartElementHandler = self._root
        self.parser = parser

    def run(self) -> None:
        try:
            self.parser.Parse(self.data, True)
        except expat.ExpatError:
            self.well_formed = False
        else:
            self.well_formed = True
        self._check_expansion()
        self._check_declarations()

    # --- expat handlers ---------------------------------------------------------------

    def _entity(
        self,
        name: str,
        is_parameter: bool,
        value: str | None,
        base: str | None,
        system_id: str | None,
        public_id: str | None,
        notation: str | None,
    ) -> None:
        if is_parameter:
            raise ParseError("unsafe", f"parameter entity %{name} in DTD")
        if value is None:
            kind = "unparsed" if notation else "PUBLIC" if public_id else "SYSTEM"
            raise ParseError("unsafe", f"external entity &{name}; ({kind}) in DTD")
        if len(self.entities) >= MAX_ENTITY_DECLARATIONS:
            raise ParseError("unsafe", f"DTD declares more than {MAX_ENTITY_DECLARATIONS} entities")
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > MAX_ENTITY_VALUE_BYTES:
            raise ParseError("unsafe", f"entity &{name}; is {size} bytes long")
        if "&" in _HARMLESS_REF.sub("", value):
            raise ParseError(
                "unsafe", f"entity &{name}; is defined through another entity (its text holds a reference)"
            )
        self.entities.append((name, size, self.parser.CurrentByteIndex))

    def _unparsed(self, name: str, *_ids: str | None) -> None:
        raise ParseError("unsafe", f"external entity &{name}; (unparsed) in DTD")

    def _attlist(self, element: str, attribute: str, _type: str, default: str | None, _req: int) -> None:
        if default is not None and len(default.encode("utf-8", "surrogatepass")) > MAX_ENTITY_VALUE_BYTES:
            raise ParseError("unsafe", f"default of attribute {element}/@{attribute} is {len(default)} chars")

    def _external_ref(self, *_args: str | None) -> int:
        raise ParseError("unsafe", "reference to an external entity")

    def _root(self, _name: str, _attributes: object) -> None:
        self.root_start = self.parser.CurrentByteIndex
        self.parser.StartElementHandler = None

    # --- checks -----------------------------------------------------------------------

    def _check_expansion(self) -> None:
        """Bound what the accepted entities could add, counting references generously."""
        sized: dict[bytes, int] = {}
        for name, size, _at in self.entities:
            key = name.encode("utf-8", "surrogatepass").lower()
            sized[key] = max(size, sized.get(key, 0))
        if not sized:
            return
        names = b"|".join(re.escape(name) for name in sorted(sized, key=len, reverse=True))
        reference = re.compile(rb"&(" + names + rb")(?![A-Za-z0-9])", re.IGNORECASE)
        expansion = 0
        for match in reference.finditer(self.data):
            expansion += sized[match.group(1).lower()]
            if expansion > MAX_ENTITY_EXPANSION_BYTES:
                raise ParseError(
                    "unsafe", f"entity references would add more than {MAX_ENTITY_EXPANSION_BYTES} bytes"
                )

    def _accepted_starts(self) -> set[int]:
        """Where each declaration expat accepted starts (expat reports where its value is)."""
        starts: set[int] = set()
        for name, _size, value_at in self.entities:
            start = self.data.rfind(b"<!ENTITY", 0, value_at)
            head = re.escape(name.encode("utf-8", "surrogatepass"))
            if start >= 0 and re.fullmatch(
                b"<!ENTITY" + _XML_SPACE + head + _XML_SPACE, self.data[start:value_at]
            ):
                starts.add(start)
        return starts

    def _check_declarations(self) -> None:
        """Every ``<!ENTITY`` in the bytes must be one expat accepted (see the module doc)."""
        data = self.data
        body_from = len(data)
        if self.well_formed and self.root_start is not None:
            letter = _FIRST_LETTER_TAG.search(data)
            body_from = max(self.root_start, letter.start() if letter else len(data))
        accepted = self._accepted_starts()
        openers = 0
        for opener in _ENTITY_OPEN.finditer(data):
            openers += 1
            at = opener.start()
            if at in accepted or at > body_from or _PREDEFINED_REDECLARED.match(data, at):
                continue
            where = "a well-formed prolog" if self.well_formed else "XML that expat cannot parse"
            raise ParseError(
                "unsafe",
                f"entity declaration at byte {at} that expat did not accept in {where} "
                "(inside a comment, CDATA section or processing instruction, a redeclaration, "
                "or broken markup)",
            )
        if b"\x00" in data and len(_ENTITY_OPEN.findall(data.replace(b"\x00", b""))) > openers:
            raise ParseError("unsafe", "an entity declaration hidden by NUL bytes")


def check_xml_safety(body: bytes) -> None:
    """Raise ParseError("unsafe") for external, parameter, nested or explosive entities.

    ``body`` must be the bytes the XML parsers will read (the feed shape passes its UTF-8
    transcoding); a UTF-16/32 document is transcoded here the same way.
    """
    if b"<!" not in body and b"\x00" not in body:
        return
    _XmlScreen(_utf8_view(body)).run()


# --- HTML nesting ----------------------------------------------------------------------------

#: Deeper than this, HTML is refused: lexbor's tree builder is quadratic in nesting depth
#: (100,000 nested ``<div>`` take ~14 s), and no real page nests more than a few hundred.
#: Depth counts elements from ``<html>`` (1) down, as :func:`html_nesting_depth` does.
MAX_HTML_DEPTH: Final = 5_000
#: One ``<`` can add at most this many levels (``<td>`` in a bare table adds tbody, tr and
#: td; a reconstructed formatting element was opened by an earlier ``<``; ``</p>`` adds an
#: empty p), so a page with few ``<`` needs no scan: see :func:`check_html_nesting`.
_LEVELS_PER_TAG: Final = 3

#: Foreign elements are kept as "svg\0name" / "math\0name": no HTML tag name holds a NUL.
_NS: Final = "\x00"


def _words(names: str) -> frozenset[str]:
    return frozenset(name.replace(":", _NS) for name in names.split())


_VOID: Final = _words(
    "area base basefont bgsound br col embed frame hr image img input keygen link meta param source track wbr"
)
_FORMATTING: Final = _words("a b big code em font i nobr s small strike strong tt u")
_SPECIAL: Final = _words(
    "address applet area article aside base basefont bgsound blockquote body br button caption center "
    "col colgroup dd details dir div dl dt embed fieldset figcaption figure footer form frame frameset "
    "h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img input keygen li link listing main marquee "
    "menu meta nav noembed noframes noscript object ol p param plaintext pre script search section "
    "select source style summary table tbody td template textarea tfoot th thead title tr track ul wbr "
    "xmp math:mi math:mo math:mn math:ms math:mtext math:annotation-xml svg:foreignobject svg:desc svg:title"
)
#: Scope boundaries.  lexbor reads ``<select>`` by the 2025 "customisable select" rules: it
#: nests anything, and end tags outside a select do not reach past it: a boundary here.
_SCOPE: Final = _words(
    "applet caption html table td th marquee object template select math:mi math:mo "
    "math:mn math:ms math:mtext math:annotation-xml svg:foreignobject svg:desc svg:title"
)
_IMPLIED_END: Final = _words("dd dt li optgroup option p rb rp rt rtc")
_HEADINGS: Final = _words("h1 h2 h3 h4 h5 h6")
_CLOSES_P: Final = _words(
    "address article aside blockquote center details dialog dir div dl fieldset figcaption figure "
    "footer header hgroup main menu nav ol p search section summary ul h1 h2 h3 h4 h5 h6 pre listing "
    "form plaintext xmp hr"
)
_BLOCK_END: Final = _words(
    "address article aside blockquote button center details dialog dir div dl fieldset figcaption "
    "figure footer header hgroup listing main menu nav ol pre search section select summary ul"
)
_RAWTEXT: Final = _words("style xmp iframe noembed noframes textarea title")
_TABLE_PARTS: Final = _words("caption colgroup col tbody thead tfoot tr td th")
_SECTIONS: Final = _words("tbody thead tfoot")
_BREAKOUT: Final = _words(
    "b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img li "
    "listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul var"
)
_MATH_TEXT_POINTS: Final = _words("math:mi math:mo math:mn math:ms math:mtext")
_HTML_POINTS: Final = _words("svg:foreignobject svg:desc svg:title")
_ANNOTATION: Final = "math" + _NS + "annotation-xml"
_HTML_ANNOTATION_POINT: Final = _ANNOTATION + _NS + "html"
_MARKER: Final = -1
#: Start and end tags with rules of their own; any other is a plain element (see run()).
_HANDLED_START: Final = (
    _words(
        "html body head svg math table select input form li dd dt rb rtc rp rt button option optgroup "
        "a nobr applet marquee object template script plaintext"
    )
    | _TABLE_PARTS
    | _VOID
    | _CLOSES_P
    | _FORMATTING
    | _RAWTEXT
)
_HANDLED_END: Final = (
    _words(
        "html body head p br li dd dt form applet marquee object table tbody thead tfoot tr td th "
        "caption template colgroup option optgroup frameset"
    )
    | _HEADINGS
    | _BLOCK_END
    | _FORMATTING
    | _VOID
)
_GONE: Final = "#gone"
#: What the open elements are indexed by: scope boundaries, specials, table contexts, and
#: what stops the search for an open <li>/<dd>/<dt>.
_SCOPES: Final = (
    _SCOPE,
    _SCOPE | {"ol", "ul"},
    _SCOPE | {"button"},
    _words("table template"),
    _SPECIAL,
    # the elements that decide how a table tag is read (the "reset the insertion mode" walk)
    _words("td th tr tbody thead tfoot caption colgroup table template"),
    _SPECIAL - {"address", "div", "p"},
)
_IN_SCOPE, _IN_LIST, _IN_BUTTON, _IN_TABLE, _SPECIALS, _CONTEXT, _LI_STOP = range(len(_SCOPES))
_ANYWHERE: Final = -1
_MEMBERSHIP: Final = {
    name: tuple(i for i, scope in enumerate(_SCOPES) if name in scope) for name in frozenset().union(*_SCOPES)
}
#: What the parser puts in <head> while it is still reading the head.
_HEAD: Final = _words("base basefont bgsound link meta title noscript noframes style script template")
#: What <noscript> in the head may hold (scripting is off in lexbor); anything else closes it.
_HEAD_NOSCRIPT: Final = _words("basefont bgsound link meta noframes style")

_SPACE_CHARS: Final = "\t\n\f\r "
#: A tag after its ``<`` or ``</``, tokenised as the HTML tokenizer does it: attribute values
#: are quoted only after ``=``, so a stray quote elsewhere cannot hide a ``>``.
_TAG: Final = re.compile(
    r"""([A-Za-z][^\t\n\f\r />]*+)
    ((?>[\t\n\f\r /]*+(?>[^\t\n\f\r />][^\t\n\f\r />=]*+
        (?>[\t\n\f\r ]*+=[\t\n\f\r ]*+(?>"[^"]*+"|'[^']*+'|[^\t\n\f\r >]++)?)?))*+)
    ([\t\n\f\r /]*+)(>?)""",
    re.VERBOSE,
)
_FONT_BREAKOUT: Final = re.compile(r"(?:^|[\t\n\f\r /])(?:color|face|size)(?=[\t\n\f\r /=]|$)", re.IGNORECASE)
_HTML_ANNOTATION: Final = re.compile(
    r"""(?:^|[\t\n\f\r /])encoding[\t\n\f\r ]*=[\t\n\f\r ]*["']?"""
    r"""(?:text/html|application/xhtml\+xml)["'\t\n\f\r /]""",
    re.IGNORECASE,
)
_SCRIPT_STATES: Final = re.compile(r"<!--|-->|<(/?)script(?=[\t\n\f\r />])", re.IGNORECASE)
_COMMENT_END: Final = re.compile(r"--!?>")


class _HtmlDepth:
    """The depth of the tree an HTML5 parser builds, followed tag by tag without building it.

    The model keeps the stack of open elements (each with the tree depth it was created
    at) and the list of active formatting elements, and applies the tree-construction
    rules that change nesting: end tags close only an element in the right scope (so a
    stray ``</x>`` changes nothing and ``</div>`` never climbs out of a table cell),
    optional end tags close as the implied-end-tag rules say (p, li, dt/dd, option, table
    rows and cells, ruby), tables get their implied tbody/tr, formatting elements are
    reopened the way the parser reconstructs them, foreign content (SVG, MathML) honours
    ``/>``.  Raw text (script with its escapes, style, textarea, title, xmp, iframe,
    noembed, noframes, plaintext) and comments are skipped as the tokenizer skips them.
    Wherever the model is simpler than the parser it errs upwards: it opens what the
    parser might open and closes only what the parser certainly closes, so the count is
    an upper bound of the real depth (checked against lexbor in the tests).
    """

    def __init__(self, html: str, limit: int | None) -> None:
        self.html = html
        self.limit = limit
        self.names: list[str] = []
        self.depths: list[int] = []
        self.ids: list[int] = []
        #: For each open element, the index of the nearest HTML (not SVG/MathML) one at or below.
        self.html_at: list[int] = []
        #: Where each open element is: by id, by name, and per scope (see _MEMBERSHIP), so
        #: that scope questions cost O(1) however deep the stack is.
        self.index_of: dict[int, int] = {}
        self.where: dict[str, list[int]] = {}
        self.marks: list[list[int]] = [[] for _ in _SCOPES]
        self.next_id = 0
        #: Active formatting elements: (id, name, attributes) or a marker.
        self.formatting: list[tuple[int, str, str]] = []
        self.form_open = False
        self.deepest = 2  # <html><body>
        self.in_head = True
        self.head_noscript = False
        #: Stack indexes of cells that have no marker (see _cell_marked).
        self.unmarked_cells: set[int] = set()
        #: Added to every depth: lexbor's handling of the formatting list around <template>
        #: is not modelled exactly, so each formatting element opened in a template, and
        #: each one active when a template ends, may be worth one more level.
        self.slack = 0
        #: Steps spent in the few walks that are not O(1); bounded to keep the scan linear.
        self.work_left = 8 * len(html) + 1_000_000

    # --- the stack ----------------------------------------------------------------------

    def _spend(self, steps: int) -> None:
        self.work_left -= steps
        if self.work_left < 0:
            raise ParseError("malformed", "HTML too convoluted to check its nesting")

    def _created(self, depth: int) -> None:
        depth += self.slack
        if depth > self.deepest:
            self.deepest = depth
            if self.limit is not None and depth > self.limit:
                raise ParseError("malformed", f"HTML nested more than {self.limit} levels deep")

    def _push(self, name: str) -> int:
        depth = (self.depths[-1] if self.depths else 2) + 1
        self._created(depth)
        index = len(self.names)
        ident = 0
        if name in _FORMATTING:  # only the active formatting list needs to find elements
            self.next_id += 1
            ident = self.next_id
            self.index_of[ident] = index
        self.names.append(name)
        self.depths.append(depth)
        self.ids.append(ident)
        self.html_at.append(index if _NS not in name else (self.html_at[-1] if self.html_at else -1))
        positions = self.where.get(name)
        if positions is None:
            self.where[name] = [index]
        else:
            positions.append(index)
        for scope in _MEMBERSHIP.get(name, ()):
            self.marks[scope].append(index)
        return ident

    def _leaf(self) -> None:
        self._created((self.depths[-1] if self.depths else 2) + 1)

    def _pop_to(self, index: int) -> None:
        """Pop the element at ``index`` and everything above it."""
        names, where, marks = self.names, self.where, self.marks
        if self.unmarked_cells:
            self.unmarked_cells = {cell for cell in self.unmarked_cells if cell < index}
        for position in range(len(names) - 1, index - 1, -1):
            name = names[position]
            if name != _GONE:
                where[name].pop()
                for scope in _MEMBERSHIP.get(name, ()):
                    marks[scope].pop()
            ident = self.ids[position]
            if ident:
                del self.index_of[ident]
        del names[index:], self.depths[index:], self.ids[index:], self.html_at[index:]

    def _remove(self, index: int) -> None:
        """Take an element out of the middle of the stack (the parser does, for <form> and in
        the adoption agency).  It stays as a placeholder that matches nothing, so indexes
        hold; the elements above keep the depth they were created at."""
        name = self.names[index]
        if name == _GONE:
            return
        self.where[name].remove(index)
        for scope in _MEMBERSHIP.get(name, ()):
            self.marks[scope].remove(index)
        self.names[index] = _GONE
        ident = self.ids[index]
        if ident:  # a formatting element taken out is no longer open: it may be reopened
            del self.index_of[ident]
            self.ids[index] = 0

    def _find(self, name: str, scope: int) -> int:
        """Index of the nearest open ``name`` not behind a boundary of ``scope``, else -1."""
        positions = self.where.get(name)
        if not positions:
            return -1
        last = positions[-1]
        if scope >= 0:
            boundaries = self.marks[scope]
            if boundaries and boundaries[-1] > last:
                return -1
        return last

    def _close(self, name: str, scope: int) -> bool:
        index = self._find(name, scope)
        if index < 0:
            return False
        self._pop_to(index)
        return True

    def _implied_ends(self, keep: str = "") -> None:
        names = self.names
        while names and names[-1] in _IMPLIED_END and names[-1] != keep:
            self._pop_to(len(names) - 1)

    def _close_p(self) -> None:
        if self._find("p", _IN_BUTTON) >= 0:
            self._implied_ends("p")
            self._close("p", _IN_BUTTON)

    def _cell_marked(self) -> bool:
        """Whether the innermost cell (or caption) put a marker in the formatting list:
        lexbor puts none for a cell straight in a template, and so clears none for it."""
        cell = max((self.where[n][-1] for n in ("td", "th", "caption") if self.where.get(n)), default=-1)
        return cell not in self.unmarked_cells

    def _table_context(self) -> str:
        """Which table rules apply: the nearest table-ish open element, "" outside tables."""
        context = self.marks[_CONTEXT]
        return self.names[context[-1]] if context else ""

    def _clear_to(self, names: tuple[str, ...]) -> None:
        """Pop until the current node is one of ``names``."""
        target = max((self.where[n][-1] for n in names if self.where.get(n)), default=-1)
        if target + 1 < len(self.names):
            self._pop_to(target + 1)

    # --- active formatting elements ---------------------------------------------------

    def _clear_formatting_to_marker(self) -> None:
        while self.formatting:
            entry = self.formatting.pop()
            if entry[0] == _MARKER:
                break

    def _reconstruct(self) -> None:
        formatting = self.formatting
        if not formatting:
            return
        start = len(formatting)
        index_of = self.index_of
        while start > 0:
            entry_id = formatting[start - 1][0]
            if entry_id == _MARKER or entry_id in index_of:
                break
            start -= 1
        self._spend(len(formatting) - start)
        for index in range(start, len(formatting)):
            _old, name, attributes = formatting[index]
            formatting[index] = (self._push(name), name, attributes)

    def _add_formatting(self, element: int, name: str, attributes: str) -> None:
        same = steps = 0
        for index in range(len(self.formatting) - 1, -1, -1):
            steps += 1
            entry = self.formatting[index]
            if entry[0] == _MARKER:
                break
            if entry[1] == name and entry[2] == attributes:
                same += 1
                if same == 3:  # the "Noah's Ark" clause: at most three alike
                    del self.formatting[index]
                    break
        self._spend(steps)
        self.formatting.append((element, name, attributes))

    def _formatting_end(self, name: str) -> None:
        """``</b>`` and co.: the adoption agency's effect on the stack, rounded upwards."""
        entry_index = -1
        for index in range(len(self.formatting) - 1, -1, -1):
            entry = self.formatting[index]
            if entry[0] == _MARKER:
                break
            if entry[1] == name:
                entry_index = index
                break
        self._spend(len(self.formatting) - entry_index)
        if entry_index < 0:
            self._any_other_end(name)
            return
        element = self.formatting[entry_index][0]
        if element not in self.index_of:
            del self.formatting[entry_index]
            return
        index = self.index_of[element]
        boundaries = self.marks[_IN_SCOPE]
        if boundaries and boundaries[-1] > index:
            return  # not in scope: ignored
        del self.formatting[entry_index]
        specials = self.marks[_SPECIALS]
        if not specials or specials[-1] < index:
            self._pop_to(index)
            return
        # A furthest block: the parser takes the element out of the stack, and the elements
        # between it and the block that are not active formatting elements too, moves the
        # block up to the element's parent and wraps the block's children in a clone: no
        # open element ends up deeper than it was, so removing them is an upper bound.
        listed = {entry[0] for entry in self.formatting}
        self._spend(len(self.formatting))
        self._remove(index)
        start = index
        # The parser repeats this (up to eight times) with the clone it leaves just above
        # the block: without a special element further up, that round pops everything
        # above the block.
        for _round in range(8):
            later = bisect.bisect_right(specials, start)
            if later >= len(specials):
                self._pop_to(start + 1)
                return
            block = specials[later]
            self._spend(block - start)
            for between in range(start + 1, block):
                if not self.ids[between] or self.ids[between] not in listed:
                    self._remove(between)
            start = block

    # --- tokens -----------------------------------------------------------------------

    def _foreign(self) -> str:
        """The namespace prefix of the current node when foreign rules apply, else ""."""
        if not self.names:
            return ""
        top = self.names[-1]
        colon = top.find(_NS)
        return top[: colon + 1] if colon > 0 else ""

    def _leave_head(self) -> None:
        if self.head_noscript:
            self._close("noscript", _ANYWHERE)
            self.head_noscript = False
        self.in_head = False

    def _start_tag(self, name: str, attributes: str, self_closing: bool) -> str:
        """Apply a start tag; returns the raw-text element it opened ("" for none)."""
        if self.in_head:
            if self.head_noscript and name not in _HEAD_NOSCRIPT:
                self._close("noscript", _ANYWHERE)
                self.head_noscript = False
            if name == "noscript" and not self.head_noscript:
                self._push("noscript")
                self.head_noscript = True
                return ""
            if name not in _HEAD and name not in ("html", "head"):
                self._leave_head()
        if self.names:
            top = self.names[-1]
            prefix = self._foreign()
            if prefix:
                point = (
                    (top in _MATH_TEXT_POINTS and name not in ("mglyph", "malignmark"))
                    or (top == _ANNOTATION and name == "svg")
                    or top in _HTML_POINTS
                    or top == _HTML_ANNOTATION_POINT
                )
                if not point:
                    breakout = name in _BREAKOUT or (name == "font" and _FONT_BREAKOUT.search(attributes))
                    if not breakout:
                        self._push(prefix + name.lower() + self._annotation(prefix, name, attributes))
                        if self_closing:
                            self._pop_to(len(self.names) - 1)
                        return ""
                    while self.names and self._foreign() and not self._integration_point():
                        self._pop_to(len(self.names) - 1)
        return self._html_start(name, attributes, self_closing)

    def _annotation(self, prefix: str, name: str, attributes: str) -> str:
        if prefix == "math" + _NS and name == "annotation-xml" and _HTML_ANNOTATION.search(attributes + " "):
            return _NS + "html"
        return ""

    def _integration_point(self) -> bool:
        top = self.names[-1]
        return top in _MATH_TEXT_POINTS or top in _HTML_POINTS or top == _HTML_ANNOTATION_POINT

    def _html_start(self, name: str, attributes: str, self_closing: bool) -> str:
        if name in ("html", "body", "head"):
            return ""
        if name in ("svg", "math"):
            self._reconstruct()
            self._push(name + _NS + name)
            if self_closing:
                self._pop_to(len(self.names) - 1)
            return ""
        if (name in _TABLE_PARTS or name == "table") and self._table_start(name):
            return ""
        if name in ("select", "input") and self._close("select", _IN_SCOPE) and name == "select":
            return ""  # <select> in a select closes it, <input> closes it and follows it
        if name == "form" and self.form_open and not self.where.get("template"):
            return ""  # a form inside a form is ignored
        if name in _VOID:
            if name == "hr":
                self._close_p()
            else:
                self._reconstruct()
            self._leaf()
            return ""
        if name in _CLOSES_P:
            self._close_p()
            if name in _HEADINGS and self.names and self.names[-1] in _HEADINGS:
                self._pop_to(len(self.names) - 1)
            if name == "form":
                self.form_open = not self.where.get("template")
            if name == "plaintext":
                self._push(name)
                return "plaintext"
            if name == "xmp":
                self._reconstruct()
                self._push(name)
                return name
            self._push(name)
            return ""
        if name == "li" or name in ("dd", "dt"):
            # The nearest open li (dd, dt) closes, unless a special element other than
            # address, div and p comes first (li, dd and dt are special themselves).
            targets = ("li",) if name == "li" else ("dd", "dt")
            nearest = max((self.where[t][-1] for t in targets if self.where.get(t)), default=-1)
            stops = self.marks[_LI_STOP]
            if nearest >= 0 and stops and stops[-1] == nearest:
                self._implied_ends(self.names[nearest])
                self._pop_to(min(nearest, len(self.names)))
            self._close_p()
            self._push(name)
            return ""
        if name in ("rb", "rtc", "rp", "rt"):
            if self._find("ruby", _IN_SCOPE) >= 0:
                self._implied_ends("rtc" if name in ("rp", "rt") else "")
            self._push(name)
            return ""
        if name == "button" and self._find("button", _IN_SCOPE) >= 0:
            self._implied_ends()
            self._close("button", _IN_SCOPE)
        elif name in ("option", "optgroup"):
            if self._find("select", _IN_SCOPE) >= 0:
                # inside a select lexbor closes p, dt, option... on top; an option stays in
                # its optgroup, an optgroup closes the one before
                self._implied_ends("optgroup" if name == "option" else "")
            elif self.names and self.names[-1] == "option":
                self._pop_to(len(self.names) - 1)
        elif name == "nobr" and self._find("nobr", _IN_SCOPE) >= 0:
            self._reconstruct()
            self._formatting_end(name)
        elif name == "a" and any(e[1] == name for e in self._formatting_since_marker()):
            # An active <a> is closed first, and taken out even when out of scope.
            self._formatting_end(name)
            for entry in self._formatting_since_marker():
                if entry[1] == name:
                    self.formatting.remove(entry)
                    if entry[0] in self.index_of:
                        self._remove(self.index_of[entry[0]])
        self._reconstruct()
        element = self._push(name)
        if name in _FORMATTING:
            if self.where.get("template"):
                self.slack += 1
            self._add_formatting(element, name, attributes.strip())
        elif name in ("applet", "marquee", "object", "template"):
            self.formatting.append((_MARKER, "", ""))
        if name == "script":
            return "script"
        if name in _RAWTEXT:
            return name
        return ""

    def _formatting_since_marker(self) -> list[tuple[int, str, str]]:
        entries: list[tuple[int, str, str]] = []
        for entry in reversed(self.formatting):
            if entry[0] == _MARKER:
                break
            entries.append(entry)
        self._spend(len(entries))
        return entries

    def _table_start(self, name: str) -> bool:
        """Table tags by the table insertion modes; True when handled here."""
        context = self._table_context()
        if context == "colgroup" and name != "col":
            self._close("colgroup", _IN_TABLE)
            context = self._table_context()
        if context in ("", "td", "th", "caption"):
            if name == "table":
                return False  # nested table: the in-body rules
            if context == "":
                return True  # table parts outside a table are ignored
            marked = self._cell_marked()
            if context in ("td", "th"):
                # Close the cell, then read the tag in the row.
                self._implied_ends()
                if not self._close(context, _IN_TABLE):
                    return True  # the cell is out of scope: ignored
            elif not self._close("caption", _IN_TABLE):
                return True
            if marked:
                self._clear_formatting_to_marker()
            return self._table_start(name)
        if context == "template":
            self._push(name)
            if name in ("td", "th"):
                self.unmarked_cells.add(len(self.names) - 1)
            if name == "col":
                self._pop_to(len(self.names) - 1)
            elif name == "caption":
                # lexbor puts no marker for a cell straight in a template (fewer markers
                # only means more reopening, the safe side).
                self.formatting.append((_MARKER, "", ""))
            return True
        if name == "table":
            if not self._close("table", _IN_TABLE):
                return True  # no table in table scope: ignored
            return self._table_start("table") if self._table_context() else False
        if context == "table":
            self._clear_to(("table", "template"))
            if name in ("td", "th", "tr"):
                self._push("tbody")
            elif name == "col":
                self._push("colgroup")
        elif context in _SECTIONS:
            self._clear_to(("tbody", "thead", "tfoot", "template"))
            if name in _SECTIONS or name in ("caption", "colgroup", "col"):
                self._pop_to(len(self.names) - 1)
                return self._table_start(name)
        elif context == "tr":
            self._clear_to(("tr", "template"))
            if name not in ("td", "th"):
                self._pop_to(len(self.names) - 1)
                return self._table_start(name)
        if name in ("td", "th") and self.names and self.names[-1] in _SECTIONS | {"tbody"}:
            self._push("tr")
        if name in ("td", "th") and self.names and self.names[-1] == "table":
            self._push("tbody")
            self._push("tr")
        self._push(name)
        if name == "col":
            self._pop_to(len(self.names) - 1)
        elif name in ("td", "th", "caption"):
            self.formatting.append((_MARKER, "", ""))
        return True

    def _any_other_end(self, name: str) -> None:
        names = self.names
        for index in range(len(names) - 1, -1, -1):
            node = names[index]
            if node == name:
                self._implied_ends(name)
                self._pop_to(min(index, len(self.names)))
                return
            if node in _SPECIAL:
                return

    def _end_tag(self, name: str) -> None:
        if self.in_head:
            if name == "noscript" and self.head_noscript:
                self._close("noscript", _ANYWHERE)
                self.head_noscript = False
                return
            if name in ("head", "body", "html", "br"):
                self._leave_head()
            elif name != "template":
                return  # other end tags in the head are ignored
        prefix = self._foreign()
        if prefix:
            if name in ("br", "p"):
                while self.names and self._foreign() and not self._integration_point():
                    self._pop_to(len(self.names) - 1)
            else:
                # The nearest foreign element of that name above the nearest HTML element
                # closes; otherwise the HTML rules decide.
                keys = ["svg" + _NS + name, "math" + _NS + name]
                if name == "annotation-xml":
                    keys.append(_HTML_ANNOTATION_POINT)
                nearest = max((self.where[k][-1] for k in keys if self.where.get(k)), default=-1)
                if nearest > self.html_at[-1]:
                    self._pop_to(nearest)
                    return
        self._html_end(name)

    def _html_end(self, name: str) -> None:
        if name in ("html", "body", "head"):
            return
        if name == "p":
            if self._find("p", _IN_BUTTON) < 0:
                self._leaf()  # </p> without a p makes an empty one
            else:
                self._implied_ends("p")
                self._close("p", _IN_BUTTON)
        elif name == "br":
            self._reconstruct()
            self._leaf()
        elif name == "li":
            if self._find("li", _IN_LIST) >= 0:
                self._implied_ends("li")
                self._close("li", _IN_LIST)
        elif name in ("dd", "dt"):
            if self._find(name, _IN_SCOPE) >= 0:
                self._implied_ends(name)
                self._close(name, _IN_SCOPE)
        elif name in _HEADINGS:
            indexes = [self._find(h, _IN_SCOPE) for h in _HEADINGS]
            nearest = max(indexes)
            if nearest >= 0:
                self._implied_ends()
                self._pop_to(min(nearest, len(self.names)))
        elif name == "form":
            if self.where.get("template"):
                if self._find("form", _IN_SCOPE) >= 0:
                    self._implied_ends()
                    self._close("form", _IN_SCOPE)
                return
            was_open, self.form_open = self.form_open, False
            index = self._find("form", _IN_SCOPE) if was_open else -1
            if index >= 0:
                self._implied_ends()
                index = self._find("form", _IN_SCOPE)
                if index >= 0:
                    self._remove(index)
        elif name in _BLOCK_END:
            if self._find(name, _IN_SCOPE) >= 0:
                self._implied_ends()
                self._close(name, _IN_SCOPE)
        elif name in ("applet", "marquee", "object"):
            if self._find(name, _IN_SCOPE) >= 0:
                self._implied_ends()
                self._close(name, _IN_SCOPE)
                self._clear_formatting_to_marker()
        elif name in _FORMATTING:
            self._formatting_end(name)
        elif name in ("table", "tbody", "thead", "tfoot", "tr", "td", "th", "caption", "template"):
            scope = _IN_TABLE if name != "template" else _ANYWHERE
            if self._find(name, scope) >= 0:
                # A cell or caption closed on the way clears its formatting elements, once.
                closes_cell = name == "template" or (
                    (name in ("td", "th", "caption") or self._table_context() in ("td", "th", "caption"))
                    and self._cell_marked()
                )
                self._implied_ends()
                self._close(name, scope)
                if name == "template":
                    self.slack += 1 + sum(1 for entry in self.formatting if entry[0] != _MARKER)
                if closes_cell:
                    self._clear_formatting_to_marker()
        elif name == "colgroup":
            if self.names and self.names[-1] == "colgroup":
                self._pop_to(len(self.names) - 1)
        elif name in ("option", "optgroup", "frameset"):
            # A frameset is often ignored: its end tag closes only the current node.
            if self.names and self.names[-1] == name:
                self._pop_to(len(self.names) - 1)
        elif name not in _VOID:
            self._any_other_end(name)

    # --- the scan ---------------------------------------------------------------------

    def _skip_raw(self, name: str, at: int) -> int:
        """Where the tokenizer leaves raw text ``name`` that started at ``at`` (-1: never)."""
        html = self.html
        if name == "plaintext":
            return -1
        if name == "script":
            escaped = double = False
            position = at
            while (match := _SCRIPT_STATES.search(html, position)) is not None:
                token = match.group(0)
                position = match.end()
                if token == "<!--":
                    escaped = True
                    position = match.start() + 2  # "<!-->" ends the escape it starts
                elif token == "-->":
                    escaped = double = False
                elif match.group(1):  # </script
                    if double:
                        double = False
                    else:
                        return self._end_of_tag(match.start() + 2)
                elif escaped:  # <script inside an escape
                    double = True
            return -1
        end = re.compile(r"</" + name + r"(?=[\t\n\f\r />])", re.IGNORECASE).search(html, at)
        return -1 if end is None else self._end_of_tag(end.start() + 2)

    def _end_of_tag(self, name_at: int) -> int:
        match = _TAG.match(self.html, name_at)
        if match is None or not match.group(4):
            return -1
        return match.end()

    def run(self) -> int:
        html = self.html
        length = len(html)
        position = 0
        find = html.find
        while True:
            lt = find("<", position)
            if lt < 0:
                if position < length:
                    if self.in_head and not html[position:].isspace():
                        self._leave_head()
                    if not self._foreign():
                        self._reconstruct()
                break
            if lt > position:
                if self.in_head and not html[position:lt].isspace():
                    self._leave_head()
                if self.formatting and not self._foreign():
                    self._reconstruct()
            following = html[lt + 1 : lt + 2]
            if following == "!":
                if html.startswith("<!--", lt):
                    if html.startswith(">", lt + 4):
                        position = lt + 5
                    elif html.startswith("->", lt + 4):
                        position = lt + 6
                    else:
                        end = _COMMENT_END.search(html, lt + 4)
                        if end is None:
                            break
                        position = end.end()
                elif self._foreign() and html.startswith("<![CDATA[", lt):
                    end_at = find("]]>", lt + 9)
                    if end_at < 0:
                        break
                    position = end_at + 3
                else:
                    end_at = find(">", lt + 2)
                    if end_at < 0:
                        break
                    position = end_at + 1
                continue
            if following == "?":
                end_at = find(">", lt + 2)
                if end_at < 0:
                    break
                position = end_at + 1
                continue
            closing = following == "/"
            match = _TAG.match(html, lt + 2 if closing else lt + 1)
            if match is None:
                if closing:
                    if html.startswith(">", lt + 2):
                        position = lt + 3
                        continue
                    if lt + 2 >= length:
                        break
                    end_at = find(">", lt + 2)  # </ + not a letter: a bogus comment
                    if end_at < 0:
                        break
                    position = end_at + 1
                    continue
                position = lt + 1  # "<" as text
                if self.in_head:
                    self._leave_head()
                if not self._foreign():
                    self._reconstruct()
                continue
            if not match.group(4):
                break  # a tag cut off by the end of the document is dropped
            position = match.end()
            name = match.group(1).lower()
            if "\x00" in name:
                name = name.replace("\x00", "\ufffd")
            names = self.names
            # Most tags on a page are plain elements read by the in-body rules: done here.
            plain = not self.in_head and (not names or _NS not in names[-1])
            if closing:
                if plain and name not in _HANDLED_END:
                    if names and names[-1] == name:
                        self._pop_to(len(names) - 1)
                    else:
                        self._any_other_end(name)
                else:
                    self._end_tag(name)
                continue
            if plain and name not in _HANDLED_START:
                if self.formatting:
                    self._reconstruct()
                self._push(name)
                continue
            raw = self._start_tag(name, match.group(2), match.group(3).endswith("/"))
            if raw == "plaintext":
                if position < length:
                    self._reconstruct()  # the rest is text, read in body
                break
            if raw:
                position = self._skip_raw(raw, position)
                if position < 0:
                    break
                self._close(raw, _ANYWHERE)
        return self.deepest


#: A run of identical, attribute-quote-free ``<name>text</name>`` units (see _collapse_runs).
_UNIT_RUN: Final = re.compile(r"(<([A-Za-z][A-Za-z0-9-]*)(?:[\t\n\f\r ][^<>\"'=]*)?>[^<>]*</\2>)\1{2,}")
_NOT_COLLAPSIBLE: Final = (_HANDLED_START | _HANDLED_END) - _FORMATTING


def _collapse_runs(html: str) -> str:
    """Keep two copies of each run of identical ``<x>text</x>`` units of a plain or
    formatting element: that is all the model needs.

    From any state, one such unit leaves the parser in a state that a second unit leaves
    unchanged (the first may reopen formatting elements, leave the head, break out of
    SVG or close a stray ``<a>``; the second only opens and closes its own element), so
    the rest of the run cannot change the depth.  The unit holds no quote, ``<`` or
    ``>`` besides its own tags, so whatever tokenizer state the run starts in (text,
    comment, raw text, an attribute value) ends the same after two copies.  Floods of
    tiny elements, the cheap way to make a page huge, then cost the scan nothing.
    """

    def keep_two(run: re.Match[str]) -> str:
        if run.group(2).lower() in _NOT_COLLAPSIBLE:
            return run.group(0)
        return run.group(1) * 2

    return _UNIT_RUN.sub(keep_two, html)


def html_nesting_depth(html: str, limit: int | None = None) -> int:
    """An upper bound of the depth of the tree an HTML5 parser builds from ``html``.

    Counted as :class:`_HtmlDepth` describes, with ``<html>`` at depth 1 and ``<body>`` at
    2; when ``limit`` is given, raises ParseError("malformed") as soon as it is passed.
    """
    return _HtmlDepth(html, limit).run()


def check_html_nesting(html: str, what: str = "HTML") -> None:
    """Raise ParseError("malformed") for HTML nested deeper than :data:`MAX_HTML_DEPTH`.

    Every HTML fragment goes through this before lexbor sees it: pages, and the HTML in
    feed entries.  One ``<`` adds at most :data:`_LEVELS_PER_TAG` levels, so a fragment
    with few of them costs one ``str.count``; others get the linear scan of
    :func:`html_nesting_depth` (runs of identical tiny elements scanned as two copies, see
    :func:`_collapse_runs`).  Markup that would make the few non-constant steps of the
    scan add up past a linear budget (thousands of misnested formatting elements) is
    refused as "too convoluted": it is hostile, and lexbor would pay for it too.
    """
    if html.count("<") * _LEVELS_PER_TAG + 3 <= MAX_HTML_DEPTH:
        return
    try:
        html_nesting_depth(_collapse_runs(html), MAX_HTML_DEPTH)
    except ParseError as exc:
        raise ParseError("malformed", f"{what}: {exc.message}") from None


#: Deeper than this, JSON is refused: a JSON Feed is 4 levels deep and JSON-LD rarely 10, while
#: a deep document costs the decoder (and anything that walks it) stack and time.
MAX_JSON_DEPTH: Final = 64
#: A string as the decoder reads it: from its quote to the next unescaped quote, or to the
#: end of the text when none follows (the decoder then fails there, never nesting inside
#: it).  The closing quote used to be required: after an unterminated string every escaped
#: quote became a new start that scanned to the end again (``"`` + ``\\"`` * n is n**2:
#: 64 KB took 15 s).  Possessive runs: one way to read any text.
_JSON_STRING: Final = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"?', re.DOTALL)


_NOT_BRACKETS: Final = re.compile(r"[^\[\]{}]+")
_OPENERS: Final = frozenset("[{")


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``text`` nests brackets deeper than ``limit``, outside strings.

    No parser runs: strings are cut out (an unrolled, unambiguous pattern; an unterminated
    one runs to the end, as for the decoder), what is left is reduced to its brackets (two
    C-speed substitutions), and one pass counts the depth, stopping as soon as it passes
    ``limit``.  Any opener counts against any closer, and a closer at depth 0 is ignored:
    for valid JSON that is its depth, and broken JSON is refused by the decoder anyway.

    The count used to remove the innermost pairs one level per pass, ``limit`` passes over
    the whole text: a megabyte of 60-deep bracket pyramids took 1.5 s (~1.5 µs a
    character); the single pass costs ~40 ns a bracket, what the decoder itself pays.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKETS.sub("", _JSON_STRING.sub("", text))
    depth = 0
    for bracket in brackets:
        if bracket in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif depth:
            depth -= 1
    return False


def check_json_depth(text: str, what: str = "JSON") -> None:
    """Raise ParseError("malformed") for JSON nested deeper than :data:`MAX_JSON_DEPTH`."""
    if json_depth_exceeds(text):
        raise ParseError("malformed", f"{what} nested more than {MAX_JSON_DEPTH} levels deep")
