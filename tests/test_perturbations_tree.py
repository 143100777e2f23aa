"""Tree languages: invariants on generated trees, hand-checked sentences, the non-projective rule."""

from __future__ import annotations

from collections import Counter
from itertools import permutations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perturbations import Sentence, Word, get_language
from perturbations.errors import ILMError
from perturbations.examples import TREE_EXAMPLE
from perturbations.toy import ToyTokenizer
from perturbations.tree import NP_ORDERS, is_projective, np_category, reorder, subtree, tree_status

TREE_SPECS = ["tree_reverse", "tree_reverse:depth=1", "tree_reverse:depth=2", "tree_shuffle", "tree_shuffle:seed=3,depth=1",
              "head_final", "head_initial", "head_flip", "np_order:order=x", "np_order:order=N-Dem-Num-A",
              "np_order:order=i"]
RELS = ["det", "nummod", "amod", "nsubj", "obj", "case", "det:poss"]


def tree_sentence(heads: list[int], upos: list[str] | None = None, rels: list[str] | None = None) -> Sentence:
    n = len(heads)
    upos = upos or ["NOUN"] * n
    rels = rels or ["dep"] * n
    words = tuple(
        Word(f"w{i}", u, "PronType=Dem" if r == "det" else "_", f"w{i}", h, r)
        for i, (h, u, r) in enumerate(zip(heads, upos, rels), 1)
    )
    return Sentence(" ".join(w.text for w in words), words)


@st.composite
def projective(draw, max_words: int = 12):
    """A random tree, laid out projectively: each node's children split around it in a random order."""
    n = draw(st.integers(1, max_words))
    parent = [-1] + [draw(st.integers(0, i - 1)) for i in range(1, n)]  # shape: node 0 is the root word
    kids = [[c for c in range(n) if parent[c] == p] for p in range(n)]
    order: list[int] = []

    def lay(node: int) -> None:
        ks = draw(st.permutations(kids[node]))
        cut = draw(st.integers(0, len(ks)))
        for k in ks[:cut]:
            lay(k)
        order.append(node)
        for k in ks[cut:]:
            lay(k)

    lay(0)
    pos = {node: i for i, node in enumerate(order, 1)}
    heads = [0 if parent[node] < 0 else pos[parent[node]] for node in order]
    upos = draw(st.lists(st.sampled_from(["NOUN", "VERB", "ADJ", "DET", "NUM"]), min_size=n, max_size=n))
    rels = draw(st.lists(st.sampled_from(RELS), min_size=n, max_size=n))
    return tree_sentence(heads, upos, rels)


def texts(words) -> list[str]:
    return [w.text for w in words]


def example(spec: str, sentence: Sentence = TREE_EXAMPLE) -> str:
    tok = ToyTokenizer()
    return " ".join(p.strip() for p in tok.to_pieces(get_language(spec).perturb(sentence, tok).ids))


# -- hand-checked ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "spec, expected",
    [
        # these two old dogs see a cat .   (dogs <- these two old; see <- dogs cat .; cat <- a)
        ("tree_reverse", ". cat a see dogs old two these"),
        ("tree_reverse:depth=1", ". a cat see these two old dogs"),
        ("head_final", "these two old dogs a cat . see"),
        ("head_initial", "see dogs these two old cat a ."),
        ("head_flip", "cat a . see dogs these two old"),
        ("np_order:order=N-A-Num-Dem", "dogs old two these see a cat ."),
        ("np_order:order=Dem-Num-A-N", "these two old dogs see a cat ."),
        ("np_order:order=A-N-Dem-Num", "old dogs these two see a cat ."),
    ],
)
def test_hand_checked(spec: str, expected: str) -> None:
    assert example(spec) == expected


def test_np_order_keeps_other_dependents_in_place() -> None:
    # "the big dog" : "the" is an article (PronType=Art), not a Dem: it keeps its slot.
    words = (
        Word("the", "DET", "PronType=Art", "the", 3, "det"),
        Word("big", "ADJ", "_", "big", 3, "amod"),
        Word("dog", "NOUN", "Number=Sing", "dog", 4, "nsubj"),
        Word("barks", "VERB", "_", "bark", 0, "root"),
    )
    s = Sentence("the big dog barks", words)
    assert example("np_order:order=N-A-Num-Dem", s) == "the dog big barks"
    lang = get_language("np_order:order=x")
    assert lang.affects(s)
    # No Dem/Num/Adj dependent: not affected, whatever the order.
    plain = Sentence("the dog barks", (Word("the", "DET", "PronType=Art", "the", 2, "det"),
                                       Word("dog", "NOUN", "_", "dog", 3, "nsubj"), Word("barks", "VERB", "_", "bark", 0, "root")))
    assert not lang.affects(plain)


