"""Production: the rows from generations, the seeded sampler, and the whole analysis on tiny models."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from impossible_lms.analysis.production import (draw_prompts, model_judge, production, production_rows,
                                                sample_continuations)
from impossible_lms.errors import ILMError
from perturbations import get_language


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    from impossible_lms.perturb import perturb_corpus

    out = tmp_path_factory.mktemp("production")
    perturb_corpus(["no_shuffle", "deterministic_shuffle:seed=21", "nondeterministic_shuffle", "no_reverse",
                    "partial_reverse", "no_hop", "token_hop"], "synthetic", out, tokenizer="fallback",
                   tagger="gold", progress=False, corpus_options={"sentences": 1000, "seed": 0}, fallback_vocab=300)
    return out


def split(folder, name="test_affected") -> list[list[int]]:
    from impossible_lms.data import load_split

    return [list(map(int, s)) for s in load_split(folder, name)["input_ids"]]


def manifest(folder):
    from impossible_lms.data import load_manifest

    return load_manifest(folder)


def echo(sentences, prompt_tokens=3):
    """A stand-in generator that writes the rest of each sentence, then EOS."""
    return [s[:prompt_tokens] for s in sentences], [(s[prompt_tokens:], True) for s in sentences]


def ngram_judge(folder):
    """A judge that is not a neural model: a Kneser-Ney bigram of the control's train split,
    returning each sequence's log-perplexity (first token unscored, as evaluate does)."""
    from impossible_lms.evaluation.ngram import KneserNey

    lm = KneserNey(2, vocab_size=manifest(folder).vocab_size).fit(split(folder, "train"))

    def judge(sequences):
        return np.array([-np.nanmean(lm.logprobs(s)) for s in sequences])

    return judge


def rows_by(rows):
    return {(r["metric"], r["subset"]): r for r in rows}


@pytest.mark.parametrize("spec, other, below", [("partial_reverse", "no_shuffle", 1.0), ("no_reverse", "no_shuffle", 1.0),
                                                ("token_hop", "no_hop", 90.0),  # measured 78% (7 of 9)
                                                ("deterministic_shuffle:seed=21", None, None)])
def test_own_sentences_conform_fully_and_another_language_s_less(datasets, spec, other, below):
    """A dataset's tokenizer holds its own family's markers only (🅁 and 🅂 may share an id), so the
    other language here shares the tokenizer; tests/test_perturbations_undo.py crosses families on one
    tokenizer. Within the hop family tokens cannot say much: a NoHop sentence conforms to TokenHop(4)
    whenever each marker has four tokens to hop back over (7 of 9 here; the undone perplexity tells them apart)."""
    from impossible_lms.data import dataset_folder_name

    folder = datasets / dataset_folder_name(spec)
    m = manifest(folder)
    own = split(folder)
    prompts, continuations = echo(own)
    rows = rows_by(production_rows(get_language(spec), prompts, continuations, own, m.marker_ids, None))
    assert rows[("production_conforming", "all")]["value"] == 100.0
    assert rows[("production_finished", "all")]["value"] == 100.0
    if other is None:
        return
    foreign = split(datasets / dataset_folder_name(other))
    prompts, continuations = echo(foreign)
    rows = rows_by(production_rows(get_language(spec), prompts, continuations, foreign, m.marker_ids, None))
    assert rows[("production_conforming", "all")]["value"] < below


def test_unfinished_generations_do_not_conform_and_markers_are_counted(datasets):
    folder = datasets / "no_hop"
    m, own = manifest(folder), split(folder)
    assert len(own) >= 3
    prompts, continuations = echo(own)
    continuations[0] = (continuations[0][0], False)  # ran out of tokens before EOS
    rows = rows_by(production_rows(get_language("no_hop"), prompts, continuations, own, m.marker_ids, None))
    assert rows[("production_conforming", "all")]["value"] == pytest.approx(100 * (1 - 1 / len(own)))
    assert rows[("production_finished", "all")]["value"] == pytest.approx(100 * (1 - 1 / len(own)))
    markers = set(m.marker_ids.values())
    per_sentence = [sum(t in markers for t in s) for s in own]
    assert rows[("production_markers", "test")]["value"] == pytest.approx(np.mean(per_sentence))
    assert rows[("production_markers", "generated")]["value"] == pytest.approx(np.mean(per_sentence[1:]))
    assert ("production_undone_perplexity", "all") not in rows  # no judge given


def test_the_undone_perplexity_tells_a_learnable_order_from_a_random_one(datasets):
    """Judged by a model of the control (here a bigram), DeterministicShuffle's own sentences undo to
    the control's text: the control's own perplexity. NondeterministicShuffle's sentences conform to the
    deterministic rule too (any order is some sentence's shuffle), but undo to noise: far higher."""
    judge = ngram_judge(datasets / "no_shuffle")
    det = get_language("deterministic_shuffle:seed=21")
    m = manifest(datasets / "deterministic_shuffle_seed=21")
    values = {}
    for name, folder in (("own", "deterministic_shuffle_seed=21"), ("random", "nondeterministic_shuffle")):
        sentences = split(datasets / folder)
        prompts, continuations = echo(sentences)
        rows = rows_by(production_rows(det, prompts, continuations, sentences, m.marker_ids, judge))
        values[name] = rows[("production_undone_perplexity", "all")]["value"]
    control = np.exp(np.mean(judge(split(datasets / "no_shuffle"))))
    assert values["own"] == pytest.approx(control, rel=1e-6)
    assert values["random"] > 1.5 * values["own"]


