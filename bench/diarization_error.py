"""Diarization error rate (DER) as NIST md-eval and pyannote.metrics define it, for the speakers benchmark.

DER = (missed speech + false alarm + speaker confusion) / reference speech, all in seconds. A collar of
`collar` seconds on each side of every reference turn's start and end is not scored (the reference's own
boundaries are that uncertain); overlapping speech is scored (a region with two reference speakers counts
twice). Found speakers are mapped one-to-one to reference speakers so that the time they share is largest
(the Hungarian method), and confusion is the scored time a mapped pair does not account for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

COLLAR_S = 0.25  # the usual collar (NIST RT, and pyannote.metrics' collar=0.5, which it halves on each side)


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class DiarizationError:
    missed: float
    false_alarm: float
    confusion: float
    total: float  # scored reference speech

    @property
    def rate(self) -> float:
        return (self.missed + self.false_alarm + self.confusion) / self.total if self.total else 0.0

    def __add__(self, other: DiarizationError) -> DiarizationError:
        return DiarizationError(self.missed + other.missed, self.false_alarm + other.false_alarm,
                                self.confusion + other.confusion, self.total + other.total)


def _no_collar_zones(reference: Sequence[Span], collar: float) -> list[tuple[float, float]]:
    zones = sorted((edge - collar, edge + collar) for span in reference for edge in (span.start, span.end))
    merged: list[list[float]] = []
    for a, b in zones:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def _pieces(reference: Sequence[Span], hypothesis: Sequence[Span], collar: float) -> list[tuple[float, set[str], set[str]]]:
    """Elementary pieces of time outside the collars: (duration, reference speakers, found speakers)."""
    zones = _no_collar_zones(reference, collar) if collar > 0 else []
    edges = sorted({t for s in (*reference, *hypothesis) for t in (s.start, s.end)} | {t for z in zones for t in z})
    pieces = []
    for a, b in zip(edges, edges[1:]):
        if b <= a:
            continue
        middle = (a + b) / 2
        if any(za < middle < zb for za, zb in zones):
            continue
        ref = {s.speaker for s in reference if s.start <= middle < s.end}
        hyp = {s.speaker for s in hypothesis if s.start <= middle < s.end}
        if ref or hyp:
            pieces.append((b - a, ref, hyp))
    return pieces


def _best_mapping(pieces: list[tuple[float, set[str], set[str]]]) -> dict[str, str]:
    """Found speaker -> reference speaker, one to one, sharing the most time (Hungarian method)."""
    from scipy.optimize import linear_sum_assignment

    refs = sorted({r for _, ref, _ in pieces for r in ref})
    hyps = sorted({h for _, _, hyp in pieces for h in hyp})
    if not refs or not hyps:
        return {}
    shared = np.zeros((len(hyps), len(refs)))
    for duration, ref, hyp in pieces:
        for h in hyp:
            for r in ref:
                shared[hyps.index(h), refs.index(r)] += duration
    rows, cols = linear_sum_assignment(shared, maximize=True)
    return {hyps[i]: refs[j] for i, j in zip(rows, cols) if shared[i, j] > 0}


def diarization_error(reference: Sequence[Span], hypothesis: Sequence[Span], collar: float = COLLAR_S) -> DiarizationError:
    pieces = _pieces(reference, hypothesis, collar)
    mapping = _best_mapping(pieces)
    missed = false_alarm = confusion = total = 0.0
    for duration, ref, hyp in pieces:
        correct = len({mapping[h] for h in hyp if h in mapping} & ref)
        total += duration * len(ref)
        missed += duration * max(0, len(ref) - len(hyp))
        false_alarm += duration * max(0, len(hyp) - len(ref))
        confusion += duration * (min(len(ref), len(hyp)) - correct)
    return DiarizationError(missed, false_alarm, confusion, total)
