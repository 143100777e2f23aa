"""Stanza for any language: `stanza:LANG` keeps the dependency parse; Stanza JSON carries trees.

Stanza's models cannot be fetched here, so a stand-in `stanza` module answers with the
attribute names Stanza's Pipeline documents (sentences → words with text, upos, feats,
lemma, head, deprel); the real models are the optional extra's business.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from impossible_lms.corpus import read_stanza_json, write_stanza_json
from impossible_lms.errors import ILMError
from impossible_lms.tagging import get_tagger
from perturbations import Sentence, Word, get_language

# "Der Hund schläft ." : Hund ← schläft (nsubj), Der ← Hund (det), . ← schläft (punct)
PARSE = [("Der", "DET", "Definite=Def|PronType=Art", "der", 2, "det"),
         ("Hund", "NOUN", "Number=Sing", "Hund", 3, "nsubj"),
         ("schläft", "VERB", "Number=Sing|Person=3|Tense=Pres|VerbForm=Fin", "schlafen", 0, "root"),
         (".", "PUNCT", None, ".", 3, "punct")]


@pytest.fixture
def fake_stanza(monkeypatch):
    calls = []

    class Pipeline:
        def __init__(self, lang, processors, download_method, verbose):
            calls.append((lang, processors, download_method))

        def __call__(self, docs):
            word = lambda t: types.SimpleNamespace(text=t[0], upos=t[1], feats=t[2], lemma=t[3], head=t[4], deprel=t[5])  # noqa: E731
            sent = types.SimpleNamespace(text="Der Hund schläft .", words=[word(t) for t in PARSE])
            return [types.SimpleNamespace(sentences=[sent]) for _ in docs]

    module = types.SimpleNamespace(Pipeline=Pipeline, Document=lambda sents, text: text)
    monkeypatch.setitem(sys.modules, "stanza", module)
    return calls


def test_stanza_with_a_language_parses_and_keeps_the_tree(fake_stanza):
    tagger = get_tagger("stanza:de")
    (s,) = tagger.tag_lines(["Der Hund schläft ."], "g")
    assert fake_stanza == [("de", "tokenize,mwt,pos,lemma,depparse", None)]  # never downloads
    assert [(w.text, w.head, w.deprel) for w in s.words] == [("Der", 2, "det"), ("Hund", 3, "nsubj"),
                                                              ("schläft", 0, "root"), (".", 3, "punct")]
    assert tagger.name == "stanza-de"  # its own tag cache, apart from the English one
    # The tree reaches the tree languages: head-final puts the head after its dependents.
    tok = _WordTok()
    final, initial = (get_language(n).perturb_file([s], tok)[0] for n in ("head_final", "head_initial"))
    assert tok.decode(final.ids) == "Der Hund . schläft" and tok.decode(initial.ids) == "schläft Hund Der ."


def test_plain_stanza_is_the_reference_english_tagging_without_trees(fake_stanza):
    (s,) = get_tagger("stanza").tag_lines(["x"], "g")
    assert fake_stanza == [("en", "tokenize,mwt,pos,lemma", None)]
    assert all(w.head is None and w.deprel is None for w in s.words)


def test_tagger_arguments_only_where_a_backend_takes_one():
    with pytest.raises(ILMError, match="tagger 'nltk' takes no argument"):
        get_tagger("nltk:de")


def test_stanza_json_round_trips_trees(tmp_path: Path):
    words = tuple(Word(t, u, f or "_", lemma, head, rel) for t, u, f, lemma, head, rel in PARSE)
    sentences = [Sentence("Der Hund schläft .", words, "g"), Sentence("ja", (Word("ja", "INTJ", "_", "ja"),), "g")]
    write_stanza_json(sentences, tmp_path / "g.json")
    assert read_stanza_json(tmp_path / "g.json", genre="g") == sentences


def test_stanza_json_bad_head_is_named(tmp_path: Path):
    (tmp_path / "b.json").write_text('[{"sent_annotations": [{"sent_text": "a", "word_annotations": '
                                     '[{"text": "a", "upos": "X", "head": 7}]}]}]', encoding="utf-8")
    with pytest.raises(ILMError, match="HEAD 7 beyond its 1 words"):
        read_stanza_json(tmp_path / "b.json")


class _WordTok:
    """One id per character: enough to run a word-level language."""

    marker_ids: dict = {}
    eos_id = 0

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids) -> str:
        return "".join(map(chr, ids))
