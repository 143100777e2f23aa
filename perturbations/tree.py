"""Structure-aware languages: word orders rebuilt from each sentence's dependency tree.

The tree is the sentence's ``Word.head`` column (1-based head index, 0 = root),
as a CoNLL-U treebank gives it. Every language here linearises the tree again:
each head and its dependents' subtrees form a list of *units* in sentence order
(the head itself is a unit of one word); a language rearranges the units of
some heads; the new sentence is the units' words, recursively, in the new order.
So every subtree of the input stays contiguous in the output, and no word is
added, dropped or changed: only the order moves. The words are then re-joined
as the hop languages do (``hop.join_words``: single spaces, English clitics
glued to the word before) and encoded.

- ``tree_reverse:depth=D``: the units of every head at depth <= D (the root word
  is depth 1) in reverse order; D = 0 (the default) means every head, which on
  a projective tree is exactly the reversed word sequence (a test proves it).
  ``depth=1`` reverses the root's constituents only ("the dog saw a cat ." →
  ". a cat saw the dog").
- ``tree_shuffle:seed=S,depth=D``: the units of each such head in a random
  order, ``stream.permutation`` per head with two or more units, heads visited
  in preorder; one ``default_rng(seed)`` stream per split, as the
  NondeterministicShuffle does.
- ``head_final`` / ``head_initial``: at every head, its dependents keep their
  relative order and the head goes after them all / before them all.
- ``head_flip``: at every head, the block of dependents on its left and the
  block on its right trade sides (each block keeps its order). Flipping the
  flipped tree gives the input back.
- ``np_order:order=...`` (Greenberg's Universal 20): inside each noun phrase,
  the demonstrative, numeral, adjective(s) and the noun take the slots they
  already fill among the noun's units, in the given order; the noun's other
  dependents (articles, case markers, relative clauses, ...) keep their slots,
  and words outside the noun phrase keep their positions. A
  noun is a word with UPOS NOUN; its Dem is a ``det`` dependent with
  ``PronType=Dem``, its Num a ``nummod`` dependent, its Adj an ``amod``
  dependent (subrelations such as ``det:poss`` count as their base relation);
  each brings its whole subtree. Several dependents of one category keep their
  relative order. ``order`` is four names joined by ``-`` (``N-A-Num-Dem``;
  ``Adj`` may be written for ``A``) or one of Cinque's letters ``a`` .. ``x``.
  See :data:`NP_ORDERS` for the attested/unattested labels and their source.

Sentences the rule cannot read are left as they are and *unaffected*: without
a full tree (some HEAD is ``_``), with an invalid one (a cycle, or a head out of
range), or non-projective (some subtree not contiguous: reordering units
cannot keep it so). The pipeline counts them per split in the manifest
(``counts[split]["no_tree"|"invalid_tree"|"nonprojective"]``). Affected are the
other sentences, for ``np_order`` those with at least one noun that has a Dem,
Num or Adj dependent (the same sentences for all 24 orders, so the test sets
compare). Stochastic languages draw nothing for unaffected sentences.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import permutations
from typing import Callable, ClassVar, Sequence

import numpy as np

from perturbations.base import Language, Perturbed, PerturbedColumns, Sentence, Word, keeps_content
from perturbations.errors import ILMError
from perturbations.hop import join_words

# Arrange one head's units: (head id, units in sentence order, depth) -> new order.
# Units are the ids of the head's dependents and the head's own id (absent for the root 0).
Arrange = Callable[[int, list[int], int], list[int]]


# -- trees ------------------------------------------------------------------------------


def tree_status(words: Sequence[Word]) -> str:
    """``ok``, ``no_tree`` (a head missing), ``invalid_tree`` (cycle/out of range) or ``nonprojective``."""
    heads = [w.head for w in words]
    if any(h is None for h in heads):
        return "no_tree"
    n = len(heads)
    if any(not 0 <= h <= n for h in heads) or any(h == i for i, h in enumerate(heads, 1)):
        return "invalid_tree"
    if depths(heads) is None:
        return "invalid_tree"
    return "ok" if is_projective(heads) else "nonprojective"


def depths(heads: Sequence[int]) -> list[int] | None:
    """Depth of each word (root word 1), or None when some word does not reach 0."""
    n = len(heads)
    out = [0] * (n + 1)
    for start in range(1, n + 1):
        path = []
        node = start
        while node != 0 and out[node] == 0:
            if len(path) > n:
                return None  # a cycle
            path.append(node)
            node = heads[node - 1]
        base = out[node] if node != 0 else 0
        for k, v in enumerate(reversed(path), 1):
            out[v] = base + k
    return out[1:]


def children(heads: Sequence[int]) -> list[list[int]]:
    """Dependents of each node 0..n (0 = the virtual root), in sentence order."""
    kids: list[list[int]] = [[] for _ in range(len(heads) + 1)]
    for d, h in enumerate(heads, 1):
        kids[h].append(d)
    return kids


def is_projective(heads: Sequence[int]) -> bool:
    """Every word's subtree is a contiguous span (the usual projectivity)."""
    n = len(heads)
    depth = depths(heads)
    if depth is None:
        return False
    lo, hi, size = list(range(n + 1)), list(range(n + 1)), [1] * (n + 1)
    # Deepest first, so each subtree's span is complete before it joins its head's.
    for node in sorted(range(1, n + 1), key=lambda i: -depth[i - 1]):
        h = heads[node - 1]
        if hi[node] - lo[node] + 1 != size[node]:
            return False
        if h:
            lo[h], hi[h], size[h] = min(lo[h], lo[node]), max(hi[h], hi[node]), size[h] + size[node]
    return True


