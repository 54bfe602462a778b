"""LocalAgreement (Macháček et al., "Turning Whisper into Real-Time Transcription System", 2023): the engine runs
again and again over the unfinished audio, and a word becomes final once two passes in a row agree on it (the
longest common prefix of their words past the final ones). What the newest pass says after that is tentative:
shown, and still free to change."""

from __future__ import annotations

from dataclasses import dataclass, field

WordTuple = tuple[float, float, str, float]  # start, end, text (with Whisper's leading space), probability

OVERLAP_S = 0.1  # a word of a new pass starting this close before the final words' end is a new word still
REPEAT_WINDOW_S = 1.0  # a new pass repeating the last final words this close to their end repeats them
LONGEST_REPEAT = 5  # words


def plain(text: str) -> str:
    """A word as compared between passes: lowercase letters and digits only ("Country," == "country")."""
    return "".join(c for c in text.lower() if c.isalnum())


@dataclass
class LocalAgreement:
    final: list[WordTuple] = field(default_factory=list)
    tentative: list[WordTuple] = field(default_factory=list)  # the newest pass past the final words

    @property
    def final_end(self) -> float:
        return self.final[-1][1] if self.final else 0.0

    def update(self, hypothesis: list[WordTuple], settled_until: float = float("inf")) -> list[WordTuple]:
        """A new pass's words (on the recording's clock); returns the words that became final. A word ending
        after `settled_until` stays tentative however often it is heard (the audio was cut in it, or just after
        it: the next words may still change it, as "ask not" heard as "asked" before "not" is)."""
        new = self._unheard([w for w in hypothesis if w[0] > self.final_end - OVERLAP_S and plain(w[2])])
        agreed: list[WordTuple] = []
        for before, now in zip(self.tentative, new):
            if plain(before[2]) != plain(now[2]) or now[1] > settled_until:
                break
            agreed.append(now)
        self.final.extend(agreed)
        self.tentative = new[len(agreed):]
        return agreed

    def finish(self) -> list[WordTuple]:
        """No more passes (stop, or a silence): the tentative words are final as they stand."""
        done, self.tentative = self.tentative, []
        self.final.extend(done)
        return done

    def _unheard(self, new: list[WordTuple]) -> list[WordTuple]:
        """`new` without a repeat of the last final words at its start (the pass re-heard their tail)."""
        if not self.final or not new or new[0][0] > self.final_end + REPEAT_WINDOW_S:
            return new
        for n in range(min(LONGEST_REPEAT, len(self.final), len(new)), 0, -1):
            if [plain(w[2]) for w in self.final[-n:]] == [plain(w[2]) for w in new[:n]]:
                return new[n:]
        return new
