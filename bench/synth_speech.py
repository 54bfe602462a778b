"""Synthetic English speech with a known transcript, for the benchmarks.

espeak-ng (Debian package `espeak-ng`, needed only for benchmarks) reads REFERENCE_TEXT
aloud into a 16-bit WAV of about 75 seconds. The text has no digits, hyphens or
abbreviations, so a plain lowercase comparison without punctuation is a fair WER.

    python -m bench.synth_speech OUT.wav
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VOICE = "en-us"
WORDS_PER_MINUTE = 165

REFERENCE_TEXT = """\
The old lighthouse stood at the edge of the harbor for more than a century. \
Every evening the keeper climbed the narrow stairs, cleaned the heavy glass, and lit the lamp before the sun went down. \
Ships that passed in the night could see the beam from far across the water, and sailors learned to trust it.

One winter a storm arrived without warning. \
The wind pulled at the roof, the waves rose over the stone wall, and the power in the village failed. \
The keeper carried oil up the stairs by hand and kept the light burning until morning. \
When the sky finally cleared, three fishing boats returned safely to the harbor, and their crews walked up the hill to thank him.

Today the lighthouse is a small museum. \
Visitors can read the logbooks, look at the brass instruments, and climb to the top to watch the boats come and go. \
Children often ask whether the keeper was ever lonely. \
The guide usually smiles and says that he had the sea, the birds, and a long shelf of books, and that he wrote letters to his sister every week.

Some of those letters are displayed in a glass case near the door. \
They describe the weather, the color of the evening sky, and the names of the ships he counted each season. \
Reading them today, it is easy to imagine the quiet rhythm of his days and the steady light that never went out.
"""


class SynthesisError(RuntimeError):
    """espeak-ng is missing or failed."""


def espeak_binary() -> str:
    for name in ("espeak-ng", "espeak"):
        found = shutil.which(name)
        if found:
            return found
    raise SynthesisError("espeak-ng not found: install it with `apt-get install -y espeak-ng` (benchmarks only)")


def synthesize(out_path: Path, text: str = REFERENCE_TEXT, voice: str = VOICE, words_per_minute: int = WORDS_PER_MINUTE) -> Path:
    """Write `text` spoken by espeak-ng to `out_path` (WAV, 22.05 kHz mono 16-bit) and return it."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as handle:
        handle.write(text)
        text_file = Path(handle.name)
    try:
        result = subprocess.run(
            [espeak_binary(), "-v", voice, "-s", str(words_per_minute), "-w", str(out_path), "-f", str(text_file)],
            capture_output=True,
            text=True,
        )
    finally:
        text_file.unlink(missing_ok=True)
    if result.returncode != 0 or not out_path.exists() or out_path.stat().st_size == 0:
        raise SynthesisError(f"espeak-ng failed ({result.returncode}): {result.stderr.strip()[:200]}")
    return out_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Synthesize the benchmark's English speech with espeak-ng.")
    parser.add_argument("out", type=Path, help="output WAV path")
    args = parser.parse_args(argv)
    try:
        path = synthesize(args.out)
    except SynthesisError as exc:
        print(f"synth_speech: {exc}", file=sys.stderr)
        return 1
    import soundfile

    print(f"{path}: {soundfile.info(str(path)).duration:.1f} s, {len(REFERENCE_TEXT.split())} words")
    return 0


if __name__ == "__main__":
    sys.exit(main())
