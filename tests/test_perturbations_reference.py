"""Equality with the reference implementation, checked against an independent oracle.

The oracle below restates, step by step and in the reference's own order of
operations, what ``utils.py`` / ``data/perturb.py`` of
jkallini/mission-impossible-language-models do: a per-sentence ``rng.choice`` /
``rng.shuffle`` on one stream (no vectorisation, no caches), the hop algorithms
on a reversed word list, then ``process_line``'s filters (perturb first, drop
sequences with <= 1 non-marker token, then the affected-sentence filter). The
package is written differently (cached permutations, vectorised draws, a
forward walk for WordHop); these tests check both give the same ids, sentence
for sentence, on hand-written edge cases, on hypothesis-generated files, and
(``shared``) on UD EWT with the real GPT-2 tokenizer.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perturbations import REFERENCE_LANGUAGES, Sentence, Word, get_language

SING, PLUR, REV = "\U0001f142", "\U0001f13f", "\U0001f141"
CLITICS = {"n't", "'ll", "'s", "'re", "'ve", "'m"}
ASCII_PUNCT = set(string.punctuation)
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# -- a GPT-2-like toy tokenizer (independent of perturbations.toy) -------------------


class GPT2LikeTokenizer:
    """Pieces carry their leading space, as in GPT-2; letters runs longer than 3 are
    cut so one word can be several tokens; markers are added tokens that swallow
    the whitespace on their left (AddedToken(lstrip=True)). Ids are assigned on
    first sight, so the mapping is a bijection and ids compare like strings."""

    _piece = re.compile(r"'(?:s|t|re|ve|m|ll|d)| ?[A-Za-z]{1,3}| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+")

    def __init__(self) -> None:
        self.marker_ids = {REV: 50257, SING: 50257, PLUR: 50258}
        self.eos_id = 50256
        self._vocab: dict[str, int] = {}
        self._markers = re.compile(r"\s*([\U0001f141\U0001f142\U0001f13f])")

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for i, chunk in enumerate(self._markers.split(text)):
            if i % 2:  # a captured marker
                out.append(self.marker_ids[chunk])
            else:
                out.extend(self._vocab.setdefault(p, len(self._vocab)) for p in self._piece.findall(chunk))
        return out


# -- the oracle ------------------------------------------------------------------


def hop_verb(w: Word) -> bool:
    f = w.feats
    return bool(f) and "Person=3" in f and "Tense=Pres" in f and "VerbForm=Fin" in f and "Number" in f


def glue(items: list[str]) -> list[str]:
    out: list[str] = []
    for s in items:
        if out and s in CLITICS:
            out[-1] += s
        else:
            out.append(s)
    return out


def skippable(s: str) -> bool:
    return s in CLITICS or set(s).issubset(ASCII_PUNCT)


def has_alnum(items: list[str]) -> bool:
    return any(c.isalnum() for c in "".join(items))


def oracle_word_hop(words, n, sg=SING, pl=PLUR):
    """(new word strings, every hop completed and at least one verb)."""
    rev: list[str] = []  # the sentence from its end towards its start
    done: list[bool] = []
    for w in reversed(words):
        if not hop_verb(w):
            rev.append(w.text)
            continue
        rev.append(w.lemma or w.text)
        i, hops = len(rev) - 1, 0
        while hops < n and i > 0:
            if not has_alnum(rev[:i]):
                break
            if not skippable(rev[i]):
                hops += 1
            i -= 1
        if has_alnum(rev[:i]):
            while i != 0 and skippable(rev[i]):
                i -= 1
        if i != 0 and rev[i - 1] in CLITICS:
            i -= 1
        done.append(hops == n)
        rev.insert(i, sg if "Number=Sing" in w.feats else pl)
    return rev[::-1], bool(done) and all(done)


def oracle_token_hop(words, n, tok):
    sg, pl = tok.marker_ids[SING], tok.marker_ids[PLUR]
    seg: list[str] = []
    tokens: list[int] = []
    for w in reversed(words):
        if not hop_verb(w):
            seg.insert(0, w.text)
            continue
        lemma = w.lemma or w.text
        if seg and seg[0] in CLITICS:
            lemma += seg.pop(0)
        if seg:
            tokens = tok.encode(" " + " ".join(glue(seg))) + tokens
        tokens.insert(n, sg if "Number=Sing" in w.feats else pl)
        seg = [lemma]
    if seg:
        tokens = tok.encode(" ".join(glue(seg))) + tokens
    return tokens


def oracle_file(name: str, sentences, tok):
    """[(ids or None, affected)] as the reference's process_line would write them."""
    lang = get_language(name)
    p = lang.params
    marker_ids = {tok.marker_ids[m] for m in lang.markers}
    # the reference's streams: default_rng(0) for NondeterministicShuffle, (21) for *Reverse
    stream = np.random.default_rng(p.get("seed", 21 if lang.family == "reverse" else 0))
    out = []
    for s in sentences:
        base = name.split(":")[0]
        if lang.family == "hop":
            hops = {"no_hop": 0}.get(base, p.get("n", 4))
            if base == "word_hop":
                new_words, _ = oracle_word_hop(s.words, hops)
                tokens = tok.encode(" ".join(glue(new_words)))
            else:
                tokens = oracle_token_hop(s.words, hops, tok)
            affected = any(hop_verb(w) for w in s.words)
            keep = (not affected) or oracle_word_hop(s.words, p.get("n", 4), SING, SING)[1]
        else:
            original = tok.encode(s.text)
            tokens = list(original)
            if base == "nondeterministic_shuffle":
                stream.shuffle(tokens)
            elif base == "deterministic_shuffle":
                np.random.default_rng(p["seed"]).shuffle(tokens)
            elif base == "local_shuffle":
                tokens = []
                for i in range(0, len(original), p["w"]):
                    window = original[i : i + p["w"]]
                    np.random.default_rng(0).shuffle(window)
                    tokens += window
            elif base == "even_odd_shuffle":
                tokens = original[0::2] + original[1::2]
            elif lang.family == "reverse":
                i = stream.choice(len(tokens) + 1)
                tokens.insert(i, tok.marker_ids[REV])
                before, after = tokens[: i + 1], tokens[i + 1 :]
                if base == "partial_reverse":
                    after.reverse()
                tokens = before + after
                if base == "full_reverse":
                    tokens.reverse()
            affected = True
            keep = 1 < len(original) <= 350 if lang.family == "shuffle" else True
        if len([t for t in tokens if t not in marker_ids]) <= 1:
            out.append((None, affected))
        else:
            out.append((tokens if keep else None, affected))
    return out


