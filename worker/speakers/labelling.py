"""Who said what: speaker labels for a finished transcript, offline, whichever backend wrote the text.

label_speakers() decodes the audio again, embeds 1.6 s windows over the words' speech with the GE2E speaker
encoder (worker.speakers.voice_encoder), clusters the windows (average-linkage agglomerative on cosine similarity:
stop at AUTO_MERGE_SIMILARITY, or at the count the user gave), gives every word the speaker whose voice its
windows are closest to, and splits segments at the words where the speaker changes. Speakers are numbered
in order of first appearance ("S1" / "Speaker 1", ...). A speaker whose voice matches a known voice of the
library (cosine similarity >= KNOWN_VOICE_SIMILARITY) takes that voice's name, with the similarity as its
confidence. Thresholds are measured by bench/speakers_bench.py (docs/benchmarks.md, "Speakers").
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
from worker.speakers.voice_encoder import (
    MEL_HOP,
    NORM_TARGET_DBFS,
    PARTIAL_FRAMES,
    SAMPLE_RATE,
    MelStream,
    normalised,
    shared_encoder,
)
from worker.transcripts.model import Segment, Speaker, Transcript, Word

if TYPE_CHECKING:
    from worker.library.voices import KnownVoice

FRAMES_PER_S = SAMPLE_RATE // MEL_HOP  # 100 mel frames a second
WINDOW_S = PARTIAL_FRAMES / FRAMES_PER_S  # 1.6 s: what the encoder was trained on
WINDOW_HOP_S = 1.6  # windows side by side: half the work of half-overlapping ones, as accurate on the bench
REGION_GAP_S = 0.3  # words closer than this are one stretch of speech; windows never cross a longer pause
MIN_SPEECH_S = 2.0  # less speech than this (or a single window) is too short to tell voices apart
SILENCE_DBFS = -55.0  # a window quieter than this holds no voice (Whisper can write words over silence)
AUTO_MERGE_SIMILARITY = 0.68  # automatic count: clusters closer than this (average cosine) are one speaker
MIN_CLUSTER_WINDOWS = 2  # a cluster of fewer windows (automatic count) joins its nearest neighbour,
MIN_CLUSTER_SHARE = 0.01  # and so does one holding less than this share of the windows (a long file's strays)
KNOWN_VOICE_SIMILARITY = 0.80  # a speaker takes a known voice's name at or above this cosine similarity
MAX_CLUSTERED_WINDOWS = 2000  # beyond this the clustering runs on an even subsample; the rest are assigned
_EMBED_BATCH = 64
# BLAS threads for the encoder's many small matrix products: on a busy 2-CPU machine two threads made them
# 6x slower than one (threads waiting on each other); the engine's process has ended by the time this runs
_ENCODER_THREADS = 1
_PROGRESS_FRACTION = 0.99  # the job's bar stays near its end while speakers are labelled


@dataclass(frozen=True)
class _Window:
    start_frame: int
    gain: float  # volume normalisation (power gain applied to the mel frames)


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
        return replace(transcript, segments=[replace(s, speaker=None) for s in transcript.segments], speakers=[])
    say(Progress(Stage.TRANSCRIBING, _PROGRESS_FRACTION, message="labelling speakers"))
    mels, energy = _audio_features(path, cancel)
    windows = _windows([w for _, w in words], energy, len(mels))
    speech_s = sum(min(w.end, len(energy) / FRAMES_PER_S) - w.start for _, w in words if w.end > w.start)
    if not windows:  # every word lies over silence
        return replace(transcript, segments=[replace(s, speaker=None) for s in transcript.segments], speakers=[])
    embeddings = _embed(mels, windows, cancel)
    requested = None if options.speakers == "auto" else int(options.speakers)
    if len(windows) < 2 or speech_s < MIN_SPEECH_S:
        say(JobNote(f"speakers: only {speech_s:.1f} s of speech, too little to tell voices apart; one speaker"))
        labels = np.zeros(len(windows), dtype=int)
    elif requested == 1:
        labels = np.zeros(len(windows), dtype=int)
    else:
        labels = cluster(embeddings, requested)
    centroids = _centroids(embeddings, labels)
    word_speakers = _assign_words([w for _, w in words], windows, embeddings, centroids)
    result = _split_segments(transcript, words, word_speakers, centroids, voices)
    result.timings = {**transcript.timings, "speakers_s": round(time.monotonic() - started, 3)}
    return result


# --- audio and windows -----------------------------------------------------------------------------------


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


def _audio_features(path: str | Path, cancel: CancelToken | None) -> tuple[np.ndarray, np.ndarray]:
    stream = MelStream()
    for block in iter_audio_blocks(path, block_s=60.0, cancel=cancel):
        stream.feed(block)
    return stream.finish()


def _regions(words: list[Word]) -> list[tuple[float, float]]:
    """Stretches of speech: the words' spans, joined across pauses shorter than REGION_GAP_S."""
    spans = sorted((w.start, max(w.end, w.start + 0.05)) for w in words)
    regions: list[list[float]] = []
    for start, end in spans:
        if regions and start - regions[-1][1] < REGION_GAP_S:
            regions[-1][1] = max(regions[-1][1], end)
        else:
            regions.append([start, end])
    return [(a, b) for a, b in regions]


