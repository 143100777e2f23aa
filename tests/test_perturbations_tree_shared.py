"""Tree languages on UD English-EWT (shared data; skipped when absent)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from perturbations import get_language
from perturbations.tree import subtree, tree_status

EWT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ud_ewt" / "en_ewt-ud-dev.conllu"
pytestmark = [pytest.mark.shared, pytest.mark.skipif(not EWT.is_file(), reason="../shared/data/ud_ewt is absent")]


def test_tree_languages_on_ewt_dev() -> None:
    from impossible_lms.corpus import read_conllu

    sentences = read_conllu(EWT)
    assert len(sentences) > 2000 and all(s.words for s in sentences)
    status = Counter(tree_status(s.words) for s in sentences)
    assert status["ok"] > 0.9 * len(sentences) and status["nonprojective"] > 0 and status["no_tree"] == 0
    np_lang = get_language("np_order:order=x")
    assert sum(np_lang.affects(s) for s in sentences) > 100  # EWT has plenty of Dem/Num/Adj noun phrases
    for spec in ("tree_reverse:depth=1", "head_final", "head_flip", "np_order:order=x"):
        lang = get_language(spec)
        for s in sentences[:400]:
            new = lang.reordered(s.words)
            assert Counter(w.text for w in new) == Counter(w.text for w in s.words)
            if tree_status(s.words) != "ok":
                assert new == s.words  # the documented rule: no usable tree, no change
    flip = get_language("head_flip")
    for s in sentences[:400]:
        assert flip.reordered(flip.reordered(s.words)) == s.words
    # Contiguity on EWT, tracked by index: tag each word with its position first.
    for s in sentences[:300]:
        if tree_status(s.words) != "ok":
            continue
        from dataclasses import replace

        tagged = tuple(replace(w, lemma=str(i)) for i, w in enumerate(s.words, 1))
        heads = [w.head for w in s.words]
        new = get_language("tree_shuffle").reordered(tagged)
        pos = {int(w.lemma): k for k, w in enumerate(new)}
        for node in range(1, len(heads) + 1):
            span = sorted(pos[i] for i in subtree(heads, node))
            assert span[-1] - span[0] + 1 == len(span)
