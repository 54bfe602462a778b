"""The library keeps jobs, transcripts and edits across restarts and kills."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from worker.core.options import TranscriptionOptions
from worker.library.database import default_library_path
from worker.library.library import Library
from worker.transcripts.model import Segment, Transcript, Word


def sample_transcript() -> Transcript:
    return Transcript(
        segments=[
            Segment(0, 0.0, 2.5, " And so my fellow Americans,", [Word(1.8, 2.4, " Americans", 0.9)]),
            Segment(1, 2.5, 11.0, " ask not what your country can do for you."),
        ],
        language="en", duration=11.0, model="tiny.en (bundled, offline)", backend="local",
        timings={"gpu": "cpu", "rtf": 0.1},
    )


def test_default_path_is_under_the_user_data_dir(isolated_dirs: Path) -> None:
    assert str(default_library_path()).startswith(str(isolated_dirs / ".local/share"))


def test_jobs_transcripts_and_edits_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "lib.sqlite3"
    library = Library(path)
    job = library.add_job("/audio/talk.m4a", TranscriptionOptions(language="en"), "local")
    second = library.add_job("/audio/b.mp3", TranscriptionOptions(), "modal")
    library.update_job(job.id, status="done", duration=11.0, elapsed=3.2)
    library.save_transcript(job.id, sample_transcript())
    edited = sample_transcript()
    edited.segments[0].text = " And so, my fellow Americans,"
    library.save_edit(job.id, edited)
    library.add_log_line(job.id, "job gpu=cpu rtf=0.100")
    library.close()

    reopened = Library(path)
    jobs = reopened.jobs()
    assert [j.name for j in jobs] == ["talk.m4a", "b.mp3"]
    assert jobs[0].status == "done" and jobs[0].options.language == "en" and jobs[1].backend == "modal"
    assert reopened.transcript(job.id).segments[0].text == " And so, my fellow Americans,"
    assert reopened.original_transcript(job.id).segments[0].text == " And so my fellow Americans,"
    assert reopened.transcript(job.id).segments[0].words[0].start == 1.8
    assert reopened.is_edited(job.id)
    assert reopened.log_lines(job.id) == ["job gpu=cpu rtf=0.100"]
    reopened.revert_edit(job.id)
    assert not reopened.is_edited(job.id)
    assert reopened.transcript(job.id).segments[0].text == " And so my fellow Americans,"
    assert reopened.transcript(second.id) is None


def test_reorder_and_remove(tmp_path: Path) -> None:
    library = Library(tmp_path / "lib.sqlite3")
    a, b, c = (library.add_job(f"/x/{n}.wav", TranscriptionOptions(), "local") for n in "abc")
    library.move_job(c.id, a.id)
    assert [j.name for j in library.jobs()] == ["c.wav", "a.wav", "b.wav"]
    library.move_job(c.id, None)
    assert [j.name for j in library.jobs()] == ["a.wav", "b.wav", "c.wav"]
    library.save_transcript(b.id, sample_transcript())
    library.remove_job(b.id)
    assert [j.name for j in library.jobs()] == ["a.wav", "c.wav"]
    assert library.transcript(b.id) is None


def test_add_jobs_queues_many_files_in_order_after_the_existing_ones(tmp_path: Path) -> None:
    path = tmp_path / "lib.sqlite3"
    library = Library(path)
    first = library.add_job("/x/first.wav", TranscriptionOptions(), "local")
    names = [f"{n:04d}.mp3" for n in range(2000)]
    added = library.add_jobs([f"/many/{name}" for name in names], TranscriptionOptions(language="de"), "modal")
    assert library.add_jobs([], TranscriptionOptions(), "local") == []
    last = library.add_job("/x/last.wav", TranscriptionOptions(), "local")

    assert [job.name for job in added] == names
    assert {job.status for job in added} == {"queued"} and {job.backend for job in added} == {"modal"}
    positions = [job.position for job in [first, *added, last]]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    library.close()

    reopened = Library(path)
    jobs = reopened.jobs()
    assert [job.name for job in jobs] == ["first.wav", *names, "last.wav"]
    assert jobs[1:-1] == added and jobs[1].options.language == "de"
    reopened.close()


def test_a_killed_process_leaves_its_running_job_to_be_requeued(tmp_path: Path) -> None:
    path = tmp_path / "lib.sqlite3"
    script = textwrap.dedent(f"""
        import os
        from worker.library.library import Library
        from worker.core.options import TranscriptionOptions
        lib = Library({str(path)!r})
        job = lib.add_job('/x/long.wav', TranscriptionOptions(), 'local')
        lib.update_job(job.id, status='running', started=1.0)
        done = lib.add_job('/x/done.wav', TranscriptionOptions(), 'local')
        lib.update_job(done.id, status='done')
        os.kill(os.getpid(), 9)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent.parent)
    assert result.returncode == -9

    library = Library(path)
    recovered = library.recover_interrupted()
    assert len(recovered) == 1
    assert [(j.name, j.status) for j in library.jobs()] == [("long.wav", "queued"), ("done.wav", "done")]
