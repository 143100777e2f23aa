"""Scoring rules: exact per-token log-probs, first token unscored, EOS conditioning, batch/padding invariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from impossible_lms.errors import ILMError
from impossible_lms.evaluation.scoring import ScoreOptions, score_sequences, token_batches
from impossible_lms.evaluation.toy import EOS, tiny_gpt2

SEQS = [[3, 7, 1, 9, 4], [5, 2], [8, 8, 8, 1, 2, 3, 4, 5, 6, 0, 11], [12], [30, 31, 32]]


@pytest.fixture(scope="module")
def model():
    return tiny_gpt2(seed=1)


def loop_logprobs(model, seq, context=()):
    """log p(seq[t] | context + seq[:t]) for each t with a non-empty context, one forward per token."""
    out = []
    for t in range(len(seq)):
        prefix = list(context) + seq[:t]
        if not prefix:
            out.append(float("nan"))
            continue
        with torch.no_grad():
            logits = model(torch.tensor([prefix])).logits[0, -1].double()
        out.append(float(torch.log_softmax(logits, -1)[seq[t]]))
    return np.array(out)


def test_matches_explicit_loop_and_first_token_is_unscored(model):
    scored = score_sequences(model, SEQS)[None]
    for seq, got in zip(SEQS, scored):
        want = loop_logprobs(model, seq)
        assert len(got) == len(seq) and got.dtype == np.float32
        assert math.isnan(got[0])  # no context: unscored
        np.testing.assert_allclose(got[1:], want[1:], atol=1e-5)


def test_condition_on_eos_scores_every_token_given_eos(model):
    scored = score_sequences(model, SEQS, ScoreOptions(condition_on_eos=True, eos_id=EOS))[None]
    for seq, got in zip(SEQS, scored):
        want = loop_logprobs(model, seq, context=[EOS])
        assert len(got) == len(seq) and not np.isnan(got).any()
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_condition_on_eos_needs_an_eos_id(model):
    with pytest.raises(ILMError, match="EOS"):
        score_sequences(model, SEQS, ScoreOptions(condition_on_eos=True))


@pytest.mark.parametrize("budget", [1, 7, 16, 40, 10_000])
def test_same_results_for_any_batch_size_and_padding(model, budget):
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 37, rng.integers(1, 30)).tolist() for _ in range(25)]
    alone = score_sequences(model, seqs, ScoreOptions(batch_tokens=1))[None]
    batched = score_sequences(model, seqs, ScoreOptions(batch_tokens=budget))[None]
    # padding next to a much longer sequence changes nothing either
    padded = score_sequences(model, seqs + [[1] * 60], ScoreOptions(batch_tokens=10_000))[None][:-1]
    for a, b, c in zip(alone, batched, padded):
        np.testing.assert_allclose(a, b, atol=1e-4, equal_nan=True)
        np.testing.assert_allclose(a, c, atol=1e-4, equal_nan=True)


def test_token_batches_respect_the_budget_and_cover_every_index():
    lengths = [5, 1, 9, 3, 3, 12, 7]
    batches = list(token_batches(lengths, 12))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 12
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths, reverse=True)  # longest first: little padding
    assert batches[0] == [5]  # 12 tokens: alone


def test_log_softmax_is_float32_for_half_precision_models(model):
    half = tiny_gpt2(seed=1).to(torch.bfloat16)
    got = score_sequences(half, SEQS)[None]
    ref = score_sequences(model, SEQS)[None]
    for g, r in zip(got, ref):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, r, atol=0.1, equal_nan=True)  # bf16 weights, fp32 softmax


def test_sequences_longer_than_the_context_are_refused(model):
    with pytest.raises(ILMError, match="longer than the model's context of 64 tokens"):
        score_sequences(model, [[1] * 65])


def test_exit_heads_are_scored_per_layer():
    from impossible_lms.models import build_model, model_config

    torch.manual_seed(0)
    m = build_model(model_config("tiny-gpt2", vocab_size=40, exit_layers=[1])).eval()
    scored = score_sequences(m, SEQS)
    assert set(scored) == {None, 1}
    seq = SEQS[0]
    with torch.no_grad():
        exit_logits = m(torch.tensor([seq]), output_exit_logits=True).exit_logits[1][0].double()
    want = torch.log_softmax(exit_logits, -1)[torch.arange(len(seq) - 1), torch.tensor(seq[1:])].numpy()
    np.testing.assert_allclose(scored[1][0][1:], want, atol=1e-5)
    assert not np.allclose(scored[1][0][1:], scored[None][0][1:])


def test_too_long_sequences_can_be_skipped_as_nan(model):
    seqs = [[1, 2, 3], [1] * 65, [4, 5]]
    scored = score_sequences(model, seqs, ScoreOptions(too_long="skip"))[None]
    assert len(scored[1]) == 65 and np.isnan(scored[1]).all()
    np.testing.assert_allclose(scored[0], score_sequences(model, [seqs[0]])[None][0], equal_nan=True)
    assert not np.isnan(scored[2][1:]).any()