def _windows(words: list[Word], energy: np.ndarray, n_frames: int) -> list[_Window]:
    """1.6 s windows every WINDOW_HOP_S over each stretch of speech (one centred window for a shorter
    stretch), each with its volume normalisation; windows over silence are dropped."""
    last_start = n_frames - PARTIAL_FRAMES
    if last_start < 0 or not len(energy):
        # audio shorter than one window: one window over all of it (zero-padded by the caller)
        return [_Window(0, _gain(energy))] if len(energy) and _loud(energy) else []
    starts: list[int] = []
    for start_s, end_s in _regions(words):
        length = end_s - start_s
        if length <= WINDOW_S:
            positions = [(start_s + end_s) / 2 - WINDOW_S / 2]
        else:
            count = int(np.ceil((length - WINDOW_S) / WINDOW_HOP_S)) + 1
            positions = list(np.linspace(start_s, end_s - WINDOW_S, count))
        starts.extend(int(round(p * FRAMES_PER_S)) for p in positions)
    windows = []
    for start in sorted(set(min(max(0, s), last_start) for s in starts)):
        hop_energy = energy[start : start + PARTIAL_FRAMES]
        if _loud(hop_energy):
            windows.append(_Window(start, _gain(hop_energy)))
    return windows


def _loud(hop_energy: np.ndarray) -> bool:
    return 10 * np.log10(max(float(np.mean(hop_energy)), 1e-20)) > SILENCE_DBFS


def _gain(hop_energy: np.ndarray) -> float:
    """The power gain bringing the window to -30 dBFS RMS (the level the encoder saw in training)."""
    return float(10 ** (NORM_TARGET_DBFS / 10) / max(float(np.mean(hop_energy)), 1e-20))


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
        partials = np.stack([mels[w.start_frame : w.start_frame + PARTIAL_FRAMES] * w.gain for w in batch])
        out.append(encoder.embed_partials(partials))
    return np.concatenate(out)


# --- clustering ------------------------------------------------------------------------------------------


def cluster(embeddings: np.ndarray, count: int | None = None) -> np.ndarray:
    """Cluster labels 0..k-1 for L2-normalised embeddings: average-linkage agglomerative clustering on cosine
    similarity down to `count` clusters, or (count None) until no two clusters are AUTO_MERGE_SIMILARITY
    alike; then each embedding moves to its nearest cluster centroid."""
    n = len(embeddings)
    if n <= 1:
        return np.zeros(n, dtype=int)
    if n > MAX_CLUSTERED_WINDOWS:
        sample = np.linspace(0, n - 1, MAX_CLUSTERED_WINDOWS).round().astype(int)
        labels = cluster(embeddings[sample], count)
        return _nearest(embeddings, _centroids(embeddings[sample], labels))
    labels = _agglomerate(embeddings, count)
    if count is None:
        labels = _absorb_small(embeddings, labels)
    for _ in range(3):  # a few rounds of reassignment to the centroids (spherical k-means)
        refined = _nearest(embeddings, _centroids(embeddings, labels))
        if np.array_equal(refined, labels) or (count is not None and len(np.unique(refined)) < labels.max() + 1):
            break
        labels = _compact(refined)
    return labels


