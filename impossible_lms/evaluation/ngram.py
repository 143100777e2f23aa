"""Interpolated Kneser-Ney n-gram models over token ids: a complexity baseline that needs no network.

The recursion is nltk.lm's ``KneserNeyInterpolated`` (nltk 3.9–3.10), transcribed
over dicts so a million-token corpus trains in seconds rather than minutes
(tests/test_baselines.py checks equal scores against nltk.lm on data it writes):

- highest order n:   P(w | c) = max(c(c w) − D, 0) / c(c •) + γ(c) · P(w | c[1:]),
                     γ(c) = D · N1+(c •) / c(c •)
- lower orders:      the same with continuation counts N1+(• c w) / N1+(• c •)
- a context never seen (nothing follows it): P(w | c) = P(w | c[1:])
- no context:        N1+(• w) / N1+(• •)

Two deliberate extensions, both off in the nltk-equal mode (``base="none"``,
``discount=<number>``): the unigram level is discounted too and interpolated with
the uniform distribution over the vocabulary (``base="uniform"``, the usual
closing of the recursion: a token unseen in training gets a small probability,
not 0 and an infinite perplexity), and ``discount="auto"`` estimates each level's
D from its count-of-counts, D = n1 / (n1 + 2·n2) (Ney, Essen & Kneser 1994). A
middle-order context that never follows anything (it only opens sequences)
backs off like an unseen one, where nltk divides by zero.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Iterable, Sequence

from impossible_lms.errors import ILMError

BASES = ("uniform", "none")


class KneserNey:
    """Fit on sequences of ids (each already framed as wanted); ``logprobs`` scores one sequence."""

    def __init__(self, order: int, discount: float | str = "auto", base: str = "uniform",
                 vocab_size: int | None = None):
        if isinstance(order, bool) or not isinstance(order, int) or not 2 <= order <= 9:
            raise ILMError(f"n-gram order must be a whole number from 2 to 9, got {order!r}")
        if base not in BASES:
            raise ILMError(f"n-gram base {base!r} is not one of {', '.join(BASES)}")
        if base == "uniform" and not vocab_size:
            raise ILMError("the uniform base needs the vocabulary size")
        if discount != "auto" and not (isinstance(discount, (int, float)) and 0 < discount < 1):
            raise ILMError(f"n-gram discount must be 'auto' or a number in (0, 1), got {discount!r}")
        self.order, self.base, self.vocab_size = order, base, vocab_size
        self._discount = discount
        self.discounts: dict[int, float] = {}

    # ---------------------------------------------------------------- counting

    def fit(self, sequences: Iterable[Sequence[int]]) -> "KneserNey":
        n = self.order
        grams: list[Counter] = [Counter() for _ in range(n + 1)]  # grams[k][tuple of k ids] = count
        for seq in sequences:
            seq = tuple(seq)
            for k in range(1, n + 1):
                grams[k].update(seq[i:i + k] for i in range(len(seq) - k + 1))
        self.counts = grams[n]
        # Raw counts: what follows each context of the highest order, and how many kinds follow any context.
        self.follow_total: dict[tuple, int] = defaultdict(int)  # c(c •), highest order
        self.follow_types: dict[tuple, int] = defaultdict(int)  # N1+(c •), every order
        for k in range(1, n + 1):
            for gram, count in grams[k].items():
                self.follow_types[gram[:-1]] += 1
                if k == n:
                    self.follow_total[gram[:-1]] += count
        # Continuation counts for the lower orders: N1+(• c w) and N1+(• c •).
        self.cont: dict[tuple, int] = defaultdict(int)
        self.cont_total: dict[tuple, int] = defaultdict(int)
        for k in range(2, n + 1):
            for gram in grams[k]:
                self.cont[gram[1:]] += 1
                self.cont_total[gram[1:-1]] += 1
        self.unigram_types = sum(1 for g in self.cont if len(g) == 1)  # |{w: N1+(• w) > 0}|
        self._set_discounts(grams)
        return self

    def _set_discounts(self, grams: list[Counter]) -> None:
        for k in range(1, self.order + 1):
            if self._discount != "auto":
                self.discounts[k] = float(self._discount)
                continue
            counts = grams[k].values() if k == self.order else (self.cont[g] for g in grams[k] if g in self.cont)
            of = Counter(c for c in counts if c <= 2)
            n1, n2 = of.get(1, 0), of.get(2, 0)
            self.discounts[k] = min(max(n1 / (n1 + 2 * n2), 0.05), 0.95) if n1 + n2 else 0.75

    # ---------------------------------------------------------------- scoring

    def prob(self, word: int, context: Sequence[int] = ()) -> float:
        """P(word | context), context truncated to order − 1 (nltk's ``unmasked_score``)."""
        return self._prob(word, tuple(context)[max(0, len(context) - (self.order - 1)):])

    def _prob(self, word: int, context: tuple) -> float:
        if not context:
            return self._unigram(word)
        k = len(context) + 1  # the order of the n-gram (context, word)
        d = self.discounts[k]
        if k == self.order:
            total = self.follow_total.get(context, 0)
            count = self.counts.get(context + (word,), 0)
        else:
            total = self.cont_total.get(context, 0)
            count = self.cont.get(context + (word,), 0)
        if total == 0 or not self.follow_types.get(context):
            return self._prob(word, context[1:])
        alpha = max(count - d, 0.0) / total
        gamma = d * self.follow_types[context] / total
        return alpha + gamma * self._prob(word, context[1:])

    def _unigram(self, word: int) -> float:
        total, count = self.cont_total.get((), 0), self.cont.get((word,), 0)
        if self.base == "none":
            return count / total if total else 0.0
        if not total:
            return 1.0 / self.vocab_size
        d = self.discounts[1]
        return max(count - d, 0.0) / total + d * self.unigram_types / total / self.vocab_size

    def logprobs(self, sequence: Sequence[int], start: int = 1, pad: int | None = None) -> list[float]:
        """Natural-log P of each token from index ``start`` on, given the tokens before it (NaN before);
        ``pad``: the id the context is filled with before the sequence (as in training's framing)."""
        left = [pad] * (self.order - 1) if pad is not None else []
        full = [*left, *sequence]
        out = [math.nan] * min(start, len(sequence))
        for i in range(len(left) + start, len(full)):
            p = self.prob(full[i], full[max(0, i - self.order + 1):i])
            out.append(math.log(p) if p > 0 else -math.inf)
        return out
