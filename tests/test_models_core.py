"""GPT-2 variants: backends agree with the reference, positions, padding, packing, exits, cache."""

from __future__ import annotations

import pytest
import torch

from impossible_lms.errors import ILMError
from impossible_lms.models import build_model, model_config
from impossible_lms.models.attention import BACKENDS, AttnMask, alibi_slopes, attend, resolve_backend, rotary

V = 101  # not a multiple of 64: the padded rows exist
TINY = ["tiny-gpt2", "tiny-gpt2-nopos", "tiny-gpt2-rotary", "tiny-gpt2-alibi"]
CPU_BACKENDS = [b for b in BACKENDS if BACKENDS[b].available(torch.device("cpu"), torch.float32)]


def tiny(name: str, **kw):
    torch.manual_seed(0)
    return build_model(model_config(name, vocab_size=V, **kw)).eval()


def ids(b=2, t=12, seed=1):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


def reference_attention(q, k, v, scale, slopes=None, allowed=None):
    """Attention written out by hand, independent of AttnMask.bias."""
    T = q.shape[2]
    scores = torch.einsum("bhtd,bhsd->bhts", q, k) * scale
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    if slopes is not None:
        scores = scores - slopes[None, :, None, None] * (i - j).clamp(min=0)
    ok = (j <= i)[None, None] if allowed is None else allowed
    scores = scores.masked_fill(~ok, float("-inf"))
    return torch.softmax(scores, -1) @ v


# ------------------------------------------------------------------ attention


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("use_alibi", [False, True])
def test_backends_match_reference_attention(backend, use_alibi):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 9, 8) for _ in range(3))
    slopes = alibi_slopes(4) if use_alibi else None
    out = attend(backend, q, k, v, AttnMask(9, 9, alibi=slopes), scale=0.3)
    torch.testing.assert_close(out, reference_attention(q, k, v, 0.3, slopes), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backends_match_reference_with_documents_and_padding(backend):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 7, 4) for _ in range(3))
    docs = torch.tensor([[0, 0, 0, 1, 1, 2, 2], [5, 5, 5, 5, 5, 5, 5]])
    pad = torch.tensor([[1] * 7, [1, 1, 1, 1, 1, 0, 0]]).bool()
    i, j = torch.arange(7)[:, None], torch.arange(7)[None, :]
    allowed = (j <= i) & (docs[:, :, None] == docs[:, None, :]) & (pad[:, None, :] | (i == j))
    out = attend(backend, q, k, v, AttnMask(7, 7, key_padding=pad, document_ids=docs), scale=0.5)
    torch.testing.assert_close(out, reference_attention(q, k, v, 0.5, allowed=allowed[:, None]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_models_agree_across_backends(name, backend):
    x = ids()
    ref = tiny(name, attention="eager")(x).logits
    model = tiny(name, attention=backend)
    torch.testing.assert_close(model(x).logits, ref, atol=2e-5, rtol=1e-5)


def test_auto_backend_on_cpu_is_math_and_flash_is_refused():
    assert resolve_backend("auto", torch.device("cpu"), torch.float32) == "math"
    with pytest.raises(ILMError, match="flash_attn"):
        resolve_backend("flash_attn", torch.device("cpu"), torch.float32)


def test_alibi_slopes_are_the_published_sequence():
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0**-i for i in range(1, 9)]))
    assert alibi_slopes(6).tolist()[:4] == alibi_slopes(4).tolist()  # non-power of two: first 4, then extras


# ------------------------------------------------------------------ positions


def test_rotary_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(i, j):
        qi = rotary(q, torch.tensor([[i]]), 8, 10000.0)
        kj = rotary(k, torch.tensor([[j]]), 8, 10000.0)
        return float((qi * kj).sum())

    assert score(7, 3) == pytest.approx(score(20, 16), abs=1e-5)
    assert score(7, 3) != pytest.approx(score(7, 4), abs=1e-3)


