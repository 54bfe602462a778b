"""Subtitles imported for review, without a window: read, matched to their audio, kept as a finished job."""

from __future__ import annotations

import shutil

import pytest
from editor_fixtures import jfk_transcript

from worker.core.errors import MediaError
from worker.jobs.review_import import add_review_job, fit_to_audio, matching_audio, read_subtitles
from worker.library.job_status import JobStatus
from worker.media.audio import probe_duration
from worker.transcripts.formats import export_transcript


def test_subtitles_read_with_the_audio_next_to_them(tmp_path, jfk):
    transcript = jfk_transcript()
    srt = export_transcript(transcript, tmp_path / "speech.srt")
    (tmp_path / "speech.txt").write_text("notes", encoding="utf-8")  # same name, not media
    assert matching_audio(srt) is None
    shutil.copy(jfk, tmp_path / "speech.flac")
    imported, guess = read_subtitles(srt)
    assert guess == tmp_path / "speech.flac" == matching_audio(srt)
    assert [(s.start, s.end, s.text) for s in imported.segments] == [(s.start, s.end, s.text.strip()) for s in transcript.segments]
    assert read_subtitles(srt, guess_audio=False)[1] is None


def test_fitting_to_the_audio_sets_source_and_duration_and_refuses_the_wrong_audio(tmp_path, jfk):
    srt = export_transcript(jfk_transcript(), tmp_path / "good.srt")
    duration = float(probe_duration(jfk))
    imported = fit_to_audio(read_subtitles(srt)[0], srt, jfk, duration)
    assert imported.source == str(jfk) and imported.duration == pytest.approx(11.0, abs=0.05)
    unknown = fit_to_audio(read_subtitles(srt)[0], srt, jfk, 0.0)  # duration unknown: the cues' end stays
    assert unknown.duration == pytest.approx(jfk_transcript().segments[-1].end, abs=0.01)

    late = jfk_transcript()
    for segment in late.segments:
        segment.start += 600
        segment.end += 600
    late_srt = export_transcript(late, tmp_path / "late.srt")
    with pytest.raises(MediaError) as caught:
        fit_to_audio(read_subtitles(late_srt)[0], late_srt, jfk, duration)
    assert str(caught.value).startswith("late.srt: the first cue starts at 600.0 s, after the end of jfk.flac")


def test_review_job_is_finished_unedited_and_logged(tmp_path, jfk, library):
    vtt = export_transcript(jfk_transcript(), tmp_path / "team.vtt")
    transcript = fit_to_audio(read_subtitles(vtt)[0], vtt, jfk, float(probe_duration(jfk)))
    job_id = add_review_job(library, transcript, jfk, vtt)
    record = library.jobs.get(job_id)
    assert record.status == JobStatus.DONE and record.path == str(jfk) and record.backend == "local"
    stored = library.transcripts.get(job_id)
    assert [(s.start, s.end, s.text) for s in stored.segments] == [(s.start, s.end, s.text) for s in transcript.segments]
    assert not library.transcripts.is_edited(job_id) and "imported team.vtt" in library.log.lines(job_id)[0]
