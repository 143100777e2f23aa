"""The scorer's fast path against a plain reference: one full forward, a full-vocabulary log_softmax.

The scorer runs our models' vocabulary projection only where log-probs are read
(never at pads; marker surprisal at its one token, from the shortest prefix),
chunk by chunk. Every number must equal what the plain computation gives, for
every model family (ours with and without exit heads, Backpacks and Hugging Face
models through their whole forward), with padding and varied lengths.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from impossible_lms.errors import ILMError
from impossible_lms.evaluation import evaluate
from impossible_lms.evaluation.data import EvalData
from impossible_lms.evaluation.metrics import SURPRISAL_MAX_TOKENS, marker_pairs
from impossible_lms.evaluation import scoring
from impossible_lms.evaluation.scoring import Cells, LinearHead, ScoreOptions, score_cells, score_sequences
from impossible_lms.evaluation.toy import EOS, make_toy_data, make_toy_run, tiny_gpt2

VOCAB = 300  # not a multiple of 64: our models pad the embedding table, and the pad rows must not count


def build(name: str, seed: int = 0, **overrides):
    from impossible_lms.models import build_model, model_config

    torch.manual_seed(seed)
    return build_model(model_config(name, vocab_size=VOCAB, **overrides)).eval()


@pytest.fixture(scope="module")
def seqs():
    rng = np.random.default_rng(5)
    return [rng.integers(0, VOCAB, rng.integers(1, 40)).tolist() for _ in range(30)]


def reference(model, seq, exit_layer=None, prefix=()):
    """log p(seq[t] | prefix + seq[:t]) from one unpadded forward of the whole sequence (float64 softmax)."""
    ids = torch.tensor([list(prefix) + list(seq)])
    with torch.no_grad():
        if exit_layer is None:
            logits = model(ids).logits[0]
        else:
            logits = model(ids, output_exit_logits=True).exit_logits[exit_layer][0]
    lp = torch.log_softmax(logits.double(), -1)
    n = len(prefix)
    got = [lp[n + t - 1, seq[t]].item() if n + t > 0 else math.nan for t in range(len(seq))]
    return np.array(got)


MODELS = {
    "ours": lambda: build("tiny-gpt2"),
    "ours-rotary": lambda: build("tiny-gpt2-rotary"),
    "backpack": lambda: build("tiny-backpack"),
    "hugging-face": lambda: tiny_gpt2(vocab_size=VOCAB, seed=3),
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("budget", [40, 100_000])  # small batches and one padded batch
def test_every_token_equals_a_full_log_softmax_of_one_unpadded_forward(name, budget, seqs):
    model = MODELS[name]()
    got = score_sequences(model, seqs, ScoreOptions(batch_tokens=budget))[None]
    for seq, g in zip(seqs, got):
        assert g.dtype == np.float32 and len(g) == len(seq)
        np.testing.assert_allclose(g, reference(model, seq), rtol=1e-5, atol=1e-5, equal_nan=True)


def test_exit_heads_equal_their_reference_too(seqs):
    model = build("tiny-gpt2-exits")
    got = score_sequences(model, seqs, ScoreOptions(batch_tokens=60))
    assert set(got) == {None, 1}
    for seq, final, exit1 in zip(seqs, got[None], got[1]):
        np.testing.assert_allclose(final, reference(model, seq), rtol=1e-5, atol=1e-5, equal_nan=True)
        np.testing.assert_allclose(exit1, reference(model, seq, exit_layer=1), rtol=1e-5, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("vocab", [32, None])
@pytest.mark.parametrize("name", ["ours", "ours-exits"])
def test_the_blocked_head_equals_a_full_log_softmax_across_blocks(name, vocab, seqs, monkeypatch):
    """The CPU's head sums exp over blocks of words; with blocks of 32 of 300 words (the last one
    ragged) and 7 positions at a time, every head's numbers are still the plain ones, and so are
    they by the GPU's way (vocab None: each chunk's full logits and their log-softmax)."""
    monkeypatch.setitem(scoring.HEAD_CHUNKS, "cpu", scoring.HeadChunks(rows=7, vocab=vocab))
    model = build("tiny-gpt2-exits" if name == "ours-exits" else "tiny-gpt2")
    got = score_sequences(model, seqs, ScoreOptions(batch_tokens=60))
    for head, arrays in got.items():
        for seq, g in zip(seqs, arrays):
            np.testing.assert_allclose(g, reference(model, seq, exit_layer=head), rtol=1e-5, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("gap", [0.0, 50.0, 200.0])
def test_a_logit_far_above_the_first_blocks_maximum_is_still_exact(gap):
    """The blocks are shifted by the first block's maximum: a later logit 50 above it is summed
    as is (exp(50) is finite), one 200 above overflows and its row is taken from its full logits."""
    torch.manual_seed(0)
    weight = torch.randn(100, 8)
    x = torch.randn(5, 8)
    weight[90] = x[2] / x[2].norm() ** 2 * gap  # word 90's logit at row 2 is `gap` (the others are ~N(0, 8))
    targets = torch.tensor([3, 90, 90, 17, 99])
    got = scoring._blocked_target_logprobs(LinearHead(weight), x, targets, block=16)
    want = torch.log_softmax((x @ weight.T).double(), dim=1).gather(1, targets[:, None])[:, 0]
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-5)


def test_cells_score_any_continuation_of_a_context(seqs):
    """log p(t | seq[:p]) for a target t that is not seq[p], or for p = len(seq), is the score of
    the sequence seq[:p] + [t] at p: one pass over a context serves every continuation."""
    model = build("tiny-gpt2")
    seq = next(s for s in seqs if len(s) > 10)
    positions = np.array([0, 3, 3, 7, len(seq)])
    targets = np.array([5, seq[3], (seq[3] + 1) % VOCAB, 42, 7])
    got = score_cells(model, [seq], [Cells(positions, targets)])[None][0]
    assert np.isnan(got[0])  # nothing precedes position 0 without EOS conditioning
    for p, t, g in zip(positions[1:], targets[1:], got[1:]):
        assert g == pytest.approx(reference(model, seq[:p] + [int(t)])[p], abs=1e-5)
    with pytest.raises(ILMError, match="within it"):
        score_cells(model, [seq], [Cells(np.array([len(seq) + 1]), np.array([1]))])


@pytest.mark.parametrize("eos", [False, True])
def test_needed_masks_compute_only_those_tokens_and_leave_the_rest_nan(eos, seqs):
    model = build("tiny-gpt2")
    rng = np.random.default_rng(1)
    masks = [rng.random(len(s)) < 0.3 for s in seqs]
    masks[3] = None  # every token of this one
    masks[4] = np.zeros(len(seqs[4]), bool)  # none of this one
    options = ScoreOptions(batch_tokens=80, condition_on_eos=eos, eos_id=EOS)
    got = score_sequences(model, seqs, options, needed=masks)[None]
    for seq, m, g in zip(seqs, masks, got):
        want = reference(model, seq, prefix=[EOS] if eos else ())
        if m is not None:
            want = np.where(m, want, np.nan)
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-5, equal_nan=True)
    with pytest.raises(ILMError, match="one mask"):
        score_sequences(model, seqs[:2], needed=[None])
    with pytest.raises(ILMError, match="as long as the sequence"):
        score_sequences(model, seqs[:1], needed=[np.ones(len(seqs[0]) + 1, bool)])


def test_the_vocabulary_projection_sees_only_the_rows_asked_for(seqs, head_rows):
    """The point of the fast path: no pad and no unread position goes through the head."""
    model = build("tiny-gpt2")
    rows = head_rows
    score_sequences(model, seqs, ScoreOptions(batch_tokens=100_000))  # one batch padded to the longest
    assert sum(rows) == sum(len(s) - 1 for s in seqs)
    rows.clear()
    score_sequences(model, seqs, needed=[np.arange(len(s)) == len(s) - 1 for s in seqs])
    assert sum(rows) == sum(len(s) > 1 for s in seqs)  # the last token of each (a 1-token one has none)


# -- evaluate() end to end: perplexity and marker surprisal by the plain recipe ------------------


def plain_metrics(model, data: EvalData) -> dict[tuple[str, str], float]:
    """The reference's recipe, one sentence at a time: perplexity = geometric mean over sentences
    of exp(mean NLL after the first token); marker surprisal (bits) from the full sentence + EOS."""
    out = {}
    for subset in ("test_affected", "test_unaffected", "dev"):
        logs = [-np.nanmean(reference(model, s)) for s in data.sample(subset) if len(s) > 1]
        out["perplexity", subset] = math.exp(np.mean(logs))
    pairs = marker_pairs(data.sample("test_affected", SURPRISAL_MAX_TOKENS), data.marker_ids.values(), data.eos_id)
    marker, diff = [], []
    for i, w, wo in zip(pairs.index, pairs.with_marker, pairs.without_marker):
        if i == 0:
            continue
        m = -reference(model, w)[i] / math.log(2)
        marker.append(m)
        diff.append(-reference(model, wo)[i] / math.log(2) - m)
    out["marker_surprisal", "test_affected"] = float(np.mean(marker))
    out["surprisal_difference", "test_affected"] = float(np.mean(diff))
    return out


@pytest.mark.parametrize("batch_tokens", [48, 4096])
def test_evaluate_gives_the_plain_recipes_numbers(tmp_path_factory, batch_tokens):
    from impossible_lms.models import load_model

    root = tmp_path_factory.mktemp("fast")
    data = make_toy_data(root / "data", per_genre=12, min_len=2, max_len=30, seed=4)
    run = make_toy_run(root / "run", steps=(100,), data=data)
    model = load_model(run / "checkpoint-100")
    assert type(model).__name__ == "ILMForCausalLM"  # the fast path, not the whole forward
    df = evaluate(run, data, metrics=["perplexity", "marker_surprisal"], batch_tokens=batch_tokens)
    got = df.set_index(["metric", "subset"])["value"].to_dict()
    want = plain_metrics(model, EvalData(data, 1000, 0))
    assert set(got) == set(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-5), key
