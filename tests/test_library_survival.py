"""A library that survives: leases keep two processes from running one job, a crashed process's jobs come
back, and (below) damaged files, newer versions and full disks do not stop the app."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from worker.library import LEASE_S, Library, lease_owner
from worker.options import TranscriptionOptions

ROOT = Path(__file__).resolve().parent.parent


def queued(library: Library, *names: str) -> list[int]:
    return [job.id for job in library.add_jobs([f"/audio/{n}" for n in names], TranscriptionOptions(), "local")]


def lease_row(path: Path, job_id: int) -> tuple[str, str | None, float | None]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT status, lease_owner, lease_expires FROM jobs WHERE id = ?", (job_id,)).fetchone()


# --- leases ---------------------------------------------------------------------------------------------


def test_a_job_claimed_by_one_library_is_not_taken_or_recovered_by_another(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    first, second = Library(path), Library(path)
    owner_1, owner_2 = lease_owner(), lease_owner()
    [job] = queued(first, "jfk.flac")

    assert first.claim_job(job, owner_1)
    assert not second.claim_job(job, owner_2)  # a live owner holds it
    assert second.recover_interrupted() == []  # a second launch leaves the running job alone
    status, owner, expires = lease_row(path, job)
    assert (status, owner) == ("running", owner_1) and expires is not None
    assert first.claim_job(job, owner_1)  # the holder may claim again (idempotent)

    first.update_job(job, status="done")
    first.release_job(job, owner_1)
    assert lease_row(path, job) == ("done", None, None)
    assert not second.claim_job(job, owner_2)  # finished jobs are not claimed
    first.close()
    second.close()


def test_release_only_drops_the_owners_own_lease(tmp_path: Path) -> None:
    library = Library(tmp_path / "library.sqlite3")
    [job] = queued(library, "a.wav")
    mine, theirs = lease_owner(), lease_owner()
    assert library.claim_job(job, mine)
    library.release_job(job, theirs)
    assert lease_row(library.path, job)[1] == mine
    library.release_job(job, mine)
    assert lease_row(library.path, job)[:2] == ("running", None)
    assert library.recover_interrupted() == [job]  # running with no lease: nobody runs it
    library.close()


def test_heartbeat_renews_the_owners_leases(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    library = Library(path, lease_s=-1.0)  # every lease it writes has already lapsed
    [a, b, other] = queued(library, "a.wav", "b.wav", "c.wav")
    owner = lease_owner()
    assert library.claim_job(a, owner) and library.claim_job(b, owner)
    assert library.claim_job(other, "elsewhere:1:x")  # a lapsed-at-once lease of someone else
    library.lease_s = LEASE_S
    before = lease_row(path, a)[2]
    assert library.heartbeat(owner) == 2
    assert lease_row(path, a)[2] > before + LEASE_S - 5 and lease_row(path, b)[2] > before + LEASE_S - 5
    assert lease_row(path, other)[1] == "elsewhere:1:x"
    assert library.recover_interrupted() == [other]  # renewed leases hold, the lapsed one is recovered
    library.close()


def test_a_lapsed_lease_of_another_host_is_recovered_and_a_live_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    lapsed, live = Library(path, lease_s=-1.0), Library(path)
    [old, fresh] = queued(live, "old.wav", "fresh.wav")
    assert lapsed.claim_job(old, "other-host:4242:abc")
    assert live.claim_job(fresh, "other-host:4242:def")  # another host: its pid means nothing here
    assert not live.claim_job(fresh, lease_owner())
    assert live.claim_job(old, lease_owner())  # a lapsed lease can be taken over
    assert live.recover_interrupted() == []
    lapsed.close()
    live.close()


HOLDER = textwrap.dedent("""
    import sys
    from worker.library import Library, lease_owner
    library = Library(sys.argv[1])
    print(library.claim_job(int(sys.argv[2]), lease_owner()), flush=True)
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
        assert not library.claim_job(job, lease_owner())
        assert library.recover_interrupted() == []
        assert lease_row(path, job)[0] == "running"
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # kill -9: the lease is never released
        holder.wait(30)
    assert library.recover_interrupted() == [job]  # its process is gone: no need to wait for the lease
    assert lease_row(path, job) == ("queued", None, None)
    assert library.claim_job(job, lease_owner())
    library.close()


RACER = textwrap.dedent("""
    import sys
    from worker.library import Library, lease_owner
    library = Library(sys.argv[1])
    owner = lease_owner()
    sys.stdin.readline()  # start together
    ids = [j.id for j in library.jobs()]
    print(" ".join(str(i) for i in ids if library.claim_job(i, owner)), flush=True)
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
    assert {j.status for j in library.jobs()} == {"running"}
    library.close()


def test_the_lease_columns_come_with_a_migration(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    Library(path).close()
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    assert {"lease_owner", "lease_expires"} <= columns
