"""GPT-2 in one file, its position scheme a config field (learned | none | rotary | alibi).

Parameter names follow Hugging Face GPT-2 (``transformer.h.0.attn.c_attn``)
but use ``nn.Linear`` ([out, in]); the loaders transpose Conv1D checkpoints.
Optional exit heads read intermediate layers (multi-exit, Gera et al. 2023).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import DynamicCache, GenerationMixin, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import ModelOutput

from impossible_lms.errors import ILMError
from impossible_lms.models.attention import (AttnMask, alibi_slopes, attend, document_positions, key_padding,
                                            resolve_backend, rotary)
from impossible_lms.models.config import ILMConfig
from impossible_lms.models.loss import head_cross_entropy



@dataclass
class ILMOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    # "cache", the name transformers >= 5.24 gives the KV cache in model outputs
    # (its ModelOutput renames a past_key_values= argument to cache=, and fails
    # without such a field); older releases never look at the field name.
    cache: Any = None  # a transformers DynamicCache
    exit_logits: dict[int, torch.Tensor] | None = None
    exit_loss: torch.Tensor | None = None  # the mean of exit_losses
    exit_losses: dict[int, torch.Tensor] | None = None  # each exit head's loss, by layer, when labels given
    hidden_states: tuple[torch.Tensor, ...] | None = None
    contextualization: torch.Tensor | None = None  # Backpack α [B, k, T, T] when asked for

    @property
    def past_key_values(self) -> Any:
        """The pre-5.24 name of ``cache``, for callers written against older transformers."""
        return self.cache


def cache_argument(kwargs: dict[str, Any]) -> Any:
    """The KV cache handed in under either name: ``cache`` (transformers >= 5.24) or ``past_key_values``."""
    cache = kwargs.pop("cache", None)
    legacy = kwargs.pop("past_key_values", None)
    return cache if cache is not None else legacy


@dataclass
class Context:
    """What every layer of one forward pass shares."""

    backend: str
    mask: AttnMask
    positions: torch.Tensor  # [B, T] absolute positions of the queries


def residual_projection(d_in: int, d_out: int) -> nn.Linear:
    """A ``c_proj``: marked so that initialisation gives it GPT-2's scaled std (see _init_weights)."""
    linear = nn.Linear(d_in, d_out)
    linear.scaled_init = True
    return linear


class Attention(nn.Module):
    def __init__(self, cfg: ILMConfig, layer_idx: int):
        super().__init__()
        self.cfg = cfg
        self.layer_idx = layer_idx
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = residual_projection(cfg.n_embd, cfg.n_embd)
        self.resid_dropout = nn.Dropout(cfg.resid_pdrop)
        self.scale = cfg.head_dim**-0.5
        if cfg.scale_attn_by_inverse_layer_idx:
            self.scale /= layer_idx + 1

    def forward(self, x: torch.Tensor, ctx: Context, cache: DynamicCache | None = None):
        cfg, (B, T, C) = self.cfg, x.shape
        q, k, v = (t.view(B, T, cfg.n_head, cfg.head_dim).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        if cfg.position == "rotary":
            rd = cfg.rotary_dim or cfg.head_dim
            q, k = rotary(q, ctx.positions, rd, cfg.rotary_base), rotary(k, ctx.positions, rd, cfg.rotary_base)
        if cache is not None:  # keys are cached after rotation, so they never need re-rotating
            k, v = cache.update(k, v, self.layer_idx)
        dropout = cfg.attn_pdrop if self.training else 0.0
        y = attend(ctx.backend, q, k, v, ctx.mask, self.scale, dropout, cfg.reorder_and_upcast_attn,
                   kind=cfg.attention_kind)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.c_proj(y))


# GPT-2's "gelu_new" is the tanh GELU; Hugging Face's NewGELUActivation writes it as five
# elementwise ops, PyTorch's gelu(approximate="tanh") is the same formula in one kernel
# (equal to 1e-6: tests/test_models_core.py), about 5% of a CPU evaluation.
FUSED_ACTIVATIONS = {"gelu_new": "gelu_pytorch_tanh"}


def activation(name: str) -> nn.Module:
    return ACT2FN[FUSED_ACTIVATIONS.get(name, name)]


