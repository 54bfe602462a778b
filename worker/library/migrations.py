"""The library's schema, one migration per version (PRAGMA user_version): migration N brings a library from
version N-1 to N. Append, never edit: a library written by any earlier version opens and moves forward."""

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    backend TEXT NOT NULL,
    options TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    error TEXT,
    error_detail TEXT,
    duration REAL,
    position REAL NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    elapsed REAL
);
CREATE TABLE IF NOT EXISTS transcripts (
    job_id INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    original TEXT NOT NULL,
    edited TEXT,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER REFERENCES jobs(id) ON DELETE CASCADE,
    line TEXT NOT NULL,
    created REAL NOT NULL
);
"""

MIGRATIONS: list[str] = [
    _SCHEMA_V1,
    # the Modal calls each chunk of a job runs as (worker.backends.base.ChunkLedger): collected after a crash
    """
    CREATE TABLE modal_calls (
        job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        chunk_index INTEGER NOT NULL,
        start_s REAL NOT NULL,
        end_s REAL NOT NULL,
        call_id TEXT NOT NULL,
        finished INTEGER NOT NULL DEFAULT 0,
        sent REAL NOT NULL,
        PRIMARY KEY (job_id, chunk_index)
    );
    """,
    # leases: the process running a job (worker.library.lease_owner()) and until when its claim holds
    """
    ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE jobs ADD COLUMN lease_expires REAL;
    """,
    # search: every segment of every transcript (the edited text when there is one) in an FTS5 index, kept
    # current by triggers on transcripts; segments streaming in are added by Library.append_segments
    """
    CREATE TABLE segment_texts (
        id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        segment INTEGER NOT NULL,
        start REAL NOT NULL,
        text TEXT NOT NULL,
        UNIQUE (job_id, segment)
    );
    CREATE VIRTUAL TABLE segments_fts USING fts5(
        text, content='segment_texts', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER segment_texts_added AFTER INSERT ON segment_texts BEGIN
        INSERT INTO segments_fts (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER segment_texts_removed AFTER DELETE ON segment_texts BEGIN
        INSERT INTO segments_fts (segments_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TRIGGER segment_texts_changed AFTER UPDATE ON segment_texts BEGIN
        INSERT INTO segments_fts (segments_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO segments_fts (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER transcript_saved AFTER INSERT ON transcripts BEGIN
        DELETE FROM segment_texts WHERE job_id = new.job_id;
        INSERT INTO segment_texts (job_id, segment, start, text)
            SELECT new.job_id, CAST(key AS INTEGER), json_extract(value, '$.start'), json_extract(value, '$.text')
            FROM json_each(COALESCE(new.edited, new.original), '$.segments');
    END;
    CREATE TRIGGER transcript_changed AFTER UPDATE OF original, edited ON transcripts BEGIN
        DELETE FROM segment_texts WHERE job_id = new.job_id;
        INSERT INTO segment_texts (job_id, segment, start, text)
            SELECT new.job_id, CAST(key AS INTEGER), json_extract(value, '$.start'), json_extract(value, '$.text')
            FROM json_each(COALESCE(new.edited, new.original), '$.segments');
    END;
    INSERT INTO segment_texts (job_id, segment, start, text)
        SELECT t.job_id, CAST(s.key AS INTEGER), json_extract(s.value, '$.start'), json_extract(s.value, '$.text')
        FROM transcripts AS t, json_each(COALESCE(t.edited, t.original), '$.segments') AS s;
    """,
    # watch folders (worker.jobs.watch): each media file seen, and the job that transcribes it, across restarts
    """
    CREATE TABLE watched_files (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime REAL NOT NULL,
        job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
        state TEXT NOT NULL,
        updated REAL NOT NULL
    );
    """,
    # known voices (worker.speakers): a named speaker's averaged voice embedding (float32 bytes, never audio)
    """
    CREATE TABLE known_voices (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        embedding BLOB NOT NULL,
        count INTEGER NOT NULL DEFAULT 1,
        created REAL NOT NULL
    );
    """,
    # the same recording is never transcribed twice by accident (worker.jobs.same_recording): each job's file
    # content (SHA-256 of its bytes) and whether it is to be transcribed even so; and, per watched folder, the
    # addition whose files already there were skipped (worker.jobs.watch: once per addition)
    """
    ALTER TABLE jobs ADD COLUMN content_sha256 TEXT;
    ALTER TABLE jobs ADD COLUMN transcribe_again INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX jobs_by_content ON jobs (content_sha256);
    CREATE TABLE watched_folders (
        folder TEXT PRIMARY KEY,
        existing_skipped_for REAL NOT NULL,
        updated REAL NOT NULL
    );
    """,
    # a job whose file is the app's own copy (an API upload: worker.serve), removed with the job
    """
    ALTER TABLE jobs ADD COLUMN owned_copy INTEGER NOT NULL DEFAULT 0;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
