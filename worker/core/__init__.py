"""What every package may use: the errors a user sees, shared constants, the options of a transcription, the
cancel token, Ctrl-C handling and running coroutines with cancel. Imports nothing else of worker/."""
