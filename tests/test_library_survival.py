"""A library that survives: leases keep two processes from running one job, a crashed process's jobs come
back, and (below) damaged files, newer versions and full disks do not stop the app."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from worker.core.options import TranscriptionOptions
from worker.library.job_status import JobStatus
from worker.library.jobs import LEASE_S, new_lease_owner
from worker.library.library import Library
from worker.library.migrations import SCHEMA_VERSION
from worker.transcripts.model import Segment, Transcript

ROOT = Path(__file__).resolve().parent.parent


def queued(library: Library, *names: str) -> list[int]:
    return [job.id for job in library.jobs.add_many([f"/audio/{n}" for n in names], TranscriptionOptions(), "local")]


def lease_row(path: Path, job_id: int) -> tuple[str, str | None, float | None]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT status, lease_owner, lease_expires FROM jobs WHERE id = ?", (job_id,)).fetchone()


# --- leases ---------------------------------------------------------------------------------------------


def test_a_job_claimed_by_one_library_is_not_taken_or_recovered_by_another(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    first, second = Library(path), Library(path)
    owner_1, owner_2 = new_lease_owner(), new_lease_owner()
    [job] = queued(first, "jfk.flac")

    assert first.jobs.claim(job, owner_1)
    assert not second.jobs.claim(job, owner_2)  # a live owner holds it
    assert second.jobs.recover_interrupted() == []  # a second launch leaves the running job alone
    status, owner, expires = lease_row(path, job)
    assert (status, owner) == ("running", owner_1) and expires is not None
    assert first.jobs.claim(job, owner_1)  # the holder may claim again (idempotent)

    first.jobs.mark_ended(job, JobStatus.DONE, finished=time.time())
    first.jobs.release(job, owner_1)
    assert lease_row(path, job) == ("done", None, None)
    assert not second.jobs.claim(job, owner_2)  # finished jobs are not claimed
    first.close()
    second.close()


def test_two_processes_claiming_copies_of_one_recording_transcribe_it_once(tmp_path: Path) -> None:
    """Two processes queue copies of one recording at the same moment: the first claim to transcribe wins; the
    other's is refused while the first runs and once it is done (it takes that transcript instead), and is
    granted when the first failed, or for a job to be transcribed again."""
    path = tmp_path / "library.sqlite3"
    first, second = Library(path), Library(path)
    owner_1, owner_2 = new_lease_owner(), new_lease_owner()
    [a] = queued(first, "a.flac")
    [b] = queued(second, "b.flac")
    [c] = [job.id for job in second.jobs.add_many(["/audio/c.flac"], TranscriptionOptions(), "local",
                                                  transcribe_again=True)]  # "transcribe again"
    for library, job in ((first, a), (second, b), (second, c)):
        library.jobs.set_content(job, "same bytes")

    assert first.jobs.claim(a, owner_1)
    assert not second.jobs.claim(b, owner_2)  # its twin runs in the other process
    assert second.jobs.claim(c, owner_2)  # to be transcribed again: it runs
    first.jobs.mark_ended(a, JobStatus.DONE, finished=time.time())
    first.jobs.release(a, owner_1)
    assert not second.jobs.claim(b, owner_2)  # its twin is done: not transcribed again...
    assert second.jobs.claim(b, owner_2, transcribing=False)  # ...but claimed to take that transcript
    first.close()
    second.close()


def test_a_failed_twin_lets_the_other_process_transcribe(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    first, second = Library(path), Library(path)
    owner_1, owner_2 = new_lease_owner(), new_lease_owner()
    [a] = queued(first, "a.flac")
    [b] = queued(second, "b.flac")
    for library, job in ((first, a), (second, b)):
        library.jobs.set_content(job, "same bytes")
    assert first.jobs.claim(a, owner_1)
    first.jobs.mark_ended(a, JobStatus.FAILED, finished=time.time(), error="a.flac: unreadable")
    first.jobs.release(a, owner_1)
    assert second.jobs.claim(b, owner_2)
    first.close()
    second.close()


def test_release_only_drops_the_owners_own_lease(tmp_path: Path) -> None:
    library = Library(tmp_path / "library.sqlite3")
    [job] = queued(library, "a.wav")
    mine, theirs = new_lease_owner(), new_lease_owner()
    assert library.jobs.claim(job, mine)
    library.jobs.release(job, theirs)
    assert lease_row(library.path, job)[1] == mine
    library.jobs.release(job, mine)
    assert lease_row(library.path, job)[:2] == ("running", None)
    assert library.jobs.recover_interrupted() == [job]  # running with no lease: nobody runs it
    library.close()


def test_heartbeat_renews_the_owners_leases(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    library = Library(path, lease_s=-1.0)  # every lease it writes has already lapsed
    [a, b, other] = queued(library, "a.wav", "b.wav", "c.wav")
    owner = new_lease_owner()
    assert library.jobs.claim(a, owner) and library.jobs.claim(b, owner)
    assert library.jobs.claim(other, "elsewhere:1:x")  # a lapsed-at-once lease of someone else
    library.jobs.lease_s = LEASE_S
    before = lease_row(path, a)[2]
    assert library.jobs.heartbeat(owner) == 2
    assert lease_row(path, a)[2] > before + LEASE_S - 5 and lease_row(path, b)[2] > before + LEASE_S - 5
    assert lease_row(path, other)[1] == "elsewhere:1:x"
    assert library.jobs.recover_interrupted() == [other]  # renewed leases hold, the lapsed one is recovered
    library.close()


def test_a_lapsed_lease_of_another_host_is_recovered_and_a_live_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    lapsed, live = Library(path, lease_s=-1.0), Library(path)
    [old, fresh] = queued(live, "old.wav", "fresh.wav")
    assert lapsed.jobs.claim(old, "other-host:4242:abc")
    assert live.jobs.claim(fresh, "other-host:4242:def")  # another host: its pid means nothing here
    assert not live.jobs.claim(fresh, new_lease_owner())
    assert live.jobs.claim(old, new_lease_owner())  # a lapsed lease can be taken over
    assert live.jobs.recover_interrupted() == []
    lapsed.close()
    live.close()


HOLDER = textwrap.dedent("""
    import sys
    from worker.library.library import Library
    from worker.library.jobs import new_lease_owner
    library = Library(sys.argv[1])
    print(library.jobs.claim(int(sys.argv[2]), new_lease_owner()), flush=True)
    sys.stdin.readline()  # hold the lease until killed
