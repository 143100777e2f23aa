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

A file is perturbed as one :class:`~perturbations.ragged.Ragged`: the length
filter is a mask, and a deterministic shuffle is one gather, since its order
depends only on the row length. The per-sentence functions below are the same
rules one sentence at a time (the tests check both agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, ClassVar, Mapping, Sequence

import numpy as np

from perturbations.base import Language, PerturbedColumns, encode_columns, other_markers
from perturbations.ragged import Ragged, offsets_of

MIN_TOKENS = 2
MAX_TOKENS = 350


# -- orders: which original index goes to each position --------------------------


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


def even_odd_order(n: int) -> tuple[int, ...]:
    """The order EvenOddShuffle gives ``n`` tokens: even indices, then odd ones."""
    return tuple(range(0, n, 2)) + tuple(range(1, n, 2))


def random_orders(lengths: Sequence[int], rng: np.random.Generator) -> list[list[int]]:
    """Per row, the order ``rng.shuffle`` gives a list of that length, drawn row after row."""
    orders = []
    for n in lengths:
        order = list(range(n))
        rng.shuffle(order)
        orders.append(order)
    return orders


# -- one sentence -----------------------------------------------------------------


def deterministic_shuffle(tokens: Sequence[int], seed: int) -> list[int]:
    """DeterministicShuffle(seed) of one sentence."""
    return [tokens[i] for i in seeded_permutation(len(tokens), seed)]


def local_shuffle(tokens: Sequence[int], window: int, seed: int = 0) -> list[int]:
    """LocalShuffle(window) of one sentence."""
    return [tokens[i] for i in local_permutation(len(tokens), window, seed)]


def even_odd_shuffle(tokens: Sequence[int]) -> list[int]:
    """EvenOddShuffle of one sentence."""
    return list(tokens[0::2]) + list(tokens[1::2])


def nondeterministic_shuffle(tokens: Sequence[int], rng: np.random.Generator) -> list[int]:
    """NondeterministicShuffle of one sentence: the next permutation from ``rng``."""
    out = list(tokens)
    rng.shuffle(out)
    return out


# -- many sentences at once -------------------------------------------------------


def reorder_rows(tokens: Ragged, order: np.ndarray) -> Ragged:
    """Each row reordered by its own slice of ``order`` (indices within the row, rows concatenated)."""
    return Ragged(tokens.values[np.repeat(tokens.offsets[:-1], tokens.lengths) + order], tokens.offsets)


def reorder_by_length(tokens: Ragged, order_of: Callable[[int], Sequence[int]]) -> Ragged:
    """Every row of length n reordered by ``order_of(n)``: one gather for all rows."""
    lengths = tokens.lengths
    distinct, which = np.unique(lengths, return_inverse=True)
    # The orders of the lengths present, end to end; each row reads its length's slice.
    table = np.fromiter((i for n in distinct.tolist() for i in order_of(n)), np.int64, int(distinct.sum()))
    first = np.repeat(offsets_of(distinct)[:-1][which], lengths)
    return reorder_rows(tokens, table[first + tokens.position_in_row()])


# -- the languages -------------------------------------------------------------


@dataclass(frozen=True)
class ShuffleLanguage(Language):
    """Base of the family: every sentence affected, 2..350 original tokens kept."""

    family: ClassVar[str] = "shuffle"
    control: ClassVar[str | None] = "no_shuffle"
    keeps: ClassVar[str] = f"sentences of {MIN_TOKENS} to {MAX_TOKENS} tokens"

    def _shuffle(self, tokens: Ragged, kept: np.ndarray, stream: np.random.Generator | None) -> Ragged:
        """The kept rows of ``tokens``, shuffled."""
        raise NotImplementedError

    def _perturb(self, sentences, tok, ids, stream):
        original = encode_columns(sentences, tok, ids)
        lengths = original.lengths
        kept = (lengths >= MIN_TOKENS) & (lengths <= MAX_TOKENS)
        return PerturbedColumns(self._shuffle(original, kept, stream), kept, np.ones(len(kept), bool))

    def order_of(self, n: int) -> Sequence[int] | None:
        """The order a sentence of ``n`` tokens gets (``shuffled[i] == original[order[i]]``); None when
        it is drawn afresh per sentence, so no sentence can be undone from its tokens."""
        return None

    @property
    def invertible(self) -> bool:
        return self.order_of(MIN_TOKENS) is not None

    # Any permutation of a sentence is a sentence of a shuffle language: tokens can only show that
    # no marker crept in and that the length passes the filter.
    def conforms(self, ids: Sequence[int], marker_ids: Mapping[str, int]) -> bool:
        return MIN_TOKENS <= len(ids) <= MAX_TOKENS and not other_markers(ids, marker_ids, ())

    def undo(self, ids: Sequence[int], marker_ids: Mapping[str, int]) -> list[int] | None:
        order = self.order_of(len(ids)) if self.conforms(ids, marker_ids) else None
        if order is None:
            return None
        original = [0] * len(ids)
        for token, source in zip(ids, order):
            original[source] = token
        return original

    def redo(self, ids: Sequence[int], marker_ids: Mapping[str, int]) -> list[int]:
        order = self.order_of(len(ids))
        if order is None:
            return super().redo(ids, marker_ids)
        return [ids[i] for i in order]


@dataclass(frozen=True)
class NoShuffle(ShuffleLanguage):
    keeps_token_order: ClassVar[bool] = True
    word_analyses: ClassVar[str | None] = "own"  # the control keeps word order: probing and word trees apply

    def _shuffle(self, tokens, kept, stream):
        return tokens.take(kept)

    def order_of(self, n: int) -> Sequence[int]:
        return range(n)


@dataclass(frozen=True)
class NondeterministicShuffle(ShuffleLanguage):
    seed: int = 0

    def new_stream(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def _shuffle(self, tokens, kept, stream):
        assert stream is not None
        # Every sentence draws, even those the length filter drops (as the reference does).
        orders = Ragged.from_lists(random_orders(tokens.lengths.tolist(), stream)).take(kept)
        return reorder_rows(tokens.take(kept), orders.values)


@dataclass(frozen=True)
class FixedOrderShuffle(ShuffleLanguage):
    """A shuffle whose order depends on the sentence length only: one gather per file, and undoable."""

    def _shuffle(self, tokens, kept, stream):
        return reorder_by_length(tokens.take(kept), self.order_of)


@dataclass(frozen=True)
class DeterministicShuffle(FixedOrderShuffle):
    seed: int = 21

    def order_of(self, n: int) -> Sequence[int]:
        return seeded_permutation(n, self.seed)


@dataclass(frozen=True)
class LocalShuffle(FixedOrderShuffle):
    w: int = 5
    seed: int = 0

    def order_of(self, n: int) -> Sequence[int]:
        return local_permutation(n, self.w, self.seed)


@dataclass(frozen=True)
class EvenOddShuffle(FixedOrderShuffle):
    def order_of(self, n: int) -> Sequence[int]:
        return even_odd_order(n)
