"""`whisper-desk search`: every transcript of the library searched from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from worker.library.search import QueryError, search


def search_command(query: str, limit: int, library_path: Path | None, out: TextIO, err: TextIO) -> int:
    """`whisper-desk search`: one line per hit, FILE<TAB>HH:MM:SS.mmm<TAB>segment text.
    Exits 0 with hits, 1 with none, 2 for a query that cannot be searched (with its one-line reason)."""
    from worker.cli.exit_codes import EXIT_FAILED as EXIT_NO_HITS
    from worker.cli.exit_codes import EXIT_OK as EXIT_HITS
    from worker.cli.exit_codes import EXIT_USAGE as EXIT_BAD_QUERY
    from worker.library.database import default_library_path
    from worker.library.library import Library
    from worker.transcripts.editing import format_timestamp

    path = library_path or default_library_path()
    if not path.exists():
        print(f"whisper-desk search: no library at {path} (nothing transcribed yet)", file=err)
        return EXIT_NO_HITS
    library = Library(path)
    try:
        hits = search(library, query, limit)
    except QueryError as exc:
        print(f"whisper-desk search: {exc}", file=err)
        return EXIT_BAD_QUERY
    finally:
        library.close()
    for hit in hits:
        text = " ".join(hit.text.split())  # one line, whatever the segment holds
        out.write(f"{hit.path}\t{format_timestamp(hit.start)}\t{text}\n")
    out.flush()
    return EXIT_HITS if hits else EXIT_NO_HITS