def subtree(heads: Sequence[int], node: int) -> list[int]:
    """Ids of ``node``'s subtree (itself included), in sentence order."""
    kids = children(heads)
    out, todo = [], [node]
    while todo:
        x = todo.pop()
        out.append(x)
        todo.extend(kids[x])
    return sorted(out)


def linearize(heads: Sequence[int], arrange: Arrange) -> list[int]:
    """The word ids (1-based) in the new order: each head's units arranged, recursively."""
    kids = children(heads)
    out: list[int] = []

    def emit(node: int, depth: int) -> None:
        units = sorted(kids[node] + ([node] if node else []))
        for unit in arrange(node, units, depth) if len(units) > 1 else units:
            if unit == node:
                out.append(node)
            else:
                emit(unit, depth + 1)

    emit(0, 0)
    return out


def reorder(words: Sequence[Word], order: Sequence[int]) -> tuple[Word, ...]:
    """The words in ``order`` (1-based ids), heads renumbered, so the result is a tree again."""
    new_index = {old: new for new, old in enumerate(order, 1)}
    new_index[0] = 0
    return tuple(
        w if w.head is None else replace(w, head=new_index[w.head]) for w in (words[i - 1] for i in order)
    )


# -- arrangements -------------------------------------------------------------------------


def _side_blocks(node: int, units: list[int]) -> tuple[list[int], list[int]]:
    return [u for u in units if u < node], [u for u in units if u > node]


def arrange_reverse(max_depth: int) -> Arrange:
    def arrange(node: int, units: list[int], depth: int) -> list[int]:
        return units[::-1] if node and (max_depth == 0 or depth <= max_depth) else units

    return arrange


def arrange_head(mode: str) -> Arrange:
    def arrange(node: int, units: list[int], depth: int) -> list[int]:
        if not node:
            return units
        left, right = _side_blocks(node, units)
        if mode == "final":
            return left + right + [node]
        if mode == "initial":
            return [node] + left + right
        return right + [node] + left  # flip

    return arrange


# -- noun phrases (Greenberg's Universal 20) ------------------------------------------------

NP_CATEGORIES = ("Dem", "Num", "A", "N")

