"""Recording conditions applied to made speech, shared by the benches: noise at an SNR, a telephone line, a lower
level, a room's reverberation. Each is seeded through the `rng` it is given, so a bench makes the same audio each run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


def active_power(samples: Any, rate: int) -> float:
    """Mean power of the 20 ms frames within 40 dB of the loudest one (the speech, not its pauses)."""
    import numpy as np

    frame = max(1, int(0.02 * rate))
    frames = samples[: len(samples) // frame * frame].reshape(-1, frame)
    power = np.mean(frames**2, axis=1)
    return float(np.mean(power[power >= np.max(power) * 1e-4]))


@dataclass(frozen=True)
class Noise:
    """Gaussian noise, white or pink (1/f power), at `snr_db` below the speech's active level."""

    snr_db: float
    color: str = "white"

    def describe(self) -> str:
        return f"{self.color} noise at {self.snr_db:g} dB SNR"

    def apply(self, samples: Any, rate: int, rng: Any) -> tuple[Any, int]:
        import numpy as np

        noise = rng.standard_normal(len(samples))
        if self.color == "pink":
            spectrum = np.fft.rfft(noise)
            freqs = np.fft.rfftfreq(len(noise), 1 / rate)
            spectrum[1:] /= np.sqrt(freqs[1:])
            spectrum[0] = 0.0
            noise = np.fft.irfft(spectrum, len(noise))
        power = active_power(samples, rate) / 10 ** (self.snr_db / 10)
        return samples + noise * np.sqrt(power / np.mean(noise**2)), rate


@dataclass(frozen=True)
class Telephone:
    """A telephone line: 300-3400 Hz band-pass (4th-order Butterworth), 8 kHz, written as mu-law."""

    def describe(self) -> str:
        return "telephone band (300-3400 Hz, 8 kHz mu-law)"

    def apply(self, samples: Any, rate: int, rng: Any) -> tuple[Any, int]:
        from math import gcd

        from scipy.signal import butter, resample_poly, sosfilt

        band = sosfilt(butter(4, [300, 3400], btype="bandpass", fs=rate, output="sos"), samples)
        common = gcd(8000, rate)
        return resample_poly(band, 8000 // common, rate // common), 8000


@dataclass(frozen=True)
class Gain:
    """The whole reading `db` quieter (a recording made far from the microphone, or at a low input level)."""

    db: float

    def describe(self) -> str:
        return f"level {self.db:g} dB"

    def apply(self, samples: Any, rate: int, rng: Any) -> tuple[Any, int]:
        return samples * 10 ** (self.db / 20), rate


@dataclass(frozen=True)
class Reverb:
    """A room: the direct sound plus a tail of exponentially decaying noise (reverberation time `rt60_s`) carrying as
    much energy as the direct sound (0 dB direct-to-reverberant: a speaker a few metres away)."""

    rt60_s: float

    def describe(self) -> str:
        return f"reverberation (RT60 {self.rt60_s:g} s)"

    def apply(self, samples: Any, rate: int, rng: Any) -> tuple[Any, int]:
        import numpy as np
        from scipy.signal import fftconvolve

        t = np.arange(1, int(self.rt60_s * rate)) / rate
        tail = rng.standard_normal(len(t)) * np.exp(-6.9078 * t / self.rt60_s)  # -60 dB at rt60_s
        response = np.concatenate([[1.0], tail / np.sqrt(np.sum(tail**2))])
        wet = fftconvolve(samples, response)[: len(samples)]
        return wet * (np.max(np.abs(samples)) / np.max(np.abs(wet))), rate


Condition = Noise | Telephone | Gain | Reverb


def write_conditioned(path: Path, samples: Any, rate: int, conditions: tuple[Condition, ...], rng: Any) -> None:
    """`samples` with `conditions` applied in order, kept below full scale, written as a WAV: 16-bit PCM, or
    mu-law at 8 kHz (a telephone line)."""
    import numpy as np
    import soundfile

    samples = np.asarray(samples, dtype=np.float64)
    for condition in conditions:
        samples, rate = condition.apply(samples, rate, rng)
    peak = float(np.max(np.abs(samples)))
    if peak > 0.99:
        samples = samples * (0.99 / peak)
    soundfile.write(str(path), samples.astype(np.float32), rate, subtype="ULAW" if rate == 8000 else "PCM_16")
