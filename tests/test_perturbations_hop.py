"""The *Hop family on hand-tagged sentences: exact token pieces, edge cases, invariants.

The toy tokenizer is a bijection between pieces and ids, so comparing pieces is
comparing ids; pieces keep GPT-2's leading space (" dog").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from impossible_lms.errors import ILMError
from perturbations import MARKER_PLURAL, MARKER_SINGULAR, Sentence, Word, get_language
from perturbations.hop import CLITICS, join_words, lemma_of, verb_number
from perturbations.toy import ToyTokenizer

S, P = MARKER_SINGULAR, MARKER_PLURAL
SING3 = "Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin"
PLUR3 = "Mood=Ind|Number=Plur|Person=3|Tense=Pres|VerbForm=Fin"
HOPS = ["no_hop", "token_hop", "word_hop"]


def sent(*items: str | tuple[str, str, str]) -> Sentence:
    """Words: a plain string, or (text, feats, lemma) for a verb (upos VERB)."""
    words = []
    for it in items:
        if isinstance(it, str):
            upos = "PUNCT" if not any(c.isalnum() for c in it) else "X"
            words.append(Word(it, upos, "_", it))
        else:
            text, feats, lemma = it
            words.append(Word(text, "VERB", feats, lemma))
    return Sentence(" ".join(w.text for w in words), tuple(words))


def pieces(spec: str, sentence: Sentence, tok: ToyTokenizer | None = None) -> list[str] | None:
    tok = tok or ToyTokenizer()
    out = get_language(spec).perturb(sentence, tok)
    return None if out.ids is None else tok.to_pieces(out.ids)


def split(text: str) -> list[str]:
    """Expected pieces written as one string: "the dog see 🅂" → ["the", " dog", " see", "🅂"]."""
    words = text.split(" ")
    return [w if i == 0 or w in (S, P) else " " + w for i, w in enumerate(words)]


# -- hand-checked sentences -------------------------------------------------------------

SEES = sent("the", "dog", ("sees", SING3, "see"), "the", "cats", ",", "a", "hen", "and", "you", ".")


def test_single_verb() -> None:
    assert pieces("no_hop", SEES) == split(f"the dog see {S} the cats , a hen and you .")
    # TokenHop counts tokens, the comma included; WordHop skips it.
    assert pieces("token_hop", SEES) == split(f"the dog see the cats , a {S} hen and you .")
    assert pieces("word_hop", SEES) == split(f"the dog see the cats , a hen {S} and you .")


# Two agreeing verbs; the marker of the later verb counts as a token / word for the earlier.
TWO = sent("it", ("seems", SING3, "seem"), "it", ("work", PLUR3, "work"), ",", "so", "we", "go", "home", "now", ".")


def test_two_verbs() -> None:
    assert pieces("no_hop", TWO) == split(f"it seem {S} it work {P} , so we go home now .")
    assert pieces("token_hop", TWO) == split(f"it seem it work , so {S} we go {P} home now .")
    assert pieces("word_hop", TWO) == split(f"it seem it work , so we {S} go home {P} now .")


def test_verb_with_clitic_is_glued_to_its_lemma() -> None:
    s = sent("they", ("do", PLUR3, "do"), "n't", "know", "it", "at", "all", ".")
    assert pieces("no_hop", s) == split(f"they don't {P} know it at all .")
    assert pieces("token_hop", s) == split(f"they don't know it at all {P} .")
    # The clitic is not a word: know, it, at, all.
    assert pieces("word_hop", s) == split(f"they don't know it at all {P} .")


def test_aux_and_clitic_verb_count() -> None:
    # "'s" tagged AUX with 3rd-person present feats is a hop verb: it becomes "be".
    words = (Word("it", "PRON", "Number=Sing|Person=3", "it"), Word("'s", "AUX", SING3, "be")) + tuple(
        Word(w, "X", "_", w) for w in ["red", "and", "very", "big", "today", "."]
    )
    s = Sentence("it's red and very big today.", words)
    assert pieces("no_hop", s) == split(f"it be {S} red and very big today .")
    assert pieces("token_hop", s) == split(f"it be red and very big {S} today .")
    assert pieces("word_hop", s) == split(f"it be red and very big {S} today .")


def test_word_hop_marker_never_splits_a_clitic() -> None:
    # Four words reach "do"; the marker steps past its "n't".
    s = sent("he", ("says", SING3, "say"), "you", "and", "I", "do", "n't", "go", "today", ".")
    assert pieces("word_hop", s) == split(f"he say you and I don't {S} go today .")


def test_word_hop_marker_never_lands_on_punctuation() -> None:
    # The fourth word is followed by a comma: the marker moves past it and the next word.
    s = sent("he", ("says", SING3, "say"), "yes", "or", "no", ",", "maybe", "so", ".")
    assert pieces("word_hop", s) == split(f"he say yes or no , maybe {S} so .")
    assert pieces("token_hop", s) == split(f"he say yes or no , {S} maybe so .")


def test_exactly_four_words_then_punctuation_completes() -> None:
    s = sent("he", ("eats", SING3, "eat"), "fish", "and", "chips", "daily", ".")
    assert pieces("word_hop", s) == split(f"he eat fish and chips daily {S} .")


@pytest.mark.parametrize(
    "s",
    [
        sent("the", "dog", ("sees", SING3, "see"), "."),  # nothing to hop over
        sent("the", "dog", ("is", SING3, "be"), "happy", "here", "today", "."),  # 3 words < 4
        sent("the", "dog", ("is", SING3, "be"), "happy", "here", "today"),  # no final punctuation
        sent("he", ("says", SING3, "say"), "yes", "or", "no", ",", "."),  # only punctuation after
        # The first verb completes, the second does not: the sentence is still dropped.
        sent("she", ("says", SING3, "say"), "that", "he", "sure", ("runs", SING3, "run"), "."),
    ],
)
def test_incomplete_hops_drop_the_sentence_in_all_three(s: Sentence) -> None:
    for spec in HOPS:
        out = get_language(spec).perturb(s, ToyTokenizer())
        assert out.ids is None and out.affected


def test_unaffected_sentence_is_rejoined_not_retokenised_from_text() -> None:
    # Not third person: unaffected, words joined with single spaces, clitics glued.
    s = Sentence(
        "I don't know.",
        (
            Word("I", "PRON", "Number=Sing|Person=1", "I"),
            Word("do", "AUX", "Mood=Ind|Number=Sing|Person=1|Tense=Pres|VerbForm=Fin", "do"),
            Word("n't", "PART", "Polarity=Neg", "not"),
            Word("know", "VERB", "VerbForm=Inf", "know"),
            Word(".", "PUNCT", "_", "."),
        ),
    )
    for spec in HOPS:
        out = get_language(spec).perturb(s, tok := ToyTokenizer())
        assert not out.affected
        assert tok.to_pieces(out.ids) == ["I", " don't", " know", " ."]


def test_multi_token_words_count_as_tokens() -> None:
    tok = ToyTokenizer(max_piece=3)
    s = sent("she", ("eats", SING3, "eat"), "sandwiches", "at", "noon", "every", "day", ".")
    assert pieces("token_hop", s, tok) == ["she", " eat", " san", "dwi", "che", "s", S, " at", " noo", "n", " eve", "ry", " day", " ."]
    assert pieces("word_hop", s, tok) == ["she", " eat", " san", "dwi", "che", "s", " at", " noo", "n", " eve", "ry", S, " day", " ."]


def test_parametric_hop_count() -> None:
    assert pieces("token_hop:n=2", SEES) == split(f"the dog see the cats {S} , a hen and you .")
    assert pieces("word_hop:n=2", SEES) == split(f"the dog see the cats {S} , a hen and you .")
    assert pieces("word_hop:n=1", SEES) == split(f"the dog see the {S} cats , a hen and you .")
    # n also sets the completion filter: 6 words follow "sees", 7 are too many.
    assert pieces("word_hop:n=7", SEES) is None


def test_word_hop_steps_past_one_clitic_only() -> None:
    # A reference quirk kept on purpose: after "should n't 've" the marker steps past
    # "n't" but not "'ve", so it splits the second clitic off (TokenHop does not).
    s = sent("it", ("seems", SING3, "seem"), "he", "said", "we", "should", "n't", "'ve", "gone", ".")
    assert pieces("word_hop", s) == split(f"it seem he said we shouldn't {S}") + ["'ve", " gone", " ."]
    assert pieces("token_hop", s) == split(f"it seem he said we shouldn't've {S} gone .")


def test_missing_lemma_keeps_the_text() -> None:
    s = sent("he", ("runs", SING3, ""), "to", "the", "big", "house", "now", ".")
    assert pieces("no_hop", s) == split(f"he runs {S} to the big house now .")


# -- which words are verbs --------------------------------------------------------------


@pytest.mark.parametrize(
    "feats, number",
    [
        (SING3, "Sing"),
        (PLUR3, "Plur"),
        ("Number=Sing|Person=3|Tense=Past|VerbForm=Fin", None),
        ("Number=Sing|Person=1|Tense=Pres|VerbForm=Fin", None),
        ("Person=3|Tense=Pres|VerbForm=Fin", None),  # no number
        ("Number=Dual|Person=3|Tense=Pres|VerbForm=Fin", None),  # the reference raises here
        ("Tense=Pres|VerbForm=Part", None),
        ("_", None),
        ("", None),
    ],
)
def test_verb_number(feats: str, number: str | None) -> None:
    assert verb_number(Word("x", "VERB", feats, "x")) == number


def test_affects() -> None:
    lang = get_language("word_hop")
    assert lang.affects(SEES)
    assert not lang.affects(sent("we", "go", "."))


def test_untagged_sentences_are_a_user_error() -> None:
    with pytest.raises(ILMError, match="needs tagged sentences"):
        get_language("no_hop").perturb_file([Sentence("the dog sees .")], ToyTokenizer())


def test_join_words() -> None:
    assert join_words(["he", "does", "n't", "'ll", "go", "."]) == "he doesn't'll go ."
    assert join_words(["'s", "it"]) == "'s it"  # nothing to glue to


def test_single_content_token_dropped() -> None:
    s = sent("hi")
    for spec in HOPS:
        assert get_language(spec).perturb(s, ToyTokenizer()).ids is None


# -- invariants on random tagged sentences --------------------------------------------

VOCAB = ["the", "dog", "cats", "a", "very", "big", "and", "to", ",", ".", "!", "n't", "'s", "'ll", "--"]


@st.composite
def tagged(draw) -> Sentence:
    n = draw(st.integers(1, 16))
    words = []
    for _ in range(n):
        kind = draw(st.sampled_from(["word", "word", "word", "sing", "plur"]))
        if kind == "word":
            w = draw(st.sampled_from(VOCAB))
            words.append(Word(w, "X", "_", w))
        else:
            text = draw(st.sampled_from(["runs", "is", "'s", "do"]))
            words.append(Word(text, "VERB", SING3 if kind == "sing" else PLUR3, draw(st.sampled_from(["run", "be", ""]))))
    return Sentence(" ".join(w.text for w in words), tuple(words))


@settings(max_examples=150, deadline=None)
@given(sentences=st.lists(tagged(), min_size=1, max_size=6), n=st.sampled_from([1, 2, 4]))
def test_hops_differ_only_in_marker_placement(sentences: list[Sentence], n: int) -> None:
    # Two clitics in a row are the one case where WordHop splits a word (see above).
    for s in sentences:
        texts = [lemma_of(w) if verb_number(w) else w.text for w in s.words]
        assume(not any(a in CLITICS and b in CLITICS for a, b in zip(texts, texts[1:])))
    tok = ToyTokenizer()
    markers = set(tok.marker_ids.values())
    outs = [get_language(f"{spec}:n={n}").perturb_file(sentences, tok) for spec in HOPS]
    for s, results in zip(sentences, zip(*outs)):
        # Same sentences kept, same affected flag.
        assert len({r.ids is None for r in results}) == 1
        assert len({r.affected for r in results}) == 1
        if results[0].ids is None:
            continue
        stripped = [[i for i in r.ids if i not in markers] for r in results]
        assert stripped[0] == stripped[1] == stripped[2]
        n_verbs = sum(verb_number(w) is not None for w in s.words)
        assert all(sum(i in markers for i in r.ids) == n_verbs for r in results)
        # NoHop: every marker right after a verb lemma (+ clitic).
        assert results[0].affected == (n_verbs > 0)


@settings(max_examples=50, deadline=None)
@given(sentences=st.lists(tagged(), min_size=1, max_size=6))
def test_hops_are_deterministic(sentences: list[Sentence]) -> None:
    tok = ToyTokenizer()
    for spec in HOPS:
        lang = get_language(spec)
        assert lang.perturb_file(sentences, tok) == lang.perturb_file(sentences, tok)


# -- the real GPT-2 tokenizer (optional: needs ../shared/data) ---------------------------

GPT2_JSON = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpt2-tokenizer" / "tokenizer.json"


class GPT2:
    """GPT-2 with the hop markers added as in the reference (AddedToken, lstrip=True)."""

    def __init__(self) -> None:
        from tokenizers import AddedToken, Tokenizer

        self._tok = Tokenizer.from_file(str(GPT2_JSON))
        self._tok.add_tokens([AddedToken(m, lstrip=True, rstrip=False, normalized=False) for m in (S, P)])
        self.marker_ids = {m: self._tok.token_to_id(m) for m in (S, P)}
        self.eos_id = 50256

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids


@pytest.mark.shared
@pytest.mark.skipif(not GPT2_JSON.exists(), reason="needs ../shared/data/gpt2-tokenizer")
def test_exact_gpt2_ids() -> None:
    tok = GPT2()
    assert tok.marker_ids == {S: 50257, P: 50258}
    ids = {spec: get_language(spec).perturb(SEES, tok).ids for spec in HOPS}
    # the dog see | the cats , a hen and you .  — " ," keeps its space: words are re-joined.
    assert ids["no_hop"] == [1169, 3290, 766, 50257, 262, 11875, 837, 257, 30963, 290, 345, 764]
    assert ids["token_hop"] == [1169, 3290, 766, 262, 11875, 837, 257, 50257, 30963, 290, 345, 764]
    assert ids["word_hop"] == [1169, 3290, 766, 262, 11875, 837, 257, 30963, 50257, 290, 345, 764]
    s = sent("they", ("do", PLUR3, "do"), "n't", "know", "it", "at", "all", ".")
    # "don't" is re-joined, then BPE splits it " don" "'t"; the marker follows it.
    assert get_language("no_hop").perturb(s, tok).ids[:5] == [9930, 836, 470, 50258, 760]