""")


def test_a_job_held_by_a_live_process_stays_with_it_and_comes_back_when_it_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    library = Library(path)
    [job] = queued(library, "jfk.flac")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(job)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "True"
        assert not library.jobs.claim(job, new_lease_owner())
        assert library.jobs.recover_interrupted() == []
        assert lease_row(path, job)[0] == "running"
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # kill -9: the lease is never released
        holder.wait(30)
    assert library.jobs.recover_interrupted() == [job]  # its process is gone: no need to wait for the lease
    assert lease_row(path, job) == ("queued", None, None)
    assert library.jobs.claim(job, new_lease_owner())
    library.close()


RACER = textwrap.dedent("""
    import sys
    from worker.library.library import Library
    from worker.library.jobs import new_lease_owner
    library = Library(sys.argv[1])
    owner = new_lease_owner()
    sys.stdin.readline()  # start together
    ids = [j.id for j in library.jobs.all()]
    print(" ".join(str(i) for i in ids if library.jobs.claim(i, owner)), flush=True)
    sys.stdin.readline()  # stay alive (a dead owner's jobs may be taken over) until all have claimed
""")


def test_two_processes_claiming_the_same_jobs_take_each_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    library = Library(path)
    ids = queued(library, *[f"{n}.wav" for n in range(60)])
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(path)], cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True) for _ in range(3)]
    for racer in racers:
        racer.stdin.write("go\n")
        racer.stdin.flush()
    claimed = [[int(i) for i in racer.stdout.readline().split()] for racer in racers]
    for racer in racers:
        racer.communicate("", timeout=60)
    assert all(racer.returncode == 0 for racer in racers)
    assert sorted(i for c in claimed for i in c) == ids  # every job once, none twice
    assert {j.status for j in library.jobs.all()} == {"running"}
    library.close()


def test_the_lease_columns_come_with_a_migration(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    Library(path).close()
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    assert {"lease_owner", "lease_expires"} <= columns


# --- a library from the previous version, damaged files, newer versions, full disks ----------------------

FIXTURE = ROOT / "tests" / "fixtures" / "library_v0.sqlite3"  # written by 44fdd7c's code (make_library_v0.py)


def raw(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def previous_version_library(tmp_path: Path) -> Path:
    path = tmp_path / "library.sqlite3"
    path.write_bytes(FIXTURE.read_bytes())
    return path


def test_a_library_written_by_the_previous_version_opens_with_every_transcript_and_edit(tmp_path: Path) -> None:
    path = previous_version_library(tmp_path)
    jobs_before = raw(path, "SELECT id, path, backend, options, status, error, duration, position FROM jobs ORDER BY id")
    texts_before = raw(path, "SELECT job_id, original, edited FROM transcripts ORDER BY job_id")
    assert raw(path, "PRAGMA user_version") == [(0,)]

    library = Library(path)
    assert library.schema_version == SCHEMA_VERSION and library.notice is None
    assert raw(path, "SELECT id, path, backend, options, status, error, duration, position FROM jobs ORDER BY id") == jobs_before
    assert raw(path, "SELECT job_id, original, edited FROM transcripts ORDER BY job_id") == texts_before
    jobs = library.jobs.all()
    assert [(j.name, j.status) for j in jobs] == [("jfk.flac", "done"), ("hotwords.mp3", "done"), ("later.wav", "queued"),
                                                  ("long.m4a", "running"), ("broken.mp3", "failed")]
    assert jobs[0].options.language == "en" and jobs[0].options.word_timestamps and jobs[1].backend == "modal"
    assert jobs[4].error == "broken.mp3: not an audio file"
    jfk = library.transcripts.get(jobs[0].id)
    assert library.transcripts.is_edited(jobs[0].id)
    assert jfk.segments[0].text == "And so, my fellow Americans (checked),"  # the edit
    assert "ask not what your country can do for you" in jfk.text
    assert library.transcripts.original(jobs[0].id).segments[0].text == "And so my fellow Americans,"
    assert jfk.segments[0].words[0].text == "And" and jfk.timings == {"total_s": 1.25}
    assert library.transcripts.get(jobs[1].id).text.startswith("Hot words: Kubernetes")
    assert not library.transcripts.is_edited(jobs[1].id)
    assert library.log.lines() == ["jfk.flac: 11.0 s of audio in 2.5 s (4.4x)", "session started"]
    assert library.jobs.recover_interrupted() == [jobs[3].id]  # left running by the old version: nobody holds it
    library.close()
    reopened = Library(path)  # migrations run once
    assert reopened.schema_version == SCHEMA_VERSION and reopened.transcripts.get(jobs[0].id).text == jfk.text
    reopened.close()


def test_a_file_of_random_bytes_is_kept_aside_and_a_fresh_library_starts(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    garbage = os.urandom(64 * 1024)
    path.write_bytes(garbage)

    library = Library(path)
    [aside] = tmp_path.glob("library.sqlite3.damaged-*")
    assert aside.read_bytes() == garbage  # kept, exactly as found
    assert library.notice == (f"The library was damaged (file is not a database): it was kept as {aside.name} "
                              f"and a new library was started with 0 job(s) carried over.")
    assert library.schema_version == SCHEMA_VERSION and library.jobs.all() == []
    [job] = queued(library, "jfk.flac")
    assert library.jobs.claim(job, new_lease_owner())
    library.close()
    assert Library(path).notice is None  # the new file is sound


def corrupt_page_holding(path: Path, marker: bytes) -> None:
    data = bytearray(path.read_bytes())
    page_size = raw(path, "PRAGMA page_size")[0][0]
    page = data.index(marker) // page_size
    data[page * page_size:(page + 1) * page_size] = os.urandom(page_size)
    path.write_bytes(bytes(data))


def test_a_damaged_page_keeps_the_file_aside_and_carries_over_every_row_still_readable(tmp_path: Path) -> None:
    path = previous_version_library(tmp_path)
    library = Library(path)
    for n in range(3000):
        library.log.add(None, f"log line {n:05d} " + "x" * 60)
    library.close()
    corrupt_page_holding(path, b"log line 01500 ")
    damaged = path.read_bytes()

    library = Library(path)
    [aside] = tmp_path.glob("library.sqlite3.damaged-*")
    assert aside.read_bytes() == damaged
    assert library.notice.startswith("The library was damaged (")
    assert library.notice.endswith(f"it was kept as {aside.name} and a new library was started with 5 job(s) carried over.")
    assert [(j.name, j.status) for j in library.jobs.all()] == [("jfk.flac", "done"), ("hotwords.mp3", "done"),
                                                            ("later.wav", "queued"), ("long.m4a", "running"),
                                                            ("broken.mp3", "failed")]
    assert library.transcripts.get(1).segments[0].text == "And so, my fellow Americans (checked),"
    assert library.transcripts.original(1).segments[0].text == "And so my fellow Americans,"
    lines = library.log.lines()
    assert "log line 01500 " + "x" * 60 not in lines  # on the damaged page
    assert 2900 < len(lines) < 3002 and "log line 00000 " + "x" * 60 in lines and "log line 02999 " + "x" * 60 in lines
    assert library.jobs.recover_interrupted() == [4]
    library.close()


def test_a_library_from_a_newer_version_opens_read_only_and_is_never_written(tmp_path: Path) -> None:
    path = previous_version_library(tmp_path)
    Library(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    before = path.read_bytes()

    library = Library(path)
    assert library.read_only
    assert library.notice == (f"This library was written by a newer Whisper Desk (schema {SCHEMA_VERSION + 3}; this "
                              f"version knows {SCHEMA_VERSION}): it is open read-only, and nothing is saved.")
    assert [j.name for j in library.jobs.all()][:2] == ["jfk.flac", "hotwords.mp3"]
    assert library.transcripts.get(1).segments[0].text == "And so, my fellow Americans (checked),"
    assert library.jobs.recover_interrupted() == [] and not library.jobs.claim(3, new_lease_owner())  # runs nothing
    library.jobs.mark_ended(3, JobStatus.CANCELLED, finished=time.time())  # kept in memory, never written
    assert library.jobs.get(3).status == "cancelled"
    try:
        library.jobs.add("/audio/new.wav", TranscriptionOptions(), "local")
        raise AssertionError("a new job was written")
    except sqlite3.OperationalError:
        pass
    library.close()
    assert path.read_bytes() == before
    assert raw(path, "SELECT status FROM jobs WHERE id = 3") == [("queued",)]


def test_a_full_disk_keeps_transcripts_in_memory_and_saves_them_when_there_is_room(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    library = Library(path)
    [job] = queued(library, "jfk.flac")
    fill_the_disk(library)
    result = Transcript([Segment(0, 0.0, 3.0, "And so my fellow Americans")], "en", 3.0)

    library.transcripts.save(job, result)
    library.jobs.mark_ended(job, JobStatus.DONE, finished=5.0)
    assert library.problem == ("Can't save to the library (the disk is full): changes are kept in memory and saved "
                               "when it works again; export transcripts to be safe.")
    assert library.unsaved == 2
    assert library.transcripts.get(job).text == result.text and library.jobs.get(job).status == "done"  # nothing lost
    edit = Transcript([Segment(0, 0.0, 3.0, "And so, my fellow Americans")], "en", 3.0)
    library.transcripts.save_edit(job, edit)
    assert library.transcripts.get(job).text == edit.text and library.transcripts.original(job).text == result.text
    assert raw(path, f"SELECT COUNT(*) FROM transcripts WHERE job_id = {job}") == [(0,)]
    assert not library.retry_kept()  # still full

    library.database.connection.execute("PRAGMA max_page_count = 1073741823")  # room again
    assert library.retry_kept() and library.problem is None and library.unsaved == 0
    assert raw(path, f"SELECT status FROM jobs WHERE id = {job}") == [("done",)]
    library.close()
    reopened = Library(path)
    assert reopened.transcripts.get(job).text == edit.text and reopened.transcripts.original(job).text == result.text
    reopened.close()


def fill_the_disk(library: Library) -> None:
    """SQLite's own "database or disk is full": no more pages, and the last ones (log, transcripts) filled up."""
    with library.database.lock:
        filler = library.database.connection.execute("INSERT INTO jobs (path, backend, options, position, created) "
                                     "VALUES ('/filler', 'local', '{}', -1, 0)").lastrowid
        library.database.connection.execute("INSERT INTO transcripts (job_id, original, updated) VALUES (?, ?, 0)",
                            (filler, json.dumps({"segments": [], "pad": "p" * 3900})))
        (pages,) = library.database.connection.execute("PRAGMA page_count").fetchone()
        library.database.connection.execute(f"PRAGMA max_page_count = {pages}")
        size = 2000
        while size:
            try:
                library.database.connection.execute("INSERT INTO log (job_id, line, created) VALUES (NULL, ?, 0)", ("f" * size,))
            except sqlite3.OperationalError:
                size //= 2


