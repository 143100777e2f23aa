"""Reading a sentence back: ``Language.conforms``, ``undo`` and ``redo`` on the synthetic test split.

These are what the production metric judges generated text with, so each is
checked on every sentence the language itself writes (it conforms, undo then
redo is the identity, undo gives the control's own perturbation of the same
sentence) and on other languages' sentences (they conform far less).
"""

from __future__ import annotations

import pytest

from impossible_lms.corpus.synthetic import GENRES, generate_file
from perturbations import get_language
from perturbations.toy import ToyTokenizer

INVERTIBLE = ["no_shuffle", "deterministic_shuffle:seed=21", "local_shuffle:w=3", "even_odd_shuffle",
              "no_reverse", "partial_reverse", "full_reverse", "no_hop", "token_hop", "token_hop:n=2"]
CHECKED = [*INVERTIBLE, "nondeterministic_shuffle", "word_hop"]
# per family, a language of another family whose sentences the rule must mostly refuse
OTHER = {"shuffle": "partial_reverse", "reverse": "token_hop", "hop": "full_reverse"}


@pytest.fixture(scope="module")
def test_split():
    """The synthetic corpus's test sentences (tagged), and one tokenizer for every language."""
    sentences = [s for genre in GENRES for s in generate_file(genre, "test", 150, seed=0)]
    return sentences, ToyTokenizer(max_piece=4)  # long words are several tokens, as in BPE


def written(spec: str, test_split) -> list[list[int]]:
    sentences, tok = test_split
    return get_language(spec).perturb_columns(sentences, tok).ids.to_lists()


def affected(spec: str, test_split) -> tuple[list[list[int] | None], list[bool]]:
    sentences, tok = test_split
    cols = get_language(spec).perturb_columns(sentences, tok)
    rows = cols.to_rows()
    return [r.ids for r in rows], [r.affected for r in rows]


@pytest.mark.parametrize("spec", CHECKED)
def test_every_sentence_of_the_language_conforms(spec: str, test_split) -> None:
    lang, tok = get_language(spec), test_split[1]
    sentences = written(spec, test_split)
    assert len(sentences) > 300
    assert all(lang.conforms(s, tok.marker_ids) for s in sentences)


@pytest.mark.parametrize("spec", INVERTIBLE)
def test_undo_then_redo_is_the_identity(spec: str, test_split) -> None:
    lang, tok = get_language(spec), test_split[1]
    assert lang.invertible
    for s in written(spec, test_split):
        undone = lang.undo(s, tok.marker_ids)
        assert undone is not None and lang.redo(undone, tok.marker_ids) == s
        assert sorted(undone) == sorted(s)  # only the order moves


@pytest.mark.parametrize("spec", [s for s in INVERTIBLE if not s.startswith("token_hop")])
def test_undo_gives_the_control_sentence(spec: str, test_split) -> None:
    """Shuffles and reverses: undoing a sentence gives exactly the control's perturbation of it
    (the reverses draw the same marker positions from the same stream)."""
    lang, tok = get_language(spec), test_split[1]
    control = written(lang.control, test_split)
    mine = written(spec, test_split)
    assert len(mine) == len(control)
    assert [lang.undo(s, tok.marker_ids) for s in mine] == control


@pytest.mark.parametrize("spec", ["token_hop", "token_hop:n=2"])
def test_token_hop_undo_gives_no_hop_unless_a_marker_went_last(spec: str, test_split) -> None:
    """A marker with fewer than n tokens left goes last; tokens cannot tell it from a full hop,
    so only there does the undo differ from NoHop's sentence (redo still gives it back)."""
    lang, tok = get_language(spec), test_split[1]
    hop_rows, _ = affected(spec, test_split)
    control_rows, was_affected = affected(f"no_hop:n={lang.n}", test_split)  # the same filter
    markers = set(tok.marker_ids.values())
    same = short = 0
    for mine, control, hit in zip(hop_rows, control_rows, was_affected):
        if mine is None or not hit:
            continue
        if mine[-1] in markers:  # went last: possibly clamped
            short += 1
            continue
        assert lang.undo(mine, tok.marker_ids) == control
        same += 1
    assert same > 50 and same > short


def test_wordhop_is_checked_but_not_undone(test_split) -> None:
    lang, tok = get_language("word_hop"), test_split[1]
    assert not lang.invertible and lang.undo(written("word_hop", test_split)[0], tok.marker_ids) is None
    with pytest.raises(Exception, match="cannot be undone"):
        lang.redo([1, 2, 3], tok.marker_ids)


@pytest.mark.parametrize("spec", CHECKED)
def test_another_familys_sentences_conform_far_less(spec: str, test_split) -> None:
    lang, tok = get_language(spec), test_split[1]
    other = written(OTHER[lang.family], test_split)
    share = sum(bool(lang.conforms(s, tok.marker_ids)) for s in other) / len(other)
    assert share < 0.05, f"{spec}: {share:.0%} of {OTHER[lang.family]}'s sentences conform"


def test_hops_refuse_misplaced_markers() -> None:
    tok = ToyTokenizer()
    ids = tok.encode("the dog see the cat")
    s = tok.marker_ids["\U0001F142"]
    no_hop, token_hop = get_language("no_hop"), get_language("token_hop:n=2")
    assert no_hop.conforms(ids[:3] + [s] + ids[3:], tok.marker_ids)
    assert not no_hop.conforms([s] + ids, tok.marker_ids)  # nothing before it
    assert not no_hop.conforms(ids[:3] + [s, s] + ids[3:], tok.marker_ids)  # two markers for one verb
    assert token_hop.conforms(ids + [s], tok.marker_ids)  # two tokens after "see"
    assert not token_hop.conforms(ids[:1] + [s] + ids[1:], tok.marker_ids)  # would hop from before the start
    assert token_hop.redo(ids[:3] + [s] + ids[3:], tok.marker_ids) == ids + [s]
