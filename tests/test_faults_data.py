"""Bad input data is an error that says why, not a silently empty or silently changed dataset."""

from __future__ import annotations

import pytest

from impossible_lms.data import load_dataset_tokenizer, load_manifest
from impossible_lms.errors import ILMError
from impossible_lms.perturb import perturb_corpus
from impossible_lms.tokenizer import load_tokenizer
from test_perturb_pipeline_fakes import FakeCorpus, FakeFile, FakeTagger, lines

SHORT = lines(12, seed=0)


def corpus(train, dev=SHORT, test=SHORT):
    return FakeCorpus("c", [FakeFile("train", "g", "g.train", train), FakeFile("dev", "g", "g.dev", dev),
                            FakeFile("test", "g", "g.test", test)])


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("fallback", corpus=corpus(SHORT), fallback_vocab=300)


def make(c, out, tok, languages=("no_shuffle",)):
    return perturb_corpus(list(languages), c, out, tokenizer=tok, tagger=FakeTagger(), progress=False)


def test_one_huge_line_is_an_error_naming_the_filter(tok, tmp_path):
    huge = " ".join(["dog"] * 400)  # one "sentence" (no ' . ' to split on) of 400+ tokens
    with pytest.raises(ILMError) as e:
        make(corpus([huge]), tmp_path, tok)
    assert str(e.value).startswith("no_shuffle: 0 of 1 train sentences kept; no_shuffle keeps sentences of 2 to 350 tokens, "
                                   "and these have ")
    assert not (tmp_path / "no_shuffle").exists()


def test_dropped_sentences_are_counted_per_split(tok, tmp_path):
    huge = " ".join(["cat"] * 400)
    (folder,) = make(corpus([*SHORT, huge, huge]), tmp_path, tok)
    m = load_manifest(folder)
    assert m.dropped == {"train": 2, "dev": 0, "test": 0}
    assert m.counts["train"]["sentences"] == len(FakeTagger().process(FakeFile("train", "g", "x", SHORT)))


def test_a_swapped_tokenizer_is_noticed_by_training_and_eval(tok, tmp_path):
    from impossible_lms.training.data import read_dataset_info

    (folder,) = make(corpus(SHORT), tmp_path, tok)
    read_dataset_info(folder)  # untouched: fine
    other = load_tokenizer("fallback", corpus=["a b c d e f g"] * 30, fallback_vocab=320)
    (folder / "tokenizer" / "tokenizer.json").write_text(other.to_json())
    for check in (read_dataset_info, load_dataset_tokenizer):
        with pytest.raises(ILMError, match=r"tokenizer/tokenizer.json is not the tokenizer this dataset was made with"):
            check(folder)
