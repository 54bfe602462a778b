"""Whisper Desk's core, without Qt. One package per concern, layered: each imports only the packages below it
(pyproject.toml [tool.importlinter], checked by `lint-imports` in .ci/run), and none imports Qt or gui/.

    cli          the command line: transcribe, check, deploy, search, watch, serve
    serve        the OpenAI-compatible speech-to-text API: requests as jobs of the one queue, answers from the export pipeline
    jobs         the queue, scheduling, preferences, watch folders, region re-transcription, review imports
    modal        the deployed T4 app, the client side of it, the fan-out backend and the cost model
    speakers     who said what: the voice encoder, labelling, known voices, speaker edits
    library      the SQLite library: jobs, transcripts, search, voices, migrations and repair
    backends     the Backend interface, its events, and the local backend
    engines      Whisper engines (faster-whisper, openai-whisper), weights, forced alignment
    media        decoding any audio or video, chunking at silences, reading a time range
    transcripts  the transcript model, editing, stitching, subtitle rules, formats and export
    core         errors, constants, options, cancel tokens, Ctrl-C, async loops

docs/architecture.md draws the data path through them.
"""

__version__ = "0.1.0"
