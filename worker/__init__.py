"""Whisper Desk core: decoding, chunking, engines, backends, transcripts. Never imports Qt."""

__version__ = "0.1.0"
