"""The *Shuffle family: permutations of a sentence's GPT-2 tokens.

Rules (Kallini et al. 2024, reference ``utils.py``):

- every sentence is affected; a sentence is kept only when its *original*
  encoding has 2..350 tokens (``filter_shuffle``);
- NoShuffle leaves the tokens as they are (the control);
- NondeterministicShuffle applies ``rng.shuffle`` to every sentence from one
  ``default_rng(0)`` stream consumed in corpus order, *including* sentences the
  length filter then drops, so the stream position matches the reference;
- DeterministicShuffle(s) applies the permutation ``default_rng(s).shuffle``
  makes for a list of that length (a fresh generator per sentence);
- LocalShuffle(w) cuts the tokens into consecutive windows of w (the last one
  may be shorter) and shuffles each with a fresh ``default_rng(0)``, so the
  permutation depends only on the sentence length;
- EvenOddShuffle puts the tokens at even indices first, then the odd ones.

The deterministic permutations are cached per length as ``operator.itemgetter``
objects, which apply them at C speed.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, ClassVar, Sequence

import numpy as np

from perturbations.base import (
    Language,
    Perturbed,
    encode_all,
)

MIN_TOKENS = 2
MAX_TOKENS = 350


# -- pure functions on token lists ---------------------------------------------


@lru_cache(maxsize=4096)
def seeded_permutation(n: int, seed: int) -> tuple[int, ...]:
    """The order ``default_rng(seed).shuffle`` gives a list of ``n`` items.

    ``shuffled[i] == original[perm[i]]``; ``Generator.permutation`` runs the same
    Fisher-Yates swaps as ``Generator.shuffle`` on a list (checked in the tests).
    """
    return tuple(np.random.default_rng(seed).permutation(n).tolist())


@lru_cache(maxsize=4096)
def local_permutation(n: int, window: int, seed: int = 0) -> tuple[int, ...]:
    """The order LocalShuffle(window) gives ``n`` tokens: each window permuted alone."""
    perm: list[int] = []
    for start in range(0, n, window):
        size = min(window, n - start)
        perm.extend(start + i for i in seeded_permutation(size, seed))
    return tuple(perm)


def _getter(perm: tuple[int, ...]) -> Callable[[Sequence[int]], list[int]]:
    # itemgetter returns a bare item (not a tuple) for one index, and fails on none.
    if len(perm) == 0:
        return lambda tokens: []
    if len(perm) == 1:
        return lambda tokens: [tokens[perm[0]]]
    get = operator.itemgetter(*perm)
    return lambda tokens: list(get(tokens))


# Keyed by length, not by the permutation, so a lookup hashes a few ints only.
@lru_cache(maxsize=4096)
def _seeded_getter(n: int, seed: int) -> Callable[[Sequence[int]], list[int]]:
    return _getter(seeded_permutation(n, seed))


@lru_cache(maxsize=4096)
def _local_getter(n: int, window: int, seed: int) -> Callable[[Sequence[int]], list[int]]:
    return _getter(local_permutation(n, window, seed))


def deterministic_shuffle(tokens: Sequence[int], seed: int) -> list[int]:
    """DeterministicShuffle(seed) of one sentence."""
    return _seeded_getter(len(tokens), seed)(tokens)


def local_shuffle(tokens: Sequence[int], window: int, seed: int = 0) -> list[int]:
    """LocalShuffle(window) of one sentence."""
    return _local_getter(len(tokens), window, seed)(tokens)


def even_odd_shuffle(tokens: Sequence[int]) -> list[int]:
    """EvenOddShuffle of one sentence."""
    return list(tokens[0::2]) + list(tokens[1::2])


def nondeterministic_shuffle(tokens: Sequence[int], rng: np.random.Generator) -> list[int]:
    """NondeterministicShuffle of one sentence: the next permutation from ``rng``."""
    out = list(tokens)
    rng.shuffle(out)
    return out


# -- the languages -------------------------------------------------------------


@dataclass(frozen=True)
class ShuffleLanguage(Language):
    """Base of the family: every sentence affected, 2..350 original tokens kept."""

    family: ClassVar[str] = "shuffle"

    def _shuffle_all(
        self, ids: list[list[int]], stream: np.random.Generator | None
    ) -> list[list[int]]:
        raise NotImplementedError

    def _perturb_all(self, sentences, tok, ids, stream):
        original = encode_all(sentences, tok, ids)
        shuffled = self._shuffle_all(original, stream)
        return [
            Perturbed(new if MIN_TOKENS <= len(old) <= MAX_TOKENS else None, True)
            for old, new in zip(original, shuffled)
        ]


@dataclass(frozen=True)
class NoShuffle(ShuffleLanguage):
    def _shuffle_all(self, ids, stream):
        return ids


@dataclass(frozen=True)
class NondeterministicShuffle(ShuffleLanguage):
    seed: int = 0

    def new_stream(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def _shuffle_all(self, ids, stream):
        assert stream is not None
        # Every sentence draws, even those the length filter drops (as the reference does).
        return [nondeterministic_shuffle(t, stream) for t in ids]


@dataclass(frozen=True)
class DeterministicShuffle(ShuffleLanguage):
    seed: int = 21

    def _shuffle_all(self, ids, stream):
        return [deterministic_shuffle(t, self.seed) for t in ids]


@dataclass(frozen=True)
class LocalShuffle(ShuffleLanguage):
    w: int = 5
    seed: int = 0

    def _shuffle_all(self, ids, stream):
        return [local_shuffle(t, self.w, self.seed) for t in ids]


@dataclass(frozen=True)
class EvenOddShuffle(ShuffleLanguage):
    def _shuffle_all(self, ids, stream):
        return [even_odd_shuffle(t) for t in ids]