def test_a_job_is_not_started_when_the_full_disk_refuses_its_claim(tmp_path: Path) -> None:
    library = Library(tmp_path / "library.sqlite3")
    [job] = queued(library, "jfk.flac")
    fill_the_disk(library)
    with library.database.lock:  # the jobs' pages too: a claim writes the lease into the job's row
        for n in range(10000):
            try:
                library.database.connection.execute("INSERT INTO jobs (path, backend, options, position, created) "
                                    "VALUES (?, 'local', '{}', 0, 0)", (f"/filler/{n}",))
            except sqlite3.OperationalError:
                break
    assert not library.jobs.claim(job, new_lease_owner())
    assert library.problem.startswith("Can't save to the library (the disk is full)")
    assert library.jobs.get(job).status == "queued"
    library.close()


def test_a_data_folder_that_cannot_be_written_gives_a_library_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    library = Library(blocker / "whisper-desk" / "library.sqlite3")
    assert library.notice.startswith(f"Can't write the library at {blocker / 'whisper-desk' / 'library.sqlite3'} (")
    assert library.notice.endswith("this session is kept in memory only, so export transcripts before closing.")
    [job] = queued(library, "jfk.flac")
    library.transcripts.save(job, Transcript([Segment(0, 0.0, 1.0, "kept")], "en", 1.0))
    assert library.transcripts.get(job).text == "kept"
    library.close()