def test_prompts_are_seeded_and_long_enough():
    sentences = [[1] * n for n in (2, 5, 9, 4, 7, 3, 8)]
    prompts, sources = draw_prompts(sentences, 3, 3, seed=0)
    assert draw_prompts(sentences, 3, 3, seed=0) == (prompts, sources)
    assert all(len(s) > 4 for s in sources) and all(len(p) == 3 for p in prompts)
    assert len(draw_prompts(sentences, 99, 3, seed=0)[0]) == 4  # only 4 are long enough
    with pytest.raises(ILMError, match="longer than 10 tokens"):
        draw_prompts(sentences, 3, 9, seed=0)


class Scripted(torch.nn.Module):
    """A causal LM whose next token depends only on the last one: a fixed random table of logits."""

    def __init__(self, vocab=12, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab, generator=g) * 3)
        self.config = type("C", (), {"vocab_size": vocab, "n_positions": 64})()

    def forward(self, ids):
        return type("Out", (), {"logits": self.table[ids]})()


def test_sampling_is_seeded_greedy_is_the_argmax_and_eos_ends_a_generation():
    model = Scripted()
    prompts = [[1, 2], [3], [4, 5], [1, 2]]
    a = sample_continuations(model, prompts, 20, 1.0, eos_id=0, seed=7)
    assert a == sample_continuations(model, prompts, 20, 1.0, eos_id=0, seed=7)
    assert a != sample_continuations(model, prompts, 20, 1.0, eos_id=0, seed=8)
    for new, finished in a:
        assert 0 not in new and (finished or len(new) == 20)
    greedy = sample_continuations(model, [[1]], 5, 0.0, eos_id=0, seed=0)[0][0]
    expected, last = [], 1
    for _ in range(5):
        last = int(model.table[last].argmax())
        if last == 0:
            break
        expected.append(last)
    assert greedy == expected
    # ids past the tokenizer's vocabulary (a padded embedding) are never sampled
    padded = sample_continuations(model, prompts * 10, 20, 5.0, eos_id=0, seed=1, vocab_size=6)
    assert max(t for new, _ in padded for t in new) < 6


def test_production_on_a_tiny_model_with_a_judge(datasets, tmp_path):
    from impossible_lms.models import build_model, model_config

    paths = {}
    for name in ("no_reverse", "partial_reverse"):
        torch.manual_seed(0)
        model = build_model(model_config("tiny-gpt2", vocab_size=manifest(datasets / name).vocab_size))
        paths[name] = tmp_path / name / "checkpoint-1"
        model.save_pretrained(paths[name])
        (tmp_path / name / "run.json").write_text(json.dumps({"language": name, "model": "tiny-gpt2", "seed": 0}))
    args = dict(judge=paths["no_reverse"], prompts=8, max_new_tokens=12, results=tmp_path / "results")
    frame = production(paths["partial_reverse"], datasets / "partial_reverse", **args)
    assert {"production_conforming", "production_finished"} <= set(frame.metric)
    again = production(paths["partial_reverse"], datasets / "partial_reverse", **args)  # read back, not redone
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), again.reset_index(drop=True))
    assert all(math.isfinite(v) for v in frame.value)
    with pytest.raises(ILMError, match="is a model of partial_reverse.*give a no_reverse model"):
        production(paths["partial_reverse"], datasets / "partial_reverse", judge=paths["partial_reverse"])
    # the judge the analysis builds from a model scores exactly as evaluate's perplexity does
    from impossible_lms.evaluation.metrics import sentence_log_perplexity
    from impossible_lms.evaluation.scoring import ScoreOptions, score_sequences
    from impossible_lms.models import load_model

    judge_model = load_model(paths["no_reverse"])
    seqs = split(datasets / "no_reverse")[:5]
    expected = [sentence_log_perplexity(s) for s in score_sequences(judge_model, seqs, ScoreOptions())[None]]
    np.testing.assert_allclose(model_judge(judge_model, 0)(seqs), expected, rtol=1e-6)


def test_marker_placement_reads_where_the_training_data_puts_markers(datasets):
    """TokenHop's own test sentences put (almost) every marker, once undone, after a verb lemma that a
    marker follows in training; NoHop's sentences read by TokenHop's rule move their markers four
    tokens too far back, after words no marker follows: the placement drops far below."""
    from impossible_lms.analysis.production import marker_hosts, placement

    lang = get_language("token_hop")
    m = manifest(datasets / "token_hop")
    hosts = marker_hosts(lang, split(datasets / "token_hop", "train"), m.marker_ids)
    assert hosts and not hosts & set(m.marker_ids.values())
    own = placement(lang, split(datasets / "token_hop"), m.marker_ids, hosts)
    foreign = placement(lang, split(datasets / "no_hop"), m.marker_ids, hosts)
    assert own.mean() > 0.9 and len(foreign) > 0 and foreign.mean() < own.mean() - 0.3
    prompts, continuations = echo(split(datasets / "token_hop"))
    rows = rows_by(production_rows(lang, prompts, continuations, split(datasets / "token_hop"), m.marker_ids, None,
                                   hosts=hosts))
    assert rows[("production_marker_placement", "generated")]["value"] == pytest.approx(100 * own.mean())
    assert marker_hosts(get_language("partial_reverse"), [[1, 2]], {"🅁": 9}) == frozenset()  # no marker in it
