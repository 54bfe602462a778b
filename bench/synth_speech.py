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

# Sentences from the IEEE "Harvard" lists (IEEE Recommended Practice for Speech Quality Measurements, 1969; public
# domain), three sets that share no sentence, for readings of other text than REFERENCE_TEXT. Sentences with
# numbers, ordinals, hyphenated or one-or-two-word compounds (drug store, rosebush) are left out: their spelling in
# a transcript is a convention, not a hearing.
HARVARD_A = """\
The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. \
It's easy to tell the depth of a well. These days a chicken leg is a rare dish. Rice is often served in round bowls. \
The juice of lemons makes fine punch. The box was thrown beside the parked truck. \
The hogs were fed chopped corn and garbage. A large size in stockings is hard to sell.
The boy was there when the sun rose. A rod is used to catch pink salmon. \
The source of the huge river is the clear spring. Kick the ball straight and follow through. \
Help the woman get back to her feet. A pot of tea helps to pass the evening. Smoky fires lack flame and heat. \
The soft cushion broke the man's fall. The salt breeze came across from the sea.
The small pup gnawed a hole in the sock. The fish twisted and turned on the bent hook. \
Press the pants and sew a button on the vest. The swan dive was far short of perfect. \
The beauty of the view stunned the young boy. Her purse was full of useless trash. \
The colt reared and threw the tall rider. It snowed, rained, and hailed the same morning. Read verse out loud for pleasure.
"""

HARVARD_B = """\
Hoist the load to your left shoulder. Take the winding path to reach the lake. Note closely the size of the gas tank. \
Wipe the grease off his dirty face. Mend the coat before you go out. The wrist was badly strained and hung limp. \
The stray cat gave birth to kittens. The young girl gave no clear response. The meal was cooked before the bell rang. \
What joy there is in living.
A king ruled the state in the early days. The ship was torn apart on the sharp reef. \
The wide road shimmered in the hot sun. The lazy cow lay in the cool grass. Lift the square stone over the fence. \
Hop over the fence and plunge in. Mesh wire keeps chicks inside.
The frosty air passed through the coat. The crooked maze failed to fool the mouse. Adding fast leads to wrong sums. \
The show was a flop from the very start. A saw is a tool used for making boards. March the soldiers past the next hill. \
A cup of sugar makes sweet fudge. Both lost their lives in the raging storm.
The ripe taste of cheese improves with age. Act on these orders with great speed. The hog crawled under the high fence. \
Move the vat over the hot fire. The bark of the pine tree was shiny and dark. Leaves turn brown and yellow in the fall.
"""

HARVARD_C = """\
A small creek cut across the field. Use a pencil to write the first draft. \
The set of china hit the floor with a crash. This is a grand season for hikes on the road. \
The dune rose from the edge of the water. Those words were the cue for the actor to leave.
A yacht slid around the point into the bay. The ink stain dried on the finished page. \
The walled town was seized without a fight. A tame squirrel makes a nice pet. \
The horn of the car woke the sleeping cop. The heart beat strongly and with firm strokes. \
The pearl was worn in a thin silver ring. The fruit peel was cut in thick slices.
The Navy attacked the big task force. See the cat glaring at the scared mouse. The hat brim was wide and too droopy. \
The lawyer tried to lose his case. The grass curled around the fence post. Cut the pie into large parts. \
Men strive but seldom get rich. Always close the barn door tight. He lay prone and hardly moved a limb.
The slush lay deep along the street. A wisp of cloud hung in the blue air. A pound of sugar costs more than eggs.
"""

TEXTS = {"lighthouse": REFERENCE_TEXT, "Harvard A": HARVARD_A, "Harvard B": HARVARD_B, "Harvard C": HARVARD_C}


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
