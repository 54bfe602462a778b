"""Search across every transcript: the FTS5 index in the library, the query language, the CLI and the window."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from worker.core.options import TranscriptionOptions
from worker.library.job_status import JobStatus
from worker.library.jobs import new_lease_owner
from worker.library.library import Library
from worker.library.search import QueryError, parse_query, search
from worker.transcripts.editing import format_timestamp
from worker.transcripts.model import Segment, Transcript


def _transcript(*texts: str, step: float = 2.0) -> Transcript:
    return Transcript(
        segments=[Segment(i, i * step, i * step + step - 0.5, text) for i, text in enumerate(texts)],
        language="en", duration=len(texts) * step, model="tiny.en", backend="local",
    )


def _done_job(library: Library, name: str, *texts: str) -> int:
    job = library.jobs.add(f"/recordings/{name}", TranscriptionOptions(), "local")
    library.transcripts.save(job.id, _transcript(*texts))
    library.jobs.mark_ended(job.id, JobStatus.DONE, finished=time.time())
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
    library.transcripts.save_edit(job_id, edited)
    assert _found(library, "red") == [("talk.flac", 0)]
    assert _found(library, "brown") == []
    library.transcripts.revert_edit(job_id)
    assert _found(library, "brown") == [("talk.flac", 0)]
    assert _found(library, "red") == []
    library.transcripts.save(job_id, _transcript("a new run entirely"))  # a re-run replaces the index
    assert _found(library, "brown") == [] and _found(library, "entirely") == [("talk.flac", 0)]


def test_removed_job_leaves_the_index(library):
    keep = _done_job(library, "keep.flac", "shared words here")
    gone = _done_job(library, "gone.flac", "shared words there")
    assert {hit.job_id for hit in search(library, "shared")} == {keep, gone}
    library.jobs.remove(gone)
    assert {hit.job_id for hit in search(library, "shared")} == {keep}
    with library.database.lock:  # the FTS index agrees with its content table
        library.database.connection.execute("INSERT INTO segments_fts (segments_fts) VALUES ('integrity-check')")


def test_streamed_segments_are_searchable_while_the_job_runs(library):
    job = library.jobs.add("/recordings/live.flac", TranscriptionOptions(), "local")
    library.jobs.claim(job.id, new_lease_owner())
    library.search_index.append(job.id, [Segment(0, 0.0, 2.0, "first streamed words")])
    library.search_index.append(job.id, [Segment(0, 2.0, 4.0, "second batch"), Segment(1, 4.0, 6.0, "third line")])
    assert [(h.segment, h.start) for h in search(library, "third")] == [(2, 4.0)]

    library.search_index.append(job.id, [Segment(0, 0.0, 2.0, "restarted from the top")])  # a retry starts over
    assert _found(library, "third") == [] and _found(library, "restarted") == [("live.flac", 0)]

    library.transcripts.save(job.id, _transcript("the final text"))  # the saved transcript replaces the stream
    library.jobs.mark_ended(job.id, JobStatus.DONE, finished=time.time())
    assert _found(library, "restarted") == [] and _found(library, "final") == [("live.flac", 0)]
    library.search_index.append(job.id, [Segment(0, 0.0, 1.0, "late stray segment")])  # saved: index kept as is
    assert _found(library, "stray") == [] and _found(library, "final") == [("live.flac", 0)]


def test_partial_segments_of_a_job_that_failed_are_not_hits(library):
    job = library.jobs.add("/recordings/broken.flac", TranscriptionOptions(), "local")
    library.jobs.claim(job.id, new_lease_owner())
    library.search_index.append(job.id, [Segment(0, 0.0, 2.0, "half a sentence")])
    library.jobs.mark_ended(job.id, JobStatus.FAILED, finished=time.time(), error="it broke")
    assert _found(library, "sentence") == []
    library.search_index.append(12345, [Segment(0, 0.0, 1.0, "no such job")])  # a removed job: nothing, no error


def test_migration_indexes_transcripts_of_an_older_library(tmp_path):
    """A library written before search existed (schema version 1) is indexed when it opens."""
    from worker.library.migrations import MIGRATIONS

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


# --- acceptance: the real CLI on a real library -----------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def _split_at(transcript: Transcript, phrase: str, replacement: str) -> tuple[Transcript, int]:
    """The segment where `phrase` starts cut in two there (as a user would with Split), and the part from the
    phrase on replaced by `replacement` (an edit). Returns the edited transcript and that part's index."""
    index = next(i for i, s in enumerate(transcript.segments) if phrase in s.text.lower())
    found = transcript.segments[index]
    cut = found.text.lower().index(phrase)
    if cut == 0:  # the phrase starts a segment already: only the edit
        parts = [Segment(index, found.start, found.end, replacement)]
    else:
        middle = round((found.start + found.end) / 2, 3)
        parts = [Segment(index, found.start, middle, found.text[:cut].strip()),
                 Segment(index + 1, middle, found.end, replacement)]
        index += 1
    segments = [*transcript.segments[:transcript.segments.index(found)], *parts,
                *transcript.segments[transcript.segments.index(found) + 1:]]
    edited = Transcript(segments=segments, language=transcript.language, duration=transcript.duration,
                        model=transcript.model, backend=transcript.backend, source=transcript.source).renumbered()
    return edited, index