class MLP(nn.Module):
    def __init__(self, cfg: ILMConfig, d_in: int, d_hidden: int, d_out: int):
        super().__init__()
        self.c_fc = nn.Linear(d_in, d_hidden)
        self.act = activation(cfg.activation_function)
        self.c_proj = residual_projection(d_hidden, d_out)
        self.dropout = nn.Dropout(cfg.resid_pdrop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: ILMConfig, layer_idx: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.attn = Attention(cfg, layer_idx)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.mlp = MLP(cfg, cfg.n_embd, cfg.inner_dim, cfg.n_embd)

    def forward(self, x: torch.Tensor, ctx: Context, cache: DynamicCache | None = None):
        x = x + self.attn(self.ln_1(x), ctx, cache)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """Embeddings → blocks → ln_f; returns every layer's residual stream when asked."""

    def __init__(self, cfg: ILMConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.padded_vocab_size, cfg.n_embd)
        if cfg.position == "learned":
            self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.drop = nn.Dropout(cfg.embd_pdrop)
        self.h = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        if cfg.position == "alibi":
            # Derived, not learned: built once where the model lives (not per layer per forward),
            # never saved; reset_derived() rebuilds it after a meta-device build.
            self.register_buffer("alibi", alibi_slopes(cfg.n_head), persistent=False)

    def reset_derived(self) -> None:
        """Recompute the buffers derived from the config (ALiBi slopes), on the weights' device."""
        if self.cfg.position == "alibi":
            self.alibi = alibi_slopes(self.cfg.n_head).to(self.wte.weight.device)

    def context(self, input_ids, attention_mask, document_ids, past_len: int, dtype: torch.dtype) -> Context:
        B, T = input_ids.shape
        device = input_ids.device
        if document_ids is not None:
            positions = document_positions(document_ids)
        elif attention_mask is not None:
            # Real tokens count from 0 whatever the padding side (as HF GPT-2 in generate()).
            positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -T:]
        else:
            positions = torch.arange(past_len, past_len + T, device=device).expand(B, T)
        # fp32 whatever the model's dtype (flash-attn's alibi_slopes contract); a no-op in fp32.
        slopes = self.alibi.float() if self.cfg.position == "alibi" else None
        mask = AttnMask(T, past_len + T, key_padding=key_padding(attention_mask), document_ids=document_ids,
                        alibi=slopes)
        return Context(resolve_backend(self.cfg.attention, device, dtype), mask, positions)

    def forward(self, input_ids, attention_mask=None, document_ids=None, cache: DynamicCache | None = None,
                keep_layers: bool = False):
        past_len = cache.get_seq_length() if cache is not None else 0
        if past_len + input_ids.shape[1] > self.cfg.n_positions and self.cfg.position == "learned":
            raise ILMError(f"sequence of {past_len + input_ids.shape[1]} tokens exceeds the model's "
                           f"context of {self.cfg.n_positions}")
        x = self.wte(input_ids)
        ctx = self.context(input_ids, attention_mask, document_ids, past_len, compute_dtype(x))
        if self.cfg.position == "learned":
            x = x + self.wpe(ctx.positions)
        x = self.drop(x)
        layers = [x]
        for block in self.h:
            x = block(x, ctx, cache)
            if keep_layers:
                layers.append(x)
        return self.ln_f(x), layers


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype attention will see: the autocast dtype when autocast is on (weights stay fp32)."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


class ExitHead(nn.Module):
    """An extra LM head reading the residual stream after one block: a LayerNorm, then the vocabulary.

    The LayerNorm is the model's final ``ln_f`` (``exit_norm="shared"``, IBM's
    architecture: theirs is ``lm_head_l(ln_f(h_l))``) or the head's own (``"own"``).
    """

    def __init__(self, cfg: ILMConfig):
        super().__init__()
        self.ln = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon) if cfg.exit_norm == "own" else None
        self.proj = nn.Linear(cfg.n_embd, cfg.padded_vocab_size, bias=False)

    def norm(self, final_norm: nn.Module) -> nn.Module:
        return self.ln if self.ln is not None else final_norm

    def forward(self, h: torch.Tensor, final_norm: nn.Module) -> torch.Tensor:
        return self.proj(self.norm(final_norm)(h))


