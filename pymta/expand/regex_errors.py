"""PCRE2's wording for regular-expression errors that Python's ``re`` reports.

Exim compiles patterns with PCRE2 and prints its message and offset
("missing closing parenthesis at offset 3"); pymta compiles them with ``re``, whose
messages differ.  The common errors are reworded here; any other keeps Python's text.
"""
from __future__ import annotations

import re

# Python's message (start of) -> (PCRE2's message, where PCRE2 puts the offset):
# "end" is the end of the pattern, "pos" Python's position, "range" the range's end.
_WORDING: tuple[tuple[str, str, str], ...] = (
    ("missing ), unterminated subpattern", "missing closing parenthesis", "end"),
    ("unbalanced parenthesis", "unmatched closing parenthesis", "pos"),
    ("nothing to repeat", "quantifier does not follow a repeatable item", "pos"),
    ("multiple repeat", "quantifier does not follow a repeatable item", "pos"),
    ("unterminated character set", "missing terminating ] for character class", "end"),
    ("bad escape (end of pattern)", "\\ at end of pattern", "end"),
    ("missing >, unterminated name",
     "syntax error in subpattern name (missing terminator?)", "end"),
    ("bad character range", "range out of order in character class", "range"),
)


def pcre_error_text(error: re.error, pattern: str, translated: str) -> str:
    """The text Exim shows for a pattern ``re`` refused (``translated`` is what ``re``
    was given; positions are only meaningful when it is the pattern itself)."""
    for python, pcre, where in _WORDING:
        if not error.msg.startswith(python):
            continue
        if where == "end":
            return f"{pcre} at offset {len(pattern)}"
        if translated != pattern or error.pos is None:
            break
        offset = error.pos + 2 if where == "range" else error.pos
        return f"{pcre} at offset {offset}"
    return str(error)
