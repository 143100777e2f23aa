"""Backpack: fused α·senses equals the materialised sum; contextualisation and sense APIs."""

from __future__ import annotations

import pytest
import torch

from impossible_lms.errors import ILMError
from impossible_lms.models import BackpackForCausalLM, build_model, model_config

V = 90


@pytest.fixture(scope="module")
def model() -> BackpackForCausalLM:
    torch.manual_seed(0)
    return build_model(model_config("tiny-backpack", vocab_size=V)).eval()


def ids(b=2, t=10, seed=1):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


def test_fused_kernel_equals_materialised_alpha(model):
    x = ids()
    fused = model(x)
    explicit = model(x, output_contextualization=True)
    assert fused.contextualization is None
    torch.testing.assert_close(fused.logits, explicit.logits, atol=2e-5, rtol=1e-5)
    # and the materialised form is literally Σ_k Σ_j α_k[t, j] · sense_k(x_j), written as loops
    alpha, senses = explicit.contextualization, model.senses(x)
    b, t = 1, 7
    out = sum(alpha[b, k, t, j] * senses[b, j, k] for k in range(senses.shape[2]) for j in range(t + 1))
    torch.testing.assert_close(model.output_logits(out), explicit.logits[b, t], atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("attention", ["eager", "sdpa", "math"])
def test_backends_agree(attention):
    torch.manual_seed(0)
    m = build_model(model_config("tiny-backpack", vocab_size=V, attention=attention)).eval()
    torch.manual_seed(0)
    ref = build_model(model_config("tiny-backpack", vocab_size=V, attention="eager")).eval()
    torch.testing.assert_close(m(ids()).logits, ref(ids(), output_contextualization=True).logits, atol=2e-5, rtol=1e-5)


def test_contextualization_is_causal_and_normalised(model):
    alpha = model.contextualization(ids())
    assert alpha.shape == (2, 4, 10, 10)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(2, 4, 10))
    assert torch.all(alpha.triu(1) == 0) and torch.all(alpha >= 0)


def test_custom_contextualization(model):
    x = ids()
    alpha = model.contextualization(x)
    torch.testing.assert_close(model.run_with_contextualization(x, alpha).logits, model(x).logits, atol=2e-5, rtol=1e-5)
    # α = identity: every position outputs the sum of its own senses
    eye = torch.eye(10).expand(2, 4, 10, 10)
    own = model.senses(x).sum(2)
    torch.testing.assert_close(model.run_with_contextualization(x, eye).logits, model.output_logits(own))
    with pytest.raises(ILMError, match="contextualization must have shape"):
        model.run_with_contextualization(x, alpha[:, :2])


def test_padding_invariance(model):
    a, b = ids(1, 10, seed=3)[0], ids(1, 6, seed=4)[0]
    batch = torch.zeros(2, 10, dtype=torch.long)
    mask = torch.zeros(2, 10, dtype=torch.long)
    batch[0], mask[0] = a, 1
    batch[1, :6], mask[1, :6] = b, 1
    out = model(batch, attention_mask=mask).logits
    torch.testing.assert_close(out[1, :6], model(b[None]).logits[0], atol=2e-5, rtol=1e-5)


def test_sense_top_tokens_read_through_output_embedding(model):
    token = 17
    top = model.sense_top_tokens(token, top=5)
    assert len(top) == 4 and all(len(t) == 5 for t in top)
    scores = model.sense_vectors(token) @ model.transformer.wte.weight[:V].T
    assert top == scores.topk(5, dim=-1).indices.tolist()
    assert all(t < V for row in model.sense_top_tokens(token, top=V) for t in row)


def test_scale_and_replace_senses(model):
    token = 23
    x = torch.tensor([[token, 5, token]])
    base = model(x).logits
    original = model.sense_vectors(token)
    try:
        model.scale_senses(token, 2.0)
        torch.testing.assert_close(model.sense_vectors(token), 2 * original)
        # position 0 attends only to itself: its output (and logits) double
        torch.testing.assert_close(model(x).logits[0, 0], 2 * base[0, 0], atol=1e-5, rtol=1e-5)
        model.scale_senses(token, [1.0, 0.0, 1.0, 1.0])
        assert torch.all(model.sense_vectors(token)[1] == 0)
        model.set_sense_vectors(token, torch.zeros(4, 64))
        torch.testing.assert_close(model(x).logits[0, 0], torch.zeros(V))
        with pytest.raises(ILMError, match="shape"):
            model.set_sense_vectors(token, torch.zeros(3, 64))
        with pytest.raises(ILMError, match="outside the vocabulary"):
            model.sense_vectors(V)
    finally:
        model.clear_sense_edits()
    torch.testing.assert_close(model(x).logits, base)


def test_backpack_rejects_exit_layers_and_bad_sense_count():
    with pytest.raises(ILMError, match="exit_layers"):
        model_config("tiny-backpack", exit_layers=[1])
    with pytest.raises(ILMError, match="num_senses"):
        model_config("tiny-backpack", num_senses=5)
