"""What every language shares: argument checks, the content filter, GC state."""

from __future__ import annotations

import gc

import pytest

from impossible_lms.errors import ILMError
from perturbations import Perturbed, Sentence, TokenizerFns, get_language
from perturbations.base import content_length, keeps_content
from perturbations.toy import ToyTokenizer


def test_ids_must_match_sentences() -> None:
    with pytest.raises(ILMError, match="no_shuffle: got 1 id lists for 2 sentences"):
        get_language("no_shuffle").perturb_file([Sentence("a b"), Sentence("c d")], ToyTokenizer(), ids=[[1, 2]])


def test_toy_tokenizer_satisfies_the_protocol() -> None:
    assert isinstance(ToyTokenizer(), TokenizerFns)


def test_toy_tokenizer_marker_absorbs_left_space() -> None:
    tok = ToyTokenizer()
    assert tok.pieces("the dog \U0001F142 runs .") == ["the", " dog", "\U0001F142", " runs", " ."]


def test_content_filter() -> None:
    markers = frozenset({7, 8})
    assert content_length([1, 7, 2, 8], markers) == 2
    assert keeps_content([1, 7, 2], markers)
    assert not keeps_content([1, 7, 8], markers)
    assert not keeps_content([1], frozenset())
    assert keeps_content((1, 2), frozenset())


def test_numpy_ids_become_plain_ints() -> None:
    import numpy as np

    out = get_language("even_odd_shuffle").perturb_file([Sentence("x")], ToyTokenizer(), ids=[np.arange(4)])
    assert out == [Perturbed([0, 2, 1, 3], True)]
    assert all(type(i) is int for i in out[0].ids)


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_state_is_restored(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        get_language("partial_reverse").perturb_file([Sentence("a b c")], ToyTokenizer())
        assert gc.isenabled() is enabled
        with pytest.raises(ILMError):  # also when a language raises mid-file
            get_language("partial_reverse").perturb_file([Sentence("a b c")], ToyTokenizer(markers=()))
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()
