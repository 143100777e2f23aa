"""The embedded synthetic grammar: determinism, gold-tag consistency, coverage."""

from __future__ import annotations

from collections import Counter

import pytest

from impossible_lms.corpus import open_corpus
from impossible_lms.corpus import synthetic
from impossible_lms.errors import ILMError
from impossible_lms.tagging.ptb import verb_lemma
from perturbations.base import Sentence
from perturbations.hop import is_affected, join_words, verb_number


@pytest.fixture(scope="module")
def sentences() -> list[Sentence]:
    corpus = open_corpus("synthetic", options={"sentences": 6000, "seed": 3})
    return [s for f in corpus.files() for s in f.pretagged()]


def test_same_seed_same_corpus_other_seed_differs() -> None:
    a = synthetic.generate_file("stories", "train", 200, seed=1)
    assert a == synthetic.generate_file("stories", "train", 200, seed=1)
    assert a != synthetic.generate_file("stories", "train", 200, seed=2)
    assert a != synthetic.generate_file("stories", "dev", 200, seed=1)  # files draw independent streams


def test_corpus_files_and_sizes() -> None:
    corpus = open_corpus("synthetic", options={"sentences": 1000, "seed": 0})
    files = list(corpus.files())
    assert [(f.split, f.genre) for f in files] == [
        (split, genre) for split in ("train", "dev", "test") for genre in sorted(synthetic.GENRES)
    ]
    counts = {(f.split, f.genre): len(list(f.lines())) for f in files}
    assert sum(counts.values()) == 1000
    assert counts[("dev", "childes")] == 17 and counts[("train", "childes")] == 334 - 34
    assert [s.text for s in files[0].pretagged()] == list(files[0].lines())
    assert corpus.name == "synthetic-1000-seed0"
    assert corpus.fingerprint == open_corpus("synthetic", options={"sentences": 1000, "seed": 0}).fingerprint
    assert corpus.fingerprint != open_corpus("synthetic", options={"sentences": 1000, "seed": 1}).fingerprint


def test_bad_options() -> None:
    with pytest.raises(ILMError, match="sentences must be at least 1"):
        open_corpus("synthetic", options={"sentences": 0})
    with pytest.raises(ILMError, match="seed must be an integer"):
        open_corpus("synthetic", options={"seed": "abc"})
    with pytest.raises(ILMError, match="unknown option 'size' for a synthetic corpus"):
        open_corpus("synthetic", options={"size": 3})


def test_text_matches_words(sentences: list[Sentence]) -> None:
    for s in sentences:
        words = [w.text for w in s.words]
        assert s.text == join_words(words) == synthetic.join(s.words)
        assert synthetic.MIN_WORDS <= len(words) <= synthetic.MAX_WORDS
        first = next(w for w in words if w[0].isalpha())
        assert first[0].isupper(), s.text
        assert s.text[-1] in ".?!", s.text


def test_pinned_output() -> None:
    """Exact sentences for seed 0: if the grammar changes on purpose, bump GRAMMAR_VERSION and re-pin."""
    got = synthetic.generate_file("dialogue", "train", 3, seed=0)
    assert synthetic.GRAMMAR_VERSION == 1
    assert [s.text for s in got] == [
        "Watch them !",
        "You dance across this garden never , but every brother that heard the little beds draws these bags .",
        "It's touching that happy chair from a busy bed .",
    ]
    it_s = got[2].words[:3]
    assert [(w.text, w.upos, w.feats, w.lemma) for w in it_s] == [
        ("It", "PRON", "Case=Nom|Gender=Neut|Number=Sing|Person=3|PronType=Prs", "it"),
        ("'s", "AUX", "Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin", "be"),
        ("touching", "VERB", "Tense=Pres|VerbForm=Part", "touch"),
    ]
    draws = next(w for w in got[1].words if w.text == "draws")
    assert (draws.feats, draws.lemma) == ("Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin", "draw")