def lm_loss(logits: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean next-token cross entropy in fp32; labels are the inputs (shifted here), -100 and pads ignored.

    Padding positions (``attention_mask`` 0) never count, so right-padded batches
    need no attention mask inside the model, only here. The reference's formula,
    for logits already made; training (``return_logits=False``) takes the same
    loss from the hidden states without them (``loss.head_cross_entropy``)."""
    if attention_mask is not None:
        labels = labels.masked_fill(attention_mask == 0, -100)
    return F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)


class ILMPreTrainedModel(PreTrainedModel):
    config_class = ILMConfig
    base_model_prefix = "transformer"
    _no_split_modules = ["Block"]
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            # GPT-2's scaled init of every c_proj (the projections into the residual stream, and, as
            # the Backpack training code scales every parameter named c_proj.weight, the sense
            # network's output MLP). Decided on the Linear itself: transformers 5 calls this for
            # modules that hold parameters, never for the Attention/MLP around them.
            scale = (2 * self.config.n_layer) ** -0.5 if getattr(module, "scaled_init", False) else 1.0
            module.weight.normal_(0.0, std * scale)
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()
        elif isinstance(module, Transformer):
            module.reset_derived()

    def output_weight(self) -> torch.Tensor:
        """The projection to the vocabulary: the input embeddings when tied, else ``lm_head``'s (padding rows too)."""
        return self.transformer.wte.weight if self.config.tie_word_embeddings else self.lm_head.weight

    def output_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Hidden states → logits over the real vocabulary (padding rows cut off)."""
        weight = self.output_weight()
        # Cut the weight's rows, not the logits' columns: the logits come out contiguous (a
        # softmax or cross entropy of a strided slice copies it first) and pad rows cost nothing.
        return F.linear(h, weight[: self.config.vocab_size])

    def head_loss(self, h: torch.Tensor, labels: torch.Tensor, attention_mask=None, head: nn.Linear | None = None):
        """``lm_loss(output_logits(h), ...)`` without the logits: chunked, fused with the head (loss.py).

        ``head``: an exit head's projection instead of the output embeddings."""
        weight = head.weight if head is not None else self.output_weight()
        return head_cross_entropy(h, weight, labels, attention_mask, vocab=self.config.vocab_size,
                                  backend=self.config.cross_entropy)

    def get_input_embeddings(self) -> nn.Module:
        return self.transformer.wte

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        cache = cache_argument(kwargs)
        if cache is not None and cache.get_seq_length() > 0:
            input_ids = input_ids[:, cache.get_seq_length():]
        return {"input_ids": input_ids, "attention_mask": attention_mask, "cache": cache,
                "use_cache": kwargs.get("use_cache", True)}

    def _update_model_kwargs_for_generation(self, outputs, model_kwargs, is_encoder_decoder=False, num_new_tokens=1):
        # generate() seeds model_kwargs under its own name for the cache; keep that one key
        key = "past_key_values" if "past_key_values" in model_kwargs else "cache"
        model_kwargs[key] = outputs.cache
        mask = model_kwargs.get("attention_mask")
        if mask is not None:
            model_kwargs["attention_mask"] = torch.cat((mask, mask.new_ones(mask.shape[0], num_new_tokens)), dim=-1)
        return model_kwargs


class ILMForCausalLM(ILMPreTrainedModel, GenerationMixin):
    """GPT-2 (any position scheme) with tied, vocabulary-padded embeddings and optional exit heads."""

    def __init__(self, config: ILMConfig):
        super().__init__(config)
        self.transformer = Transformer(config)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
        self.exits = nn.ModuleDict({str(l): ExitHead(config) for l in config.exit_layers})
        self.post_init()

    def freeze_trunk(self, frozen: bool = True) -> None:
        """Train only the exit heads (the reference multi-exit recipe) or unfreeze everything."""
        for name, p in self.named_parameters():
            p.requires_grad = not frozen or name.startswith("exits.")

    def exit_head_logits(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """Exit head ``layer``'s logits over the real vocabulary from that layer's residual stream."""
        return self.exits[str(layer)](h, self.transformer.ln_f)[..., : self.config.vocab_size]

    def forward(self, input_ids, attention_mask=None, labels=None, use_cache=False, output_exit_logits=False,
                document_ids=None, output_hidden_states=False, return_logits=True, **kwargs) -> ILMOutput:
        """``hidden_states``: the residual stream after the embeddings and after each block (before ln_f).

        ``return_logits=False`` (with labels; what training asks): the losses come
        from the hidden states chunk by chunk, and no logits (nor exit logits) are made.
        The KV cache comes in as ``cache=`` or ``past_key_values=`` and goes out as ``.cache``."""
        if not return_logits and labels is None:
            raise ValueError("return_logits=False leaves nothing to return without labels")
        want_exits = output_exit_logits and bool(self.config.exit_layers)
        cache = cache_argument(kwargs)
        if use_cache and cache is None:
            cache = DynamicCache()
        h, layers = self.transformer(input_ids, attention_mask, document_ids, cache,
                                     keep_layers=want_exits or bool(output_hidden_states))
        out = ILMOutput(cache=cache, hidden_states=tuple(layers) if output_hidden_states else None)
        if not return_logits:
            out.loss = self.head_loss(h, labels, attention_mask)
            if want_exits:
                heads = {l: self.exits[str(l)] for l in self.config.exit_layers}
                out.exit_losses = {l: self.head_loss(head.norm(self.transformer.ln_f)(layers[l]), labels,
                                                     attention_mask, head=head.proj) for l, head in heads.items()}
                out.exit_loss = torch.stack(list(out.exit_losses.values())).mean()
            return out
        out.logits = self.output_logits(h)
        if want_exits:
            out.exit_logits = {l: self.exit_head_logits(l, layers[l]) for l in self.config.exit_layers}
        if labels is not None:
            out.loss = lm_loss(out.logits, labels, attention_mask)
            if want_exits:
                out.exit_losses = {l: lm_loss(x, labels, attention_mask) for l, x in out.exit_logits.items()}
                out.exit_loss = torch.stack(list(out.exit_losses.values())).mean()
        return out
