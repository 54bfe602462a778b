"""Search across every transcript of the library: words, "phrases" and prefix* in any case, with or without accents.

The index (SQLite FTS5, tokenizer unicode61 with diacritics removed) lives in the library and is kept current
there; this module turns what a user types into a safe FTS5 expression and the matches into hits.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.library.library import Library

DEFAULT_LIMIT = 50
# The snippet marks its matches with two control characters no transcript contains; views turn them into
# bold, brackets, or nothing (SearchHit.snippet_parts).
MATCH_START, MATCH_END = "\x02", "\x03"
SNIPPET_ELLIPSIS = "…"
SNIPPET_TOKENS = 16


class QueryError(ValueError):
    """A query that cannot be searched; str() is a one-line reason."""


@dataclass(frozen=True)
class SearchHit:
    job_id: int
    path: str
    segment: int  # the segment's index in its transcript
    start: float  # seconds
    text: str  # the whole segment
    snippet: str  # a window of the segment around the matches, marked with MATCH_START/MATCH_END

    @property
    def name(self) -> str:
        return Path(self.path).name

    def snippet_parts(self) -> list[tuple[str, bool]]:
        """The snippet as (text, is_match) runs, in order."""
        parts: list[tuple[str, bool]] = []
        for n, piece in enumerate(self.snippet.split(MATCH_START)):
            matched, _, rest = piece.partition(MATCH_END) if n else ("", "", piece)
            if matched:
                parts.append((matched, True))
            if rest:
                parts.append((rest, False))
        return parts


def _is_token_char(char: str) -> bool:
    """What the unicode61 tokenizer keeps in a token: letters and digits (everything else separates)."""
    return char.isalnum()


def _term(text: str, prefix: bool) -> str | None:
    """One FTS5 string (a word or a phrase), quoted so nothing in it is read as syntax; None when it holds
    nothing searchable (punctuation only)."""
    if not any(_is_token_char(c) for c in text):
        return None
    return '"' + text.replace('"', '""') + '"' + ("*" if prefix else "")


def parse_query(query: str) -> str:
    """What a user typed as an FTS5 expression matching segments that contain every term.

    Terms: plain words, "quoted phrases", and a trailing * for a prefix (word* or "a phrase"*).
    Raises QueryError with a one-line reason for a query that cannot be searched."""
    terms: list[str] = []
    position, length = 0, len(query)
    while position < length:
        char = query[position]
        if char.isspace():
            position += 1
            continue
        if char == '"':
            end = query.find('"', position + 1)
            if end < 0:
                raise QueryError(f'unclosed quote in {query.strip()!r}: end the phrase with "')
            text, position = query[position + 1 : end], end + 1
            prefix = position < length and query[position] == "*"
            position += prefix
            if position < length and not query[position].isspace():
                raise QueryError(f'put a space after the closing quote of "{text}"')
        else:
            end = position
            while end < length and not query[end].isspace() and query[end] != '"':
                end += 1
            text, position = query[position:end], end
            prefix = text.endswith("*")
            text = text[:-1] if prefix else text
            if "*" in text:
                raise QueryError(f"'*' only goes at the end of a word (a prefix), not inside {text + '*' * prefix!r}")
        term = _term(text, prefix)
        if term is not None:
            terms.append(term)
        elif prefix:
            raise QueryError("'*' needs a few letters before it (a prefix such as amer*)")
    if not terms:
        raise QueryError("nothing to search for: type a word, a \"phrase\" or a prefix*")
    return " AND ".join(terms)


def search(library: Library, query: str, limit: int = DEFAULT_LIMIT) -> list[SearchHit]:
    """The segments of every transcript that match `query`, best first (at most `limit`).

    Raises QueryError (one line) for a query that cannot be searched."""
    if limit < 1:
        raise QueryError(f"the limit must be 1 or more, not {limit}")
    expression = parse_query(query)
    try:
        matches = library.search_index.search(expression, limit, (MATCH_START, MATCH_END), SNIPPET_ELLIPSIS, SNIPPET_TOKENS)
    except sqlite3.OperationalError as exc:  # parse_query should leave none; keep the reason to one line
        raise QueryError(f"cannot search for {query.strip()!r}: {str(exc).splitlines()[0]}") from None
    return [
        SearchHit(match.job_id, match.path, match.segment, match.start, match.text, match.snippet)
        for match in matches
    ]



