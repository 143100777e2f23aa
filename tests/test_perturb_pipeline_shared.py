"""The pipeline on real BabyLM lines with the real GPT-2 tokenizer (skipped without ../shared/data)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from impossible_lms.data import load_manifest, load_split
from impossible_lms.perturb import perturb_corpus
from perturbations import MARKER_REVERSE

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NEEDED = [DATA / "babylm" / "babylm_dev" / "switchboard.dev", DATA / "gpt2-tokenizer", DATA / "nltk_data"]

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not all(p.exists() for p in NEEDED), reason="needs ../shared/data (babylm, gpt2-tokenizer, nltk_data)"),
]


@pytest.fixture
def switchboard(tmp_path, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(DATA / "nltk_data"), *nltk.data.path])
    path = tmp_path / "switchboard.train"
    with open(NEEDED[0], encoding="utf-8") as f:
        path.write_text("".join(itertools.islice(f, 400)), encoding="utf-8")
    return path


def test_real_gpt2_ids_match_the_reference_tokenizer(switchboard, tmp_path):
    from transformers import GPT2TokenizerFast

    from impossible_lms.tagging import get_tagger
    from impossible_lms.corpus import open_corpus

    no_shuffle, partial = perturb_corpus(["no_shuffle", "partial_reverse"], switchboard, tmp_path / "out",
                                         tokenizer=str(DATA / "gpt2-tokenizer"), tagger="none", progress=False)
    (f,) = list(open_corpus(switchboard).files())
    hf = GPT2TokenizerFast.from_pretrained(str(DATA / "gpt2-tokenizer"))
    want = [hf.encode(s.text) for s in get_tagger("none").process(f)]
    want = [ids for ids in want if 2 <= len(ids) <= 350]  # the shuffle family's length filter
    assert load_split(no_shuffle, "train")["input_ids"] == want
    m = load_manifest(partial)
    assert (m.vocab_size, m.eos_id, m.marker_ids) == (50258, 50256, {MARKER_REVERSE: 50257})
    rows = load_split(partial, "train")["input_ids"]
    assert len(rows) == len(want) and all(r.count(50257) == 1 for r in rows)
