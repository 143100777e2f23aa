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
calls would (checked in the tests), so a file costs one numpy call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np

from perturbations.base import (
    MARKER_REVERSE,
    Language,
    Perturbed,
    encode_all,
    keeps_content,
    marker_id,
)

MODES = ("none", "partial", "full")


def marker_positions(lengths: Sequence[int], rng: np.random.Generator) -> list[int]:
    """The marker index of each sentence: ``rng.choice(n + 1)`` for each length n, in order."""
    if len(lengths) == 0:
        return []
    return rng.integers(0, np.asarray(lengths, dtype=np.int64) + 1).tolist()


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


@dataclass(frozen=True)
class ReverseLanguage(Language):
    seed: int = 21

    family: ClassVar[str] = "reverse"
    markers: ClassVar[tuple[str, ...]] = (MARKER_REVERSE,)
    mode: ClassVar[str] = "none"

    def new_stream(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def _perturb_all(self, sentences, tok, ids, stream):
        assert stream is not None
        marker = marker_id(tok, MARKER_REVERSE)
        markers = frozenset(tok.marker_ids.values())
        original = encode_all(sentences, tok, ids)
        positions = marker_positions([len(t) for t in original], stream)
        mode = self.mode
        out = []
        for tokens, index in zip(original, positions):
            new = reverse(tokens, index, marker, mode)
            out.append(Perturbed(new if keeps_content(new, markers) else None, True))
        return out


@dataclass(frozen=True)
class NoReverse(ReverseLanguage):
    mode: ClassVar[str] = "none"


@dataclass(frozen=True)
class PartialReverse(ReverseLanguage):
    mode: ClassVar[str] = "partial"


@dataclass(frozen=True)
class FullReverse(ReverseLanguage):
    mode: ClassVar[str] = "full"
