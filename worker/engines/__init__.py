"""Whisper engines on this computer: one interface (base) over faster-whisper (the default) and openai-whisper, the
factory that creates them, the weights they load (shipped, cached, converted), and forced alignment of words.
May import worker.core, worker.transcripts and worker.media."""