def test_rotary_leaves_dims_beyond_rotary_dim_and_pairs_interleaved():
    x = torch.arange(16.0).view(1, 1, 1, 16)
    y = rotary(x, torch.tensor([[3]]), 8, 10000.0)
    assert torch.equal(y[..., 8:], x[..., 8:])
    # GPT-J style: dims (0, 1) form the first pair, rotated by angle 3 · 1
    c, s = torch.cos(torch.tensor(3.0)), torch.sin(torch.tensor(3.0))
    torch.testing.assert_close(y[0, 0, 0, :2], torch.stack((0 * c - 1 * s, 1 * c + 0 * s)))


def test_learned_and_none_differ_and_nopos_has_no_table():
    learned, nopos = tiny("tiny-gpt2"), tiny("tiny-gpt2-nopos")
    assert "transformer.wpe.weight" in learned.state_dict()
    assert not any("wpe" in k for k in nopos.state_dict())
    # Without positions a repeated token sees identical inputs whatever its index
    # (causal attention over identical tokens is uniform), so its logits repeat.
    same = torch.full((1, 6), 5)
    out = nopos(same).logits[0]
    torch.testing.assert_close(out[0].expand_as(out), out, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(learned(same).logits[0, 0], learned(same).logits[0, 5], atol=1e-3)


@pytest.mark.parametrize("name", ["tiny-gpt2-rotary", "tiny-gpt2-alibi", "tiny-gpt2-nopos"])
def test_relative_schemes_are_shift_invariant_for_a_single_document(name):
    """Rotary/ALiBi/no-pos depend only on relative positions: a prefix in its own document changes nothing."""
    model, x = tiny(name), ids(1, 8)
    prefix = torch.tensor([[7, 8, 9]])
    docs = torch.tensor([[0, 0, 0] + [1] * 8])
    packed = model(torch.cat((prefix, x), 1), document_ids=docs).logits[:, 3:]
    torch.testing.assert_close(packed, model(x).logits, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ padding, packing, vocab


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("side", ["right", "left"])
def test_padded_batch_equals_rows_alone(name, side):
    model = tiny(name)
    rows = [ids(1, 10, seed=2)[0], ids(1, 6, seed=3)[0]]
    T = 10
    batch = torch.zeros(2, T, dtype=torch.long)
    mask = torch.zeros(2, T, dtype=torch.long)
    for r, row in enumerate(rows):
        sl = slice(0, len(row)) if side == "right" else slice(T - len(row), T)
        batch[r, sl], mask[r, sl] = row, 1
    out = model(batch, attention_mask=mask).logits
    for r, row in enumerate(rows):
        sl = slice(0, len(row)) if side == "right" else slice(T - len(row), T)
        torch.testing.assert_close(out[r, sl], model(row[None]).logits[0], atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("name", TINY)
def test_packed_documents_equal_separate_sequences(name):
    model = tiny(name)
    a, b = ids(1, 5, seed=4), ids(1, 7, seed=5)
    docs = torch.tensor([[0] * 5 + [1] * 7])
    out = model(torch.cat((a, b), 1), document_ids=docs).logits
    torch.testing.assert_close(out[:, :5], model(a).logits, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(out[:, 5:], model(b).logits, atol=2e-5, rtol=1e-5)


def test_padded_vocabulary_is_never_predicted():
    model = tiny("tiny-gpt2")
    assert model.transformer.wte.weight.shape[0] == 128
    with torch.no_grad():  # make padding rows as attractive as possible
        model.transformer.wte.weight[V:] = 100.0
    logits = model(ids()).logits
    assert logits.shape[-1] == V
    out = model.generate(ids(1, 4), max_new_tokens=5, do_sample=False)
    assert int(out.max()) < V


def test_loss_is_shifted_cross_entropy_ignoring_minus_100():
    model, x = tiny("tiny-gpt2"), ids(1, 6)
    labels = x.clone()
    labels[0, 3] = -100
    out = model(x, labels=labels)
    logp = out.logits.log_softmax(-1)[0]
    keep = [t for t in range(1, 6) if t != 3]
    expected = -torch.stack([logp[t - 1, x[0, t]] for t in keep]).mean()
    torch.testing.assert_close(out.loss, expected)


def test_kv_cache_matches_full_forward():
    for name in TINY:
        model, x = tiny(name), ids(1, 9)
        full = model(x).logits
        out = model(x[:, :6], use_cache=True)
        step = model(x[:, 6:7], cache=out.cache, use_cache=True)
        step2 = model(x[:, 7:9], past_key_values=step.past_key_values)  # the pre-5.24 names still work
        torch.testing.assert_close(step.logits[:, 0], full[:, 6], atol=2e-5, rtol=1e-5)
        torch.testing.assert_close(step2.logits, full[:, 7:9], atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-gpt2-rotary", "tiny-backpack"])
def test_generate_is_greedy_decoding(name):
    model, x = tiny(name), ids(1, 4)
    out = model.generate(x, max_new_tokens=6, do_sample=False)
    manual = x
    for _ in range(6):
        manual = torch.cat((manual, model(manual).logits[:, -1].argmax(-1, keepdim=True)), 1)
    assert out.tolist() == manual.tolist()


# ------------------------------------------------------------------ exits


def test_exit_heads_logits_and_frozen_trunk_training():
    model = tiny("tiny-gpt2", exit_layers=[1, 2])
    x = ids()
    out = model(x, labels=x, output_exit_logits=True)
    assert sorted(out.exit_logits) == [1, 2] and out.exit_logits[1].shape == out.logits.shape
    assert model(x).exit_logits is None
    model.freeze_trunk()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("exits.") for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(x, labels=x, output_exit_logits=True).exit_loss.backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("exits.") for n in changed)
    model.freeze_trunk(False)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("norm", ["shared", "own"])
def test_exit_on_last_layer_reads_the_final_residual_stream(norm):
    model = tiny("tiny-gpt2", exit_layers=[2], exit_norm=norm)
    with torch.no_grad():  # the top exit with the LM head's projection (and, own, ln_f's copy) is the LM head
        if norm == "own":
            model.exits["2"].ln.load_state_dict(model.transformer.ln_f.state_dict())
        model.exits["2"].proj.weight.copy_(model.transformer.wte.weight)
    out = model(ids(), output_exit_logits=True)
    torch.testing.assert_close(out.exit_logits[2], out.logits)


def test_shared_exit_norm_is_ln_f_and_own_is_the_heads():
    """shared (the default, IBM's architecture): exit l = proj(ln_f(h_l)), no LayerNorm of its own;
    own: a LayerNorm per head, so moving ln_f leaves its logits alone."""
    shared, own = tiny("tiny-gpt2", exit_layers=[1]), tiny("tiny-gpt2", exit_layers=[1], exit_norm="own")
    assert shared.config.exit_norm == "shared" and shared.exits["1"].ln is None
    assert sorted(k for k in own.state_dict() if k.startswith("exits.")) == [
        "exits.1.ln.bias", "exits.1.ln.weight", "exits.1.proj.weight"]
    for model in (shared, own):
        h = model(ids(), output_hidden_states=True).hidden_states[1]
        with torch.no_grad():
            model.transformer.ln_f.weight.mul_(3)
        by_hand = (model.transformer.ln_f if model is shared else model.exits["1"].ln)(h) @ model.exits["1"].proj.weight.T
        torch.testing.assert_close(model(ids(), output_exit_logits=True).exit_logits[1], by_hand[..., :V])
    with pytest.raises(ILMError, match="exit_norm 'mine' is not one of shared, own"):
        model_config("tiny-gpt2-exits", exit_norm="mine")


# ------------------------------------------------------------------ config


def test_presets_and_overrides():
    cfg = model_config("gpt2-nopos", vocab_size=50259, n_layer=6)
    assert (cfg.position, cfg.n_layer, cfg.vocab_size, cfg.padded_vocab_size) == ("none", 6, 50259, 50304)
    assert cfg.scale_attn_by_inverse_layer_idx and cfg.reorder_and_upcast_attn
    tiny_cfg = model_config("tiny-gpt2")
    assert (tiny_cfg.n_layer, tiny_cfg.n_embd, tiny_cfg.n_head, tiny_cfg.n_positions) == (2, 64, 4, 128)
    bp = model_config("backpack-gpt2")
    assert (bp.num_senses, bp.vocab_size, bp.n_positions) == (16, 50264, 512)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: model_config("gpt2-nopse"), "did you mean 'gpt2-nopos'"),
        (lambda: model_config("gpt2", n_layers=3), "did you mean 'n_layer'"),
        (lambda: model_config("gpt2", position="sinusoid"), "position 'sinusoid' is not one of"),
        (lambda: model_config("gpt2", exit_layers=[13]), r"exit_layers \[13\] outside 1..12"),
        (lambda: model_config("tiny-gpt2-rotary", rotary_dim=7), "rotary_dim=7 must be even"),
    ],
)
def test_config_errors_are_one_line(call, message):
    with pytest.raises(ILMError, match=message):
        call()


def test_num_params_counts_the_real_model_and_flops_formula():
    for name in ("tiny-gpt2", "tiny-gpt2-nopos"):
        model = tiny(name)
        assert model.config.num_params() == sum(p.numel() for p in model.parameters())
    cfg = model_config("gpt2")
    assert cfg.num_params(embeddings=False) == 12 * 7_087_872 + 2 * 768  # GPT-2 small blocks + ln_f
    n = cfg.num_params(embeddings=False) + 50304 * 768  # + the output matmul
    assert cfg.flops_per_token(1024) == 6 * n + 12 * 12 * 768 * 1024


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-gpt2-rotary", "tiny-gpt2-alibi", "tiny-backpack"])
def test_batched_left_padded_generate_equals_each_row_alone(name):
    model = tiny(name)
    seen = []
    model.transformer.register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[1]))
    x, mask = torch.tensor([[0, 2, 3], [4, 5, 6]]), torch.tensor([[0, 1, 1], [1, 1, 1]])
    batched = model.generate(x, attention_mask=mask, max_new_tokens=5, do_sample=False)
    if name != "tiny-backpack":  # GPT-2s decode one token at a time from the KV cache
        assert seen == [3, 1, 1, 1, 1]
    alone = [model.generate(x[:1, 1:], max_new_tokens=5, do_sample=False)[0, 2:],
             model.generate(x[1:], max_new_tokens=5, do_sample=False)[0, 3:]]
    assert batched[0, 3:].tolist() == alone[0].tolist() and batched[1, 3:].tolist() == alone[1].tolist()


