"""IBM's multi-exit folders (auto-contrastive-generation's MultiExitGPT2 / MultiExitGPTNeo), written here.

The expected exit logits come from the base model itself, by hooks on its blocks:
exit l = lm_head_l(ln_f(output of block l)), IBM's rule, whatever hidden_states
conventions the loader relies on.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoConfig, GPTNeoForCausalLM

from impossible_lms.errors import ILMError
from impossible_lms.models import ILMForCausalLM, load_model
from impossible_lms.models.generate import contrastive_scores, generate_ids, parse_contrast
from impossible_lms.models.multi_exit import MultiExitLM

V, D = 99, 32


def ids(b=2, t=9, seed=1):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


def gpt2():
    return GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=32, n_embd=D, n_layer=2, n_head=4, resid_pdrop=0,
                                      embd_pdrop=0, attn_pdrop=0)).eval()


def gpt_neo():
    return GPTNeoForCausalLM(GPTNeoConfig(vocab_size=V, max_position_embeddings=32, hidden_size=D, num_layers=2,
                                          num_heads=4, attention_types=[[["global", "local"], 1]], window_size=4,
                                          intermediate_size=64, resid_dropout=0, embed_dropout=0,
                                          attention_dropout=0)).eval()


def ibm_folder(folder, base, indices, heads=None, extra=None):
    """A folder as MultiExitModel.save_pretrained leaves it: the base's config + lm_head_layer_indices,
    its weights + name_to_lm_exit_head.lm_head_<l>.weight."""
    torch.manual_seed(3)
    vocab = base.config.vocab_size
    heads = heads if heads is not None else {l: torch.randn(vocab, D) * 0.3 for l in indices if l != "original"}
    state = {k: v.clone() for k, v in base.state_dict().items()}
    state.update({f"name_to_lm_exit_head.lm_head_{l}.weight": w.clone() for l, w in heads.items()})
    if "original" in indices:
        state["name_to_lm_exit_head.lm_head_original.weight"] = base.lm_head.weight.clone()
    state.update(extra or {})
    save_file(state, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({**base.config.to_dict(), "lm_head_layer_indices": indices}))
    return heads


@torch.no_grad()
def expected_exits(base, x, heads):
    """IBM's rule from the base's blocks: lm_head_l(ln_f(block l's output))."""
    blocks, seen = base.transformer.h, {}
    hooks = [blocks[l - 1].register_forward_hook(lambda m, a, out, l=l: seen.__setitem__(l, out[0] if isinstance(out, tuple) else out))
             for l in heads]
    logits = base(x).logits
    for h in hooks:
        h.remove()
    return logits, {l: base.transformer.ln_f(seen[l]) @ w.T for l, w in heads.items()}


def assert_exits_match(model, base, heads):
    """The loaded model's LM and exit logits equal IBM's rule on the base; returns the expected exits."""
    logits, exits = expected_exits(base, ids(), heads)
    with torch.no_grad():
        out = model(ids(), output_exit_logits=True)
    torch.testing.assert_close(out.logits, logits, atol=1e-5, rtol=1e-5)
    for layer in (1, 2):
        torch.testing.assert_close(out.exit_logits[layer], exits[layer], atol=1e-5, rtol=1e-5)
    return exits


@pytest.mark.parametrize("indices", [[1, 2], [1, 2, "original"], "1;2"])
def test_ibm_multi_exit_gpt2_folder_loads_as_ilm_gpt2_with_shared_norm(tmp_path, indices):
    base = gpt2()
    heads = ibm_folder(tmp_path, base, indices if isinstance(indices, list) else [1, 2],)
    if isinstance(indices, str):  # IBM's own string form of the indices
        raw = json.loads((tmp_path / "config.json").read_text())
        (tmp_path / "config.json").write_text(json.dumps({**raw, "lm_head_layer_indices": indices}))
    model = load_model(tmp_path)
    assert isinstance(model, ILMForCausalLM)
    assert (model.config.exit_layers, model.config.exit_norm) == ([1, 2], "shared")
    assert_exits_match(model, base, heads)


def test_ibm_multi_exit_gpt_neo_folder_loads_and_scores_every_exit(tmp_path):
    base = gpt_neo()
    heads = ibm_folder(tmp_path, base, [1, 2])
    model = load_model(tmp_path)
    assert isinstance(model, MultiExitLM) and model.config.exit_layers == [1, 2]
    exits = assert_exits_match(model, base, heads)
    for layer in (1, 2):
        hidden = model(ids(), output_hidden_states=True).hidden_states[layer]
        torch.testing.assert_close(model.exit_head_logits(layer, hidden), exits[layer], atol=1e-5, rtol=1e-5)


def test_autocontrastive_generation_on_a_gpt_neo_multi_exit_folder(tmp_path):
    """`ilm generate --contrast final,1` on the published kind of model: final = the LM head, 1 = exit 1."""
    base = gpt_neo()
    heads = ibm_folder(tmp_path, base, [1, 2])
    model = load_model(tmp_path)
    contrast = parse_contrast("final,1", model)
    assert contrast == ("final", 1) and parse_contrast("auto", model) == ("final", 1)
    prompt = ids(1, 5)
    new = generate_ids(model, prompt, 3, contrast=contrast)
    logits, exits = expected_exits(base, prompt, heads)
    assert new[0] == int(contrastive_scores(logits[:, -1], exits[1][:, -1]).argmax(-1))
    assert len(new) == 3


@pytest.mark.parametrize("make, message", [
    (lambda f, b: ibm_folder(f, b, [1], extra={"name_to_lm_exit_head.lm_head_2.weight": torch.zeros(V, D)}),
     r"name_to_lm_exit_head\.lm_head_2\.weight names no exit of lm_head_layer_indices \[1\]"),
    (lambda f, b: ibm_folder(f, b, [1, 2], heads={1: torch.zeros(V, D)}), r"no weights for exit heads \[2\]"),
    (lambda f, b: ibm_folder(f, b, [1, "original"],
                             extra={"name_to_lm_exit_head.lm_head_original.weight": torch.zeros(V, D)}),
     r"lm_head_original\.weight differs from the LM head it names"),
    (lambda f, b: ibm_folder(f, b, [1, 7]), r"lm_head_layer_indices: layer 7 outside 1\.\.2"),
    (lambda f, b: ibm_folder(f, b, [1, "top"]), r"'top' is not a layer number or 'original'"),
])
@pytest.mark.parametrize("base", [gpt2, gpt_neo], ids=["gpt2", "gpt_neo"])
def test_damaged_multi_exit_folders_are_refused_in_one_line(tmp_path, make, message, base):
    make(tmp_path, base())
    with pytest.raises(ILMError, match=message):
        load_model(tmp_path)


def test_ilm_eval_scores_every_exit_of_a_gpt_neo_multi_exit_folder(tmp_path):
    """The published multi-exit model is a GPT-Neo: `ilm eval` gives a perplexity per exit head too."""
    from impossible_lms.evaluation import evaluate
    from impossible_lms.evaluation.toy import TOY_VOCAB, make_toy_data

    base = GPTNeoForCausalLM(GPTNeoConfig(vocab_size=TOY_VOCAB, max_position_embeddings=64, hidden_size=D,
                                          num_layers=2, num_heads=4, attention_types=[[["global", "local"], 1]],
                                          window_size=4, intermediate_size=64, bos_token_id=None,
                                          eos_token_id=None)).eval()
    (tmp_path / "model").mkdir()
    ibm_folder(tmp_path / "model", base, [1, 2])
    data = make_toy_data(tmp_path / "data" / "no_hop", per_genre=5)
    df = evaluate(tmp_path / "model", data, metrics=["perplexity"], subsets=["dev"])
    by_layer = {(None if pd.isna(r.layer) else int(r.layer)): r.value for r in df.itertuples()}
    assert set(by_layer) == {None, 1, 2} and all(v > 1 for v in by_layer.values())
    assert len(set(by_layer.values())) == 3  # three heads, three different models of the text