# Cinque (2005), "Deriving Greenberg's Universal 20 and its exceptions",
# Linguistic Inquiry 36(3): 315-332, list (2): the 24 orders, lettered a-x, of
# which 14 are attested. Attested are exactly the orders his account derives
# from Merge Dem > Num > A > N with leftward movement of the NP or of phrases
# containing it: the 8 mirror-image orders (a b n o r s w x) and the 6 that
# need NP movement without pied-piping or with partial pied-piping (c d k l p t).
# His frequency notes (very many / many / few / very few languages) are not
# reproduced here. Later surveys differ on a few of the "unattested" ones: Dryer
# (2018, Linguistic Typology 22(2)) reports Dem-A-Num-N (m) and Num-N-Dem-A (g)
# in a few genera. The labels below are Cinque's 2005 ones only.
NP_ORDERS: dict[str, tuple[str, bool]] = {  # letter -> (order, attested per Cinque 2005)
    "a": ("Dem-Num-A-N", True),
    "b": ("Dem-Num-N-A", True),
    "c": ("Dem-N-Num-A", True),
    "d": ("N-Dem-Num-A", True),
    "e": ("Num-Dem-A-N", False),
    "f": ("Num-Dem-N-A", False),
    "g": ("Num-N-Dem-A", False),
    "h": ("N-Num-Dem-A", False),
    "i": ("A-Dem-Num-N", False),
    "j": ("A-Dem-N-Num", False),
    "k": ("A-N-Dem-Num", True),
    "l": ("N-A-Dem-Num", True),
    "m": ("Dem-A-Num-N", False),
    "n": ("Dem-A-N-Num", True),
    "o": ("Dem-N-A-Num", True),
    "p": ("N-Dem-A-Num", True),
    "q": ("Num-A-Dem-N", False),
    "r": ("Num-A-N-Dem", True),
    "s": ("Num-N-A-Dem", True),
    "t": ("N-Num-A-Dem", True),
    "u": ("A-Num-Dem-N", False),
    "v": ("A-Num-N-Dem", False),
    "w": ("A-N-Num-Dem", True),
    "x": ("N-A-Num-Dem", True),
}
_BY_ORDER = {order: (letter, attested) for letter, (order, attested) in NP_ORDERS.items()}
assert sorted(_BY_ORDER) == sorted("-".join(p) for p in permutations(NP_CATEGORIES))
_NAMES = {"dem": "Dem", "num": "Num", "a": "A", "adj": "A", "n": "N"}


def parse_np_order(value: str) -> str:
    """``N-A-Num-Dem`` / ``n-adj-num-dem`` / Cinque's letter ``x`` → canonical ``N-A-Num-Dem``."""
    text = value.strip()
    if len(text) == 1 and text.lower() in NP_ORDERS:
        return NP_ORDERS[text.lower()][0]
    parts = [_NAMES.get(p.strip().lower()) for p in text.split("-")]
    order = "-".join(p or "?" for p in parts)
    if order not in _BY_ORDER:
        raise ILMError(
            f"np_order: order must be a permutation of Dem, Num, A, N joined by '-' (e.g. N-A-Num-Dem) "
            f"or one of Cinque's letters a-x, got {value!r}"
        )
    return order


def np_category(word: Word) -> str | None:
    """Dem, Num or A for a dependent of a noun, by its relation (and PronType=Dem for det)."""
    rel = (word.deprel or "").split(":")[0]
    if rel == "det" and "PronType=Dem" in word.feats.split("|"):
        return "Dem"
    return {"nummod": "Num", "amod": "A"}.get(rel)


def _is_noun(word: Word) -> bool:
    return word.upos == "NOUN"


def np_heads(words: Sequence[Word]) -> list[int]:
    """Ids of nouns with at least one Dem, Num or Adj dependent (the NPs an order acts on)."""
    found = set()
    for w in words:
        if w.head and _is_noun(words[w.head - 1]) and np_category(w) is not None:
            found.add(w.head)
    return sorted(found)


def arrange_np(words: Sequence[Word], order: str) -> Arrange:
    rank = {c: i for i, c in enumerate(order.split("-"))}

    def arrange(node: int, units: list[int], depth: int) -> list[int]:
        if not node or not _is_noun(words[node - 1]):
            return units
        cats = {u: "N" if u == node else np_category(words[u - 1]) for u in units}
        slots = [i for i, u in enumerate(units) if cats[u] is not None]
        if len(slots) < 2:
            return units
        movers = sorted((units[i] for i in slots), key=lambda u: (rank[cats[u]], u))
        out = list(units)
        for i, u in zip(slots, movers):
            out[i] = u
        return out

    return arrange


