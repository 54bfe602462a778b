"""Search across every transcript: the FTS5 index in the library, the query language, the CLI and the window."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from worker.library import Library
from worker.options import TranscriptionOptions
from worker.search import QueryError, parse_query, search
from worker.transcript import Segment, Transcript


def _transcript(*texts: str, step: float = 2.0) -> Transcript:
    return Transcript(
        segments=[Segment(i, i * step, i * step + step - 0.5, text) for i, text in enumerate(texts)],
        language="en", duration=len(texts) * step, model="tiny.en", backend="local",
    )


def _done_job(library: Library, name: str, *texts: str) -> int:
    job = library.add_job(f"/recordings/{name}", TranscriptionOptions(), "local")
    library.save_transcript(job.id, _transcript(*texts))
    library.update_job(job.id, status="done")
    return job.id


def _found(library: Library, query: str) -> list[tuple[str, int]]:
    return [(hit.name, hit.segment) for hit in search(library, query)]


# --- the index ---------------------------------------------------------------------------------------------

def test_words_phrases_prefixes_case_and_accents(library):
    _done_job(library, "talk.flac", "And so, my fellow Americans,", "ask not what your country can do for you.")
    _done_job(library, "cafe.wav", "Un café au lait à Montréal, s'il vous plaît.", "NAÏVE questions welcome")

    assert _found(library, "americans") == [("talk.flac", 0)]
    assert _found(library, "AMERICANS fellow") == [("talk.flac", 0)]  # every word, any order, any case
    assert _found(library, '"ask not what"') == [("talk.flac", 1)]
    assert _found(library, '"not ask"') == []  # a phrase keeps its order
    assert _found(library, "count*") == [("talk.flac", 1)]
    assert _found(library, '"your coun"*') == [("talk.flac", 1)]
    assert _found(library, "cafe montreal") == [("cafe.wav", 0)]  # accents ignored in the query...
    assert _found(library, "Café") == [("cafe.wav", 0)]
    assert _found(library, "naive") == [("cafe.wav", 1)]  # ...and in the text
    assert _found(library, "kangaroo") == []


def test_hit_carries_file_time_text_and_a_highlighted_snippet(library):
    job_id = _done_job(library, "talk.flac", "first words", "my fellow Americans, ask not")
    [hit] = search(library, "fellow amer*")
    assert (hit.job_id, hit.path, hit.segment, hit.start) == (job_id, "/recordings/talk.flac", 1, 2.0)
    assert hit.text == "my fellow Americans, ask not"
    assert hit.snippet_parts() == [("my ", False), ("fellow", True), (" ", False), ("Americans", True),
                                   (", ask not", False)]


def test_edited_text_wins_and_revert_brings_back_the_original(library):
    job_id = _done_job(library, "talk.flac", "the quick brown fox", "jumps over")
    edited = _transcript("the quick red fox", "jumps over")
    library.save_edit(job_id, edited)
    assert _found(library, "red") == [("talk.flac", 0)]
    assert _found(library, "brown") == []
    library.revert_edit(job_id)
    assert _found(library, "brown") == [("talk.flac", 0)]
    assert _found(library, "red") == []
    library.save_transcript(job_id, _transcript("a new run entirely"))  # a re-run replaces the index
    assert _found(library, "brown") == [] and _found(library, "entirely") == [("talk.flac", 0)]


def test_removed_job_leaves_the_index(library):
    keep = _done_job(library, "keep.flac", "shared words here")
    gone = _done_job(library, "gone.flac", "shared words there")
    assert {hit.job_id for hit in search(library, "shared")} == {keep, gone}
    library.remove_job(gone)
    assert {hit.job_id for hit in search(library, "shared")} == {keep}
    with library._lock:  # the FTS index agrees with its content table
        library._db.execute("INSERT INTO segments_fts (segments_fts) VALUES ('integrity-check')")


def test_streamed_segments_are_searchable_while_the_job_runs(library):
    job = library.add_job("/recordings/live.flac", TranscriptionOptions(), "local")
    library.update_job(job.id, status="running")
    library.append_segments(job.id, [Segment(0, 0.0, 2.0, "first streamed words")])
    library.append_segments(job.id, [Segment(0, 2.0, 4.0, "second batch"), Segment(1, 4.0, 6.0, "third line")])
    assert [(h.segment, h.start) for h in search(library, "third")] == [(2, 4.0)]

    library.append_segments(job.id, [Segment(0, 0.0, 2.0, "restarted from the top")])  # a retry starts over
    assert _found(library, "third") == [] and _found(library, "restarted") == [("live.flac", 0)]

    library.save_transcript(job.id, _transcript("the final text"))  # the saved transcript replaces the stream
    library.update_job(job.id, status="done")
    assert _found(library, "restarted") == [] and _found(library, "final") == [("live.flac", 0)]
    library.append_segments(job.id, [Segment(0, 0.0, 1.0, "late stray segment")])  # saved: index kept as is
    assert _found(library, "stray") == [] and _found(library, "final") == [("live.flac", 0)]


def test_partial_segments_of_a_job_that_failed_are_not_hits(library):
    job = library.add_job("/recordings/broken.flac", TranscriptionOptions(), "local")
    library.update_job(job.id, status="running")
    library.append_segments(job.id, [Segment(0, 0.0, 2.0, "half a sentence")])
    library.update_job(job.id, status="failed")
    assert _found(library, "sentence") == []
    library.append_segments(12345, [Segment(0, 0.0, 1.0, "no such job")])  # a removed job: nothing, no error


def test_migration_indexes_transcripts_of_an_older_library(tmp_path):
    """A library written before search existed (schema version 1) is indexed when it opens."""
    from worker.library import MIGRATIONS

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute("INSERT INTO jobs (id, path, backend, options, status, position, created) "
               "VALUES (1, '/old/interview.flac', 'local', '{}', 'done', 1, 0)")
    original = json.dumps(_transcript("an original sentence", "more words").to_dict())
    edited = json.dumps(_transcript("an edited sentence", "more words").to_dict())
    db.execute("INSERT INTO transcripts VALUES (1, ?, ?, 0)", (original, edited))
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()

    library = Library(path)
    try:
        assert _found(library, "edited") == [("interview.flac", 0)]
        assert _found(library, "original") == []
        assert _found(library, "more") == [("interview.flac", 1)]
    finally:
        library.close()


# --- the query language ------------------------------------------------------------------------------------

@pytest.mark.parametrize("query, reason", [
    ('"unclosed phrase', "unclosed quote"),
    ("", "nothing to search for"),
    ("   ", "nothing to search for"),
    ("!!! ---", "nothing to search for"),
    ("*", "'*' needs a few letters"),
    ("a*b", "'*' only goes at the end"),
    ('"phrase"here', "space after the closing quote"),
])
def test_bad_queries_get_a_one_line_reason(library, query, reason):
    with pytest.raises(QueryError) as caught:
        search(library, query)
    assert reason in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("query", ["AND", "OR NOT", "NEAR(a b)", "col:umn", "^start", "a + b", "-x", "(x)", "it's"])
def test_fts_syntax_in_a_query_is_searched_as_text_never_run(library, query):
    _done_job(library, "talk.flac", "and or not near a b column start x")
    search(library, query)  # no sqlite3.OperationalError, no QueryError for text with letters in it


def test_parse_query_quotes_every_term():
    assert parse_query('fellow "ask not" amer*') == '"fellow" AND "ask not" AND "amer"*'
    assert parse_query('"ask not"* country') == '"ask not"* AND "country"'
