"""torch.compile readiness: one graph, no break (dynamo.explain), compiled steps match eager, fused AdamW on CPU."""

from __future__ import annotations

import pytest
import torch

from impossible_lms.models import build_model, model_config

V = 101
# The tiny presets run every architecture path of the full ones (same code, smaller sizes).
TINY = ["tiny-gpt2", "tiny-gpt2-nopos", "tiny-gpt2-rotary", "tiny-gpt2-alibi", "tiny-gpt2-exits", "tiny-backpack"]


def tiny(name: str, **kw):
    torch.manual_seed(0)
    return build_model(model_config(name, vocab_size=V, **kw))


def ids(b=2, t=16, seed=1):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


def explain(fn, *args):
    torch._dynamo.reset()
    out = torch._dynamo.explain(fn)(*args)
    return out.graph_count, out.graph_break_count, [str(r.reason).splitlines()[0] for r in out.break_reasons]


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("return_logits", [True, False])  # False: the chunked head loss training runs
def test_training_forward_and_loss_is_one_graph(name, return_logits):
    model = tiny(name).train()
    fn = lambda x: model(input_ids=x, labels=x, output_exit_logits=True, return_logits=return_logits).loss  # noqa: E731
    assert explain(fn, ids()) == (1, 0, [])


@pytest.mark.parametrize("name", TINY)
def test_eval_forward_with_padding_is_one_graph(name):
    model = tiny(name).eval()
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 10:] = 0
    with torch.inference_mode():
        # the scorer's call (right padding, no mask) and a caller that passes the mask
        assert explain(lambda x: model(input_ids=x).logits, ids()) == (1, 0, [])
        assert explain(lambda x, m: model(input_ids=x, attention_mask=m).logits, ids(), mask) == (1, 0, [])


def test_padded_loss_ignores_pad_positions():
    model = tiny("tiny-gpt2").eval()
    x, mask = ids(), torch.ones(2, 16, dtype=torch.long)
    mask[1, 10:] = 0
    labels = x.masked_fill(mask == 0, -100)
    torch.testing.assert_close(model(x, attention_mask=mask, labels=x).loss, model(x, attention_mask=mask, labels=labels).loss)


@pytest.mark.parametrize("name", ["tiny-gpt2-alibi"])  # inductor compiles cost ~1 min each on CI cores
def test_compiled_training_steps_match_eager_with_fused_adamw(name):
    """Two AdamW(fused=True) steps on CPU, inductor-compiled against eager: the same losses and weights.

    The training call (``return_logits=False``): the chunked head loss's autograd Function compiles too."""
    results = []
    for compiled in (False, True):
        model = tiny(name, embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
        net = torch.compile(model, fullgraph=True) if compiled else model
        losses = []
        for step in range(2):
            x = ids(seed=step)
            loss = net(input_ids=x, labels=x, return_logits=False).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
        results.append((losses, model.transformer.wte.weight.detach().clone()))
    torch._dynamo.reset()
    (eager_losses, eager_w), (comp_losses, comp_w) = results
    assert comp_losses == pytest.approx(eager_losses, abs=1e-4)
    torch.testing.assert_close(comp_w, eager_w, atol=1e-5, rtol=1e-4)