# -- the languages ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeLanguage(Language):
    """Reorders the words of each sentence along its dependency tree (no markers)."""

    family: ClassVar[str] = "tree"
    needs_tags: ClassVar[bool] = True
    needs_tree: ClassVar[bool] = True

    def arrangement(self, words: Sequence[Word], stream: np.random.Generator | None) -> Arrange:
        raise NotImplementedError

    def applies(self, words: Sequence[Word]) -> bool:
        """Whether a sentence with a usable tree is affected (np_order: it has an NP)."""
        return True

    def affects(self, sentence: Sentence) -> bool:
        words = sentence.words or ()
        return bool(words) and tree_status(words) == "ok" and self.applies(words)

    def reordered(self, words: Sequence[Word], stream: np.random.Generator | None = None) -> tuple[Word, ...]:
        """The sentence's words in this language's order (unchanged when unaffected)."""
        if not words or tree_status(words) != "ok" or not self.applies(words):
            return tuple(words)
        heads = [w.head for w in words]
        return reorder(words, linearize(heads, self.arrangement(words, stream)))

    def tree_counts(self, sentences: Sequence[Sentence]) -> dict[str, int]:
        """How many sentences the rule left alone, by reason (for the manifest)."""
        counts = {"no_tree": 0, "invalid_tree": 0, "nonprojective": 0}
        for s in sentences:
            status = tree_status(s.words or ())
            if status in counts:
                counts[status] += 1
        return counts

    def _perturb(self, sentences, tok, ids, stream):
        if sentences and not any(s.words and tree_status(s.words) != "no_tree" for s in sentences):
            raise ILMError(
                f"{self.name} needs dependency trees (a CoNLL-U corpus with HEAD and DEPREL, tagger gold or auto); "
                f"no sentence of this file has one, e.g. {sentences[0].text[:60]!r}"
            )
        markers = frozenset(tok.marker_ids.values())
        out = []
        for sentence in sentences:
            words = sentence.words
            affected = self.affects(sentence)
            new = self.reordered(words, stream) if affected else words
            encoded = tok.encode(join_words(w.text for w in new))
            out.append(Perturbed(encoded if keeps_content(encoded, markers) else None, affected))
        return PerturbedColumns.from_rows(out)


@dataclass(frozen=True)
class TreeReverse(TreeLanguage):
    depth: int = 0

    def arrangement(self, words, stream):
        return arrange_reverse(self.depth)


@dataclass(frozen=True)
class TreeShuffle(TreeLanguage):
    seed: int = 0
    depth: int = 0

    def new_stream(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def arrangement(self, words, stream):
        if stream is None:
            stream = self.new_stream()
        max_depth = self.depth

        def arrange(node: int, units: list[int], depth: int) -> list[int]:
            if not node or (max_depth and depth > max_depth):
                return units
            return [units[i] for i in stream.permutation(len(units))]

        return arrange


@dataclass(frozen=True)
class HeadDirection(TreeLanguage):
    mode: ClassVar[str] = "final"

    def arrangement(self, words, stream):
        return arrange_head(self.mode)


@dataclass(frozen=True)
class HeadFinal(HeadDirection):
    mode: ClassVar[str] = "final"


@dataclass(frozen=True)
class HeadInitial(HeadDirection):
    mode: ClassVar[str] = "initial"


@dataclass(frozen=True)
class HeadFlip(HeadDirection):
    mode: ClassVar[str] = "flip"


@dataclass(frozen=True)
class NPOrder(TreeLanguage):
    order: str = "Dem-Num-A-N"

    @property
    def cinque_letter(self) -> str:
        return _BY_ORDER[self.order][0]

    @property
    def attested(self) -> bool:
        """Whether Cinque (2005) lists this order as attested."""
        return _BY_ORDER[self.order][1]

    def applies(self, words):
        return bool(np_heads(words))

    def arrangement(self, words, stream):
        return arrange_np(words, self.order)


def check_np_order(params: dict[str, str]) -> dict[str, str]:
    """np_order's parameters with ``order`` canonical (the registry calls it on the given ones)."""
    return {**params, "order": parse_np_order(params["order"])} if "order" in params else params
