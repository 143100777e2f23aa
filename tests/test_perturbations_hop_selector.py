"""The hop selector: its defaults are the reference rule; other selectors pick other words and markers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perturbations import MARKER_PLURAL, MARKER_SINGULAR, Sentence, Word, get_language
from perturbations.errors import ILMError
from perturbations.hop import SELECTOR_DEFAULTS, Selector, reference_marker
from perturbations.toy import ToyTokenizer

# Single-valued UD features, as UD validation requires for these (and a possessor feature, which
# the reference's substring test must not read as Number).
FEATURES = {
    "Mood": ["Ind", "Imp", "Sub"],
    "Number": ["Sing", "Plur", "Dual"],
    "Number[psor]": ["Sing", "Plur"],
    "Person": ["1", "2", "3"],
    "Person[psor]": ["3"],
    "Tense": ["Pres", "Past", "Fut"],
    "VerbForm": ["Fin", "Inf", "Part"],
}
feats_st = st.dictionaries(st.sampled_from(sorted(FEATURES)), st.integers(0, 2), max_size=6).map(
    lambda d: "|".join(f"{k}={FEATURES[k][i % len(FEATURES[k])]}" for k, i in sorted(d.items())) or "_"
)
# Likely to agree: the reference's target with one feature perturbed now and then.
agreeing_st = st.builds(
    lambda n, extra: "|".join(sorted([f"Number={n}", "Person=3", "Tense=Pres", "VerbForm=Fin", *extra])),
    st.sampled_from(["Sing", "Plur", "Dual"]), st.lists(st.sampled_from(["Mood=Ind", "Number[psor]=Plur"]), max_size=2, unique=True),
)
word_st = st.builds(
    lambda text, upos, feats: Word(text, upos, feats, text.upper()),
    st.sampled_from(["dog", "runs", "the", ".", "n't", "big", "cats", "und", "läuft"]),
    st.sampled_from(["VERB", "AUX", "NOUN", "PUNCT", "PART"]),
    st.one_of(feats_st, agreeing_st),
)
file_st = st.lists(
    st.lists(word_st, min_size=1, max_size=12).map(lambda ws: Sentence(" ".join(w.text for w in ws), tuple(ws))),
    min_size=1, max_size=5,
)

# The default rule written another way: same features, another order, so the parsed selector runs.
GENERIC_DEFAULT = "feats=VerbForm=Fin|Tense=Pres|Person=3"


@settings(max_examples=300, deadline=None)
@given(word_st)
def test_parsed_default_selector_equals_the_reference_rule(word: Word) -> None:
    assert Selector.parse(**SELECTOR_DEFAULTS)(word) == reference_marker(word)


@settings(max_examples=80, deadline=None)
@given(file_st, st.sampled_from(["no_hop", "token_hop", "word_hop", "token_hop:n=2", "word_hop:n=1"]))
def test_generic_hops_with_the_default_selector_equal_the_existing_languages(sentences, spec: str) -> None:
    tok = ToyTokenizer(max_piece=2)
    sep = "," if ":" in spec else ":"
    generic = get_language(spec + sep + GENERIC_DEFAULT)
    assert generic.select is not reference_marker and get_language(spec).select is reference_marker
    got = [(r.ids, r.affected) for r in generic.perturb_file(sentences, tok)]
    assert got == [(r.ids, r.affected) for r in get_language(spec).perturb_file(sentences, tok)]


def test_default_selector_is_not_shown() -> None:
    lang = get_language("token_hop:upos=*,by=Number,values=Sing|Plur,feats=Person=3|Tense=Pres|VerbForm=Fin")
    assert lang == get_language("token_hop") and lang.name == "token_hop" and lang.params == {"n": 4}


def test_selector_spec_round_trips_and_keeps_case() -> None:
    lang = get_language("Token_Hop:N=2,UPOS=VERB|AUX,values=Plur|Sing")
    assert lang.name == "token_hop:n=2,upos=VERB|AUX,values=Plur|Sing"
    assert lang.params == {"n": 2, "upos": "VERB|AUX", "values": "Plur|Sing"}
    assert get_language(lang.name) == lang
    assert get_language(lang.name.replace(":", "_")) == lang  # its dataset folder name


def test_upos_and_values_select_words_and_markers() -> None:
    fin = "Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin"
    s = Sentence("he is here and runs fast .", (
        Word("he", "PRON", "_", "he"), Word("is", "AUX", fin, "be"), Word("here", "ADV", "_", "here"),
        Word("and", "CCONJ", "_", "and"), Word("runs", "VERB", fin, "run"), Word("fast", "ADV", "_", "fast"),
        Word(".", "PUNCT", "_", "."),
    ))
    tok = ToyTokenizer()

    def show(spec: str) -> str:  # n=1: the WordHop(n) filter would drop the sentence at the default n=4
        lang = get_language(spec.replace("no_hop", "no_hop:n=1," if ":" in spec else "no_hop:n=1").replace(",:", ","))
        return " ".join(p.strip() for p in tok.to_pieces(lang.perturb(s, tok).ids))

    assert show("no_hop") == f"he be {MARKER_SINGULAR} here and run {MARKER_SINGULAR} fast ."
    assert show("no_hop:upos=VERB") == f"he is here and run {MARKER_SINGULAR} fast ."
    assert show("no_hop:values=Plur|Sing") == f"he be {MARKER_PLURAL} here and run {MARKER_PLURAL} fast ."
    # Marker by another feature: Mood (Ind gets the first marker).
    assert show("no_hop:feats=Tense=Pres,by=Mood,values=Ind|Sub") == f"he be {MARKER_SINGULAR} here and run {MARKER_SINGULAR} fast ."
    assert not get_language("no_hop:upos=NOUN").affects(s)


@pytest.mark.parametrize("spec, message", [
    ("token_hop:values=Sing", "values must be two different values"),
    ("token_hop:values=Sing|Sing", "values must be two different values"),
    ("token_hop:feats=Person", "feats must be key=value pairs"),
    ("token_hop:by=Number|Person", "by must be one feature name"),
    ("token_hop:colour=red", "token_hop has no parameter 'colour'"),
])
def test_bad_selectors(spec: str, message: str) -> None:
    with pytest.raises(ILMError, match=message):
        get_language(spec)
