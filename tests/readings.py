"""Read speech of a known text for the long-file tests: bench.synth_speech's text read twice by espeak-ng, in a US
and a British voice at 190 words a minute, 0.6 s apart (about 132 s, 490 words)."""

from __future__ import annotations

from pathlib import Path

from speech_text import normalise


def two_readings(folder: Path) -> tuple[Path, str]:
    """The recording (16 kHz mono WAV) in `folder`, made once, and what it says (normalised)."""
    import numpy as np
    import soundfile

    from bench.synth_speech import REFERENCE_TEXT, synthesize
    from worker.media.audio import decode_audio

    path = folder / "two_readings.wav"
    if not path.exists():
        readings = [decode_audio(synthesize(folder / f"reading-{voice}.wav", voice=voice, words_per_minute=190))
                    for voice in ("en-us", "en-gb")]
        pause = np.zeros(int(0.6 * 16000), np.float32)
        soundfile.write(str(path), np.concatenate([readings[0], pause, readings[1]]), 16000, subtype="PCM_16")
    return path, normalise(f"{REFERENCE_TEXT} {REFERENCE_TEXT}")
