"""The library: jobs, transcripts, search (FTS5), known voices and watch-folder state in one SQLite file with
append-only migrations, and the repair of a damaged file. May import worker.core, transcripts and backends."""