def _agglomerate(embeddings: np.ndarray, count: int | None) -> np.ndarray:
    n = len(embeddings)
    similarity = (embeddings @ embeddings.T).astype(np.float64)
    np.fill_diagonal(similarity, -np.inf)
    sizes = np.ones(n)
    alive = np.ones(n, dtype=bool)
    members = np.arange(n)
    target = min(n, max(1, count or 1))
    clusters = n
    while clusters > target:
        flat = int(np.argmax(similarity))
        a, b = divmod(flat, n)
        if count is None and similarity[a, b] < AUTO_MERGE_SIMILARITY:
            break
        # Lance-Williams update for average linkage: the merged cluster keeps index a
        merged = (sizes[a] * similarity[a] + sizes[b] * similarity[b]) / (sizes[a] + sizes[b])
        similarity[a], similarity[:, a] = merged, merged
        similarity[a, a] = -np.inf
        similarity[b, :], similarity[:, b] = -np.inf, -np.inf
        sizes[a] += sizes[b]
        alive[b] = False
        members[members == b] = a
        clusters -= 1
    return _compact(members)


def _absorb_small(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Clusters of fewer than MIN_CLUSTER_WINDOWS windows or MIN_CLUSTER_SHARE of them (stray windows over a
    cough or a crossing) join the nearest larger cluster."""
    sizes = np.bincount(labels)
    smallest = max(MIN_CLUSTER_WINDOWS, int(round(MIN_CLUSTER_SHARE * len(labels))))
    if (sizes >= smallest).sum() == 0:
        return np.zeros(len(labels), dtype=int)
    keep = np.flatnonzero(sizes >= smallest)
    centroids = _centroids(embeddings, labels)[keep]
    result = labels.copy()
    for k in np.flatnonzero(sizes < smallest):
        for i in np.flatnonzero(labels == k):
            result[i] = keep[int(np.argmax(centroids @ embeddings[i]))]
    return _compact(result)


def _centroids(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.stack([normalised(embeddings[labels == k].mean(axis=0)) for k in range(labels.max() + 1)])


def _nearest(embeddings: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return np.argmax(embeddings @ centroids.T, axis=1)


def _compact(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..k-1 (empty clusters dropped)."""
    _, compact = np.unique(labels, return_inverse=True)
    return compact.astype(int)


# --- words and segments ----------------------------------------------------------------------------------


def _assign_words(words: list[Word], windows: list[_Window], embeddings: np.ndarray, centroids: np.ndarray) -> list[int | None]:
    """Each word's cluster: the one its overlapping windows (weighted by overlap) are most similar to; the
    nearest window's for a word no window covers; None for a word far from any window (over silence)."""
    scores = embeddings @ centroids.T  # (windows, clusters)
    starts = np.array([w.start_frame / FRAMES_PER_S for w in windows])
    ends = starts + WINDOW_S
    result: list[int | None] = []
    for word in words:
        overlap = np.minimum(ends, word.end) - np.maximum(starts, word.start)
        weights = np.clip(overlap, 0.0, None)
        if weights.sum() > 0:
            result.append(int(np.argmax(weights @ scores)))
            continue
        distance = np.maximum(starts - word.end, word.start - ends)
        nearest = int(np.argmin(distance))
        result.append(int(np.argmax(scores[nearest])) if distance[nearest] <= WINDOW_S else None)
    return _smoothed(result)


def _smoothed(labels: list[int | None]) -> list[int | None]:
    """A single word whose neighbours on both sides agree with each other takes their speaker: one word is
    too short to be a turn of its own, and a voice change inside a word's window is blurred anyway."""
    out = list(labels)
    for i in range(1, len(out) - 1):
        if out[i - 1] is not None and out[i - 1] == out[i + 1] != out[i]:
            out[i] = out[i - 1]
    return out


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
    (as label_speakers makes them), averaged and L2-normalised."""
    stream = MelStream()
    stream.feed(samples)
    mels, energy = stream.finish()
    windows = _windows([Word(0.0, len(energy) / FRAMES_PER_S, "voice")], energy, len(mels))
    if not windows:
        raise ValueError("no voice in this audio (silence)")
    return normalised(_embed(mels, windows, None).mean(axis=0))
