"""Re-transcribing part of a file: only the time range is decoded and handed to a backend, and the
segments come back on the file's clock."""

from __future__ import annotations

import tempfile
from pathlib import Path

from worker.backends.base import Backend
from worker.backends.events import Emit
from worker.core.cancel import CancelToken
from worker.core.constants import SAMPLE_RATE
from worker.core.options import TranscriptionOptions
from worker.media.region import decode_range
from worker.transcripts.model import Segment


def transcribe_region(backend: "Backend", path: str | Path, start_s: float, end_s: float,
                      options: TranscriptionOptions, emit: Emit, cancel: CancelToken) -> list[Segment]:
    """Segments of [start_s, end_s) of `path`, transcribed by `backend`, on the file's clock and kept inside
    the range. The range is handed to the backend as a temporary 16 kHz WAV (removed afterwards)."""
    import soundfile

    path = Path(path)
    audio = decode_range(path, start_s, end_s, cancel)
    length = len(audio) / SAMPLE_RATE
    with tempfile.TemporaryDirectory(prefix="whisper-desk-region-") as folder:
        clip = Path(folder) / f"{path.stem} {start_s:.3f}-{end_s:.3f}.wav"
        soundfile.write(str(clip), audio, SAMPLE_RATE, subtype="FLOAT")
        transcript = backend.transcribe(clip, options, emit, cancel)
    segments: list[Segment] = []
    for segment in transcript.segments:
        kept = segment.clamped(length)
        if kept is not None and kept.text.strip():
            segments.append(kept.shifted(start_s, new_id=len(segments)))
    return segments

