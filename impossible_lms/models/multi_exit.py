"""IBM's multi-exit folders (Gera et al. 2023, ``auto-contrastive-generation``), read strictly.

Their ``MultiExitModel`` saves a Hugging Face causal LM whose ``config.json``
carries ``lm_head_layer_indices`` and whose weights add one bias-free head per
exit, ``name_to_lm_exit_head.lm_head_<layer>.weight`` ([vocab, hidden]). Exit
``l`` reads ``hidden_states[l]`` (index 0 is the embeddings) through the model's
own final LayerNorm, which Hugging Face already applied to the top layer's:
logits_l = lm_head_l(ln_f(h_l)). An index ``"original"`` names the LM head itself.

GPT-2 bases become ilm's own GPT-2 with ``exit_norm="shared"`` (every analysis
then works on them); any other base (GPT-Neo, as the published
GPT-Neo-125M multi-exit model) is the Hugging Face model wrapped in
:class:`MultiExitLM`, which evaluation and auto-contrastive generation read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from impossible_lms.errors import ILMError

CONFIG_KEY = "lm_head_layer_indices"
HEAD_PREFIX = "name_to_lm_exit_head.lm_head_"
_HEAD = re.compile(r"^name_to_lm_exit_head\.lm_head_(\w+)\.weight$")
ORIGINAL = "original"

# Where each base keeps the final LayerNorm its exits share (IBM's normalize_layer_output).
FINAL_NORMS = {"gpt2": "transformer.ln_f", "gpt_neo": "transformer.ln_f", "gptj": "transformer.ln_f",
               "llama": "model.norm", "gpt_neox": "gpt_neox.final_layer_norm"}


def is_multi_exit(raw: dict[str, Any]) -> bool:
    return raw.get(CONFIG_KEY) is not None


def exit_layers(raw: dict[str, Any], n_layer: int) -> list[int]:
    """The numbered exits of ``lm_head_layer_indices`` (a list, or IBM's "2;4;6" string), checked."""
    value = raw[CONFIG_KEY]
    items = value.split(";") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ILMError(f"{CONFIG_KEY} must be a list of layer numbers, got {value!r}")
    layers = []
    for item in items:
        if str(item).strip() == ORIGINAL:
            continue
        try:
            layer = int(item)
        except (TypeError, ValueError):
            raise ILMError(f"{CONFIG_KEY}: {item!r} is not a layer number or 'original'") from None
        if not 1 <= layer <= n_layer:
            raise ILMError(f"{CONFIG_KEY}: layer {layer} outside 1..{n_layer}")
        layers.append(layer)
    return sorted(set(layers))


def split_heads(state: dict[str, torch.Tensor], layers: list[int], lm_head: torch.Tensor | None,
                source: str) -> tuple[dict[str, torch.Tensor], dict[int, torch.Tensor]]:
    """(the base model's weights, each exit's [vocab, hidden] weight); strict both ways."""
    base, heads = {}, {}
    for key, value in state.items():
        m = _HEAD.match(key)
        if not m:
            base[key] = value
        elif m.group(1) == ORIGINAL:  # IBM's alias of the LM head: the same tensor, nothing to load
            if lm_head is not None and not torch.equal(value, lm_head):
                raise ILMError(f"{source}: {key} differs from the LM head it names")
        elif m.group(1).isdigit() and int(m.group(1)) in layers:
            heads[int(m.group(1))] = value
        else:
            raise ILMError(f"{source}: {key} names no exit of {CONFIG_KEY} {layers}")
    missing = [l for l in layers if l not in heads]
    if missing:
        raise ILMError(f"{source}: no weights for exit heads {missing} ({HEAD_PREFIX}<layer>.weight)")
    return base, heads


class MultiExitLM(nn.Module):
    """A Hugging Face causal LM plus IBM's exit heads: ``lm_head_l(final_norm(hidden_states[l]))``.

    Answers what ilm's evaluation and generation ask of a multi-exit model
    (``forward(..., output_exit_logits=True)`` → ``.logits`` and ``.exit_logits``,
    ``exit_head_logits``, ``config.exit_layers``); anything else is the base's.
    """

    def __init__(self, base: nn.Module, heads: dict[int, torch.Tensor]):
        super().__init__()
        kind = base.config.model_type
        if kind not in FINAL_NORMS:
            raise ILMError(f"multi-exit heads on a {kind!r} model: its final norm is not known "
                           f"(known: {', '.join(sorted(FINAL_NORMS))})")
        self.base = base
        self.final_norm = base.get_submodule(FINAL_NORMS[kind])
        self.n_layer = base.config.num_hidden_layers
        self.exits = nn.ModuleDict()
        for layer, weight in sorted(heads.items()):
            head = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")
            head.weight = nn.Parameter(weight, requires_grad=False)
            self.exits[str(layer)] = head
        base.config.exit_layers = sorted(heads)
        self.config = base.config

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.base, name)

    def exit_head_logits(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """Exit ``layer``'s logits from ``hidden_states[layer]`` as Hugging Face returns it."""
        if layer != self.n_layer:  # the top layer's hidden state is already normalised
            h = self.final_norm(h)
        return self.exits[str(layer)](h)

    def forward(self, input_ids, attention_mask=None, output_exit_logits=False, **kwargs):
        want = output_exit_logits and bool(self.config.exit_layers)
        out = self.base(input_ids=input_ids, attention_mask=attention_mask,
                        output_hidden_states=want or kwargs.pop("output_hidden_states", False), **kwargs)
        out.exit_logits = ({l: self.exit_head_logits(l, out.hidden_states[l]) for l in self.config.exit_layers}
                           if want else None)
        return out


def load_hf_multi_exit(folder: Path, raw: dict[str, Any], dtype=None) -> MultiExitLM:
    """An IBM multi-exit folder on a base ilm has no model of: the base via transformers, strictly."""
    from impossible_lms.models.loading import load_any_hf, read_state_dict

    base = load_any_hf(folder, dtype, own_keys=lambda key: key.startswith(HEAD_PREFIX))
    layers = exit_layers(raw, base.config.num_hidden_layers)
    lm_head = base.get_output_embeddings().weight.detach().to(torch.float32)
    # the heads only: transformers has read the base's weights already
    heads_only = read_state_dict(folder, keep=lambda key: key.startswith(HEAD_PREFIX))
    state = {k: v.float() if k.endswith("lm_head_original.weight") else v for k, v in heads_only.items()}
    heads = {l: w.to(base.dtype) for l, w in split_heads(state, layers, lm_head, str(folder))[1].items()}
    return MultiExitLM(base, heads)
