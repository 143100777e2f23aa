"""Geometric (stick-breaking) attention: the weights, their hand-written backward, and the model option."""

from __future__ import annotations

import pytest
import torch

from impossible_lms.errors import ILMError
from impossible_lms.models import build_model, model_config
from impossible_lms.models.attention import AttnMask, attend
from impossible_lms.models.geometric import stick_breaking, stick_breaking_reference

V = 61


def causal(scores: torch.Tensor) -> torch.Tensor:
    T = scores.shape[-1]
    return scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))


def walk_weights(z: torch.Tensor) -> torch.Tensor:
    """The definition, one query and key at a time: stop at key j with σ(z_ij) after passing i..j+1."""
    T = z.shape[-1]
    out = torch.zeros_like(z)
    p = torch.sigmoid(z)
    for i in range(T):
        passed = torch.ones_like(z[..., i, 0])
        for j in range(i, -1, -1):  # the query's own key first, then further back
            out[..., i, j] = p[..., i, j] * passed
            passed = passed * (1 - p[..., i, j])
    return out


def test_weights_follow_the_stick_breaking_definition():
    z = torch.randn(2, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    torch.testing.assert_close(stick_breaking(causal(z)), walk_weights(z), atol=1e-12, rtol=1e-10)


def test_hidden_keys_take_no_weight_and_rows_sum_to_at_most_one():
    z = torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(1)) * 5
    w = stick_breaking(causal(z))
    assert torch.all(w.triu(1) == 0)
    assert torch.all(w.sum(-1) <= 1 + 1e-6) and torch.all(w >= 0)


def test_a_sure_stop_at_the_query_takes_all_the_weight():
    z = torch.zeros(1, 5, 5)
    z[0, 4, 4] = 50.0  # σ ≈ 1 at the query's own key: the walk ends there
    w = stick_breaking(causal(z))
    torch.testing.assert_close(w[0, 4], torch.tensor([0.0, 0, 0, 0, 1]), atol=1e-6, rtol=0)


def test_extreme_scores_stay_finite_in_fp32_and_bf16():
    z = torch.tensor([[-1e4, 3e3, -20.0, 1e4, 0.0]])
    for dtype in (torch.float32, torch.bfloat16):
        s = z.to(dtype).detach().requires_grad_()
        w = stick_breaking(s)
        w.sum().backward()
        assert torch.isfinite(w.float()).all() and torch.isfinite(s.grad.float()).all()


def test_backward_passes_gradcheck_in_fp64():
    z = torch.randn(2, 2, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: stick_breaking(causal(s)), (z,), eps=1e-6, atol=1e-8)


def test_backward_equals_autograd_through_the_log_space_formula():
    z = torch.randn(3, 7, 7, generator=torch.Generator().manual_seed(3), requires_grad=True)
    g = torch.randn(3, 7, 7, generator=torch.Generator().manual_seed(4))
    (ours,) = torch.autograd.grad((stick_breaking(causal(z)) * g).sum(), z)
    (ref,) = torch.autograd.grad((stick_breaking_reference(causal(z)) * g).sum(), z)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_attend_geometric_uses_the_mask_and_ignores_the_backend():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 6, 4) for _ in range(3))
    mask = AttnMask(6, 6, document_ids=torch.tensor([[0, 0, 0, 1, 1, 1]] * 2))
    outs = [attend(b, q, k, v, mask, scale=0.5, kind="geometric") for b in ("eager", "math", "sdpa")]
    scores = (q * 0.5) @ k.transpose(-1, -2) + mask.bias(q.device, torch.float32)
    expected = walk_weights(scores.masked_fill(torch.isinf(scores), -1e9)) @ v
    for out in outs:
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def tiny(name="tiny-gpt2-geometric", **kw):
    torch.manual_seed(0)
    return build_model(model_config(name, vocab_size=V, **kw))


def test_the_preset_differs_from_softmax_with_the_same_weights():
    geo, soft = tiny(), tiny("tiny-gpt2")
    soft.load_state_dict(geo.state_dict())
    x = torch.randint(0, V, (2, 10), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert not torch.allclose(geo.eval()(x).logits, soft.eval()(x).logits, atol=1e-3)


def test_geometric_model_learns_a_repeating_sequence():
    model = tiny(embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0).train()
    x = torch.arange(12).repeat(4, 2)[:, :20] % V
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_kv_cache_matches_the_full_forward():
    model = tiny().eval()
    x = torch.randint(0, V, (1, 9), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        full = model(x).logits[:, -1]
        past = model(x[:, :-1], use_cache=True).cache
        step = model(x[:, -1:], cache=past).logits[:, -1]
    torch.testing.assert_close(step, full, atol=1e-5, rtol=1e-5)


def test_saved_model_reloads_as_geometric(tmp_path):
    from transformers import AutoModelForCausalLM

    model = tiny().eval()
    model.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert again.config.attention_kind == "geometric"
    x = torch.randint(0, V, (1, 7), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        torch.testing.assert_close(again(x).logits, model(x).logits)


@pytest.mark.parametrize("kw, message", [
    ({"attention_kind": "hyperbolic"}, "attention_kind 'hyperbolic' is not one of softmax, geometric"),
    ({"attention": "sdpa"}, "geometric attention has only an explicit (eager) form"),
])
def test_config_errors(kw, message):
    with pytest.raises(ILMError, match=message.replace("(", r"\(").replace(")", r"\)")):
        model_config("tiny-gpt2-geometric", vocab_size=V, **kw)