def test_german_np_order_non_ascii() -> None:
    # diese drei großen Hunde schlafen .  (German: Dem Num A N, like English)
    words = (
        Word("diese", "DET", "Case=Nom|Number=Plur|PronType=Dem", "dieser", 4, "det"),
        Word("drei", "NUM", "NumType=Card", "drei", 4, "nummod"),
        Word("großen", "ADJ", "Degree=Pos", "groß", 4, "amod"),
        Word("Hunde", "NOUN", "Number=Plur", "Hund", 5, "nsubj"),
        Word("schlafen", "VERB", "Mood=Ind|Number=Plur|Person=3|Tense=Pres|VerbForm=Fin", "schlafen", 0, "root"),
        Word(".", "PUNCT", "_", ".", 5, "punct"),
    )
    s = Sentence("diese drei großen Hunde schlafen.", words)
    assert example("np_order:order=N-A-Num-Dem", s) == "Hunde großen drei diese schlafen ."
    assert example("head_final", s) == "diese drei großen Hunde . schlafen"


def test_cinque_labels() -> None:
    assert len(NP_ORDERS) == 24 and sum(a for _, a in NP_ORDERS.values()) == 14
    assert {o for o, _ in NP_ORDERS.values()} == {"-".join(p) for p in permutations(("Dem", "Num", "A", "N"))}
    attested = {letter for letter, (_, a) in NP_ORDERS.items() if a}
    assert attested == set("abcdklnoprstwx")
    assert get_language("np_order:order=Dem-Num-A-N").attested
    assert not get_language("np_order:order=Num-Dem-A-N").attested
    assert get_language("np_order:order=e").name == "np_order:order=Num-Dem-A-N"


@pytest.mark.parametrize("bad", ["np_order", "np_order:order=Dem-Num-A", "np_order:order=Dem-Dem-A-N", "np_order:order=z"])
def test_np_order_bad_specs(bad: str) -> None:
    with pytest.raises(ILMError, match="np_order"):
        get_language(bad)


def test_dem_needs_prontype() -> None:
    assert np_category(Word("this", "DET", "Number=Sing|PronType=Dem", "this", 2, "det")) == "Dem"
    assert np_category(Word("the", "DET", "PronType=Art", "the", 2, "det")) is None
    assert np_category(Word("two", "NUM", "_", "two", 2, "nummod:gov")) == "Num"


# -- invariants on generated trees -------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(projective(), st.sampled_from(TREE_SPECS))
def test_subtrees_stay_contiguous_and_words_are_permuted(s: Sentence, spec: str) -> None:
    lang = get_language(spec)
    heads = [w.head for w in s.words]
    assert tree_status(s.words) == "ok"
    new = lang.reordered(s.words, np.random.default_rng(0))
    assert Counter(texts(new)) == Counter(texts(s.words))
    position = {w.text: i for i, w in enumerate(new)}
    for node in range(1, len(heads) + 1):
        span = sorted(position[f"w{i}"] for i in subtree(heads, node))
        assert span == list(range(span[0], span[0] + len(span))), (spec, node)
    # The output is itself a projective tree with the same arcs.
    assert tree_status(new) == "ok"
    arcs = {(w.text, None if w.head == 0 else s.words[w.head - 1].text) for w in s.words}
    assert {(w.text, None if w.head == 0 else new[w.head - 1].text) for w in new} == arcs


@settings(max_examples=100, deadline=None)
@given(projective())
def test_double_flip_is_identity(s: Sentence) -> None:
    flip = get_language("head_flip")
    assert flip.reordered(flip.reordered(s.words)) == s.words


@settings(max_examples=100, deadline=None)
@given(projective())
def test_full_tree_reverse_is_word_reversal(s: Sentence) -> None:
    assert texts(get_language("tree_reverse").reordered(s.words)) == texts(s.words)[::-1]


