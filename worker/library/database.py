"""The library's SQLite file: opening it (a damaged file set aside, an unwritable folder kept in memory, a newer
version's file read-only), migrating it, and the one way to write: a transaction per change.

Every write is its own transaction (WAL journal), so a process killed at any moment leaves the last committed
state. A write the disk refuses (full, read-only) is kept in memory and retried in order; the stores keep what
it changes readable meanwhile. Rows never leave the library package: each store turns them into typed records.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from worker.core.errors import exception_line
from worker.library.migrations import MIGRATIONS, SCHEMA_VERSION

Row = sqlite3.Row

# SQLite's primary result codes for a disk that refuses writes: READONLY, IOERR, FULL, CANTOPEN
_STORAGE_REASONS = {8: "it is read-only", 10: "a disk error", 13: "the disk is full", 14: "the file can't be opened"}


def default_library_path() -> Path:
    from platformdirs import user_data_dir

    from worker.core.constants import APP_DIRS_NAME

    return Path(user_data_dir(APP_DIRS_NAME, appauthor=False)) / "library.sqlite3"


class Database:
    """One connection guarded by a lock (writes are small and fast); thread-safe."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_library_path()
        self.read_only = False  # a newer version's library: read, never written
        self.notice: str | None = None  # one line for the window: what opening the library had to do
        self.problem: str | None = None  # one line while writes fail (disk full, read-only folder)
        self.lock = threading.RLock()
        self._kept: list[tuple[str, tuple[Any, ...]]] = []  # writes the disk refused, retried in order
        self._when_all_saved: list[Callable[[], None]] = []  # stores drop their in-memory overlays
        self._open()

    # --- opening ------------------------------------------------------------------------------------------

    def _open(self) -> None:
        """Open (and migrate) the library file. A damaged file is set aside and a fresh library carries over
        what can be read; an unwritable folder gives a library in memory. Both leave a `notice`."""
        if str(self.path) == ":memory:":
            return self._connect(":memory:")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._connect(str(self.path))
        except sqlite3.OperationalError as error:
            if not is_storage_error(error):
                raise
            reason: str = storage_reason(error)
        except OSError as error:
            reason = error.strerror or str(error)
        except sqlite3.DatabaseError as error:
            from worker.library.repair import carry_over, set_aside

            try:
                aside = set_aside(self.path)
                self._connect(str(self.path))
            except (OSError, sqlite3.OperationalError) as unwritable:
                reason = storage_reason(unwritable) if isinstance(unwritable, sqlite3.Error) else str(unwritable)
            else:
                with self.lock:
                    carried = carry_over(aside, self._db)
                self.notice = (f"The library was damaged ({exception_line(error)}): it was kept as {aside.name} and a new "
                               f"library was started with {carried} job(s) carried over.")
                return None
        self._connect(":memory:")
        shown = self._load_unwritable_file()
        if self.read_only:  # a newer version's library, in a folder that can't be written either
            self.notice = _newer_notice(self.schema_version)
            return None
        kept = f"its {shown} job(s) are shown, but " if shown else ""
        self.notice = (f"Can't write the library at {self.path} ({reason}): {kept}this session is kept in memory "
                       f"only, so export transcripts before closing.")
        return None

    def _load_unwritable_file(self) -> int:
        """Copy a library file that can be read but not written into the in-memory library, so the user's
        transcripts stay in view; the number of jobs it holds (0 when there is nothing readable)."""
        try:
            if not self.path.is_file():
                return 0
        except OSError:
            return 0
        uri = Path(os.path.abspath(self.path)).as_uri()
        for mode in ("ro", "ro&immutable=1"):  # immutable: a WAL left where its index can't be made
            try:
                source = sqlite3.connect(f"{uri}?mode={mode}", uri=True)
                try:
                    with self.lock:
                        source.backup(self._db)
                        (version,) = self._db.execute("PRAGMA user_version").fetchone()
                        if version > SCHEMA_VERSION:
                            self.read_only = True
                            self._db.execute("PRAGMA query_only = ON")
                        else:
                            self._migrate()
                        return int(self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
                finally:
                    source.close()
            except sqlite3.Error:
                self._db.close()  # a partial copy is dropped: start clean
                self._connect(":memory:")
        return 0

    def _connect(self, target: str) -> None:
        db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            (version,) = db.execute("PRAGMA user_version").fetchone()  # random bytes fail here
            if version > SCHEMA_VERSION:
                db.execute("PRAGMA query_only = ON")
                self._db, self.read_only = db, True
                self.notice = _newer_notice(version)
                return
            if version > 0:
                (verdict,) = db.execute("PRAGMA quick_check(1)").fetchone()  # damaged pages
                if verdict != "ok":
                    raise sqlite3.DatabaseError(verdict)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._db = db
            self._migrate()
        except BaseException:
            db.close()
            raise

    def _migrate(self) -> None:
        """Bring the schema up to SCHEMA_VERSION, one migration per transaction."""
        with self.lock:
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            for number in range(version + 1, SCHEMA_VERSION + 1):
                with self.transaction() as db:
                    for statement in _statements(MIGRATIONS[number - 1]):
                        db.execute(statement)
                    db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        with self.lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @property
    def connection(self) -> sqlite3.Connection:
        """The connection itself, for a caller that traces or inspects it (hold `lock` while using it)."""
        return self._db

    def close(self) -> None:
        with self.lock:
            self._db.close()

    # --- reading and writing ------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the lock; rolled back if anything in the block raises."""
        with self.lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # a failed COMMIT may already have rolled back
                    self._db.execute("ROLLBACK")
                raise

    def write(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self.transaction() as db:
            return db.execute(sql, args)

    def write_or_keep(self, sql: str, args: tuple[Any, ...] = ()) -> bool:
        """Write, or keep the write in memory when the disk refuses it (full, read-only; or a read-only
        library) to retry later in order. Returns False when it was kept."""
        with self.lock:
            if self.read_only or (self._kept and not self.retry_kept()):
                self._kept.append((sql, args))
                return False
            try:
                self.write(sql, args)
            except sqlite3.OperationalError as error:
                if not is_storage_error(error):
                    raise
                self._kept.append((sql, args))
                self.note_problem(error)
                return False
            return True

    def when_all_saved(self, callback: Callable[[], None]) -> None:
        """Call `callback` (under the lock) each time every kept write has reached the disk."""
        self._when_all_saved.append(callback)

    def retry_kept(self) -> bool:
        """Write what the disk refused before; True when nothing is left in memory. The window calls it
        every few seconds while `problem` is set."""
        with self.lock:
            if self.read_only:
                return not self._kept
            while self._kept:
                sql, args = self._kept[0]
                try:
                    self.write(sql, args)
                except sqlite3.Error as error:
                    if is_storage_error(error):
                        self.note_problem(error)
                        return False
                    # anything else (e.g. its job was removed meanwhile) will never succeed: drop it
                self._kept.pop(0)
            for callback in self._when_all_saved:
                callback()
            self.problem = None
            return True

    @property
    def unsaved(self) -> int:
        """How many writes are kept in memory, waiting for the disk."""
        with self.lock:
            return len(self._kept)

    def note_problem(self, error: sqlite3.Error) -> None:
        self.problem = (f"Can't save to the library ({storage_reason(error)}): changes are kept in memory and "
                        f"saved when it works again; export transcripts to be safe.")

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Row]:
        with self.lock:
            return self._db.execute(sql, args).fetchall()

    def row(self, sql: str, args: tuple[Any, ...] = ()) -> Row | None:
        with self.lock:
            found: Row | None = self._db.execute(sql, args).fetchone()
            return found


def is_storage_error(error: sqlite3.Error) -> bool:
    return (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _STORAGE_REASONS


def storage_reason(error: sqlite3.Error) -> str:
    return _STORAGE_REASONS.get(getattr(error, "sqlite_errorcode", 0) & 0xFF) or exception_line(error)


def row_id(cursor: sqlite3.Cursor) -> int:
    """The rowid of the row an INSERT just made."""
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _newer_notice(version: int) -> str:
    return (f"This library was written by a newer Whisper Desk (schema {version}; this version "
            f"knows {SCHEMA_VERSION}): it is open read-only, and nothing is saved.")


def _statements(script: str) -> list[str]:
    """A migration script split into complete SQL statements (sqlite3.complete_statement keeps trigger bodies whole)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
