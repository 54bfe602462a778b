"""Re-transcribe part of a file: decode just the time range, run it through any backend, and return segments
timed on the whole file's clock (the editor puts them in place of the old ones)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from worker.core.cancel import CancelToken
from worker.core.errors import MediaError
from worker.media.audio import SAMPLE_RATE, iter_audio_blocks

if TYPE_CHECKING:
    import numpy as np


_BLOCK_S = 10.0  # decoded at a time; blocks after the range are never decoded


class SequentialAudio:
    """Time ranges of one file, read in increasing order in a single decoding pass: samples before the range
    asked for are dropped, blocks after it are not decoded yet. (A range before the last one reopens the file.)"""

    def __init__(self, path: str | Path, cancel: CancelToken | None = None) -> None:
        self.path, self.cancel = Path(path), cancel
        self._open()

    def _open(self) -> None:
        import numpy as np

        self._blocks = iter_audio_blocks(self.path, block_s=_BLOCK_S, cancel=self.cancel)
        self._buffer = np.zeros(0, dtype=np.float32)
        self._offset = 0  # the file's sample index of _buffer[0]
        self._ended = False

    def read(self, start_s: float, end_s: float) -> "np.ndarray":
        """Samples [start_s, end_s) as 16 kHz mono float32 (shorter at the end of the file)."""
        import numpy as np

        first, stop = max(0, round(start_s * SAMPLE_RATE)), max(0, round(end_s * SAMPLE_RATE))
        if first < self._offset:
            self.close()
            self._open()
        while not self._ended and self._offset + len(self._buffer) < stop:
            block = next(self._blocks, None)
            if block is None:
                self._ended = True
            else:
                self._buffer = np.concatenate([self._buffer, block])
        if first > self._offset:  # never needed again
            self._buffer = self._buffer[first - self._offset:]
            self._offset = first
        return self._buffer[:max(0, stop - self._offset)].copy()

    def close(self) -> None:
        close = getattr(self._blocks, "close", None)
        if close is not None:
            close()  # the decoder is closed now, not when collected


def decode_range(path: str | Path, start_s: float, end_s: float, cancel: CancelToken | None = None) -> "np.ndarray":
    """Samples [start_s, end_s) of the file as 16 kHz mono float32 (decoding stops at end_s). MediaError
    when the range holds (almost) no audio."""
    audio_file = SequentialAudio(path, cancel)
    try:
        audio = audio_file.read(start_s, end_s)
    finally:
        audio_file.close()
    if len(audio) < SAMPLE_RATE // 10:
        raise MediaError(path, f"has no audio between {start_s:.1f} s and {end_s:.1f} s")
    return audio


