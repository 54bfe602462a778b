"""The voice's pitch (F0) through a file, for telling speakers apart: YIN (de Cheveigné and Kawahara, 2002) in
numpy, on audio decimated to 8 kHz, one estimate every PITCH_HOP_S, fed block by block like MelStream so a long
file never sits in memory at once. Unvoiced or quiet frames are NaN."""

from __future__ import annotations

import numpy as np

from worker.speakers.voice_encoder import SAMPLE_RATE

PITCH_RATE = 8000  # F0 stays under 400 Hz: half the encoder's rate keeps every harmonic that matters
PITCH_HOP_S = 0.04  # one estimate every 40 ms: a stretch's median needs no more
LOWEST_HZ = 60.0
HIGHEST_HZ = 400.0
FRAME = 512  # 64 ms at 8 kHz: two periods of the lowest pitch and the lags on top
_LAGS = int(PITCH_RATE / LOWEST_HZ) + 1  # largest lag looked at
_INTEGRATION = FRAME - _LAGS  # samples each lag's difference sums over
_SHORTEST_LAG = int(PITCH_RATE / HIGHEST_HZ)
_DIP = 0.15  # YIN's absolute threshold: the first lag whose normalised difference dips under it
_VOICED = 0.3  # a frame whose best dip stays above this is not periodic enough to be voiced
_QUIET_DBFS = -50.0  # frames quieter than this carry no voice
_FRAMES_AT_ONCE = 2000


class PitchTrack:
    """F0 in Hz (NaN where unvoiced) of audio fed in blocks at SAMPLE_RATE; estimate i is centred at
    i * PITCH_HOP_S seconds."""

    def __init__(self) -> None:
        self._pending = np.zeros(FRAME // 2, dtype=np.float32)  # the left padding, at PITCH_RATE
        self._carry = np.zeros(0, dtype=np.float32)  # input samples not yet decimated (an odd one out)
        self._out: list[np.ndarray] = []

    def feed(self, block: np.ndarray) -> None:
        joined = np.concatenate([self._carry, np.asarray(block, dtype=np.float32)])
        step = SAMPLE_RATE // PITCH_RATE
        whole = len(joined) - len(joined) % step
        # a pair's mean: a plain low-pass before halving the rate (a voice's F0 and its low harmonics pass)
        self._pending = np.concatenate([self._pending, joined[:whole].reshape(-1, step).mean(axis=1)])
        self._carry = joined[whole:]
        self._compute()

    def finish(self) -> np.ndarray:
        self._pending = np.concatenate([self._pending, np.zeros(FRAME // 2, dtype=np.float32)])
        self._compute()
        return np.concatenate(self._out) if self._out else np.zeros(0, dtype=np.float32)

    def _compute(self) -> None:
        hop = int(PITCH_HOP_S * PITCH_RATE)
        count = 1 + (len(self._pending) - FRAME) // hop if len(self._pending) >= FRAME else 0
        for first in range(0, count, _FRAMES_AT_ONCE):
            n = min(_FRAMES_AT_ONCE, count - first)
            start = first * hop
            frames = np.lib.stride_tricks.as_strided(
                self._pending[start:], shape=(n, FRAME), strides=(self._pending.strides[0] * hop, self._pending.strides[0])
            )
            self._out.append(yin(frames.astype(np.float64)))
        self._pending = self._pending[count * hop :]


def yin(frames: np.ndarray) -> np.ndarray:
    """F0 in Hz of each row of `frames` (FRAME samples at PITCH_RATE), NaN where unvoiced or quiet."""
    head = frames[:, :_INTEGRATION]
    size = 2 * FRAME
    # r[t] = sum_j head[j] * frame[j + t]: the cross-correlation of each frame's head with the whole frame
    r = np.fft.irfft(np.conj(np.fft.rfft(head, size)) * np.fft.rfft(frames, size), size)[:, :_LAGS]
    squares = np.cumsum(np.pad(frames**2, ((0, 0), (1, 0))), axis=1)
    energy_at = squares[:, _INTEGRATION : _INTEGRATION + _LAGS] - squares[:, :_LAGS]  # sum of frame[t : t+W]**2
    difference = np.maximum(squares[:, [_INTEGRATION]] + energy_at - 2 * r, 0.0)
    lags = np.arange(_LAGS)
    running = np.cumsum(difference[:, 1:], axis=1)
    normalised = np.ones_like(difference)
    normalised[:, 1:] = difference[:, 1:] * lags[1:] / np.maximum(running, 1e-12)
    window = normalised[:, _SHORTEST_LAG:]
    below = window < _DIP
    # the first dip under the threshold, followed down to its local minimum; else the deepest lag
    first = np.where(below.any(axis=1), below.argmax(axis=1), window.argmin(axis=1))
    rows = np.arange(len(frames))
    for _ in range(_LAGS):
        nxt = np.minimum(first + 1, window.shape[1] - 1)
        better = window[rows, nxt] < window[rows, first]
        if not better.any():
            break
        first = np.where(better, nxt, first)
    depth = window[rows, first]
    level = 10 * np.log10(np.maximum(squares[:, -1] / FRAME, 1e-20))
    voiced = (depth < _VOICED) & (level > _QUIET_DBFS)
    return np.where(voiced, PITCH_RATE / (first + _SHORTEST_LAG), np.nan).astype(np.float32)


def semitones(hz: float) -> float:
    """`hz` in semitones above 100 Hz (NaN stays NaN)."""
    return float(12 * np.log2(hz / 100.0)) if hz == hz and hz > 0 else float("nan")