def test_third_person_present_verbs_agree(sentences: list[Sentence]) -> None:
    sing = {"does", "is", "has", "'s"}
    plur = {"do", "are", "have", "'re", "'ve"}
    seen = Counter()
    for s in sentences:
        for w in s.words:
            number = verb_number(w)
            if number is None:
                continue
            seen[(w.upos, number)] += 1
            if w.upos == "VERB":
                # 3sg is the -s form, whose lemma the rule lemmatiser recovers; plural is the bare lemma
                if number == "Sing":
                    assert w.text != w.lemma and verb_lemma(w.text, "VBZ") == w.lemma, w
                else:
                    assert w.text == w.lemma, w
            else:
                assert w.text.lower() in (sing if number == "Sing" else plur), w
    assert min(seen.values()) > 50, seen


def test_subject_agreement_in_simple_clauses(sentences: list[Sentence]) -> None:
    """Sentence-initial "The (adj) dog chases" / "The dogs chase" / "We chase": the verb agrees."""
    pronoun = {"I": ("Sing", "1"), "You": ("Sing", "2"), "We": ("Plur", "1"), "He": ("Sing", "3"),
               "She": ("Sing", "3"), "It": ("Sing", "3"), "They": ("Plur", "3")}
    checked = Counter()
    for s in sentences:
        w = s.words
        if w[0].text in pronoun and "VerbForm=Fin" in w[1].feats and "Tense=" in w[1].feats:
            number, person = pronoun[w[0].text]
            assert f"Number={number}|Person={person}|" in w[1].feats, s.text
            checked[person] += 1
        for n in (2, 3):  # DET NOUN VERB / DET ADJ NOUN VERB
            if len(w) > n and w[0].upos == "DET" and w[n - 1].upos == "NOUN" and w[n].upos in ("VERB", "AUX"):
                if "VerbForm=Fin" in w[n].feats and "Tense=" in w[n].feats:
                    assert f"Number={w[n - 1].feats.split('=')[1]}|Person=3|" in w[n].feats, s.text
                    checked[w[n - 1].feats] += 1
    assert min(checked.values()) > 20 and len(checked) == 5, checked


def test_gold_feats_are_ud_strings(sentences: list[Sentence]) -> None:
    for s in sentences:
        for w in s.words:
            assert w.upos in {"NOUN", "PROPN", "PRON", "VERB", "AUX", "DET", "ADJ", "ADV", "ADP", "PART",
                              "PUNCT", "CCONJ", "SCONJ", "INTJ"}, w
            if w.feats != "_":
                keys = [kv.split("=")[0] for kv in w.feats.split("|")]
                assert keys == sorted(keys), w  # UD orders features alphabetically


def test_coverage(sentences: list[Sentence]) -> None:
    texts = {w.text for s in sentences for w in s.words}
    assert {"n't", "'s", "'re", "'ve", "'m", "'ll"} <= texts
    assert {'"', ",", "?", "!", "."} <= texts
    assert {"I", "you", "we", "You", "We"} & texts >= {"I"}
    feats = Counter(w.feats for s in sentences for w in s.words)
    assert any("Tense=Past" in f and "VerbForm=Fin" in f for f in feats)
    assert feats["PronType=Rel"] > 20  # relative clauses
    assert any(s.text.startswith('" ') for s in sentences)  # sentence-initial quotes
    assert {s.genre for s in sentences} == set(synthetic.GENRES)
    assert any(s.text.endswith("?") and s.text.startswith(("Does", "Do", "Did")) for s in sentences)
    assert any("doesn't" in s.text for s in sentences) and any("can't" in s.text for s in sentences)
    vocab = {w.text.lower() for s in sentences for w in s.words}
    assert len(vocab) >= 300 and synthetic.lexicon().size() >= 400


def test_share_of_affected_sentences(sentences: list[Sentence]) -> None:
    share = sum(is_affected(s.words) for s in sentences) / len(sentences)
    assert 0.3 < share < 0.8  # both test_affected and test_unaffected get plenty
