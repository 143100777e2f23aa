"""The *Reverse family: a marker 🅁 at a random index, and (partial or full) reversal.

Rules (Kallini et al. 2024, reference ``utils.py``):

- every sentence is affected and no length filter applies; only sequences that
  keep at most one non-marker token are dropped;
- for a sentence of n tokens the marker goes at index ``rng.choice(n + 1)``,
  drawn from one ``default_rng(21)`` stream in corpus order, for *every*
  sentence, including those then dropped;
- NoReverse stops there (the control); PartialReverse reverses the tokens after
  the marker; FullReverse reverses the whole sequence, marker included.

``rng.choice(n + 1)`` equals ``rng.integers(0, n + 1)``, and one vectorised
``integers`` call over a file leaves the stream exactly where the per-sentence
calls would (checked in the tests), so a file costs one numpy call; the
insertion and reversal are then one gather over the whole file
(:func:`reverse_rows`), the same rule as :func:`reverse` on each sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping, Sequence

import numpy as np

from perturbations.base import (
    MARKER_REVERSE,
    MIN_CONTENT_TOKENS,
    Language,
    PerturbedColumns,
    encode_columns,
    marker_id,
    other_markers,
)
from perturbations.ragged import Ragged

MODES = ("none", "partial", "full")


def marker_positions(lengths: Sequence[int] | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The marker index of each sentence: ``rng.choice(n + 1)`` for each length n, in order."""
    if len(lengths) == 0:
        return np.zeros(0, np.int64)
    return rng.integers(0, np.asarray(lengths, dtype=np.int64) + 1)


def reverse(tokens: Sequence[int], index: int, marker: int, mode: str) -> list[int]:
    """Insert ``marker`` at ``index``, then reverse nothing, the part after it, or everything."""
    before, after = list(tokens[:index]), list(tokens[index:])
    if mode == "none":
        return before + [marker] + after
    if mode == "partial":
        after.reverse()
        return before + [marker] + after
    if mode == "full":
        out = before + [marker] + after
        out.reverse()
        return out
    raise ValueError(f"unknown reverse mode {mode!r}; expected one of {MODES}")


def reverse_rows(tokens: Ragged, positions: np.ndarray, marker: int, mode: str) -> Ragged:
    """:func:`reverse` applied to every row, row ``i`` getting the marker at ``positions[i]``."""
    if mode not in MODES:
        raise ValueError(f"unknown reverse mode {mode!r}; expected one of {MODES}")
    lengths = tokens.lengths
    out = Ragged(np.empty(len(tokens.values) + len(tokens), tokens.values.dtype), tokens.offsets + np.arange(len(tokens) + 1))
    row = out.row_of_value()
    n, p, start = lengths[row], positions[row], tokens.offsets[:-1][row]
    j = out.position_in_row()
    k = n - j if mode == "full" else j  # a full reversal reads the unreversed row backwards
    if mode == "partial":
        source = np.where(k < p, start + k, start + n + p - k)
    else:
        source = start + k - (k > p)
    # One extra slot at the end holds the marker, so the marker is gathered too.
    padded = np.append(tokens.values, np.asarray(marker, tokens.values.dtype))
    out.values[:] = padded[np.where(k == p, len(tokens.values), source)]
    return out


@dataclass(frozen=True)
class ReverseLanguage(Language):
    seed: int = 21

    family: ClassVar[str] = "reverse"
    control: ClassVar[str | None] = "no_reverse"
    word_analyses: ClassVar[str | None] = "control"  # the reversal moves words: read NoReverse's
    keeps: ClassVar[str] = f"sentences of at least {MIN_CONTENT_TOKENS} tokens besides the marker"
    markers: ClassVar[tuple[str, ...]] = (MARKER_REVERSE,)
    mode: ClassVar[str] = "none"

    def new_stream(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def _perturb(self, sentences, tok, ids, stream):
        assert stream is not None
        marker = marker_id(tok, MARKER_REVERSE)
        original = encode_columns(sentences, tok, ids)
        lengths = original.lengths
        positions = marker_positions(lengths, stream)  # every sentence draws
        # The inserted marker is not content, so a sentence keeps its own non-marker tokens.
        kept = lengths - original.count_in_rows(tok.marker_ids.values()) >= MIN_CONTENT_TOKENS
        new = reverse_rows(original.take(kept), positions[kept], marker, self.mode)
        return PerturbedColumns(new, kept, np.ones(len(kept), bool))

    # A sentence of the family holds exactly one 🅁 and at least MIN_CONTENT_TOKENS other tokens.
    # Given where 🅁 is, the reversal is its own inverse: undo and redo are one function, and
    # NoReverse's form keeps 🅁 where the original sentence had it.
    def conforms(self, ids: Sequence[int], marker_ids: Mapping[str, int]) -> bool:
        marker = marker_ids.get(MARKER_REVERSE)
        return (marker is not None and list(ids).count(marker) == 1 and len(ids) - 1 >= MIN_CONTENT_TOKENS
                and not other_markers(ids, marker_ids, self.markers))

    def undo(self, ids: Sequence[int], marker_ids: Mapping[str, int]) -> list[int] | None:
        return self.redo(ids, marker_ids) if self.conforms(ids, marker_ids) else None

    def redo(self, ids: Sequence[int], marker_ids: Mapping[str, int]) -> list[int]:
        ids = list(ids)
        if self.mode == "full":
            return ids[::-1]
        if self.mode == "partial":
            at = ids.index(marker_ids[MARKER_REVERSE]) + 1
            return ids[:at] + ids[at:][::-1]
        return ids


@dataclass(frozen=True)
class NoReverse(ReverseLanguage):
    mode: ClassVar[str] = "none"
    keeps_token_order: ClassVar[bool] = True  # the marker is inserted, nothing reversed


@dataclass(frozen=True)
class PartialReverse(ReverseLanguage):
    mode: ClassVar[str] = "partial"


@dataclass(frozen=True)
class FullReverse(ReverseLanguage):
    mode: ClassVar[str] = "full"
