"""Tagging: PTB → UD mapping on hand-tagged input, backends, cache reuse and resume.

The NLTK models are not part of the repo; tests that need them are marked
``shared`` and point NLTK at ../shared/data/nltk_data, skipping when it is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from impossible_lms.corpus import open_corpus
from impossible_lms.errors import ILMError
from impossible_lms.tagging import LineTagger, get_tagger, list_taggers
from impossible_lms.tagging.ptb import find_subject, to_words, tokenize, verb_lemma
from perturbations.base import Sentence, Word
from perturbations.hop import join_words, verb_number

SHARED_NLTK = Path(__file__).resolve().parents[2] / "shared" / "data" / "nltk_data"
PRES3SG = "Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin"


def tag(text: str, tags: str) -> tuple[Word, ...]:
    tokens = tokenize(text)
    tag_list = tags.split()
    assert len(tokens) == len(tag_list), tokens
    return to_words(tokens, tag_list)


def feats_of(words: tuple[Word, ...], text: str) -> str:
    return next(w.feats for w in words if w.text == text)


# -- tokenisation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("He doesn't know.", ["He", "does", "n't", "know", "."]),
        ("I can't, we won't!", ["I", "ca", "n't", ",", "we", "wo", "n't", "!"]),
        ("I'm sure they're here, you'll see.", ["I", "'m", "sure", "they", "'re", "here", ",", "you", "'ll", "see", "."]),
        ("We've got Tom's ball at 3.5 o'clock...", ["We", "'ve", "got", "Tom", "'s", "ball", "at", "3.5", "o'clock", "..."]),
        ("“It won’t,” said he.", ["“", "It", "wo", "n’t", ",", "”", "said", "he", "."]),
        ("a well-known 'quote'", ["a", "well-known", "'", "quote", "'"]),
    ],
)
def test_tokenize_splits_clitics_and_keeps_characters(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens
    assert "".join(tokens) == "".join(text.split())


def test_ascii_clitics_rejoin_to_the_text() -> None:
    text = "He doesn't know , I'm sure they've gone ."
    assert join_words(tokenize(text)) == text


# -- PTB → UD ---------------------------------------------------------------------------------


def test_vbz_is_third_singular_present() -> None:
    words = tag("He doesn't know .", "PRP VBZ RB VB .")
    assert [(w.text, w.upos, w.feats, w.lemma) for w in words] == [
        ("He", "PRON", "Case=Nom|Gender=Masc|Number=Sing|Person=3|PronType=Prs", "he"),
        ("does", "AUX", PRES3SG, "do"),
        ("n't", "PART", "Polarity=Neg", "not"),
        ("know", "VERB", "VerbForm=Inf", "know"),
        (".", "PUNCT", "_", "."),
    ]


@pytest.mark.parametrize(
    "text, tags, verb, feats",
    [
        ("The dogs chase the cat .", "DT NNS VBP DT NN .", "chase", "Number=Plur|Person=3"),
        ("I chase the cat .", "PRP VBP DT NN .", "chase", "Number=Sing|Person=1"),
        ("You chase the cat .", "PRP VBP DT NN .", "chase", "Number=Sing|Person=2"),
        ("We chase the cat .", "PRP VBP DT NN .", "chase", "Number=Plur|Person=1"),
        ("They chase the cat .", "PRP VBP DT NN .", "chase", "Number=Plur|Person=3"),
        ("The dog and the cat run .", "DT NN CC DT NN VBP .", "run", "Number=Plur|Person=3"),  # 3rd person VBP is plural
        ("The dogs that run bark .", "DT NNS WDT VBP VBP .", "run", "Number=Plur|Person=3"),  # relative pronoun is transparent
        ("Do the dogs sleep ?", "VB DT NNS VB .", "Do", "Number=Plur|Person=3"),  # question: subject to the right
        ("There are dogs .", "EX VBP NNS .", "are", "Number=Plur|Person=3"),
        ("I saw them and they run .", "PRP VBD PRP CC PRP VBP .", "run", "Number=Plur|Person=3"),
        ("Laura and I are here .", "NNP CC PRP VBP RB .", "are", "Number=Plur|Person=1"),  # coordination
        ("i have to go .", "NN VBP TO VB .", "have", "Number=Sing|Person=1"),  # mistagged lower-case i
        ("i am not .", "NN VBP RB .", "am", "Number=Sing|Person=1"),
    ],
)
def test_vbp_person_and_number_from_the_subject(text: str, tags: str, verb: str, feats: str) -> None:
    words = tag(text, tags)
    assert feats_of(words, verb) == f"Mood=Ind|{feats}|Tense=Pres|VerbForm=Fin"


def test_vbp_without_subject_is_not_agreeing() -> None:
    words = tag(", run !", ", VBP .")
    assert feats_of(words, "run") == "Mood=Ind|Tense=Pres|VerbForm=Fin"
    assert verb_number(words[1]) is None
    # imperative: a noun to the right is a subject only in a question
    assert verb_number(tag("Have a nice day .", "VBP DT JJ NN .")[0]) is None
    assert verb_number(tag("Have a nice day ?", "VBP DT JJ NN .")[0]) == "Plur"


def test_object_pronouns_and_commas_are_not_subjects() -> None:
    tokens, tags = tokenize("Tom , me and them see ."), "NNP , PRP CC PRP VBP .".split()
    assert find_subject(tokens, tags, 5) is None  # the comma ends the clause; me/them are objects
    tokens, tags = tokenize("Tom and them see ."), "NNP CC PRP VBP .".split()
    assert find_subject(tokens, tags, 3) == ("Sing", "3")  # to_words then makes a 3rd-person VBP plural


def test_other_verb_forms() -> None:
    words = tag("She will have eaten and was running .", "PRP MD VB VBN CC VBD VBG .")
    got = {w.text: (w.upos, w.feats, w.lemma) for w in words}
    assert got["will"] == ("AUX", "VerbForm=Fin", "will")
    assert got["have"] == ("AUX", "VerbForm=Inf", "have")  # another verb follows: auxiliary
    assert got["eaten"] == ("VERB", "Tense=Past|VerbForm=Part", "eat")
    assert got["was"] == ("AUX", "Mood=Ind|Number=Sing|Person=3|Tense=Past|VerbForm=Fin", "be")
    assert got["running"] == ("VERB", "VerbForm=Ger", "run")
    assert tag("He has a dog .", "PRP VBZ DT NN .")[1].upos == "VERB"  # main-verb have


def test_other_parts_of_speech() -> None:
    words = tag("The big dogs of Mary bark loudly !", "DT JJ NNS IN NNP VBP RB .")
    assert [(w.upos, w.feats, w.lemma) for w in words] == [
        ("DET", "Definite=Def|PronType=Art", "the"),
        ("ADJ", "Degree=Pos", "big"),
        ("NOUN", "Number=Plur", "dog"),
        ("ADP", "_", "of"),
        ("PROPN", "Number=Sing", "Mary"),
        ("VERB", "Mood=Ind|Number=Plur|Person=3|Tense=Pres|VerbForm=Fin", "bark"),
        ("ADV", "_", "loudly"),
        ("PUNCT", "_", "!"),
    ]


@pytest.mark.parametrize(
    "word, ptb, lemma",
    [
        ("is", "VBZ", "be"), ("has", "VBZ", "have"), ("does", "VBZ", "do"), ("goes", "VBZ", "go"),
        ("carries", "VBZ", "carry"), ("watches", "VBZ", "watch"), ("fixes", "VBZ", "fix"),
        ("likes", "VBZ", "like"), ("chases", "VBZ", "chase"), ("runs", "VBZ", "run"), ("misses", "VBZ", "miss"),
        ("'s", "VBZ", "be"), ("are", "VBP", "be"), ("'re", "VBP", "be"), ("'ve", "VBP", "have"), ("Run", "VBP", "run"),
        ("chased", "VBD", "chase"), ("walked", "VBD", "walk"), ("stopped", "VBD", "stop"), ("carried", "VBD", "carry"),
        ("loved", "VBD", "love"), ("went", "VBD", "go"), ("saw", "VBD", "see"), ("called", "VBN", "call"),
        ("running", "VBG", "run"), ("ca", "MD", "can"), ("wo", "MD", "will"),
    ],
)
def test_verb_lemma(word: str, ptb: str, lemma: str) -> None:
    assert verb_lemma(word, ptb) == lemma


def test_has_before_participle_is_have() -> None:
    words = tag("He 's gone .", "PRP VBZ VBN .")
    assert (words[1].lemma, words[1].upos) == ("have", "AUX")
    assert tag("He 's going .", "PRP VBZ VBG .")[1].lemma == "be"


# -- registry and simple backends ---------------------------------------------------------------


def test_registry() -> None:
    assert {"nltk", "stanza", "gold", "none", "auto"} <= set(list_taggers())
    with pytest.raises(ILMError, match=r"unknown tagger 'nlkt' \(did you mean 'nltk'\?\)"):
        get_tagger("nlkt")


def test_gold_and_none_on_synthetic() -> None:
    corpus = open_corpus("synthetic", options={"sentences": 60, "seed": 0})
    f = next(corpus.files())
    gold = get_tagger("gold").process(f)
    assert gold == f.pretagged() and all(s.words for s in gold)
    plain = get_tagger("none").process(f)
    assert [s.text for s in plain] == [s.text for s in gold] and all(s.words is None for s in plain)
    assert get_tagger("auto").process(f) == gold


def test_gold_needs_tags(tmp_path: Path) -> None:
    (tmp_path / "a.train").write_text("Hello.\n")
    f = next(open_corpus(tmp_path / "a.train").files())
    with pytest.raises(ILMError, match="a.train has no gold tags.*--tagger nltk"):
        get_tagger("gold").process(f)


def test_stanza_missing_gives_install_hint() -> None:
    try:
        import stanza  # noqa: F401
    except ImportError:
        with pytest.raises(ILMError, match=r'pip install "ilm\[stanza\]".*stanza.download'):
            get_tagger("stanza")
    else:
        pytest.skip("stanza is installed")


def test_missing_nltk_models_name_the_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import nltk

    from impossible_lms.corpus import splitting

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    splitting.sentence_splitter.cache_clear()
    try:
        with pytest.raises(ILMError, match=r"python -m nltk\.downloader punkt_tab averaged_perceptron_tagger_eng.*NLTK_DATA.*--tagger"):
            get_tagger("nltk")
    finally:
        splitting.sentence_splitter.cache_clear()


# -- cache ----------------------------------------------------------------------------------------


class Upper(LineTagger):
    """A fake backend: one sentence per line, upper-cased, counting calls; can fail on demand."""

    name = "upper"
    version = "1"

    def __init__(self, chunk_lines: int = 2, fail_on: str | None = None) -> None:
        self.chunk_lines = chunk_lines
        self.fail_on = fail_on
        self.calls: list[list[str]] = []

    def tag_lines(self, lines: list[str], genre: str) -> list[Sentence]:
        if self.fail_on in lines:
            raise KeyboardInterrupt
        self.calls.append(lines)
        return [Sentence(line, (Word(line.upper(), "X", "_", line),), genre) for line in lines]


@pytest.fixture
def five_lines(tmp_path: Path):
    path = tmp_path / "g.train"
    path.write_text("l1\nl2\nl3\nl4\nl5\n")
    return next(open_corpus(path).files())


def test_cache_reuse(tmp_path: Path, five_lines) -> None:
    cache = tmp_path / "cache"
    first = Upper()
    out = first.process(five_lines, cache_dir=cache)
    assert [s.words[0].text for s in out] == ["L1", "L2", "L3", "L4", "L5"]
    assert first.calls == [["l1", "l2"], ["l3", "l4"], ["l5"]]
    folder = next((cache / "upper-v1").iterdir())
    assert sorted(p.name for p in folder.iterdir()) == [
        "chunk-000000.json", "chunk-000001.json", "chunk-000002.json", "complete.json"]
    assert json.loads((folder / "complete.json").read_text())["sentences"] == 5
    again = Upper()
    assert again.process(five_lines, cache_dir=cache) == out
    assert again.calls == []


def test_a_damaged_cache_chunk_is_tagged_again(tmp_path: Path, five_lines) -> None:
    cache = tmp_path / "cache"
    out = Upper().process(five_lines, cache_dir=cache)
    folder = next((cache / "upper-v1").iterdir())
    (folder / "chunk-000001.json").write_text('{"texts": ["l3"')  # cut short
    again = Upper()
    assert again.process(five_lines, cache_dir=cache) == out
    assert again.calls == [["l3", "l4"]]  # that chunk only


def test_cache_resumes_after_interruption(tmp_path: Path, five_lines) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        Upper(fail_on="l3").process(five_lines, cache_dir=cache)
    folder = next((cache / "upper-v1").iterdir())
    assert sorted(p.name for p in folder.iterdir()) == ["chunk-000000.json"]  # finished chunk kept, no temp files
    resumed = Upper()
    out = resumed.process(five_lines, cache_dir=cache)
    assert resumed.calls == [["l3", "l4"], ["l5"]]
    assert out == Upper().process(five_lines)  # same result as an uncached run


def test_cache_key_follows_content_and_tagger_version(tmp_path: Path, five_lines) -> None:
    cache = tmp_path / "cache"
    Upper().process(five_lines, cache_dir=cache)
    five_lines.path.write_text("l1\nchanged\n")
    changed = next(open_corpus(five_lines.path).files())
    tagger = Upper()
    assert [s.text for s in tagger.process(changed, cache_dir=cache)] == ["l1", "changed"]
    assert tagger.calls == [["l1", "changed"]]

    class Upper2(Upper):
        version = "2"

    newer = Upper2()
    newer.process(changed, cache_dir=cache)
    assert newer.calls and (cache / "upper-v2").is_dir()


# -- the real NLTK models (shared data) ---------------------------------------------------------------


@pytest.fixture
def nltk_shared(monkeypatch: pytest.MonkeyPatch):
    if not SHARED_NLTK.is_dir():
        pytest.skip(f"NLTK models not available ({SHARED_NLTK} absent)")
    import nltk

    from impossible_lms.corpus import splitting

    monkeypatch.setattr(nltk.data, "path", [str(SHARED_NLTK)] + list(nltk.data.path))
    splitting.sentence_splitter.cache_clear()
    yield get_tagger("nltk")
    splitting.sentence_splitter.cache_clear()


@pytest.mark.shared
def test_nltk_tagger_on_hand_checked_sentences(nltk_shared, tmp_path: Path) -> None:
    path = tmp_path / "x.train"
    path.write_text("He doesn't know. The dogs chase the cat!\nI think they are happy.\n")
    f = next(open_corpus(path).files())
    sentences = nltk_shared.process(f, cache_dir=tmp_path / "cache")
    assert [s.text for s in sentences] == ["He doesn't know.", "The dogs chase the cat!", "I think they are happy."]
    assert [s.genre for s in sentences] == ["x"] * 3
    agreeing = [(w.text, verb_number(w), w.lemma) for s in sentences for w in s.words if verb_number(w)]
    assert agreeing == [("does", "Sing", "do"), ("chase", "Plur", "chase"), ("are", "Plur", "be")]
    think = next(w for w in sentences[2].words if w.text == "think")
    assert think.feats == "Mood=Ind|Number=Sing|Person=1|Tense=Pres|VerbForm=Fin"
    assert nltk_shared.process(f, cache_dir=tmp_path / "cache") == sentences


@pytest.mark.shared
def test_fast_perceptron_equals_nltk(nltk_shared) -> None:
    from nltk.tag import PerceptronTagger

    from impossible_lms.tagging.perceptron import FastPerceptron

    slow = PerceptronTagger(lang="eng")
    fast = FastPerceptron(slow)
    texts = [
        "The quick brown fox jumps over the lazy dog.",
        "Do the dogs sleep? I don't think so, said Mr. O'Brien in 1999.",
        "uh-huh yeah we've got 3 kids and they're all grown up now",
        "“It won’t kill me at once,” said Brother Lustig, “just give me the key.”",
    ]
    for text in texts:
        tokens = tokenize(text)
        assert fast.tag(tokens) == [t for _, t in slow.tag(tokens)]
    # a whole chunk at once (what the tagger does): the sentences score together, position by
    # position, and must still get NLTK's tags one by one; real text when the BabyLM sample is here
    babylm = SHARED_NLTK.parent / "babylm" / "babylm_dev"
    lines = [line for f in sorted(babylm.glob("*.dev")) for line in f.read_text().splitlines()[:400]]
    batch = [tokenize(t) for t in texts + lines if t.strip()]
    assert fast.tag_many(batch) == [[t for _, t in slow.tag(tokens)] for tokens in batch]
    assert fast.tag_many([[], ["Hello"], []]) == [[], [slow.tag(["Hello"])[0][1]], []]


def test_progress_counts_lines(five_lines) -> None:
    from impossible_lms.progress import progress

    with progress(disable=True) as bar:
        Upper().process(five_lines, progress=bar)
        (task,) = bar.tasks
        assert task.completed == 5 and "g.train" in task.description


@pytest.mark.shared
def test_none_splits_lines_with_punkt(nltk_shared, tmp_path: Path) -> None:
    path = tmp_path / "s.train"
    path.write_text("Mr. Smith came home. He slept.\nyeah\n")
    f = next(open_corpus(path).files())
    got = get_tagger("none").process(f)
    assert got == [Sentence("Mr. Smith came home.", None, "s"), Sentence("He slept.", None, "s"), Sentence("yeah", None, "s")]


def test_stanza_backend_with_a_fake_pipeline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The conversion from Stanza objects (multiword tokens already expanded into words)."""
    import sys
    import types
    from types import SimpleNamespace as NS

    class Document:
        def __init__(self, sentences, text):
            self.text = text

    class Pipeline:
        def __init__(self, lang, processors, download_method, verbose):
            assert download_method is None  # never download
            self.processors = processors

        def __call__(self, docs):
            out = []
            for d in docs:
                words = [NS(text=t, upos="X", feats=None, lemma=None) for t in d.text.replace("n't", " n't").split()]
                out.append(NS(sentences=[NS(text=d.text, words=words)]))
            return out

    monkeypatch.setitem(sys.modules, "stanza", types.SimpleNamespace(Document=Document, Pipeline=Pipeline))
    (tmp_path / "a.train").write_text("I don't\n")
    f = next(open_corpus(tmp_path / "a.train").files())
    assert get_tagger("stanza").process(f) == [
        Sentence("I don't", (Word("I", "X", "_", "I"), Word("do", "X", "_", "do"), Word("n't", "X", "_", "n't")), "a")
    ]


