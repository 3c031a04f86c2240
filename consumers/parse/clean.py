"""Text hygiene for every field of an item, whatever shape or source it came from.

(Being filled in: entity decoding, control characters, URL schemes.)
"""

from __future__ import annotations

from ingestor.models import NewsItem

__all__ = ["clean_item"]


def clean_item(item: NewsItem) -> NewsItem:
    """The item with every text field cleaned; its content hash follows the cleaned text."""
    return item
