"""The parse stage's pure core: one fetched document in, news items or a classified error out.

Everything here but the stage's shell (``service``: news.raw in, news.items out; ``workers``:
the killable parse processes) is free of I/O (no aiohttp, no aiokafka), so the shell stays
thin and every rule is tested without a broker.
"""

from __future__ import annotations

from .dispatch import DEFAULT_MAX_BYTES, parse_document, parse_report, sniff
from .document import FeedFormat, ParseError, ParseFailureReason, ParseLimits, ParseReport, RawDocument
from .htmltext import html_to_text

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FeedFormat",
    "ParseError",
    "ParseFailureReason",
    "ParseLimits",
    "ParseReport",
    "RawDocument",
    "html_to_text",
    "parse_document",
    "parse_report",
    "sniff",
]
