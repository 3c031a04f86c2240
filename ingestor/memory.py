"""Freed memory handed back to the operating system: glibc's ``malloc_trim``.

CPython keeps small objects in arenas of its own and returns an arena once it is empty; a
larger block (a ``bytes`` over 512 bytes, such as a Kafka record's value) comes from the C
allocator, which keeps what is freed for later and returns little of it.  A fetcher that
takes over partitions holds every fetch-state record of them at once (a few hundred bytes
per feed), then drops them one by one as their feeds are added: afterwards the memory is
free, but still resident (bench/fetch_memory.py at 100,000 feeds: 242 MiB, 175 MiB once
trimmed).  Trimming walks the allocator's free lists (milliseconds) and tells the kernel
which pages it may take back; nothing is moved.  Only glibc has it: elsewhere (musl,
macOS) ``release_free_memory`` does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library the interpreter runs on
    except OSError:
        return None
    trim: Callable[[int], int] | None = getattr(libc, "malloc_trim", None)
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return the C allocator's free pages to the system; whether any were (False without glibc)."""
    return bool(_TRIM(0)) if _TRIM is not None else False
