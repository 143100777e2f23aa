"""The *Shuffle family: exact permutations, the 2..350 filter, and the RNG stream."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perturbations import Sentence, get_language
from perturbations.shuffle import local_permutation, seeded_permutation
from perturbations.toy import ToyTokenizer

TOK = ToyTokenizer()
SHUFFLES = [
    "no_shuffle",
    "nondeterministic_shuffle",
    "deterministic_shuffle:seed=21",
    "deterministic_shuffle:seed=57",
    "deterministic_shuffle:seed=84",
    "local_shuffle:w=3",
    "local_shuffle:w=5",
    "local_shuffle:w=10",
    "even_odd_shuffle",
]


def run(spec: str, *token_lists: list[int], **kw) -> list[list[int] | None]:
    """Perturb pre-encoded sentences (the text is never read when ids are given)."""
    sentences = [Sentence("unused")] * len(token_lists)
    return [p.ids for p in get_language(spec).perturb_file(sentences, TOK, ids=list(token_lists), **kw)]


def toks(n: int) -> list[int]:
    """n distinct token ids, 100, 101, ...: index i holds 100 + i."""
    return list(range(100, 100 + n))


# -- hand-checked outputs (permutations computed once with numpy and written down) --


def test_no_shuffle_is_identity() -> None:
    assert run("no_shuffle", toks(5)) == [toks(5)]


@pytest.mark.parametrize(
    "seed, expected",
    [
        (21, [100, 101, 103, 104, 102]),
        (57, [101, 102, 100, 104, 103]),
        (84, [100, 103, 102, 104, 101]),
    ],
)
def test_deterministic_shuffle_exact(seed: int, expected: list[int]) -> None:
    # The same permutation for every sentence of a length, whatever the tokens.
    other = [7, 8, 9, 10, 11]
    out = run(f"deterministic_shuffle:seed={seed}", toks(5), other)
    assert out[0] == expected
    assert out[1] == [other[i - 100] for i in expected]


def test_deterministic_shuffle_seed21_length7() -> None:
    assert run("deterministic_shuffle:seed=21", toks(7)) == [[100, 104, 101, 105, 103, 106, 102]]


def test_local_shuffle_exact() -> None:
    # Windows of 3 with a fresh default_rng(0) each: [2,0,1] per full window; the
    # last window (one token) stays put.
    assert run("local_shuffle:w=3", toks(7)) == [[102, 100, 101, 105, 103, 104, 106]]
    # Window 5: [2,4,3,0,1], then the 2-token tail gets default_rng(0)'s order for 2: [0,1].
    assert run("local_shuffle:w=5", toks(7)) == [[102, 104, 103, 100, 101, 105, 106]]
    # A window wider than the sentence shuffles it whole, like default_rng(0).shuffle.
    assert run("local_shuffle:w=10", toks(7)) == [[102, 104, 103, 106, 105, 100, 101]]


def test_even_odd_exact() -> None:
    assert run("even_odd_shuffle", toks(7)) == [[100, 102, 104, 106, 101, 103, 105]]
    assert run("even_odd_shuffle", toks(2)) == [[100, 101]]


def test_nondeterministic_shuffle_stream_in_corpus_order() -> None:
    # One default_rng(0) stream: 1st sentence [2,4,3,0,1], 2nd [4,1,2,0,3], 3rd [0,2,1].
    out = run("nondeterministic_shuffle", toks(5), toks(5), toks(3))
    assert out == [[102, 104, 103, 100, 101], [104, 101, 102, 100, 103], [100, 102, 101]]


# -- the length filter -------------------------------------------------------------


@pytest.mark.parametrize("spec", SHUFFLES)
def test_length_filter_keeps_2_to_350(spec: str) -> None:
    out = get_language(spec).perturb_file(
        [Sentence("x")] * 5, TOK, ids=[[], toks(1), toks(2), toks(350), toks(351)]
    )
    assert [p.ids is not None for p in out] == [False, False, True, True, False]
    assert all(p.affected for p in out)


def test_filtered_sentences_still_draw_from_the_stream() -> None:
    # The reference shuffles every sentence before filtering: a 400-token sentence
    # (dropped) moves the stream on before the third sentence.
    out = run("nondeterministic_shuffle", toks(5), toks(400), toks(5))
    rng = np.random.default_rng(0)
    first, skipped, third = toks(5), toks(400), toks(5)
    for t in (first, skipped, third):
        rng.shuffle(t)
    assert out == [first, None, third]


# -- streams and determinism -------------------------------------------------------


def test_each_call_starts_a_fresh_stream() -> None:
    assert run("nondeterministic_shuffle", toks(6)) == run("nondeterministic_shuffle", toks(6))


def test_a_passed_stream_continues_across_files() -> None:
    lang = get_language("nondeterministic_shuffle")
    files = [[toks(5), toks(8)], [toks(5), toks(3), toks(9)]]
    stream = lang.new_stream()
    pieces = [run("nondeterministic_shuffle", *f, stream=stream) for f in files]
    assert pieces[0] + pieces[1] == run("nondeterministic_shuffle", *files[0], *files[1])
    # Without the stream the second file would restart at the stream's beginning.
    assert pieces[1] != run("nondeterministic_shuffle", *files[1])


def test_nondeterministic_seed_parameter() -> None:
    rng = np.random.default_rng(7)
    expected = toks(9)
    rng.shuffle(expected)
    assert run("nondeterministic_shuffle:seed=7", toks(9)) == [expected]


def test_text_is_encoded_when_no_ids_given() -> None:
    tok = ToyTokenizer()
    lang = get_language("even_odd_shuffle")
    out = lang.perturb_file([Sentence("a b c d e")], tok)
    assert tok.to_pieces(out[0].ids) == ["a", " c", " e", " b", " d"]
    assert lang.perturb(Sentence("a b c d e"), tok) == out[0]


def test_input_lists_are_not_modified() -> None:
    ids = [toks(5), toks(7)]
    for spec in SHUFFLES:
        run(spec, *ids)
    assert ids == [toks(5), toks(7)]


# -- permutation helpers against numpy directly -----------------------------------


@given(n=st.integers(0, 60), seed=st.integers(0, 2**16))
def test_seeded_permutation_equals_list_shuffle(n: int, seed: int) -> None:
    items = list(range(n))
    np.random.default_rng(seed).shuffle(items)
    assert list(seeded_permutation(n, seed)) == items


@given(n=st.integers(0, 60), w=st.integers(1, 12))
def test_local_permutation_equals_windowed_shuffles(n: int, w: int) -> None:
    expected: list[int] = []
    for start in range(0, n, w):
        window = list(range(start, min(start + w, n)))
        np.random.default_rng(0).shuffle(window)
        expected += window
    assert list(local_permutation(n, w)) == expected


# -- invariants ----------------------------------------------------------------------

token_lists = st.lists(st.lists(st.integers(0, 50000), min_size=0, max_size=40), max_size=8)


@settings(max_examples=50, deadline=None)
@given(files=token_lists, spec=st.sampled_from(SHUFFLES + ["local_shuffle:w=7", "deterministic_shuffle:seed=9"]))
def test_shuffles_are_permutations(files: list[list[int]], spec: str) -> None:
    out = run(spec, *files)
    for old, new in zip(files, out):
        if 2 <= len(old) <= 350:
            assert new is not None and sorted(new) == sorted(old)
        else:
            assert new is None


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 50), w=st.integers(1, 12))
def test_local_shuffle_keeps_tokens_in_their_window(n: int, w: int) -> None:
    (out,) = run(f"local_shuffle:w={w}", toks(n))
    for start in range(0, n, w):
        assert sorted(out[start : start + w]) == toks(n)[start : start + w]