@pytest.mark.shared
def test_nltk_agreement_against_ud_ewt(nltk_shared) -> None:
    """Agreeing verbs (lemma, Number) found by nltk vs EWT gold, per dev sentence."""
    from collections import Counter

    treebank = SHARED_NLTK.parent / "ud_ewt" / "en_ewt-ud-dev.conllu"
    if not treebank.is_file():
        pytest.skip(f"{treebank} absent")
    gold = next(open_corpus(treebank).files()).pretagged()[:800]
    tp = fp = fn = 0
    for g in gold:
        got = nltk_shared.tag_lines([g.text], "x")
        pv = Counter((w.lemma.lower(), verb_number(w)) for s in got for w in s.words if verb_number(w))
        gv = Counter((w.lemma.lower(), verb_number(w)) for w in g.words if verb_number(w))
        tp, fp, fn = tp + sum((pv & gv).values()), fp + sum((pv - gv).values()), fn + sum((gv - pv).values())
    assert tp / (tp + fp) > 0.85 and tp / (tp + fn) > 0.85, (tp, fp, fn)


def test_tags_are_cached_by_default_so_a_second_study_does_not_tag_again(tmp_path: Path, monkeypatch) -> None:
    """perturb_corpus streams the corpus with the default tag cache when it tags (hop languages): $ILM_CACHE_DIR/tags,
    else $XDG_CACHE_HOME/ilm/tags; an explicit --cache-dir wins and `none` turns caching off."""
    import impossible_lms.perturb as perturb
    from impossible_lms.perturb import tag_cache_dir

    monkeypatch.setenv("ILM_CACHE_DIR", str(tmp_path / "c"))
    assert tag_cache_dir() == tmp_path / "c" / "tags"
    assert tag_cache_dir(tmp_path / "mine") == tmp_path / "mine" and tag_cache_dir("none") is None
    monkeypatch.setenv("ILM_CACHE_DIR", "off")
    assert tag_cache_dir() is None
    monkeypatch.delenv("ILM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tag_cache_dir() == tmp_path / "xdg" / "ilm" / "tags"

    seen = []

    def stop(corpus, langs, outputs, base, tokenizers, tagger, cache_dir, *args):
        seen.append(cache_dir)
        raise KeyboardInterrupt  # enough: what the stream was given

    monkeypatch.setattr(perturb, "_stream_corpus", stop)
    for languages in (["token_hop"], ["no_shuffle"]):
        with pytest.raises(KeyboardInterrupt):
            perturb.perturb_corpus(languages, "synthetic", tmp_path / "out", tokenizer="fallback", tagger="gold",
                                   progress=False, corpus_options={"sentences": 50})
    assert seen == [tmp_path / "xdg" / "ilm" / "tags", None]  # sentence splitting alone is not cached