def run(name, sentences, tok):
    return [(r.ids, r.affected) for r in get_language(name).perturb_file(sentences, tok)]


# -- building tagged sentences ------------------------------------------------------

FIN = "Mood=Ind|Person=3|Tense=Pres|VerbForm=Fin"


def V(text, lemma, number="Sing", upos="VERB"):
    """A 3rd-person present finite verb (the hop languages' target)."""
    return Word(text, upos, f"{FIN}|Number={number}", lemma)


def W(text, upos="NOUN", feats="_"):
    return Word(text, upos, feats, text.lower())


def sent(*words: Word) -> Sentence:
    return Sentence(" ".join(glue([w.text for w in words])), tuple(words))


# -- hand-written edge cases ----------------------------------------------------------

EDGE_CASES = [
    # a plain 3sg verb, 4 words after it, then punctuation
    sent(W("The"), W("dog"), V("barks", "bark"), W("at"), W("the"), W("big"), W("cat"), W("every"), W(".")),
    # too few words after the verb: WordHop incomplete, the sentence is filtered
    sent(W("He"), V("runs", "run"), W("to"), W("the"), W("park"), W(".")),
    # punctuation between the hops; the marker may not land on punctuation
    sent(W("She"), V("knows", "know"), W(","), W("I"), W("think"), W(","), W("that"), W("it"), V("works", "work"), W("!")),
    # verb + clitic, plural AUX, several verbs (markers of later verbs count as words / tokens)
    sent(W("It"), V("does", "do", upos="AUX"), W("n't"), W("matter"), W("what"), W("they"),
         V("are", "be", "Plur", "AUX"), W("doing"), W("with"), W("John"), W("'s"), W("old"), W("bike"), W("now"), W(".")),
    # a clitic verb ('s) and a clitic right where the marker would land
    sent(W("That"), V("'s", "be", upos="AUX"), W("what"), W("we"), W("do"), W("n't"), W("know"), W("yet"), W("about"), W("it")),
    # sentence-initial punctuation and a verb at the very end
    sent(W('"'), W("--"), W("Well"), W(","), W("nobody"), V("cares", "care")),
    sent(W("..."), V("is", "be", upos="AUX"), W("...")),
    # unaffected: past tense, 1st person, infinitive; and a one-word sentence (dropped)
    sent(W("We"), Word("ran", "VERB", "Mood=Ind|Number=Plur|Person=1|Tense=Past|VerbForm=Fin", "run"), W("home"), W(".")),
    sent(W("Yes")),
    sent(W(".")),
    # non-ASCII punctuation counts as a word in the reference
    sent(W("Mary"), V("says", "say"), W("“"), W("no"), W("”"), W("…"), W("and"), W("leaves"), W("now"), W("today")),
]


