"""A damaged library file is kept aside under a dated name (never deleted), and whatever rows can still be
read from it are carried over into a fresh library, table by table, row by row if need be."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

SIDE_FILES = ("", "-wal", "-shm")  # SQLite's database file and the journal files that belong to it
BATCH = 500  # rows read at once while the pages hold; a failing batch is read one row at a time
UNKNOWN_TOP_ROWID = 100_000  # how far to look when a table's largest rowid cannot be read


def set_aside(path: Path) -> Path:
    """Move the library file (and its journal) to `<name>.damaged-<date>-<time>` next to it; returns that path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    number = 1
    while aside.exists():
        number += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
    for suffix in SIDE_FILES:
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.replace(f"{aside}{suffix}")
    return aside


def carry_over(damaged: Path, fresh: sqlite3.Connection) -> int:
    """Copy every readable row of `damaged` into the same tables of `fresh` (a migrated, empty library);
    returns how many jobs came back. Reads a temporary copy, so the kept file stays as it was found."""
    with tempfile.TemporaryDirectory(prefix="whisper-desk-repair-") as folder:
        copy = Path(folder) / "damaged.sqlite3"
        for suffix in SIDE_FILES:
            if Path(f"{damaged}{suffix}").exists():
                shutil.copyfile(f"{damaged}{suffix}", f"{copy}{suffix}")
        try:
            old = sqlite3.connect(copy)
            old.execute("PRAGMA user_version").fetchone()
        except sqlite3.DatabaseError:
            return 0  # not a database at all (random bytes): nothing to read
        try:
            for table in _plain_tables(fresh):
                _copy_table(old, fresh, table)
        finally:
            old.close()
    return int(fresh.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])


def _plain_tables(db: sqlite3.Connection) -> list[str]:
    """The library's own tables in creation order (parents first); search indexes rebuild themselves."""
    kinds = {row[1]: row[2] for row in db.execute("PRAGMA table_list") if row[0] == "main"}
    names = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")]
    return [name for name in names if kinds.get(name) == "table" and not name.startswith("sqlite_")]


def _copy_table(old: sqlite3.Connection, fresh: sqlite3.Connection, table: str) -> None:
    try:
        old_columns = {row[1] for row in old.execute(f'PRAGMA table_info("{table}")')}
    except sqlite3.DatabaseError:
        return
    columns = [row[1] for row in fresh.execute(f'PRAGMA table_info("{table}")') if row[1] in old_columns]
    if not columns:
        return
    names = ", ".join(f'"{c}"' for c in columns)
    insert = f'INSERT OR IGNORE INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'
    fresh.execute("BEGIN IMMEDIATE")
    for row in _readable_rows(old, table, names):
        try:
            fresh.execute(insert, row)
        except sqlite3.DatabaseError:
            pass  # e.g. a transcript whose job was lost
    fresh.execute("COMMIT")


def _readable_rows(old: sqlite3.Connection, table: str, names: str) -> list[tuple]:
    select = f'SELECT {names} FROM "{table}"'
    try:
        return old.execute(f"{select} ORDER BY rowid").fetchall()
    except sqlite3.DatabaseError:
        pass
    try:
        top = old.execute(f'SELECT MAX(rowid) FROM "{table}"').fetchone()[0] or 0
    except sqlite3.DatabaseError:
        top = UNKNOWN_TOP_ROWID
    rows: list[tuple] = []
    for first in range(1, top + 1, BATCH):
        last = min(first + BATCH - 1, top)
        try:
            rows += old.execute(f"{select} WHERE rowid BETWEEN ? AND ? ORDER BY rowid", (first, last)).fetchall()
            continue
        except sqlite3.DatabaseError:
            pass
        for rowid in range(first, last + 1):
            try:
                rows += old.execute(f"{select} WHERE rowid = ?", (rowid,)).fetchall()
            except sqlite3.DatabaseError:
                pass
    return rows