@settings(max_examples=100, deadline=None)
@given(projective())
def test_head_direction(s: Sentence) -> None:
    for spec, before in (("head_final", True), ("head_initial", False)):
        new = get_language(spec).reordered(s.words)
        for i, w in enumerate(new, 1):
            if w.head:
                assert (i < w.head) == before, spec
        assert get_language(spec).reordered(new) == new  # idempotent


@settings(max_examples=150, deadline=None)
@given(projective(), st.sampled_from(sorted(NP_ORDERS)))
def test_np_order_moves_only_np_internal_words(s: Sentence, letter: str) -> None:
    lang = get_language(f"np_order:order={letter}")
    heads = [w.head for w in s.words]
    nps = {w.head for w in s.words if w.head and s.words[w.head - 1].upos == "NOUN" and np_category(w) is not None}
    inside = {i for noun in nps for i in subtree(heads, noun)}
    new = lang.reordered(s.words)
    # Words outside every affected noun phrase keep their positions ...
    for i, (old, w) in enumerate(zip(s.words, new), 1):
        if i not in inside:
            assert w.text == old.text
    # ... and inside one, the dependents that are not Dem/Num/Adj keep their order.
    position = {w.text: i for i, w in enumerate(new)}
    for noun in nps:
        others = [d for d, w in enumerate(s.words, 1) if w.head == noun and np_category(w) is None]
        assert sorted(others, key=lambda d: position[f"w{d}"]) == others
    assert lang.affects(s) == bool(nps)


@settings(max_examples=60, deadline=None)
@given(projective(), st.sampled_from(TREE_SPECS))
def test_token_multisets_preserved(s: Sentence, spec: str) -> None:
    tok = ToyTokenizer(max_piece=1)  # several tokens per word
    plain = tok.encode(s.text)
    out = get_language(spec).perturb(s, tok)
    if out.ids is not None:
        assert Counter(out.ids) == Counter(plain)


def test_tree_shuffle_is_seeded_and_draws_per_sentence() -> None:
    s = tree_sentence([0, 1, 1, 1, 1, 1])  # a root with five dependents
    tok = ToyTokenizer()
    a = get_language("tree_shuffle").perturb_file([s, s, s], tok)
    b = get_language("tree_shuffle").perturb_file([s, s, s], tok)
    assert [r.ids for r in a] == [r.ids for r in b]
    assert len({tuple(r.ids) for r in a}) > 1  # one stream through the file: sentences differ
    c = get_language("tree_shuffle:seed=1").perturb_file([s, s, s], tok)
    assert [r.ids for r in c] != [r.ids for r in a]


# -- the rule for sentences without a usable tree -----------------------------------------------------

def test_nonprojective_and_treeless_sentences_stay_unchanged_and_unaffected() -> None:
    # w1 <- w3, w2 <- root, w3 <- w2, w4 <- w1: arc 1->4 (head w1 of w4) crosses w2 ... non-projective
    nonproj = tree_sentence([3, 0, 2, 1])
    assert not is_projective([3, 0, 2, 1]) and tree_status(nonproj.words) == "nonprojective"
    cyclic = tree_sentence([2, 1, 0])
    assert tree_status(cyclic.words) == "invalid_tree"
    bare = Sentence("w1 w2", (Word("w1", head=None), Word("w2", head=None)))
    ok = tree_sentence([0, 1])
    tok = ToyTokenizer()
    for spec in TREE_SPECS:
        lang = get_language(spec)
        rows = lang.perturb_file([nonproj, cyclic, bare, ok], tok)
        for s, r in zip([nonproj, cyclic, bare], rows):
            assert r.ids == tok.encode(s.text) and not r.affected
        assert lang.tree_counts([nonproj, cyclic, bare, ok]) == {"no_tree": 1, "invalid_tree": 1, "nonprojective": 1}


def test_a_file_without_any_tree_is_an_error() -> None:
    with pytest.raises(ILMError, match="needs dependency trees"):
        get_language("head_final").perturb_file([Sentence("a b", (Word("a"), Word("b")))], ToyTokenizer())
    with pytest.raises(ILMError, match="needs tagged sentences"):
        get_language("head_final").perturb_file([Sentence("a b")], ToyTokenizer())


def test_reorder_renumbers_heads() -> None:
    words = tree_sentence([2, 0, 2]).words
    new = reorder(words, [3, 1, 2])
    assert [(w.text, w.head) for w in new] == [("w3", 3), ("w1", 3), ("w2", 0)]
