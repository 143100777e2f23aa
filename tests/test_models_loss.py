"""The chunked head loss (models/loss.py) against the reference formula (gpt2.lm_loss over all logits).

The reference, written out here independently of both: logits = h · Wᵀ cut to
the real vocabulary, upcast to fp32, position t scored against label t + 1,
-100 and padding ignored, mean over the positions that count.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch
import torch.nn.functional as F

from impossible_lms.errors import ILMError
from impossible_lms.models import build_model, model_config
from impossible_lms.models import loss as loss_mod
from impossible_lms.models.config import CROSS_ENTROPIES
from impossible_lms.models.loss import head_cross_entropy, resolve_backend

B, T, C, V, PADDED = 3, 7, 16, 53, 64


def reference(h, w, labels, mask=None, vocab=V):
    logits = F.linear(h, w)[..., :vocab].float()
    if mask is not None:
        labels = labels.masked_fill(mask == 0, -100)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)


def inputs(t=T, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(B, t, C, generator=g)
    w = torch.randn(PADDED, C, generator=g) * 0.5
    labels = torch.randint(0, V, (B, t), generator=g)
    if t > 3:
        labels[0, 2] = -100
    mask = torch.ones(B, t, dtype=torch.long)
    mask[2, t // 2:] = 0  # right padding
    return h, w, labels, mask


def loss_and_grads(fn, h, w, autocast=False):
    """autocast: False, True (bf16) or a dtype."""
    h, w = h.clone().requires_grad_(), w.clone().requires_grad_()
    dtype = autocast if isinstance(autocast, torch.dtype) else torch.bfloat16
    with torch.autocast("cpu", dtype=dtype, enabled=autocast is not False):
        loss = fn(h, w)
    loss.backward()
    return loss.detach(), h.grad, w.grad


# chunks of 1 row, of sizes that do not divide B·T = 21, and one chunk of everything
@pytest.mark.parametrize("rows", [1, 4, 5, 21, 1000])
def test_loss_and_gradients_equal_the_reference_in_fp32(rows):
    h, w, labels, mask = inputs()
    ref = loss_and_grads(lambda h, w: reference(h, w, labels, mask), h, w)
    new = loss_and_grads(lambda h, w: head_cross_entropy(h, w, labels, mask, vocab=V, chunk_rows=rows), h, w)
    for a, b in zip(new, ref):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert torch.all(new[2][V:] == 0)  # padding rows of the vocabulary get no gradient


@pytest.mark.parametrize("rows", [4, 1000])
def test_under_bf16_autocast_the_logits_are_bf16_and_the_cross_entropy_fp32_as_the_reference(rows):
    h, w, labels, mask = inputs()
    ref = loss_and_grads(lambda h, w: reference(h, w, labels, mask), h, w, autocast=True)
    new = loss_and_grads(lambda h, w: head_cross_entropy(h, w, labels, mask, vocab=V, chunk_rows=rows), h, w,
                         autocast=True)
    fp32 = loss_and_grads(lambda h, w: reference(h, w, labels, mask), h, w)
    assert new[0].dtype == torch.float32
    torch.testing.assert_close(new[0], ref[0], atol=1e-6, rtol=1e-6)  # the same bf16 logits, the same fp32 CE
    assert float((ref[0] - fp32[0]).abs()) > 1e-4  # ...which differ from fp32 logits: autocast really ran
    # The gradients: both products are bf16 (2^-9 relative rounding), autograd's of (p − 1{t})/count
    # over all rows, ours of p − 1{t} per chunk, summed and divided by count in fp32: a few bf16
    # roundings apart, and not the fp32 gradients (so not a hidden fp32 path)
    for a, b, exact in zip(new[1:], ref[1:], fp32[1:]):
        torch.testing.assert_close(a, b, atol=2e-3 * float(b.abs().max()), rtol=1e-2)
        assert not torch.allclose(a, exact, atol=1e-6, rtol=1e-5)


def test_under_fp16_autocast_small_gradients_survive_as_under_a_loss_scaler():
    """fp16 + GradScaler: the reference casts (p − 1{t})/count to fp16 only after the loss scale multiplied it.

    Word 0 is never a target and always unlikely (p ≈ 2e-5), so its whole gradient row is made of
    p/count ≈ 1e-8, below fp16's smallest number (6e-8): dividing before the cast would zero it."""
    g = torch.Generator().manual_seed(0)
    n, vocab = 2048, 256
    h = torch.randn(1, n, 16, generator=g)
    w = torch.randn(vocab, 16, generator=g) * 0.25
    w[0] = 0.0
    h[..., 0], w[0, 0] = 2.0, -2.5  # word 0's logit: -5 everywhere
    labels = torch.randint(1, vocab, (1, n), generator=g)
    probs = F.linear(h, w)[0, :-1].softmax(-1)[:, 0]
    divided_first = (probs / (n - 1)).half().float() @ h[0, :-1]  # word 0's row, divided before the cast
    scale = 2.0**16
    ref = loss_and_grads(lambda h, w: scale * reference(h, w, labels, vocab=vocab), h, w, autocast=torch.float16)
    new = loss_and_grads(lambda h, w: head_cross_entropy(h, w, labels, chunk_rows=300), h, w, autocast=torch.float16)
    exact = loss_and_grads(lambda h, w: reference(h, w, labels, vocab=vocab), h.double(), w.double())
    torch.testing.assert_close(new[0], ref[0] / scale, atol=1e-5, rtol=1e-5)
    for a, b in zip(new[1:], ref[1:]):
        torch.testing.assert_close(a, b / scale, atol=2e-3 * float(b.abs().max() / scale), rtol=2e-2)
    row, exact_row = new[2][0], exact[2][0].float()
    assert float((row - exact_row).norm() / exact_row.norm()) < 1e-2
    assert float((divided_first - exact_row).norm() / exact_row.norm()) > 0.1  # what the test tells apart