@pytest.mark.parametrize("name", REFERENCE_LANGUAGES)
def test_edge_cases_equal_the_reference(name):
    tok = GPT2LikeTokenizer()
    assert run(name, EDGE_CASES, tok) == oracle_file(name, EDGE_CASES, tok)


def test_edge_case_word_hop_by_hand():
    """WordHop placements of the edge cases, worked out by hand from the reference's rules."""
    tok = GPT2LikeTokenizer()
    barks, runs, knows, does = get_language("word_hop").perturb_file(EDGE_CASES[:4], tok)
    # 4 words after the verb: at the big cat
    assert barks.ids == tok.encode(f"The dog bark at the big cat {SING} every .")
    assert barks.affected
    # only 3 words follow "runs": incomplete, filtered out
    assert runs.ids is None and runs.affected
    # "works" has only "!" after it: incomplete, so the whole sentence goes
    assert oracle_word_hop(EDGE_CASES[2].words, 4) == (
        ["She", "know", ",", "I", "think", ",", "that", "it", SING, "work", SING, "!"], False)
    assert knows.ids is None
    # does+n't glued back to "don't"; the later verb's marker counts as a word for
    # the earlier one; 's does not count and the marker steps over it to "old"
    assert does.ids == tok.encode(f"It don't matter what they be {SING} doing with John's old {PLUR} bike now .")


def test_edge_case_token_hop_by_hand():
    tok = GPT2LikeTokenizer()
    s = EDGE_CASES[0]  # The dog barks at the big cat every .
    pieces = lambda text: tok.encode(text)  # noqa: E731
    no_hop, token_hop = (get_language(n).perturb_file([s], tok)[0].ids for n in ("no_hop", "token_hop"))
    assert no_hop == pieces("The dog bark") + [tok.marker_ids[SING]] + pieces(" at the big cat every .")
    # " at", " the", " big", " cat" are 4 toy tokens (" big" is one piece: space + 3 letters)
    assert token_hop == pieces("The dog bark at the big cat") + [tok.marker_ids[SING]] + pieces(" every .")


# -- RNG streams ---------------------------------------------------------------------


def _lengths_file(lengths):
    return [Sentence(" ".join("abcdefgh"[i % 8] for i in range(n))) for n in lengths]


@pytest.mark.parametrize("name", ["nondeterministic_shuffle", "no_reverse", "partial_reverse", "full_reverse"])
def test_stream_is_consumed_by_filtered_sentences_too(name):
    """Sentences of 0, 1 and > 350 tokens are dropped but still draw from the stream."""
    tok = GPT2LikeTokenizer()
    sentences = _lengths_file([0, 1, 400, 5, 351, 350, 2, 3, 17])
    got = run(name, sentences, tok)
    assert got == oracle_file(name, sentences, tok)
    kept = [ids is not None for ids, _ in got]
    if name.endswith("shuffle"):
        assert kept == [False, False, False, True, False, True, True, True, True]
    else:
        assert kept == [False, False, True, True, True, True, True, True, True]


@pytest.mark.parametrize("name", ["nondeterministic_shuffle", "partial_reverse"])
def test_stream_restarts_per_call_and_can_be_carried(name):
    tok = GPT2LikeTokenizer()
    lang = get_language(name)
    a, b = _lengths_file([6, 7, 8]), _lengths_file([9, 10])
    assert [r.ids for r in lang.perturb_file(a, tok)] == [r.ids for r in lang.perturb_file(a, tok)]
    # one stream through two files == one file holding both
    stream = lang.new_stream()
    carried = lang.perturb_file(a, tok, stream=stream) + lang.perturb_file(b, tok, stream=stream)
    assert [r.ids for r in carried] == [r.ids for r in lang.perturb_file(a + b, tok)]


def test_pre_encoded_ids_give_the_same_result():
    tok = GPT2LikeTokenizer()
    sentences = _lengths_file([3, 12, 30, 2])
    ids = [np.asarray(tok.encode(s.text), dtype=np.int32) for s in sentences]
    for name in REFERENCE_LANGUAGES[:12]:
        lang = get_language(name)
        assert [r.ids for r in lang.perturb_file(sentences, tok, ids=ids)] == [r.ids for r in lang.perturb_file(sentences, tok)]


# -- generated files -----------------------------------------------------------------

