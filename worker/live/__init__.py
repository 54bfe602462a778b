"""Live transcription of what an audio input hears, without Qt: the caller captures (the window with QAudioSource,
the CLI with parec) and feeds 16 kHz mono samples; this package does the rest.

    agreement   LocalAgreement: a word is final once two passes in a row agree on it; the rest is tentative
    streaming   the engine over a growing buffer of unfinished audio, on its own thread: backlog, lag, pause
    recording   what is heard appended to a FLAC file as it arrives; recordings a crash left, found again
    session     one live transcription: recording + streaming, finalised and saved as a finished library job
    pulse       capture without Qt for the CLI: PulseAudio/PipeWire sources listed (pactl) and read (parec)

May import every other core package except cli and serve (it saves its job through worker.jobs.queue)."""