def test_one_token_sequences_and_all_ignored_labels_give_nan_and_zero_gradients_as_the_reference():
    for h, w, labels, mask in (inputs(t=1), inputs()[:2] + (torch.full((B, T), -100), None)):
        ref = loss_and_grads(lambda h, w: reference(h, w, labels, mask), h, w)
        new = loss_and_grads(lambda h, w: head_cross_entropy(h, w, labels, mask, vocab=V, chunk_rows=2), h, w)
        assert torch.isnan(ref[0]) and torch.isnan(new[0])
        for a, b in zip(new[1:], ref[1:]):
            assert torch.equal(a, torch.zeros_like(a)) and torch.equal(b, torch.zeros_like(b))


def test_without_gradients_the_same_loss():
    h, w, labels, mask = inputs()
    with torch.no_grad():
        torch.testing.assert_close(head_cross_entropy(h, w, labels, mask, vocab=V, chunk_rows=3),
                                   reference(h, w, labels, mask), atol=1e-6, rtol=1e-6)


def test_a_scaled_loss_scales_the_gradients_and_a_second_backward_is_refused():
    h, w, labels, mask = inputs()
    ref = loss_and_grads(lambda h, w: 3.0 * reference(h, w, labels, mask), h, w)
    new = loss_and_grads(lambda h, w: 3.0 * head_cross_entropy(h, w, labels, mask, vocab=V, chunk_rows=4), h, w)
    for a, b in zip(new, ref):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    hh = h.clone().requires_grad_()
    loss = head_cross_entropy(hh, w, labels, vocab=V, chunk_rows=4)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def largest_allocation(fn) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(e.nbytes() for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")


def test_no_tensor_of_all_logits_is_ever_allocated():
    g = torch.Generator().manual_seed(0)
    n, vocab = 512, 1024
    h = torch.randn(1, n, 32, generator=g, requires_grad=True)
    w = torch.randn(vocab, 32, generator=g, requires_grad=True)
    labels = torch.randint(0, vocab, (1, n), generator=g)
    all_logits = n * vocab * 4
    assert largest_allocation(lambda: reference(h, w, labels, vocab=vocab).backward()) >= all_logits  # the test can fail
    new = largest_allocation(lambda: head_cross_entropy(h, w, labels, chunk_rows=64).backward())
    assert new <= max(64 * vocab * 4, w.numel() * 4)  # one chunk's logits, or the weight's gradient


# ------------------------------------------------------------------ the models' training path


def tiny(name, **kw):
    torch.manual_seed(0)
    return build_model(model_config(name, vocab_size=101, embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0, **kw))


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-gpt2-exits", "tiny-backpack"])
@pytest.mark.parametrize("autocast", [False, True])
def test_model_losses_and_gradients_without_logits_equal_those_from_logits(name, autocast, monkeypatch):
    monkeypatch.setattr(loss_mod, "CHUNK_ELEMENTS", 7 * 101)  # 7-row chunks: 5 of them, the last short
    x = torch.randint(0, 101, (2, 16), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 11:] = 0
    results = []
    for return_logits in (True, False):
        model = tiny(name).train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(x, attention_mask=mask, labels=x, output_exit_logits=True, return_logits=return_logits)
        total = out.loss + (out.exit_loss if out.exit_loss is not None else 0)
        total.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        results.append((out, grads))
    (ref, ref_grads), (new, new_grads) = results
    assert new.logits is None and new.exit_logits is None
    torch.testing.assert_close(new.loss, ref.loss, atol=1e-6, rtol=1e-6)
    assert (new.exit_losses is None) == (ref.exit_losses is None) == (name != "tiny-gpt2-exits")
    for layer, value in (ref.exit_losses or {}).items():
        torch.testing.assert_close(new.exit_losses[layer], value, atol=1e-6, rtol=1e-6)
    assert new_grads.keys() == ref_grads.keys()
    tol = 2e-2 if autocast else 1e-5  # bf16: dL/dW rounded per chunk (see above), then through the trunk
    for n, g in ref_grads.items():
        torch.testing.assert_close(new_grads[n], g, atol=tol * float(g.abs().max()) + 1e-7, rtol=0, msg=n)


def test_return_logits_false_needs_labels():
    with pytest.raises(ValueError, match="needs labels|without labels"):
        tiny("tiny-gpt2")(torch.zeros(1, 4, dtype=torch.long), return_logits=False)


# ------------------------------------------------------------------ backends


def test_backend_names_and_resolution():
    assert set(CROSS_ENTROPIES) == {"auto", *loss_mod.BACKENDS}
    assert resolve_backend("auto", torch.device("cpu")) == "chunked"
    with pytest.raises(ILMError, match="liger needs the liger-kernel package and CUDA"):
        resolve_backend("liger", torch.device("cpu"))
    with pytest.raises(ILMError, match="cross_entropy 'fused' is not one of auto, chunked, liger"):
        model_config("tiny-gpt2", cross_entropy="fused")


def fake_liger(monkeypatch) -> list[dict]:
    """A stand-in for ``liger_kernel.transformers.functional`` that checks liger's call contract.

    liger_fused_linear_cross_entropy(input [N, H], weight [V, H], target [N] int64, bias=None, ...,
    ignore_index=-100, ..., reduction="mean") → the mean loss; input and weight contiguous."""
    calls: list[dict] = []

    def liger_fused_linear_cross_entropy(input, weight, target, bias=None, ce_weight=None, ignore_index=-100,
                                         lse_square_scale=0.0, label_smoothing=0.0, reduction="mean", **rest):
        assert input.ndim == 2 and weight.ndim == 2 and input.shape[1] == weight.shape[1]
        assert input.is_contiguous() and weight.is_contiguous()
        assert target.dtype == torch.int64 and target.shape == (input.shape[0],)
        assert bias is None and ce_weight is None and not rest
        calls.append({"vocab": weight.shape[0], "ignore_index": ignore_index, "reduction": reduction})
        return F.cross_entropy(F.linear(input, weight).float(), target, ignore_index=ignore_index,
                               reduction=reduction)

    functional = types.ModuleType("liger_kernel.transformers.functional")
    functional.liger_fused_linear_cross_entropy = liger_fused_linear_cross_entropy
    for name in ("liger_kernel", "liger_kernel.transformers"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers.functional", functional)
    monkeypatch.setattr(sys.modules["liger_kernel.transformers"], "functional", functional, raising=False)
    return calls


def test_liger_is_called_by_its_contract_and_gives_the_reference_loss(monkeypatch):
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers.functional", None)  # import raises ImportError
    assert not loss_mod._liger_installed()
    calls = fake_liger(monkeypatch)
    assert loss_mod._liger_installed()  # the import check finds it
    # and "auto" takes it on CUDA only
    monkeypatch.setattr(loss_mod, "_liger_installed", lambda: True)
    assert resolve_backend("auto", torch.device("cuda")) == "liger"
    assert resolve_backend("auto", torch.device("cpu")) == "chunked"
    monkeypatch.setitem(loss_mod.BACKENDS, "liger", loss_mod.LossBackend(loss_mod._liger, lambda device: True))
    h, w, labels, mask = inputs()
    ref = loss_and_grads(lambda h, w: reference(h, w, labels, mask), h, w)
    new = loss_and_grads(lambda h, w: head_cross_entropy(h, w, labels, mask, vocab=V, backend="liger"), h, w)
    assert calls == [{"vocab": V, "ignore_index": -100, "reduction": "mean"}]  # padding rows cut off
    for a, b in zip(new, ref):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    model = tiny("tiny-gpt2", cross_entropy="liger")
    x = torch.randint(0, 101, (2, 8))
    torch.testing.assert_close(model(x, labels=x, return_logits=False).loss, model(x, labels=x).loss)
    assert len(calls) == 2
