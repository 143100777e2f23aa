"""Save/load round trips and the strict loaders for published layouts (built here, tiny)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, GPT2Model

from impossible_lms.errors import ILMError
from impossible_lms.models import BackpackForCausalLM, ILMForCausalLM, build_model, load_model, model_config
# (importing impossible_lms.models registers the Auto classes)

V = 99


def ids(b=2, t=9, seed=1):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


def gpt2_config(**kw) -> GPT2Config:
    return GPT2Config(vocab_size=V, n_positions=32, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0, embd_pdrop=0,
                      attn_pdrop=0, **kw)


# ------------------------------------------------------------------ ours


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-gpt2-nopos", "tiny-gpt2-rotary", "tiny-gpt2-alibi",
                                  "tiny-gpt2-exits", "tiny-backpack"])
def test_round_trip_through_auto_model(name, tmp_path):
    torch.manual_seed(0)
    model = build_model(model_config(name, vocab_size=V)).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    for loaded in (AutoModelForCausalLM.from_pretrained(tmp_path).eval(), load_model(tmp_path)):
        assert type(loaded) is type(model) and loaded.config.position == model.config.position
        a, b = model(ids(), output_exit_logits=True), loaded(ids(), output_exit_logits=True)
        assert torch.equal(a.logits, b.logits)
        if a.exit_logits:
            assert torch.equal(a.exit_logits[1], b.exit_logits[1])


def test_importing_the_package_loads_neither_torch_nor_transformers(heavy_imports):
    _, loaded = heavy_imports("import impossible_lms")
    assert "torch" not in loaded and "transformers" not in loaded


def test_auto_model_loads_a_checkpoint_after_register_models(tmp_path, heavy_imports):
    """A fresh process: ``import impossible_lms`` + ``register_models()`` is all AutoModel needs."""
    torch.manual_seed(0)
    model = build_model(model_config("tiny-gpt2-rotary", vocab_size=V)).eval()
    model.save_pretrained(tmp_path)
    expected = model(ids()).logits[0, -1, :3].tolist()
    code = (
        "import torch, impossible_lms\n"
        "from transformers import AutoModelForCausalLM\n"
        "impossible_lms.register_models()\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r}).eval()\n"
        f"x = torch.randint(0, {V}, (2, 9), generator=torch.Generator().manual_seed(1))\n"
        "print(type(m).__name__, m(x).logits[0, -1, :3].tolist())"
    )
    printed, _ = heavy_imports(code)
    name, _, values = printed.partition(" ")
    assert name == "ILMForCausalLM"
    assert eval(values) == pytest.approx(expected, abs=1e-6)


def test_load_model_dtype_and_revision_folder(tmp_path):
    torch.manual_seed(0)
    build_model(model_config("tiny-gpt2", vocab_size=V)).save_pretrained(tmp_path / "checkpoint-100")
    model = load_model(tmp_path, revision="checkpoint-100", dtype="bfloat16")
    assert model.dtype == torch.bfloat16 and not model.training
    assert model(ids()).logits.dtype == torch.bfloat16


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-backpack"])
def test_loading_builds_on_meta_and_assigns_the_stored_tensors(name, tmp_path, monkeypatch):
    """No random initialisation of real memory while loading (it would only be overwritten); it still trains."""
    torch.manual_seed(0)
    model = build_model(model_config(name, vocab_size=V))
    model.to(torch.bfloat16).save_pretrained(tmp_path)  # stored in bf16: the loaded model stays fp32
    initialised = []
    for method in ("normal_", "uniform_"):
        real = getattr(torch.Tensor, method)
        monkeypatch.setattr(torch.Tensor, method,
                            lambda t, *a, _real=real, **k: (initialised.append(t.device.type), _real(t, *a, **k))[1])
    loaded = load_model(tmp_path)
    assert initialised and set(initialised) == {"meta"}
    state = loaded.state_dict()
    for key, value in model.state_dict().items():
        assert state[key].dtype == torch.float32 and torch.equal(state[key], value.float()), key
    loaded.train()
    loaded(ids(), labels=ids()).loss.backward()
    grads = [p.grad for p in loaded.parameters()]
    assert all(isinstance(p, torch.nn.Parameter) and g is not None for p, g in zip(loaded.parameters(), grads))


def test_strict_loader_names_missing_and_unused_keys(tmp_path):
    build_model(model_config("tiny-gpt2", vocab_size=V)).save_pretrained(tmp_path)
    from safetensors.torch import load_file

    state = load_file(tmp_path / "model.safetensors")
    state["transformer.extra.weight"] = torch.zeros(2)
    del state["transformer.h.1.mlp.c_fc.bias"]
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(ILMError, match=r"missing \(would be newly initialised\): transformer\.h\.1\.mlp\.c_fc\.bias; "
                                       r"unused: transformer\.extra\.weight"):
        load_model(tmp_path)


def test_missing_folders_and_hub_ids_fail_clearly(tmp_path):
    with pytest.raises(ILMError, match="model folder not found"):
        load_model(tmp_path / "nope")
    with pytest.raises(ILMError, match="no config.json"):
        load_model(tmp_path)
    with pytest.raises(ILMError, match="not in the Hugging Face cache; ilm does not download"):
        load_model("mission-impossible-lms/surely-not-cached-gpt2", revision="checkpoint-100")


# ------------------------------------------------------------------ reference GPT-2 layouts


@pytest.mark.parametrize("upcast", [False, True])
def test_reference_gpt2_checkpoint_gives_identical_logits(tmp_path, upcast):
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(gpt2_config(scale_attn_by_inverse_layer_idx=True, reorder_and_upcast_attn=upcast)).eval()
    hf.save_pretrained(tmp_path)
    ours = load_model(tmp_path)
    assert isinstance(ours, ILMForCausalLM) and ours.config.position == "learned"
    assert ours.config.scale_attn_by_inverse_layer_idx and ours.config.reorder_and_upcast_attn == upcast
    torch.testing.assert_close(ours(ids()).logits, hf(ids()).logits, atol=1e-5, rtol=1e-5)
    mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4])
    torch.testing.assert_close(ours(ids(), attention_mask=mask).logits[1, :5],
                               hf(ids(), attention_mask=mask).logits[1, :5], atol=1e-5, rtol=1e-5)


def test_reference_nopos_checkpoint_without_wpe(tmp_path):
    """The no-position models: HF GPT-2 keys without transformer.wpe → position="none"."""
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(gpt2_config(scale_attn_by_inverse_layer_idx=True)).eval()
    state = {k: v.clone() for k, v in hf.state_dict().items() if k != "transformer.wpe.weight"}
    save_file(state, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(hf.config.to_dict()))
    ours = load_model(tmp_path)
    assert ours.config.position == "none" and "transformer.wpe.weight" not in ours.state_dict()
    with torch.no_grad():  # a GPT-2 whose position table is zero is the no-position model
        hf.transformer.wpe.weight.zero_()
    torch.testing.assert_close(ours(ids()).logits, hf(ids()).logits, atol=1e-5, rtol=1e-5)


def test_reference_gpt2_with_stray_weight_is_refused(tmp_path):
    hf = GPT2LMHeadModel(gpt2_config())
    state = {k: v.clone() for k, v in hf.state_dict().items()}
    state["transformer.h.0.attn.q_attn.weight"] = torch.zeros(32, 32)
    save_file(state, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(hf.config.to_dict()))
    with pytest.raises(ILMError, match=r"unused: transformer\.h\.0\.attn\.q_attn\.weight"):
        load_model(tmp_path)


# ------------------------------------------------------------------ stanfordnlp/backpack-gpt2 layout


def _stanford_backpack(tmp_path, k=4, d=32):
    """A tiny checkpoint in the published key layout, and an independent forward to compare with."""
    torch.manual_seed(0)
    cfg = gpt2_config(scale_attn_by_inverse_layer_idx=True)
    gpt2 = GPT2Model(cfg).eval()

    def conv(i, o):  # Conv1D: weight [in, out]
        return torch.randn(i, o) * 0.2, torch.randn(o) * 0.1

    w = {}
    for name, (i, o) in {"block.mlp.c_fc": (d, 4 * d), "block.mlp.c_proj": (4 * d, d),
                         "final_mlp.c_fc": (d, 4 * d), "final_mlp.c_proj": (4 * d, k * d)}.items():
        w[f"{name}.weight"], w[f"{name}.bias"] = conv(i, o)
    for ln in ("ln", "block.ln_1", "block.ln_2"):
        w[f"{ln}.weight"], w[f"{ln}.bias"] = 1 + 0.1 * torch.randn(d), 0.1 * torch.randn(d)
    c_attn_w, c_attn_b = torch.randn(2 * d, d) * 0.2, torch.randn(2 * d) * 0.1  # nn.Linear layout

    state = {f"backpack.gpt2_model.{n}": t for n, t in gpt2.state_dict().items()}
    state.update({f"backpack.sense_network.{n}": t for n, t in w.items()})
    state["backpack.sense_weight_net.c_attn.weight"] = c_attn_w
    state["backpack.sense_weight_net.c_attn.bias"] = c_attn_b
    state["lm_head.weight"] = state["backpack.word_embeddings.weight"] = gpt2.wte.weight
    state["backpack.position_embeddings.weight"] = gpt2.wpe.weight
    torch.save({n: t.clone() for n, t in state.items()}, tmp_path / "pytorch_model.bin")
    config = {**cfg.to_dict(), "model_type": "backpack-gpt2", "num_senses": k, "sense_intermediate_scale": 4}
    (tmp_path / "config.json").write_text(json.dumps(config))

    @torch.no_grad()
    def forward(x):
        def mlp(h, p):
            h = F.gelu(h @ w[f"{p}.c_fc.weight"] + w[f"{p}.c_fc.bias"], approximate="tanh")
            return h @ w[f"{p}.c_proj.weight"] + w[f"{p}.c_proj.bias"]

        def ln(h, p):
            return F.layer_norm(h, (d,), w[f"{p}.weight"], w[f"{p}.bias"], eps=1e-5)

        e = gpt2.wte(x)
        residual = e
        h = ln(residual, "ln")
        residual = h + residual
        residual = mlp(ln(residual, "block.ln_1"), "block.mlp") + residual
        senses = mlp(ln(residual, "block.ln_2"), "final_mlp").view(*x.shape, k, d)  # [B, T, k, d]
        hs = gpt2(x).last_hidden_state
        qk = (hs @ c_attn_w.T + c_attn_b).view(*x.shape, 2, k, d // k)
        q, kk = qk.unbind(2)
        scores = torch.einsum("bthd,bshd->bhts", q, kk) / math.sqrt(d // k)
        T = x.shape[1]
        scores = scores.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf"))
        alpha = scores.softmax(-1)
        out = torch.einsum("bhts,bshd->btd", alpha, senses)
        return out @ gpt2.wte.weight.T

    return forward


def test_stanford_backpack_layout_loads_and_matches_reference_forward(tmp_path):
    forward = _stanford_backpack(tmp_path)
    model = load_model(tmp_path)
    assert isinstance(model, BackpackForCausalLM) and model.config.num_senses == 4
    assert model.config.scale_attn_by_inverse_layer_idx
    torch.testing.assert_close(model(ids()).logits, forward(ids()), atol=1e-4, rtol=1e-4)


def test_stanford_backpack_missing_sense_weight_is_refused(tmp_path):
    _stanford_backpack(tmp_path)
    state = torch.load(tmp_path / "pytorch_model.bin", weights_only=True)
    del state["backpack.sense_network.final_mlp.c_fc.bias"]
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(ILMError, match=r"missing \(would be newly initialised\): sense_network\.final_mlp\.c_fc\.bias"):
        load_model(tmp_path)


def test_the_backpack_remote_codes_own_save_folder_is_recognised(tmp_path):
    """Its save_pretrained writes model_type "gpt2" (the GPT-2 loader would say "missing transformer.h.0…"):
    the Backpack weights route it to the Backpack loader, and a damaged one says what it found."""
    forward = _stanford_backpack(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(model_type="gpt2", architectures=["BackpackGPT2LMHeadModel"])
    (tmp_path / "config.json").write_text(json.dumps(config))
    model = load_model(tmp_path)
    assert isinstance(model, BackpackForCausalLM)
    torch.testing.assert_close(model(ids()).logits, forward(ids()), atol=1e-4, rtol=1e-4)
    state = torch.load(tmp_path / "pytorch_model.bin", weights_only=True)
    del state["backpack.sense_network.final_mlp.c_fc.bias"]
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(ILMError, match=r"a Backpack-GPT2 folder \(architectures \['BackpackGPT2LMHeadModel'\], "
                                       r"model_type 'gpt2'\) that does not load as one: .*final_mlp\.c_fc\.bias"):
        load_model(tmp_path)


# ------------------------------------------------------------------ any other causal LM


def test_other_hf_causal_lm_loads_in_requested_dtype(tmp_path):
    from transformers import GPTJConfig, GPTJForCausalLM

    torch.manual_seed(0)
    GPTJForCausalLM(GPTJConfig(vocab_size=V, n_positions=32, n_embd=32, n_layer=1, n_head=4, rotary_dim=4)).save_pretrained(tmp_path)
    model = load_model(tmp_path, dtype=torch.bfloat16)
    assert type(model).__name__ == "GPTJForCausalLM" and model.dtype == torch.bfloat16
    assert model(ids()).logits.shape == (2, 9, V)


def test_untied_reference_gpt2_keeps_its_own_head(tmp_path):
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(gpt2_config(tie_word_embeddings=False)).eval()
    hf.save_pretrained(tmp_path / "ref")
    ours = load_model(tmp_path / "ref")
    assert not ours.config.tie_word_embeddings and "lm_head.weight" in ours.state_dict()
    torch.testing.assert_close(ours(ids()).logits, hf(ids()).logits, atol=1e-5, rtol=1e-5)
    ours.save_pretrained(tmp_path / "ours")
    assert torch.equal(load_model(tmp_path / "ours")(ids()).logits, ours(ids()).logits)