def read_only_session(path: Path) -> dict:
    """What a user of the library at `path` sees and keeps, in a forked child that is another user when the
    tests run as root (root writes anywhere). Forked, not run: the interpreter may sit where that user can't read."""
    import traceback

    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(reader)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            library = Library(path)
            shown = {job.id: library.transcripts.get(job.id).text for job in library.jobs.all()}
            [new] = library.jobs.add_many(["/audio/new.flac"], TranscriptionOptions(), "local")
            library.transcripts.save(new.id, Transcript([Segment(0, 0.0, 1.0, "made today")], "en", 1.0))
            answer = {"notice": library.notice, "shown": shown, "new": library.transcripts.get(new.id).text}
            library.close()
            status = 0
        except BaseException:
            answer = {"error": traceback.format_exc()}
        finally:
            os.write(writer, json.dumps(answer).encode())
            os._exit(status)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        answer = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert "error" not in answer, answer["error"]
    return answer


def test_a_library_in_a_folder_that_became_read_only_is_shown_and_the_session_kept_in_memory() -> None:
    """A restored backup or a folder whose permissions changed: the user's transcripts stay in view, new work
    runs in memory, and the file is not touched."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="whisper-desk-ro-"))  # /tmp: reachable by the other user
    try:
        path = folder / "library.sqlite3"
        library = Library(path)
        [job] = queued(library, "jfk.flac")
        library.transcripts.save(job, Transcript([Segment(0, 0.0, 1.0, "ask not what your country")], "en", 1.0))
        library.close()
        before = path.read_bytes()
        path.chmod(0o444)
        folder.chmod(0o555)
        seen = read_only_session(path)
        assert seen["notice"] == (f"Can't write the library at {path} (it is read-only): its 1 job(s) are shown, "
                                  "but this session is kept in memory only, so export transcripts before closing.")
        assert seen["shown"] == {str(job): "ask not what your country"}
        assert seen["new"] == "made today"
        assert path.read_bytes() == before
        assert sorted(p.name for p in folder.iterdir()) == ["library.sqlite3"]
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


# --- the window ----------------------------------------------------------------------------------------


def open_window(qtbot, lent_backend, library: Library | None = None):
    from gui.main_window import MainWindow
    from worker.jobs.preferences import Preferences

    window = MainWindow(library=library, preferences=Preferences(check_modal_on_start=False),
                        backend_factory=lambda name, prefs: lent_backend)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def finished(qtbot, library: Library, job_id: int) -> None:  # noqa: ANN001
    qtbot.waitUntil(lambda: library.jobs.get(job_id).status in ("done", "failed", "cancelled"), timeout=300000)
    record = library.jobs.get(job_id)
    assert record.status == "done", record.error


def test_the_window_starts_on_a_damaged_library_says_so_in_one_line_and_transcribes(qtbot, lent_backend, jfk):
    from speech_text import JFK_PHRASE, normalise

    from worker.library.database import default_library_path

    path = default_library_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(os.urandom(20000))
    window = open_window(qtbot, lent_backend)
    [aside] = path.parent.glob("library.sqlite3.damaged-*")
    notice = window.library_label.text()
    assert notice.startswith("The library was damaged (file is not a database)") and aside.name in notice
    assert "\n" not in notice and window.library_label.isVisible()
    assert notice in window.log_panel.text()
    with qtbot.waitSignal(window.controller.pathsAdded, timeout=20000) as added:
        window.add_paths([jfk])
    [job] = added.args[0]
    finished(qtbot, window.library, job.id)
    assert JFK_PHRASE in normalise(window.transcript_text())
    window.close()
    assert JFK_PHRASE in normalise(Library(path).transcripts.get(job.id).text)  # in the new library file


def test_the_window_keeps_a_transcript_the_full_disk_refused_and_saves_it_when_there_is_room(
        qtbot, lent_backend, jfk, tmp_path):
    from speech_text import JFK_PHRASE, normalise

    path = tmp_path / "library.sqlite3"
    library = Library(path)
    job = library.jobs.add(str(jfk), TranscriptionOptions(), "local")
    window = open_window(qtbot, lent_backend, library)
    qtbot.waitUntil(lambda: library.jobs.get(job.id).status == "running", timeout=60000)
    fill_the_disk(library)  # while the job runs
    finished(qtbot, library, job.id)
    qtbot.waitUntil(lambda: window.library_label.text().startswith("Can't save to the library (the disk is full)"),
                    timeout=10000)
    assert raw(path, f"SELECT COUNT(*) FROM transcripts WHERE job_id = {job.id}") == [(0,)]
    window.select_jobs([job.id])
    assert JFK_PHRASE in normalise(window.transcript_text())  # shown, and exportable: library.transcript has it
    assert JFK_PHRASE in normalise(library.transcripts.get(job.id).text)

    library.database.connection.execute("PRAGMA max_page_count = 1073741823")  # room again: the window's retry saves it
    qtbot.waitUntil(lambda: not window.library_label.isVisible(), timeout=15000)
    assert "The library is saved again." in window.log_panel.text()
    assert raw(path, f"SELECT status FROM jobs WHERE id = {job.id}") == [("done",)]
    [(original,)] = raw(path, f"SELECT original FROM transcripts WHERE job_id = {job.id}")
    assert JFK_PHRASE in normalise(original)
    window.close()
    library.close()


def test_the_window_on_a_newer_library_shows_it_read_only_and_writes_nothing(qtbot, lent_backend, jfk, tmp_path):
    path = previous_version_library(tmp_path)
    Library(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    library = Library(path)
    window = open_window(qtbot, lent_backend, library)
    assert window.library_label.text() == library.notice and "read-only" in library.notice
    assert window.model.rowCount() == 5
    window.add_paths([jfk])
    qtbot.wait(500)
    assert window.model.rowCount() == 5
    window.close()
    library.close()
    assert path.read_bytes() == before


def test_a_kept_write_that_can_never_succeed_is_dropped_and_the_rest_are_saved(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    library = Library(path)
    [gone, kept] = queued(library, "gone.wav", "kept.wav")
    fill_the_disk(library)
    library.transcripts.save(gone, Transcript([Segment(0, 0.0, 1.0, "x" * 5000)], "en", 1.0))
    library.transcripts.save(kept, Transcript([Segment(0, 0.0, 1.0, "y" * 5000)], "en", 1.0))
    assert library.unsaved == 2
    library.database.connection.execute("PRAGMA max_page_count = 1073741823")
    library.database.connection.execute("PRAGMA foreign_keys = ON")
    library.database.connection.execute("DELETE FROM jobs WHERE id = ?", (gone,))  # removed meanwhile: its transcript can't be saved
    assert library.retry_kept() and library.unsaved == 0
    assert raw(path, "SELECT job_id FROM transcripts WHERE job_id < 3") == [(kept,)]
    library.close()
