"""The library keeps jobs, transcripts and edits across restarts and kills."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from worker.core.options import TranscriptionOptions
from worker.library.database import default_library_path
from worker.library.job_status import JobStatus
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
    job = library.jobs.add("/audio/talk.m4a", TranscriptionOptions(language="en"), "local")
    second = library.jobs.add("/audio/b.mp3", TranscriptionOptions(), "modal")
    library.jobs.mark_ended(job.id, JobStatus.DONE, finished=100.0, elapsed=3.2, duration=11.0)
    library.transcripts.save(job.id, sample_transcript())
    edited = sample_transcript()
    edited.segments[0].text = " And so, my fellow Americans,"
    library.transcripts.save_edit(job.id, edited)
    library.log.add(job.id, "job gpu=cpu rtf=0.100")
    library.close()

    reopened = Library(path)
    jobs = reopened.jobs.all()
    assert [j.name for j in jobs] == ["talk.m4a", "b.mp3"]
    assert jobs[0].status == "done" and jobs[0].options.language == "en" and jobs[1].backend == "modal"
    assert reopened.transcripts.get(job.id).segments[0].text == " And so, my fellow Americans,"
    assert reopened.transcripts.original(job.id).segments[0].text == " And so my fellow Americans,"
    assert reopened.transcripts.get(job.id).segments[0].words[0].start == 1.8
    assert reopened.transcripts.is_edited(job.id)
    assert reopened.log.lines(job.id) == ["job gpu=cpu rtf=0.100"]
    reopened.transcripts.revert_edit(job.id)
    assert not reopened.transcripts.is_edited(job.id)
    assert reopened.transcripts.get(job.id).segments[0].text == " And so my fellow Americans,"
    assert reopened.transcripts.get(second.id) is None


def test_reorder_and_remove(tmp_path: Path) -> None:
    library = Library(tmp_path / "lib.sqlite3")
    a, b, c = (library.jobs.add(f"/x/{n}.wav", TranscriptionOptions(), "local") for n in "abc")
    library.jobs.move(c.id, a.id)
    assert [j.name for j in library.jobs.all()] == ["c.wav", "a.wav", "b.wav"]
    library.jobs.move(c.id, None)
    assert [j.name for j in library.jobs.all()] == ["a.wav", "b.wav", "c.wav"]
    library.transcripts.save(b.id, sample_transcript())
    library.jobs.remove(b.id)
    assert [j.name for j in library.jobs.all()] == ["a.wav", "c.wav"]
    assert library.transcripts.get(b.id) is None


def test_add_jobs_queues_many_files_in_order_after_the_existing_ones(tmp_path: Path) -> None:
    path = tmp_path / "lib.sqlite3"
    library = Library(path)
    first = library.jobs.add("/x/first.wav", TranscriptionOptions(), "local")
    names = [f"{n:04d}.mp3" for n in range(2000)]
    added = library.jobs.add_many([f"/many/{name}" for name in names], TranscriptionOptions(language="de"), "modal")
    assert library.jobs.add_many([], TranscriptionOptions(), "local") == []
    last = library.jobs.add("/x/last.wav", TranscriptionOptions(), "local")

    assert [job.name for job in added] == names
    assert {job.status for job in added} == {"queued"} and {job.backend for job in added} == {"modal"}
    positions = [job.position for job in [first, *added, last]]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    library.close()

    reopened = Library(path)
    jobs = reopened.jobs.all()
    assert [job.name for job in jobs] == ["first.wav", *names, "last.wav"]
    assert jobs[1:-1] == added and jobs[1].options.language == "de"
    reopened.close()


def test_a_killed_process_leaves_its_running_job_to_be_requeued(tmp_path: Path) -> None:
    path = tmp_path / "lib.sqlite3"
    script = textwrap.dedent(f"""
        import os
        from worker.library.job_status import JobStatus
        from worker.library.jobs import new_lease_owner
        from worker.library.library import Library
        from worker.core.options import TranscriptionOptions
        lib = Library({str(path)!r})
        job = lib.jobs.add('/x/long.wav', TranscriptionOptions(), 'local')
        lib.jobs.claim(job.id, new_lease_owner())  # this process runs it, then dies
        done = lib.jobs.add('/x/done.wav', TranscriptionOptions(), 'local')
        lib.jobs.mark_ended(done.id, JobStatus.DONE, finished=2.0)
        os.kill(os.getpid(), 9)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent.parent)
    assert result.returncode == -9

    library = Library(path)
    recovered = library.jobs.recover_interrupted()
    assert len(recovered) == 1
    assert [(j.name, j.status) for j in library.jobs.all()] == [("long.wav", "queued"), ("done.wav", "done")]