@pytest.mark.parametrize("backend", ["eager", "math"])
def test_upcast_computes_bf16_attention_in_fp32(backend):
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 6, 8).bfloat16() for _ in range(3))
    out = attend(backend, q, k, v, AttnMask(6, 6), scale=0.35, upcast=True)
    assert out.dtype == torch.bfloat16
    exact = reference_attention(q.float(), k.float(), v.float(), 0.35)
    # fp32 scores and softmax: only the final rounding to bf16 remains
    torch.testing.assert_close(out.float(), exact, atol=2**-7, rtol=2**-7)


def test_cli_lists_generate_and_senses():
    from typer.testing import CliRunner

    from cli.main import app

    out = CliRunner().invoke(app, ["--help"]).output
    assert "generate" in out and "senses" in out


def test_hidden_states_are_the_residual_stream_per_layer():
    model, x = tiny("tiny-gpt2"), ids()
    out = model(x, output_hidden_states=True)
    assert len(out.hidden_states) == 3  # embeddings + 2 blocks
    torch.testing.assert_close(model.output_logits(model.transformer.ln_f(out.hidden_states[-1])), out.logits)
    torch.testing.assert_close(out.hidden_states[0], model.transformer.wte(x) + model.transformer.wpe(torch.arange(12)))


def test_backend_is_chosen_for_the_autocast_dtype():
    from impossible_lms.models.gpt2 import compute_dtype

    x = torch.zeros(2)
    assert compute_dtype(x) == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert compute_dtype(x) == torch.bfloat16
        logits = tiny("tiny-gpt2")(ids()).logits
    assert logits.dtype == torch.bfloat16 and logits.shape == (2, 12, V)