PLAIN = [W(t) for t in ["the", "dog", "I", "we", "a", "old", "house", "quickly", "John", "to", "it", "elephants", "42"]]
PUNCT = [W(t, "PUNCT") for t in [".", ",", "!", "?", "...", "--", '"', "(", ")", "…", "“", "-"]]
CLITIC = [W(t, "PART") for t in ["n't", "'s", "'re", "'ve", "'m", "'ll", "'d"]]
VERBS = [
    V("runs", "run"), V("run", "run", "Plur"), V("is", "be", upos="AUX"), V("are", "be", "Plur", "AUX"),
    V("'s", "be", upos="AUX"), V("'re", "be", "Plur", "AUX"), V("does", "do", upos="AUX"), V("has", "have", upos="AUX"),
]
OTHER_VERBS = [
    Word("ran", "VERB", "Mood=Ind|Number=Sing|Person=3|Tense=Past|VerbForm=Fin", "run"),
    Word("am", "AUX", "Mood=Ind|Number=Sing|Person=1|Tense=Pres|VerbForm=Fin", "be"),
    Word("go", "VERB", "VerbForm=Inf", "go"),
]
words_st = st.one_of(
    st.sampled_from(PLAIN), st.sampled_from(PLAIN), st.sampled_from(PUNCT),
    st.sampled_from(CLITIC), st.sampled_from(VERBS), st.sampled_from(OTHER_VERBS),
)
file_st = st.lists(st.lists(words_st, min_size=0, max_size=16).map(lambda ws: sent(*ws)), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(file_st, st.sampled_from(REFERENCE_LANGUAGES + ("local_shuffle:w=7", "deterministic_shuffle:seed=9", "nondeterministic_shuffle:seed=3",
    "full_reverse:seed=5", "token_hop:n=2", "word_hop:n=2", "no_hop:n=2")))
def test_generated_files_equal_the_reference(sentences, name):
    tok = GPT2LikeTokenizer()
    assert run(name, sentences, tok) == oracle_file(name, sentences, tok)


# -- the real thing (shared data; skipped when absent) -------------------------------


def _gpt2_with_markers():
    tokenizers = pytest.importorskip("tokenizers")
    path = SHARED / "gpt2-tokenizer" / "tokenizer.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    t = tokenizers.Tokenizer.from_file(str(path))
    t.add_tokens([tokenizers.AddedToken(m, lstrip=True, rstrip=False) for m in (SING, PLUR)])

    class Tok:
        # the hop tokenizer: 🅂 = 50257, 🄿 = 50258 (the reverse tokenizer adds 🅁 alone as 50257)
        marker_ids = {SING: t.token_to_id(SING), PLUR: t.token_to_id(PLUR), REV: 50257}
        eos_id = 50256

        @staticmethod
        def encode(text):
            return t.encode(text, add_special_tokens=False).ids

    assert Tok.marker_ids[SING] == 50257 and Tok.marker_ids[PLUR] == 50258
    return Tok()


def _ud_sentences(path: Path, limit: int) -> list[Sentence]:
    """CoNLL-U → Sentences: syntactic words (multiword token ranges skipped), # text."""
    out: list[Sentence] = []
    text, words = "", []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# text = "):
            text = line[len("# text = ") :]
        elif not line.strip():
            if words:
                out.append(Sentence(text, tuple(words)))
                if len(out) == limit:
                    break
            text, words = "", []
        elif not line.startswith("#"):
            cols = line.split("\t")
            if "-" in cols[0] or "." in cols[0]:
                continue
            words.append(Word(cols[1], cols[3], cols[5], cols[2]))
    return out


@pytest.mark.shared
@pytest.mark.parametrize("name", REFERENCE_LANGUAGES)
def test_ud_ewt_with_gpt2_equals_the_reference(name):
    path = SHARED / "ud_ewt" / "en_ewt-ud-dev.conllu"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    tok = _gpt2_with_markers()
    sentences = _ud_sentences(path, 10_000)
    assert run(name, sentences, tok) == oracle_file(name, sentences, tok)


@pytest.mark.shared
def test_ud_ewt_hop_languages_differ_only_in_markers():
    """The reference's lines_equivalent_3pres check, with the real GPT-2 tokenizer."""
    path = SHARED / "ud_ewt" / "en_ewt-ud-dev.conllu"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    tok = _gpt2_with_markers()
    sentences = _ud_sentences(path, 10_000)
    outs = [run(n, sentences, tok) for n in ("no_hop", "token_hop", "word_hop")]
    strip = lambda ids: None if ids is None else [i for i in ids if i < 50257]  # noqa: E731
    assert sum(a for _, a in outs[0]) > 100  # UD EWT has plenty of 3rd-person present verbs
    for other in outs[1:]:
        assert [(strip(i), a) for i, a in other] == [(strip(i), a) for i, a in outs[0]]