def test_cli_finds_phrases_of_a_transcribed_and_an_edited_transcript(tmp_path, jfk):
    library_path = tmp_path / "library.sqlite3"
    made = _cli("transcribe", str(jfk), "--library", str(library_path))
    assert made.returncode == 0, made.stderr

    found = _cli("search", '"ask not what your country"', "--library", str(library_path))
    assert found.returncode == 0, found.stderr
    [line] = found.stdout.splitlines()
    file, time_text, text = line.split("\t")
    assert (file, time_text) == (str(jfk.resolve()), "00:00:00.000")
    assert "ask not what your country can do for you" in text.lower()
    assert _cli("search", "AMÉRICAN*", "--library", str(library_path)).returncode == 0  # prefix, case, accents

    library = Library(library_path)
    try:
        [job] = library.jobs.all()
        edited, index = _split_at(library.transcripts.get(job.id), "ask not",
                                  "ask not what your country can do for you, friends")
        library.transcripts.save_edit(job.id, edited)
    finally:
        library.close()
    found = _cli("search", '"you, friends"', "--library", str(library_path))
    assert found.returncode == 0, found.stderr
    [line] = found.stdout.splitlines()
    assert line == f"{jfk.resolve()}\t{format_timestamp(edited.segments[index].start)}\t" \
                   "ask not what your country can do for you, friends"

    none = _cli("search", "kangaroo", "--library", str(library_path))
    assert (none.returncode, none.stdout) == (1, "")
    bad = _cli("search", '"ask not', "--library", str(library_path))
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().count("\n") == 0 and "unclosed quote" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_cli_search_limit_and_a_missing_library(tmp_path, library):
    for n in range(5):
        _done_job(library, f"talk{n}.flac", f"the same phrase number {n}")
    library.close()
    limited = _cli("search", "phrase", "--limit", "3", "--library", str(library.path))
    assert limited.returncode == 0 and len(limited.stdout.splitlines()) == 3
    missing = _cli("search", "phrase", "--library", str(tmp_path / "nowhere.sqlite3"))
    assert missing.returncode == 1 and "no library at" in missing.stderr
    assert not (tmp_path / "nowhere.sqlite3").exists()


# --- the window: the search box opens the transcript at the segment and plays from there --------------------

def test_search_box_opens_the_editor_at_the_segment_and_plays_from_it(qtbot, library, jfk, local_backend):
    from gui.main_window import MainWindow
    from worker.backends.events import ignore_events
    from worker.core.cancel import CancelToken
    from worker.jobs.preferences import Preferences

    job = library.jobs.add(jfk, TranscriptionOptions(), "local")
    transcript = local_backend.transcribe(jfk, TranscriptionOptions(), ignore_events, CancelToken())
    library.transcripts.save(job.id, transcript)
    library.jobs.mark_ended(job.id, JobStatus.DONE, finished=time.time())
    edited, index = _split_at(transcript, "ask what you", "ask what you can do for your country, friends.")
    library.transcripts.save_edit(job.id, edited)
    other = _done_job(library, "other.flac", "nothing about countries here")

    window = MainWindow(library=library, preferences=Preferences(check_modal_on_start=False))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    try:
        qtbot.waitUntil(lambda: window.transcript_pane.uses_editor, timeout=10000)
        window.select_jobs([other])
        window.search_action.trigger()
        panel = window.search_panel
        assert window.search_dock.isVisible() and panel.box.hasFocus()

        with qtbot.waitSignal(panel.searched, timeout=10000) as searched:
            qtbot.keyClicks(panel.box, '"what you can" COUNTR*')  # typed: searched once typing pauses
        assert searched.args == ['"what you can" COUNTR*', 1]
        [hit] = panel.hits()
        assert (hit.job_id, hit.segment) == (job.id, index)
        html_text = panel.model.item(0, 2).text()
        assert "<b>what you can</b>" in html_text.lower().replace("</b> <b>", " ")
        assert "<b>country</b>" in html_text.lower()
        assert panel.model.item(0, 0).text() == "jfk.flac"

        panel.view.activated.emit(panel.model.index(0, 0))  # Enter or a double click on the hit
        assert window.selected_job_ids() == [job.id]
        editor = window.transcript_pane.editor
        assert index > 0 and editor.current_row() == index
        assert editor.model.segment(index).text == "ask what you can do for your country, friends."
        player = window.transcript_pane.player
        assert player is not None and player.isVisible()
        qtbot.waitUntil(lambda: player.position() >= edited.segments[index].start, timeout=20000)  # plays from there
        player.stop()

        with qtbot.waitSignal(panel.searched, timeout=10000) as searched:
            panel.box.setText('"unclosed')
            panel.search_now()
        assert searched.args[1] == -1 and "unclosed quote" in panel.status.text() and panel.hits() == []
    finally:
        window.shutdown()


def test_search_panel_answers_the_newest_query_and_refreshes(qtbot, library):
    from gui.search_panel import SearchPanel

    _done_job(library, "first.flac", "shared words in the first")
    panel = SearchPanel(library)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    with qtbot.waitSignal(panel.searched, timeout=10000) as searched:
        panel.box.setText("shared")
        panel.search_now()
        panel.box.setText("first")  # typed on before the first answer came: only the newest is shown
        panel.search_now()
    assert searched.args == ["first", 1]  # the older query's answer was dropped, never shown
    assert panel.status.text() == "1 hit" and [hit.name for hit in panel.hits()] == ["first.flac"]

    _done_job(library, "second.flac", "the first of many, again")
    with qtbot.waitSignal(panel.searched, timeout=10000) as searched:
        panel.refresh()  # the window calls it when a job is done
    assert searched.args == ["first", 2] and panel.status.text() == "2 hits"
    panel.shutdown()
