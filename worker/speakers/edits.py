"""Qt-free speaker edits on a transcript: rename, reassign segments, merge two speakers, and how a speaker is
described to the user. Each returns a new Transcript (the input is never changed); the editor (gui/speaker_commands)
wraps them in undo commands. Ids ("S1") never change: renaming changes Speaker.name only, so every export, which
reads names through Transcript.speaker_name, follows."""

from __future__ import annotations

from dataclasses import replace

from worker.transcripts.model import Segment, Speaker, Transcript

NEW_SPEAKER = "+new"  # reassign target: a speaker made for the occasion


def _copy(transcript: Transcript) -> Transcript:
    """A copy whose segments and speakers may be changed (their words and embeddings, never changed here,
    are shared: a deep copy of an hour's words would take a second)."""
    return replace(transcript, segments=[replace(s) for s in transcript.segments],
                   speakers=[replace(s) for s in transcript.speakers], timings=dict(transcript.timings))


def find_speaker(transcript: Transcript, speaker_id: str) -> Speaker:
    for speaker in transcript.speakers:
        if speaker.id == speaker_id:
            return speaker
    raise ValueError(f"there is no speaker {speaker_id!r}")


def speaker_index(transcript: Transcript, speaker_id: str | None) -> int:
    """The speaker's position in transcript.speakers (its colour), -1 for none or an unknown id."""
    return next((i for i, s in enumerate(transcript.speakers) if s.id == speaker_id), -1)


def rename_speaker(transcript: Transcript, speaker_id: str, name: str) -> Transcript:
    """Every segment of `speaker_id` now shows `name` (spaces tidied, not empty); only Speaker.name changes."""
    name = " ".join(name.split())
    if not name:
        raise ValueError("A speaker needs a name.")
    result = _copy(transcript)
    find_speaker(result, speaker_id).name = name
    return result


def new_speaker(transcript: Transcript, name: str | None = None) -> Speaker:
    """A speaker with the next free id ("S3") and name ("Speaker 3", unless `name` is given)."""
    taken = {s.id for s in transcript.speakers} | {s.speaker for s in transcript.segments if s.speaker}
    number = len(transcript.speakers) + 1
    while f"S{number}" in taken:
        number += 1
    return Speaker(id=f"S{number}", name=(name or "").strip() or f"Speaker {number}")


def reassign_segments(transcript: Transcript, rows: list[int], speaker_id: str | None,
                      name: str | None = None) -> Transcript:
    """The segments at `rows` are now said by `speaker_id` (an existing id, None for no speaker, or
    NEW_SPEAKER for a new one, named `name` if given). Speakers left with no segment stay listed (a later
    reassignment may want them back); merge_speakers drops one."""
    result = _copy(transcript)
    if not rows:
        raise ValueError("Choose the segments to reassign.")
    if any(not 0 <= row < len(result.segments) for row in rows):
        raise ValueError("There is no such segment.")
    if speaker_id == NEW_SPEAKER:
        speaker = new_speaker(result, name)
        result.speakers.append(speaker)
        speaker_id = speaker.id
    elif speaker_id is not None:
        find_speaker(result, speaker_id)
    for row in rows:
        result.segments[row].speaker = speaker_id
    return result


def merge_speakers(transcript: Transcript, keep_id: str, drop_id: str) -> Transcript:
    """`drop_id`'s segments become `keep_id`'s, and `drop_id` leaves the list of speakers."""
    if keep_id == drop_id:
        raise ValueError("Choose two different speakers to merge.")
    result = _copy(transcript)
    find_speaker(result, keep_id)
    find_speaker(result, drop_id)
    for segment in result.segments:
        if segment.speaker == drop_id:
            segment.speaker = keep_id
    result.speakers = [s for s in result.speakers if s.id != drop_id]
    return result


def mark_saved_voice(transcript: Transcript, speaker_id: str, voice_id: int) -> Transcript:
    """After "Save voice": the speaker is the source of known voice `voice_id` (not a match, so no confidence)."""
    result = _copy(transcript)
    speaker = find_speaker(result, speaker_id)
    speaker.voice_id, speaker.confidence = voice_id, None
    return result


def describe_speaker(speaker: Speaker) -> str:
    """What the editor says about a speaker: "Anna (known voice, 0.91)" for a match to a known voice,
    "Anna (known voice)" for the speaker a voice was saved from, else the name."""
    if speaker.voice_id is None:
        return speaker.name
    if speaker.confidence is None:
        return f"{speaker.name} (known voice)"
    return f"{speaker.name} (known voice, {speaker.confidence:.2f})"


def segment_counts(transcript: Transcript) -> dict[str, int]:
    """How many segments each speaker has (every listed speaker, 0 included)."""
    counts = {s.id: 0 for s in transcript.speakers}
    for segment in transcript.segments:
        if segment.speaker in counts:
            counts[segment.speaker] += 1
    return counts


def without_embeddings(speakers: list[Speaker]) -> list[Speaker]:
    """Copies for comparing what the user sees (embeddings are large and never edited)."""
    return [replace(s, embedding=None) for s in speakers]


def carry_speakers(before: list[Segment], after: list[Segment]) -> list[Segment]:
    """Copies of `after` (segments that replace `before`, e.g. re-transcribed) in which each segment without a
    speaker takes the speaker of the old segment it overlaps most in time (none when it overlaps none)."""
    result = []
    for segment in after:
        copy = replace(segment)
        if copy.speaker is None:
            overlaps = [(min(s.end, copy.end) - max(s.start, copy.start), s.speaker) for s in before if s.speaker]
            best = max(overlaps, key=lambda pair: pair[0], default=(0.0, None))
            if best[0] > 0:
                copy.speaker = best[1]
        result.append(copy)
    return result
