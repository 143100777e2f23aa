"""The *Reverse family: marker positions from one stream, reversal, the content filter."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impossible_lms.errors import ILMError
from perturbations import MARKER_REVERSE, Sentence, get_language
from perturbations.reverse import marker_positions
from perturbations.toy import ToyTokenizer

TOK = ToyTokenizer()
R = TOK.marker_ids[MARKER_REVERSE]
REVERSES = ["no_reverse", "partial_reverse", "full_reverse"]


def run(spec: str, *token_lists: list[int], tok=TOK, **kw) -> list[list[int] | None]:
    sentences = [Sentence("unused")] * len(token_lists)
    return [p.ids for p in get_language(spec).perturb_file(sentences, tok, ids=list(token_lists), **kw)]


def toks(n: int) -> list[int]:
    return list(range(100, 100 + n))


# -- hand-checked outputs ------------------------------------------------------------

# default_rng(21).choice(n + 1) for n = 5, 5, 3, 8 gives 1, 4, 1, 5.
FILE = [toks(5), toks(5), toks(3), toks(8)]


def test_no_reverse_exact() -> None:
    assert run("no_reverse", *FILE) == [
        [100, R, 101, 102, 103, 104],
        [100, 101, 102, 103, R, 104],
        [100, R, 101, 102],
        [100, 101, 102, 103, 104, R, 105, 106, 107],
    ]


def test_partial_reverse_exact() -> None:
    assert run("partial_reverse", *FILE) == [
        [100, R, 104, 103, 102, 101],
        [100, 101, 102, 103, R, 104],
        [100, R, 102, 101],
        [100, 101, 102, 103, 104, R, 107, 106, 105],
    ]


def test_full_reverse_exact() -> None:
    assert run("full_reverse", *FILE) == [
        [104, 103, 102, 101, R, 100],
        [104, R, 103, 102, 101, 100],
        [102, 101, R, 100],
        [107, 106, 105, R, 104, 103, 102, 101, 100],
    ]


def test_marker_id_comes_from_the_tokenizer() -> None:
    tok = ToyTokenizer(markers=(MARKER_REVERSE,), first_marker_id=9000)
    assert run("no_reverse", toks(5), tok=tok) == [[100, 9000, 101, 102, 103, 104]]


def test_tokenizer_without_the_marker_is_a_user_error() -> None:
    tok = ToyTokenizer(markers=())
    with pytest.raises(ILMError, match="no id for marker"):
        run("partial_reverse", toks(3), tok=tok)


# -- filter: only sequences keeping <= 1 non-marker token are dropped -------------------


@pytest.mark.parametrize("spec", REVERSES)
def test_short_sequences_dropped_and_no_length_limit(spec: str) -> None:
    out = run(spec, [], toks(1), toks(2), toks(1000))
    assert [o is not None for o in out] == [False, False, True, True]
    assert len(out[3]) == 1001  # no 350-token cap for reverses


def test_dropped_sentences_still_draw() -> None:
    # The second sentence (one token) is dropped but its draw still happens.
    out = run("no_reverse", toks(5), toks(1), toks(5))
    rng = np.random.default_rng(21)
    i = [rng.choice(6), rng.choice(2), rng.choice(6)]
    assert out[1] is None
    assert out[2].index(R) == i[2]


# -- the stream ----------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(lengths=st.lists(st.integers(0, 400), max_size=30), seed=st.integers(0, 2**16))
def test_vectorised_positions_equal_per_sentence_choice(lengths: list[int], seed: int) -> None:
    fast, slow = np.random.default_rng(seed), np.random.default_rng(seed)
    assert marker_positions(lengths, fast).tolist() == [int(slow.choice(n + 1)) for n in lengths]
    # ...and leave the stream at the same place.
    assert fast.bit_generator.state == slow.bit_generator.state


def test_stream_continues_across_files_and_restarts_per_call() -> None:
    lang = get_language("partial_reverse")
    files = [[toks(4), toks(9)], [toks(6), toks(7)]]
    stream = lang.new_stream()
    continued = [run("partial_reverse", *f, stream=stream) for f in files]
    assert continued[0] + continued[1] == run("partial_reverse", *files[0], *files[1])
    assert run("partial_reverse", *files[1]) == run("partial_reverse", *files[1])


def test_seed_parameter() -> None:
    i = int(np.random.default_rng(3).choice(11))
    (out,) = run("no_reverse:seed=3", toks(10))
    assert out.index(R) == i
    assert get_language("no_reverse:seed=3").name == "no_reverse:seed=3"


# -- invariants ----------------------------------------------------------------------

files = st.lists(st.lists(st.integers(0, 50000), min_size=2, max_size=40), min_size=1, max_size=8)


@settings(max_examples=50, deadline=None)
@given(file=files)
def test_reverse_invariants(file: list[list[int]]) -> None:
    none, partial, full = (run(spec, *file) for spec in REVERSES)
    for original, n, p, f in zip(file, none, partial, full):
        i = n.index(R)
        # The three languages share the stream: same marker position.
        assert p.index(R) == i
        # NoReverse only inserts the marker.
        assert n[:i] + n[i + 1 :] == original
        # PartialReverse: up to the marker unchanged; after it, read backwards, the original.
        assert p[: i + 1] == n[: i + 1]
        assert p[i + 1 :][::-1] == original[i:]
        # FullReverse reversed is NoReverse.
        assert f[::-1] == n