def test_gelu_new_runs_fused_and_equals_hugging_faces_new_gelu():
    """gelu_new is computed by PyTorch's one-kernel tanh GELU: Hugging Face's NewGELUActivation's
    formula, so every value equals it to 1e-6 (gradients to 2e-6: in the far negative tail,
    where the gradient itself is ~1e-6, the two round differently)."""
    from transformers.activations import NewGELUActivation

    model = tiny("tiny-gpt2")
    assert model.config.activation_function == "gelu_new"
    act = next(m.act for m in model.modules() if hasattr(m, "act"))
    assert not isinstance(act, NewGELUActivation)
    x = torch.cat([torch.linspace(-12, 12, 20001), torch.randn(20000, generator=torch.Generator().manual_seed(0)) * 4])
    x.requires_grad_(True)
    y, want = act(x), NewGELUActivation()(x)
    torch.testing.assert_close(y, want, atol=1e-6, rtol=1e-6)
    (g,), (g_want,) = torch.autograd.grad(y.sum(), x), torch.autograd.grad(want.sum(), x)
    torch.testing.assert_close(g, g_want, atol=2e-6, rtol=1e-6)


def test_backpack_sense_output_is_initialised_as_the_backpack_training_code():
    """Every c_proj.weight at std initializer_range / sqrt(2 n_layer), the sense network's output MLP
    included (its initial sense vectors start as small as the original's)."""
    import torch

    from impossible_lms.models import build_model, model_config

    torch.manual_seed(0)
    cfg = model_config("tiny-backpack", vocab_size=500, n_embd=64, n_layer=8)
    model = build_model(cfg)
    want = cfg.initializer_range / (2 * cfg.n_layer) ** 0.5
    weight = model.sense_network.final_mlp.c_proj.weight
    assert weight.std().item() == pytest.approx(want, rel=0.05)
    assert model_config("tiny-backpack").scale_attn_by_inverse_layer_idx == \
        model_config("backpack-gpt2").scale_attn_by_inverse_layer_idx is True


@pytest.mark.parametrize("preset", ["tiny-gpt2", "tiny-gpt2-nopos", "tiny-gpt2-exits"])
def test_gpt2_residual_projections_get_the_scaled_init(preset):
    """GPT-2's init (and the reference's, through HF GPT2): every c_proj at std 0.02 / sqrt(2 n_layer),
    every other weight at 0.02. transformers 5 initialises leaf modules only: the rule must live there."""
    import torch

    from impossible_lms.models import build_model, model_config

    torch.manual_seed(0)
    cfg = model_config(preset, vocab_size=500, n_embd=64, n_layer=8)
    model = build_model(cfg)
    scaled = cfg.initializer_range / (2 * cfg.n_layer) ** 0.5
    for block in model.transformer.h:
        assert block.attn.c_proj.weight.std().item() == pytest.approx(scaled, rel=0.1)
        assert block.mlp.c_proj.weight.std().item() == pytest.approx(scaled, rel=0.1)
        assert block.mlp.c_fc.weight.std().item() == pytest.approx(cfg.initializer_range, rel=0.1)
