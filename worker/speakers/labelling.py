"""Who said what: speaker labels for a finished transcript, offline, whichever backend wrote the text.

Turns, not windows. label_speakers() decodes the audio again and cuts the words into stretches of speech at the
pauses between them (PAUSE_S). Each stretch is heard by the GE2E speaker encoder (worker.speakers.voice_encoder)
through 1.6 s windows every WINDOW_HOP_S, with the frames outside the stretch silenced so that no window hears a
neighbour's voice. The stretches long enough to say whose voice they are (ANCHOR_S) are clustered: average-linkage
agglomerative on the cosine similarity of their averaged windows, less a penalty where their median pitch
(worker.speakers.pitch) lies more than PITCH_TOLERANCE_ST apart, merged while two clusters are at least
STRETCH_MERGE_SIMILARITY alike (NARROWBAND_MERGE_SIMILARITY over a telephone line's band), or down to the count the
user gave. Then the words are re-segmented (Viterbi): each word leans to the speaker its windows sound closest to,
and changing speaker costs little at a pause, more at a sentence's end and most inside a sentence, so a sentence
keeps one label unless the voice really changes in it; the speakers' voices are re-estimated from their words and
the words re-segmented once more. With the count found automatically, windows that sound like none of the speakers
(LONE_VOICE_SIMILARITY) and agree with each other (or one window is all of a short turn, LONE_TURN_S) are one
more speaker: a short turn that average linkage merged into a similar voice, where it weighs too little to hold a
cluster of its own; the voices are then re-estimated once more. Segments are split at the words where the speaker
changes. Speakers are numbered in order of first appearance ("S1" / "Speaker 1", ...). A speaker whose voice
matches a known voice of the library (cosine similarity >= KNOWN_VOICE_SIMILARITY) takes that voice's name, with
the similarity as its confidence. Thresholds and costs were set on the development dialogues of
bench/speakers_bench.py and checked on its held-out ones (docs/benchmarks.md, "Speakers").
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from worker.backends.events import Emit, JobNote, Progress, Stage
from worker.core.cancel import CancelToken
from worker.core.options import TranscriptionOptions
from worker.media.audio import iter_audio_blocks
from worker.speakers.pitch import PITCH_HOP_S, PitchTrack
from worker.speakers.voice_encoder import (
    MEL_HOP,
    NORM_TARGET_DBFS,
    PARTIAL_FRAMES,
    SAMPLE_RATE,
    MelStream,
    mel_centre_hz,
    normalised,
    shared_encoder,
)
from worker.transcripts.model import Segment, Speaker, Transcript, Word

if TYPE_CHECKING:
    from worker.library.voices import KnownVoice

FRAMES_PER_S = SAMPLE_RATE // MEL_HOP  # 100 mel frames a second
WINDOW_S = PARTIAL_FRAMES / FRAMES_PER_S  # 1.6 s: what the encoder was trained on
WINDOW_HOP_S = 0.8  # windows overlap by half over a stretch of speech
PAUSE_S = 0.3  # a gap between words at least this long is a pause: stretches of speech end there
EDGE_S = 0.15  # a window hears this much beyond its stretch's first and last word (word times are that loose)
ANCHOR_S = 1.5  # speech between two pauses this long is clustered; shorter stretches only follow the words
MIN_SPEECH_S = 2.0  # less speech than this (or a single window) is too short to tell voices apart
SILENCE_DBFS = -55.0  # a window quieter than this holds no voice (Whisper can write words over silence)
STRETCH_MERGE_SIMILARITY = 0.715  # automatic count: clusters of stretches this alike (average cosine) are one speaker
# A telephone line (nothing above about 4 kHz) makes voices sound more alike to the encoder: in audio whose mel
# power above NARROWBAND_ABOVE_HZ is less than NARROWBAND_SHARE of the whole, clusters merge at this similarity
NARROWBAND_MERGE_SIMILARITY = 0.77
NARROWBAND_ABOVE_HZ = 4000.0
NARROWBAND_SHARE = 3e-4
# automatic count: windows less alike than this to every speaker's voice are another voice (a short turn that
# the clustering merged into a speaker); it becomes a speaker when at least LONE_VOICE_WINDOWS of them agree, or
# when they are every window of a turn of at least LONE_TURN_S between two pauses (one window can hear all of a
# short reply; a window over a shorter scrap of speech says too little about a voice)
LONE_VOICE_SIMILARITY = 0.65
LONE_VOICE_WINDOWS = 2
LONE_TURN_S = 1.0
# what changing speaker between two words costs in the re-segmentation, in seconds of speech times the cosine
# similarity by which the new speaker's voice is closer
CHANGE_AT_PAUSE = 0.05
CHANGE_AT_SENTENCE_END = 0.1
CHANGE_IN_SENTENCE = 1.0
SENTENCE_ENDS = (".", "?", "!", "…")
# Pitch: two stretches whose median pitch differs by more than PITCH_TOLERANCE_ST semitones sound less alike by
# PITCH_PENALTY for each semitone beyond it (one voice's stretches: 90 % within 2 semitones on the development set)
# (a telephone line cuts most voices' fundamental, under 300 Hz: pitch is not used there)
PITCH_TOLERANCE_ST = 3.0
PITCH_PENALTY = 0.02
# Steady noise under every voice (hiss, a fan, a hum) makes voices sound alike to the encoder: each mel channel's
# floor (this percentile of its frames, every NOISE_FLOOR_STEP-th frame) is taken off before embedding, leaving
# at least NOISE_KEEP of each frame. Audio with silent pauses has a floor near zero and is left as it is.
NOISE_FLOOR_PERCENTILE = 5.0
NOISE_FLOOR_STEP = 10
NOISE_KEEP = 0.02
KNOWN_VOICE_SIMILARITY = 0.80  # a speaker takes a known voice's name at or above this cosine similarity
MAX_CLUSTERED_WINDOWS = 2000  # beyond this many stretches the clustering runs on an even subsample; the rest follow
_RESEGMENT_ROUNDS = 2
_EMBED_BATCH = 64
# BLAS threads for the encoder's many small matrix products: on a busy 2-CPU machine two threads made them
# 6x slower than one (threads waiting on each other); the engine's process has ended by the time this runs
_ENCODER_THREADS = 1
_PROGRESS_FRACTION = 0.99  # the job's bar stays near its end while speakers are labelled


@dataclass(frozen=True)
class _Stretch:
    """Words first..last (indices into the transcript's words) with no pause between them."""

    first: int
    last: int
    start: float
    end: float
    group: int  # stretches of one group have no pause between them


@dataclass(frozen=True)
class _Heard:
    """What each window heard (rows in window order), or each speaker's voice: L2-normalised GE2E embeddings
    and the median pitch in semitones (NaN: unvoiced)."""

    embeddings: np.ndarray
    pitch: np.ndarray

    def similarity(self, other: _Heard) -> np.ndarray:
        """(len(self), len(other)) cosine similarity less the pitch penalty."""
        return self.embeddings @ other.embeddings.T - _pitch_penalty(self.pitch, other.pitch)

    def rows(self, which: np.ndarray) -> _Heard:
        return _Heard(self.embeddings[which], self.pitch[which])


@dataclass(frozen=True)
class _Window:
    start_frame: int
    heard_from: int  # frames of the window outside [heard_from, heard_to) are silenced (another stretch's)
    heard_to: int
    gain: float  # volume normalisation (power gain applied to the mel frames)
    stretch: int


def label_speakers(
    path: str | Path,
    transcript: Transcript,
    options: TranscriptionOptions,
    emit: Emit | None = None,
    cancel: CancelToken | None = None,
    voices: Sequence[KnownVoice] = (),
) -> Transcript:
    """A copy of `transcript` whose segments carry speaker ids (split where the speaker changes) and whose
    `speakers` lists them. `voices` are known voices to name speakers by. Never fails for short or silent
    audio: too little speech gets one speaker (and a note), silence none. Cancel raises Cancelled."""
    started = time.monotonic()
    say = emit or (lambda _event: None)
    if options.speakers is None:
        return transcript
    words = [(index, word) for index, segment in enumerate(transcript.segments) for word in _words_of(segment)]
    if not words:
        return _without_speakers(transcript)
    say(Progress(Stage.TRANSCRIBING, _PROGRESS_FRACTION, message="labelling speakers"))
    mels, energy, pitch = _audio_features(path, cancel)
    _take_off_noise_floor(mels)
    plain = [w for _, w in words]
    stretches = _stretches(plain)
    windows = _windows(stretches, energy, len(mels))
    if not windows:  # every word lies over silence
        return _without_speakers(transcript)
    embeddings = _embed(mels, windows, cancel)
    heard = {w.stretch for w in windows}
    speech_s = sum(s.end - s.start for i, s in enumerate(stretches) if i in heard)
    requested = None if options.speakers == "auto" else int(options.speakers)
    if len(windows) < 2 or speech_s < MIN_SPEECH_S:
        say(JobNote(f"speakers: only {speech_s:.1f} s of speech, too little to tell voices apart; one speaker"))
        requested = 1
    merge_similarity = STRETCH_MERGE_SIMILARITY
    if _is_narrowband(mels):
        merge_similarity, pitch = NARROWBAND_MERGE_SIMILARITY, np.full_like(pitch, np.nan)
    word_speakers, centroids = _diarize(plain, stretches, windows, embeddings, requested, merge_similarity, pitch)
    result = _split_segments(transcript, words, word_speakers, centroids, voices)
    result.timings = {**transcript.timings, "speakers_s": round(time.monotonic() - started, 3)}
    return result


def _without_speakers(transcript: Transcript) -> Transcript:
    return replace(transcript, segments=[replace(s, speaker=None) for s in transcript.segments], speakers=[])


# --- audio, stretches and windows ------------------------------------------------------------------------


def _words_of(segment: Segment) -> list[Word]:
    """The segment's words; a segment without word times (an imported transcript) gets its words spread
    evenly over its time, so it can still be split roughly."""
    if not segment.text.strip():
        return []
    if segment.words:
        return [w for w in segment.words if w.text.strip()]
    tokens = segment.text.split()
    step = (segment.end - segment.start) / len(tokens)
    return [Word(segment.start + i * step, segment.start + (i + 1) * step, (" " if i else "") + t) for i, t in enumerate(tokens)]


def _audio_features(path: str | Path, cancel: CancelToken | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mel frames, each 10 ms hop's mean square, and the pitch in semitones every PITCH_HOP_S (NaN: unvoiced)."""
    stream, track = MelStream(), PitchTrack()
    for block in iter_audio_blocks(path, block_s=60.0, cancel=cancel):
        stream.feed(block)
        track.feed(block)
    mels, energy = stream.finish()
    with np.errstate(divide="ignore", invalid="ignore"):
        return mels, energy, 12 * np.log2(track.finish() / 100.0)


def _take_off_noise_floor(mels: np.ndarray) -> None:
    """Each mel channel's steady noise floor taken off `mels` in place (NOISE_FLOOR_PERCENTILE, NOISE_KEEP)."""
    if not len(mels):
        return
    floor = np.percentile(mels[::NOISE_FLOOR_STEP], NOISE_FLOOR_PERCENTILE, axis=0).astype(mels.dtype)
    for first in range(0, len(mels), 65536):  # in blocks: a long file's mels are not copied whole
        block = mels[first : first + 65536]
        np.maximum(block - floor, NOISE_KEEP * block, out=block)


def _median_pitch(pitch: np.ndarray, start_s: float, end_s: float) -> float:
    """The median voiced pitch (semitones) between two times; NaN if nothing there is voiced."""
    heard = pitch[int(start_s / PITCH_HOP_S) : int(np.ceil(end_s / PITCH_HOP_S)) + 1]
    heard = heard[~np.isnan(heard)]
    return float(np.median(heard)) if len(heard) else float("nan")


def _window_pitch(windows: list[_Window], pitch: np.ndarray) -> np.ndarray:
    return np.array([_median_pitch(pitch, w.heard_from / FRAMES_PER_S, w.heard_to / FRAMES_PER_S) for w in windows])


def _pitch_penalty(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) what pitch takes off the similarity of each pair (0 where a pitch is unknown)."""
    apart = np.abs(a[:, None] - b[None, :]) - PITCH_TOLERANCE_ST
    return np.nan_to_num(PITCH_PENALTY * np.clip(apart, 0.0, None), nan=0.0)


def _is_narrowband(mels: np.ndarray) -> bool:
    """Whether the audio carries (almost) nothing above NARROWBAND_ABOVE_HZ: a telephone line's band."""
    total = mels.sum(axis=0, dtype=np.float64)
    if not total.sum() > 0:
        return False
    return float(total[mel_centre_hz() > NARROWBAND_ABOVE_HZ].sum() / total.sum()) < NARROWBAND_SHARE


def _stretches(words: list[Word]) -> list[_Stretch]:
    """The words (in time order) cut at pauses of PAUSE_S or more and after each sentence's last word; `group`
    numbers the stretches between pauses."""
    stretches: list[_Stretch] = []
    first, end, group = 0, words[0].end, 0
    for i in range(1, len(words) + 1):
        pause = i < len(words) and words[i].start - end >= PAUSE_S
        if i == len(words) or pause or words[i - 1].text.strip().endswith(SENTENCE_ENDS):
            start = words[first].start
            stretches.append(_Stretch(first, i - 1, start, max(end, start + 0.05), group))
            if i < len(words):
                first, end, group = i, words[i].end, group + pause
        else:
            end = max(end, words[i].end)
    return stretches


def _windows(stretches: list[_Stretch], energy: np.ndarray, n_frames: int) -> list[_Window]:
    """1.6 s windows every WINDOW_HOP_S over each stretch (one centred window over a shorter stretch), each
    hearing only its stretch (and EDGE_S around it), with its volume normalisation; silent windows are dropped."""
    windows = []
    edge = int(round(EDGE_S * FRAMES_PER_S))
    last_start = max(0, n_frames - PARTIAL_FRAMES)
    for index, stretch in enumerate(stretches):
        heard_from = max(0, int(stretch.start * FRAMES_PER_S) - edge)
        heard_to = min(len(energy), int(np.ceil(stretch.end * FRAMES_PER_S)) + edge)
        if heard_to <= heard_from:
            continue
        length = stretch.end - stretch.start
        if length <= WINDOW_S:
            positions = [(stretch.start + stretch.end) / 2 - WINDOW_S / 2]
        else:
            count = int(np.ceil((length - WINDOW_S) / WINDOW_HOP_S)) + 1
            positions = list(np.linspace(stretch.start, stretch.end - WINDOW_S, count))
        for start in sorted({min(max(0, int(round(p * FRAMES_PER_S))), last_start) for p in positions}):
            lo, hi = max(start, heard_from), min(start + PARTIAL_FRAMES, heard_to)
            if hi <= lo:
                continue
            loudness = float(np.mean(energy[lo:hi]))
            if 10 * np.log10(max(loudness, 1e-20)) > SILENCE_DBFS:
                gain = float(10 ** (NORM_TARGET_DBFS / 10) / loudness)  # to -30 dBFS, the level the encoder saw in training
                windows.append(_Window(start, lo, hi, gain, index))
    return windows


def _embed(mels: np.ndarray, windows: list[_Window], cancel: CancelToken | None) -> np.ndarray:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=_ENCODER_THREADS, user_api="blas"):
        return _embed_windows(mels, windows, cancel)


def _embed_windows(mels: np.ndarray, windows: list[_Window], cancel: CancelToken | None) -> np.ndarray:
    encoder = shared_encoder()
    if len(mels) < PARTIAL_FRAMES:
        mels = np.pad(mels, ((0, PARTIAL_FRAMES - len(mels)), (0, 0)))
    out = []
    for first in range(0, len(windows), _EMBED_BATCH):
        if cancel is not None:
            cancel.raise_if_cancelled()
        batch = windows[first : first + _EMBED_BATCH]
        partials = np.zeros((len(batch), PARTIAL_FRAMES, mels.shape[1]), dtype=np.float32)
        for row, w in enumerate(batch):
            partials[row, w.heard_from - w.start_frame : w.heard_to - w.start_frame] = mels[w.heard_from : w.heard_to] * w.gain
        out.append(encoder.embed_partials(partials))
    return np.concatenate(out)


# --- clustering and re-segmentation ----------------------------------------------------------------------


def _diarize(
    words: list[Word],
    stretches: list[_Stretch],
    windows: list[_Window],
    embeddings: np.ndarray,
    requested: int | None,
    merge_similarity: float,
    pitch: np.ndarray,
) -> tuple[list[int | None], np.ndarray]:
    """Each word's speaker (None over silence) and the speakers' voices (L2-normalised centroids); with the count
    found automatically, clusters at least `merge_similarity` alike are one speaker. `pitch`: semitones every
    PITCH_HOP_S (NaN: unvoiced)."""
    heard = _Heard(embeddings, _window_pitch(windows, pitch))
    by_group: dict[int, list[int]] = {}  # the windows of each stretch of speech between two pauses
    for i, window in enumerate(windows):
        by_group.setdefault(stretches[window.stretch].group, []).append(i)
    first: dict[int, float] = {}  # when each stretch between two pauses starts and ends
    last: dict[int, float] = {}
    for stretch in stretches:
        first.setdefault(stretch.group, stretch.start)
        last[stretch.group] = stretch.end
    if requested == 1:
        window_labels = np.zeros(len(windows), dtype=int)
    else:
        groups = sorted(by_group)
        means = np.stack([normalised(heard.embeddings[by_group[g]].mean(axis=0)) for g in groups])
        group_pitch = np.array([_median_pitch(pitch, first[g], last[g]) for g in groups])
        anchors = np.flatnonzero([last[g] - first[g] >= ANCHOR_S for g in groups])
        if not len(anchors) or len(anchors) < (requested or 0):  # too few long stretches to find the voices in
            anchors = np.arange(len(groups))
        labels = cluster(means[anchors], requested, merge_similarity, group_pitch[anchors])
        window_labels = np.full(len(windows), -1)
        for anchor, label in zip(anchors, labels):
            window_labels[by_group[groups[anchor]]] = label
    kept = window_labels >= 0
    voices = _voices(heard.rows(kept), window_labels[kept])
    voices = _refined(words, stretches, windows, heard, voices)
    if requested is None:
        turns = np.array([stretches[w.stretch].group for w in windows])
        turn_s = np.array([last[g] - first[g] for g in turns])
        lone = _lone_voices(heard, voices, turns, turn_s, merge_similarity)
        if len(lone.embeddings):
            both = _Heard(np.concatenate([voices.embeddings, lone.embeddings]), np.concatenate([voices.pitch, lone.pitch]))
            voices = _refined(words, stretches, windows, heard, both)
    return _resegment(words, stretches, windows, heard, voices), voices.embeddings


def _refined(words: list[Word], stretches: list[_Stretch], windows: list[_Window], heard: _Heard, voices: _Heard) -> _Heard:
    """The speakers' voices re-estimated from the words each is given (_RESEGMENT_ROUNDS times)."""
    for _ in range(_RESEGMENT_ROUNDS):
        speakers = _resegment(words, stretches, windows, heard, voices)
        window_labels = _window_speakers(words, stretches, windows, speakers)
        kept = window_labels >= 0
        voices = _voices(heard.rows(kept), _compact(window_labels[kept]))
    return voices


def _lone_voices(heard: _Heard, voices: _Heard, turns: np.ndarray, turn_s: np.ndarray, merge_similarity: float) -> _Heard:
    """Voices of the windows that sound like none of `voices`: clustered as stretches are, each cluster unlike
    every voice is one more speaker if it has LONE_VOICE_WINDOWS windows or holds every window of a turn of
    LONE_TURN_S or more (`turns`: each window's speech between two pauses, `turn_s`: its length in seconds). One
    odd window of a longer turn is not a voice: the turn's other windows sound like a known one."""
    is_far = heard.similarity(voices).max(axis=1) < LONE_VOICE_SIMILARITY
    far = heard.rows(is_far)
    none = _Heard(np.zeros((0, heard.embeddings.shape[1]), dtype=heard.embeddings.dtype), np.zeros(0))
    if not is_far.any():
        return none
    labels = cluster(far.embeddings, None, merge_similarity, far.pitch)
    found = _voices(far, labels)
    far_turns, far_long = turns[is_far], turn_s[is_far] >= LONE_TURN_S

    def hears_a_whole_turn(k: int) -> bool:
        mine = labels == k
        return any((far_turns[mine] == t).sum() == (turns == t).sum() for t in set(far_turns[mine & far_long]))

    keep = [
        k
        for k in range(labels.max() + 1)
        if ((labels == k).sum() >= LONE_VOICE_WINDOWS or hears_a_whole_turn(k))
        and found.rows(np.array([k])).similarity(voices).max() < merge_similarity
    ]
    return found.rows(np.array(keep, dtype=int)) if keep else none


def cluster(
    embeddings: np.ndarray, count: int | None = None, merge_similarity: float = STRETCH_MERGE_SIMILARITY, pitch: np.ndarray | None = None
) -> np.ndarray:
    """Cluster labels 0..k-1 for L2-normalised embeddings: average-linkage agglomerative clustering on cosine
    similarity (less the pitch penalty, given each row's `pitch` in semitones) down to `count` clusters, or
    (count None) until no two clusters are `merge_similarity` alike. More than MAX_CLUSTERED_WINDOWS: an even
    subsample is clustered and the rest join the nearest."""
    n = len(embeddings)
    pitch = np.full(n, np.nan) if pitch is None else pitch
    if n <= 1:
        return np.zeros(n, dtype=int)
    if n > MAX_CLUSTERED_WINDOWS:
        sample = np.linspace(0, n - 1, MAX_CLUSTERED_WINDOWS).round().astype(int)
        labels = cluster(embeddings[sample], count, merge_similarity, pitch[sample])
        return np.argmax(embeddings @ _centroids(embeddings[sample], labels).T, axis=1)
    similarity = (embeddings @ embeddings.T).astype(np.float64) - _pitch_penalty(pitch, pitch)
    np.fill_diagonal(similarity, -np.inf)
    sizes = np.ones(n)
    members = np.arange(n)
    target = min(n, max(1, count or 1))
    clusters = n
    while clusters > target:
        flat = int(np.argmax(similarity))
        a, b = divmod(flat, n)
        if count is None and similarity[a, b] < merge_similarity:
            break
        # Lance-Williams update for average linkage: the merged cluster keeps index a
        merged = (sizes[a] * similarity[a] + sizes[b] * similarity[b]) / (sizes[a] + sizes[b])
        similarity[a], similarity[:, a] = merged, merged
        similarity[a, a] = -np.inf
        similarity[b, :], similarity[:, b] = -np.inf, -np.inf
        sizes[a] += sizes[b]
        members[members == b] = a
        clusters -= 1
    return _compact(members)


def _resegment(words: list[Word], stretches: list[_Stretch], windows: list[_Window], heard: _Heard, voices: _Heard) -> list[int | None]:
    """Each word's speaker by Viterbi: a word scores its duration times its windows' similarity to each voice
    (windows weighted by how much of the word they cover); a change of speaker between two words costs
    CHANGE_AT_PAUSE, CHANGE_AT_SENTENCE_END or CHANGE_IN_SENTENCE. Words of a stretch no window heard: None."""
    k = len(voices.embeddings)
    similarity = heard.similarity(voices)  # (windows, speakers)
    starts = np.array([w.start_frame / FRAMES_PER_S for w in windows])
    window_stretch = np.array([w.stretch for w in windows])
    word_stretch = np.empty(len(words), dtype=int)
    for index, stretch in enumerate(stretches):
        word_stretch[stretch.first : stretch.last + 1] = index
    scores = np.zeros((len(words), k))
    covered = np.zeros(len(words), dtype=bool)
    for i, word in enumerate(words):
        mine = window_stretch == word_stretch[i]
        if not mine.any():
            continue
        covered[i] = True
        end = max(word.end, word.start + 0.05)
        overlap = np.clip(np.minimum(starts + WINDOW_S, end) - np.maximum(starts, word.start), 0.0, None) * mine
        if overlap.sum() <= 0:  # the word lies beside its stretch's windows: the nearest of them
            distance = np.where(mine, np.abs(starts + WINDOW_S / 2 - (word.start + end) / 2), np.inf)
            overlap = (distance == distance.min()).astype(float)
        scores[i] = (end - word.start) * (overlap @ similarity) / overlap.sum()
    order = np.flatnonzero(covered)
    if not len(order) or k == 0:
        return [None] * len(words)
    total = scores[order[0]].copy()
    back = np.zeros((len(order), k), dtype=int)
    for step in range(1, len(order)):
        before, now = words[order[step - 1]], words[order[step]]
        cost = _change_cost(before, now)
        stay = total
        move = total.max() - cost
        best_from = int(np.argmax(total))
        back[step] = np.where(stay >= move, np.arange(k), best_from)
        total = np.maximum(stay, move) + scores[order[step]]
    path = np.empty(len(order), dtype=int)
    path[-1] = int(np.argmax(total))
    for step in range(len(order) - 1, 0, -1):
        path[step - 1] = back[step, path[step]]
    result: list[int | None] = [None] * len(words)
    for step, word_index in enumerate(order.tolist()):
        result[word_index] = int(path[step])
    return result


def _change_cost(before: Word, now: Word) -> float:
    if now.start - before.end >= PAUSE_S:
        return CHANGE_AT_PAUSE
    if before.text.strip().endswith(SENTENCE_ENDS):
        return CHANGE_AT_SENTENCE_END
    return CHANGE_IN_SENTENCE


def _window_speakers(words: list[Word], stretches: list[_Stretch], windows: list[_Window], speakers: list[int | None]) -> np.ndarray:
    """Each window's speaker: that of the word of its stretch nearest its middle (-1: none)."""
    labels = np.full(len(windows), -1)
    for i, window in enumerate(windows):
        stretch = stretches[window.stretch]
        middle = window.start_frame / FRAMES_PER_S + WINDOW_S / 2
        nearest = min(range(stretch.first, stretch.last + 1), key=lambda j: abs((words[j].start + words[j].end) / 2 - middle))
        labels[i] = -1 if speakers[nearest] is None else speakers[nearest]
    return labels


def _voices(heard: _Heard, labels: np.ndarray) -> _Heard:
    """Each label's voice: its rows' centroid and median pitch."""
    count = labels.max() + 1 if len(labels) else 0
    pitch = [heard.pitch[labels == k] for k in range(count)]
    medians = np.array([np.median(p[~np.isnan(p)]) if (~np.isnan(p)).any() else np.nan for p in pitch])
    return _Heard(_centroids(heard.embeddings, labels), medians)


def _centroids(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    if not len(labels):
        return np.zeros((0, embeddings.shape[1]), dtype=np.float32)
    return np.stack([normalised(embeddings[labels == k].mean(axis=0)) for k in range(labels.max() + 1)])


def _compact(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..k-1 (empty clusters dropped)."""
    _, compact = np.unique(labels, return_inverse=True)
    return compact.astype(int)


# --- words and segments ----------------------------------------------------------------------------------


def _split_segments(
    transcript: Transcript,
    words: list[tuple[int, Word]],
    word_speakers: list[int | None],
    centroids: np.ndarray,
    voices: Sequence[KnownVoice],
) -> Transcript:
    by_segment: dict[int, list[tuple[Word, int | None]]] = {}
    for (index, word), speaker in zip(words, word_speakers):
        by_segment.setdefault(index, []).append((word, speaker))
    order: dict[int, str] = {}  # cluster -> speaker id, in order of first appearance
    segments: list[Segment] = []
    for index, segment in enumerate(transcript.segments):
        runs = _runs(by_segment.get(index, []))
        if not runs:
            segments.append(replace(segment, speaker=None))
            continue
        for cluster_id, _ in runs:
            if cluster_id is not None and cluster_id not in order:
                order[cluster_id] = f"S{len(order) + 1}"
        if len(runs) == 1:
            segments.append(replace(segment, speaker=order.get(runs[0][0]) if runs[0][0] is not None else None))
            continue
        for number, (cluster_id, run_words) in enumerate(runs):
            start = segment.start if number == 0 else run_words[0].start
            end = segment.end if number == len(runs) - 1 else run_words[-1].end
            text = " " + " ".join(w.text.strip() for w in run_words)  # segment texts start with a space, as Whisper's
            speaker_id = order.get(cluster_id) if cluster_id is not None else None
            segments.append(Segment(0, start, end, text, run_words if segment.words else [], speaker_id))
    speakers = [
        Speaker(id=speaker_id, name=f"Speaker {speaker_id[1:]}", embedding=[round(float(x), 6) for x in centroids[k]])
        for k, speaker_id in order.items()
    ]
    _name_known_voices(speakers, voices)
    return replace(transcript, segments=segments, speakers=speakers).renumbered()


def _runs(pairs: list[tuple[Word, int | None]]) -> list[tuple[int | None, list[Word]]]:
    """Consecutive words of one speaker; a word without a speaker (over silence) joins the run before it."""
    runs: list[tuple[int | None, list[Word]]] = []
    for word, speaker in pairs:
        if runs and (speaker is None or speaker == runs[-1][0]):
            runs[-1][1].append(word)
        elif runs and runs[-1][0] is None:
            runs[-1] = (speaker, runs[-1][1] + [word])
        else:
            runs.append((speaker, [word]))
    return runs


def _name_known_voices(speakers: list[Speaker], voices: Sequence[KnownVoice]) -> None:
    """Each known voice names at most one speaker: the most similar pairs first, at or above the threshold."""
    if not speakers or not voices:
        return
    ours = np.array([s.embedding for s in speakers], dtype=np.float32)
    theirs = np.stack([normalised(np.asarray(v.embedding, dtype=np.float32)) for v in voices])
    similarity = ours @ theirs.T
    pairs = sorted(((float(similarity[i, j]), i, j) for i in range(len(speakers)) for j in range(len(voices))), reverse=True)
    used_speakers: set[int] = set()
    used_voices: set[int] = set()
    for score, i, j in pairs:
        if score < KNOWN_VOICE_SIMILARITY:
            break
        if i in used_speakers or j in used_voices:
            continue
        used_speakers.add(i)
        used_voices.add(j)
        speakers[i].name = voices[j].name
        speakers[i].voice_id = voices[j].id
        speakers[i].confidence = round(score, 3)


def speaker_embedding(transcript: Transcript, speaker_id: str) -> list[float] | None:
    """The averaged voice embedding of one of the transcript's speakers (what saving a voice stores)."""
    for speaker in transcript.speakers:
        if speaker.id == speaker_id:
            return speaker.embedding
    return None


def voice_embedding(samples: np.ndarray) -> np.ndarray:
    """One voice's averaged embedding from 16 kHz mono audio of that voice alone: its windows' embeddings
    (as label_speakers makes them for one stretch of speech), averaged and L2-normalised."""
    stream = MelStream()
    stream.feed(samples)
    mels, energy = stream.finish()
    _take_off_noise_floor(mels)
    whole = _Stretch(0, 0, 0.0, max(len(energy) / FRAMES_PER_S, 0.05), 0)
    windows = _windows([whole], energy, len(mels))
    if not windows:
        raise ValueError("no voice in this audio (silence)")
    return normalised(_embed(mels, windows, None).mean(axis=0))
