"""The one Backend interface behind which local and Modal transcription sit, the events a backend emits while it
works (progress, segments, timings), the chunk ledger protocol, and the local backend (an engine process).
The Modal backend lives in worker.modal. May import worker.core, transcripts, media and engines."""
