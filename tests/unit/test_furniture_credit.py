"""The photo-credit test of :func:`consumers.parse.furniture.is_caption` reads lines as the
pattern it replaced did.

That pattern, ``\\((?:[^()]{0,120}?(?:WORDS)[^()]{0,120})\\)\\s*$`` with ``re.IGNORECASE``,
backtracked through 120 x 120 ways on a line such as "(" + 298 "/" + ")" (160 µs a line); it
is kept here as the reference the new reading must agree with, on any line.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from consumers.parse import furniture
from consumers.parse.furniture import is_caption

_OLD_CREDIT = re.compile(
    r"\((?:[^()]{0,120}?(?:/|\bvia\b|\bphoto\b|\bфото\b|\bfoto\b|getty|reuters|\bafp\b|\bap\b|\bepa\b"
    r"|anadolu|shutterstock|ukrinform|укрінформ|credit)[^()]{0,120})\)\s*$",
    re.IGNORECASE,
)
_OLD_PHOTO_PREFIX = re.compile(r"^\s*(?:photo|фото|foto|image|illustration)\s*[:/]", re.IGNORECASE)


def _old_is_caption(line: str) -> bool:
    tail = line.rstrip()
    return bool((tail.endswith(")") and _OLD_CREDIT.search(tail[-300:])) or _OLD_PHOTO_PREFIX.match(line))


#: Pieces lines are made of: credit words in odd cases (and with the characters only
#: ``re.IGNORECASE`` takes for their letters), near misses, word characters that break
#: a word boundary, spaces, parentheses.
_PIECES = (
    "(",
    ")",
    "/",
    " ",
    "x",
    "_",
    "1",
    "é",
    "\n",
    "a",
    "p",
    "via",
    "VİA",
    "vıa",
    "photo",
    "PHOTO",
    "фото",
    "ФОТО",
    "фᲂтᲂ",
    "foto",
    "getty",
    "Reuters",
    "REUTERſ",
    "afp",
    "AFP",
    "ap",
    "Ap",
    "epa",
    "anadolu",
    "shutterstock",
    "ſhutterſtoc\u212a",
    "ukrinform",
    "uKrinform",
    "укрінформ",
    "УКРІНФОРМ",
    "credit",
    "CrEdİt",
    "viaa",
    "xap",
    "ap_",
)
_FILLERS = ("x", " ", "/", "ap ", "a", "-", "Getty ")

lines = st.builds(
    lambda parts, filler, count, at, end: "".join(parts[:at]) + filler * count + "".join(parts[at:]) + end,
    st.lists(st.sampled_from(_PIECES), max_size=30),
    st.sampled_from(_FILLERS),
    st.integers(min_value=0, max_value=300),
    st.integers(min_value=0, max_value=30),
    st.sampled_from(("", ")", ") ", ")\n", " )", "(x)")),
)


@settings(max_examples=500, deadline=None)
@given(lines)
@example("(Photo: Olena Hrytsenko/Ukrinform)")
@example("The ministry said the figures were preliminary (as of Monday).")
def test_captions_are_read_as_the_pattern_read_them(line: str) -> None:
    assert is_caption(line) == _old_is_caption(line)


#: Distances of a credit word from either end of the parenthesis: the bounds are at 120.
_DISTANCES = (0, 1, 2, 60, *range(114, 126), 131, 132, 133)


@pytest.mark.parametrize("word", ["/", "via", "ap", "shutterstock", "фото"])
@pytest.mark.parametrize("filler", ["x", " ", "/"])
def test_the_120_character_bounds_are_where_they_were(word: str, filler: str) -> None:
    for before in ("", "y", ")(", "x" * 200):
        for left in _DISTANCES:
            for right in _DISTANCES:
                line = f"{before}({filler * left}{word}{filler * right})"
                assert is_caption(line) == _old_is_caption(line), line


def test_folding_matches_what_ignorecase_matches() -> None:
    """Every character ``re.IGNORECASE`` takes for a letter of a credit word (in all of
    Unicode) folds to that letter, and no other character does; folding keeps positions
    and word characters (so word boundaries stay where they were)."""
    everything = "".join(map(chr, range(0x110000)))
    folded = furniture._fold_credit(everything)  # not ASCII: the translation table
    assert len(folded) == len(everything)
    letters = {ch for word, _whole in furniture._CREDIT_WORDS for ch in word if ch.isalpha()}
    for letter in letters:
        taken = {m.group() for m in re.finditer(re.escape(letter), everything, re.IGNORECASE)}
        folded_to = {everything[m.start()] for m in re.finditer(re.escape(letter), folded)}
        assert folded_to == taken, letter
    for code, letter in furniture._CREDIT_FOLD.items():
        assert re.fullmatch(r"\w", chr(code)) and re.fullmatch(r"\w", letter)
    # ASCII text takes the ``str.lower`` path: the same credit letters come out of it.
    ascii_folded = furniture._fold_credit(everything[:128])
    assert ascii_folded.isascii()
    for plain, table in zip(ascii_folded, folded[:128], strict=True):
        assert (plain if plain in letters else None) == (table if table in letters else None)


def test_no_credit_word_is_a_prefix_of_another() -> None:
    """So at most one matches at a position (the search relies on it)."""
    words = [word for word, _whole in furniture._CREDIT_WORDS]
    assert not [(a, b) for a in words for b in words if a != b and b.startswith(a)]
    assert max(map(len, words)) == furniture._CREDIT_WORD_MAX
