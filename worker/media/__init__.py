"""Media in: decoding any audio or video file in-process (PyAV), cutting long audio at silences into chunks and
packing them for upload, and reading a time range. May import worker.core and worker.transcripts."""
