"""One model config (a Hugging Face config dataclass) and the named presets built from it.

Every variant the project trains is the same GPT-2 with a few fields changed:
the position scheme, the attention backend, optional exit heads, and for the
Backpack a sense network on top. Presets are dicts of field overrides, so
``model_config("gpt2-nopos", n_layer=6)`` reads like litgpt's ``Config``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from transformers import PreTrainedConfig

from impossible_lms.config import check_range
from impossible_lms.errors import ILMError, did_you_mean

POSITIONS = ("learned", "none", "rotary", "alibi")
# The largest sizes a config may ask for: far beyond any model here, far below an allocation that
# would take the machine down before failing.
SIZE_LIMITS = {"vocab_size": 2**24, "n_positions": 2**20, "n_embd": 2**16, "n_layer": 1024, "n_head": 1024}
ATTENTIONS = ("auto", "flash_attn", "sdpa", "math", "eager")
# How scores become weights: softmax (GPT-2) or geometric (stick-breaking,
# Csordás et al. 2022; the reference's models/geometric_attention.py).
ATTENTION_KINDS = ("softmax", "geometric")
# How training's loss is computed without all logits (models/loss.py): auto = liger
# on CUDA when liger-kernel is installed, else chunked.
CROSS_ENTROPIES = ("auto", "chunked", "liger")
# What normalises an exit head's input: the model's own final ln_f ("shared": IBM's multi-exit
# architecture, Gera et al. 2023, so their folders load and ours export to their layout) or
# a LayerNorm of the head's own ("own": two more vectors per head, ilm's layout before 0.2).
EXIT_NORMS = ("shared", "own")


def drop_special_ids_outside(cfg: PreTrainedConfig) -> None:
    """Unset a BOS/EOS id outside the vocabulary (GPT-2's 50256 is meaningless in a tiny test vocabulary)."""
    for name in ("bos_token_id", "eos_token_id"):
        if (getattr(cfg, name, None) or 0) >= cfg.vocab_size:
            setattr(cfg, name, None)


def check_sizes(cfg: PreTrainedConfig, limits: dict[str, int]) -> None:
    """Each size a whole number in 1..its limit. Checked first: a zero would surface later as a
    ZeroDivisionError or an empty model, a string as a TypeError deep inside torch, and a huge
    one as a petabyte allocation."""
    for name, high in limits.items():
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ILMError(f"{name} must be a whole number, got {value!r}")
        check_range(name, value, ge=1, le=high)


def padded_vocab(vocab_size: int, multiple: int) -> int:
    """``vocab_size`` rounded up to a multiple of ``multiple`` (0 or 1: unpadded)."""
    m = max(1, multiple)
    return -(-vocab_size // m) * m


class ILMConfig(PreTrainedConfig):
    """GPT-2 family config; HF names (n_embd, n_layer, ...) so reference configs map 1:1."""

    model_type = "ilm-gpt2"
    attribute_map = {
        "hidden_size": "n_embd",
        "max_position_embeddings": "n_positions",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
    }

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None
    activation_function: str = "gelu_new"
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    resid_pdrop: float = 0.1
    # "learned" (GPT-2 table), "none" (reference no-pos models), "rotary" (GPT-J
    # interleaved pairs on the first rotary_dim dims of each head), "alibi".
    position: str = "learned"
    rotary_dim: int | None = None  # None → the whole head
    rotary_base: float = 10000.0
    attention: str = "auto"
    attention_kind: str = "softmax"
    cross_entropy: str = "auto"
    scale_attn_by_inverse_layer_idx: bool = False
    reorder_and_upcast_attn: bool = False
    tie_word_embeddings: bool = True
    # Embedding rows are padded to this multiple for matmul speed; logits are
    # cut back to vocab_size so no probability mass lands on padding rows.
    pad_vocab_to_multiple_of: int = 64
    # Layers (1-based: output of block l) with an extra LM head; [] = none.
    exit_layers: list[int] | None = None
    exit_norm: str = "shared"
    bos_token_id: int | None = 50256
    eos_token_id: int | None = 50256
    pad_token_id: int | None = None
    use_cache: bool = True  # generate() keeps a KV cache; forward() returns one only when asked

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self.exit_layers = sorted(set(self.exit_layers or []))
        drop_special_ids_outside(self)
        self.validate_ilm()

    def validate_ilm(self) -> None:
        if self.position not in POSITIONS:
            raise ILMError(f"position {self.position!r} is not one of {', '.join(POSITIONS)}")
        if self.attention not in ATTENTIONS:
            raise ILMError(f"attention {self.attention!r} is not one of {', '.join(ATTENTIONS)}")
        check_sizes(self, SIZE_LIMITS)
        if self.n_inner is not None:
            check_range("n_inner", self.n_inner, ge=1)
        check_range("pad_vocab_to_multiple_of", self.pad_vocab_to_multiple_of, ge=0)
        check_range("layer_norm_epsilon", self.layer_norm_epsilon, gt=0)
        check_range("initializer_range", self.initializer_range, ge=0)
        for name in ("embd_pdrop", "attn_pdrop", "resid_pdrop"):
            check_range(name, getattr(self, name), ge=0, lt=1)
        check_range("rotary_base", self.rotary_base, gt=0)
        if self.cross_entropy not in CROSS_ENTROPIES:
            raise ILMError(f"cross_entropy {self.cross_entropy!r} is not one of {', '.join(CROSS_ENTROPIES)}")
        if self.attention_kind not in ATTENTION_KINDS:
            raise ILMError(f"attention_kind {self.attention_kind!r} is not one of {', '.join(ATTENTION_KINDS)}")
        if self.attention_kind == "geometric" and self.attention not in ("auto", "eager"):
            raise ILMError(f"geometric attention has only an explicit (eager) form; set attention to auto "
                           f"or eager, not {self.attention!r}")
        if self.n_embd % self.n_head:
            raise ILMError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        rd = self.rotary_dim if self.rotary_dim is not None else self.head_dim
        if self.position == "rotary" and (rd % 2 or not 0 < rd <= self.head_dim):
            raise ILMError(f"rotary_dim={rd} must be even and in 2..{self.head_dim} (head size)")
        if self.exit_norm not in EXIT_NORMS:
            raise ILMError(f"exit_norm {self.exit_norm!r} is not one of {', '.join(EXIT_NORMS)}")
        bad = [l for l in self.exit_layers if not 1 <= l <= self.n_layer]
        if bad:
            raise ILMError(f"exit_layers {bad} outside 1..{self.n_layer}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def padded_vocab_size(self) -> int:
        return padded_vocab(self.vocab_size, self.pad_vocab_to_multiple_of)

    @property
    def inner_dim(self) -> int:
        return self.n_inner or 4 * self.n_embd

    def num_params(self, embeddings: bool = True) -> int:
        """Parameters of the transformer trunk (+ embeddings), as in the 6N estimate."""
        d, L = self.n_embd, self.n_layer
        block = 4 * d  # two LayerNorms
        block += d * 3 * d + 3 * d + d * d + d  # attention
        block += 2 * d * self.inner_dim + self.inner_dim + d  # MLP
        n = L * block + 2 * d  # + ln_f
        if embeddings:
            n += self.padded_vocab_size * d + (d * self.n_positions if self.position == "learned" else 0)
        return n

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token (forward + backward): 6N + 12·L·d·T (PaLM appendix B)."""
        n = self.num_params(embeddings=False) + self.padded_vocab_size * self.n_embd  # output matmul
        return 6.0 * n + 12.0 * self.n_layer * self.n_embd * seq_len

    def activation_bytes_per_sequence(self, context: int) -> int:
        """Training activation memory of one sequence, for the micro-batch estimate.

        ≈ 34·T·d bytes per layer in 16-bit with fused attention (Korthikanti et
        al. 2022) plus the fp32 logits and their gradient (12·T·V)."""
        return 34 * context * self.n_embd * self.n_layer + 12 * context * self.vocab_size


class BackpackConfig(ILMConfig):
    """A GPT-2 (any position scheme) for the weights, plus a sense network."""

    model_type = "ilm-backpack"

    num_senses: int = 16
    sense_intermediate_scale: int = 4

    def validate_ilm(self) -> None:
        super().validate_ilm()
        check_range("num_senses", self.num_senses, ge=1)
        check_range("sense_intermediate_scale", self.sense_intermediate_scale, ge=1)
        if self.n_embd % self.num_senses:
            raise ILMError(f"n_embd={self.n_embd} is not divisible by num_senses={self.num_senses}")
        if self.exit_layers:
            raise ILMError("exit_layers are not supported on Backpack models")

    def flops_per_token(self, seq_len: int) -> float:
        d, k = self.n_embd, self.num_senses
        sense = 2 * d * 4 * d + d * self.sense_intermediate_scale * d * (1 + k)  # block MLP + final MLP
        weights = 2 * d * d
        # α (k heads of d/k: scores) and α·senses (k sums of d-vectors) per position pair
        mix = 2 * seq_len * d + 2 * seq_len * k * d
        return super().flops_per_token(seq_len) + 6.0 * (sense + weights) + 3.0 * mix

    def activation_bytes_per_sequence(self, context: int) -> int:
        """The GPT-2 trunk's plus the sense network's, which the trunk estimate misses.

        Per token in 16-bit: the sense MLP's hidden (scale·d, kept with its GELU
        input: 2 copies), the k sense vectors of d and their α-weighted product
        and gradient (3 copies); per sequence the α weights [k, T, T] (softmax
        output and its gradient)."""
        d, k = self.n_embd, self.num_senses
        per_token = 2 * (2 * self.sense_intermediate_scale * d + 3 * k * d)
        return super().activation_bytes_per_sequence(context) + context * per_token + 2 * 2 * k * context * context


class LSTMConfig(PreTrainedConfig):
    model_type = "ilm-lstm"
    attribute_map = {"hidden_size": "n_embd", "num_hidden_layers": "n_layer", "max_position_embeddings": "n_positions"}

    vocab_size: int = 50257
    n_embd: int = 650
    n_layer: int = 2
    # The context training packs sequences to (an LSTM itself has no limit): the trainer reads it here.
    n_positions: int = 1024
    dropout: float = 0.5
    initializer_range: float = 0.1  # uniform(-0.1, 0.1), as Zaremba et al.
    pad_vocab_to_multiple_of: int = 64
    cross_entropy: str = "auto"
    tie_word_embeddings: bool = True
    bos_token_id: int | None = 50256
    eos_token_id: int | None = 50256
    pad_token_id: int | None = None
    use_cache: bool = False

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        drop_special_ids_outside(self)
        check_sizes(self, {**{k: SIZE_LIMITS[k] for k in ("vocab_size", "n_embd", "n_positions")}, "n_layer": 64})
        check_range("dropout", self.dropout, ge=0, lt=1)
        if not self.tie_word_embeddings:
            raise ILMError("the LSTM preset ties its output layer to the embeddings (tie_word_embeddings must be true)")

    @property
    def padded_vocab_size(self) -> int:
        return padded_vocab(self.vocab_size, self.pad_vocab_to_multiple_of)

    def flops_per_token(self, seq_len: int) -> float:
        """6 × the matmul parameters: 4 gates × (input + recurrent) per layer, and the output layer."""
        d = self.n_embd
        return 6.0 * (self.n_layer * 8 * d * d + self.padded_vocab_size * d)

    def activation_bytes_per_sequence(self, context: int) -> int:
        return 4 * context * self.n_embd * (10 * self.n_layer + 2) + 12 * context * self.vocab_size


_SMALL = dict(n_layer=12, n_head=12, n_embd=768, n_positions=1024)
_TINY = dict(n_layer=2, n_head=4, n_embd=64, n_positions=128)
# The reference study's training options (Mistral GPT-2 small).
_REFERENCE = dict(scale_attn_by_inverse_layer_idx=True, reorder_and_upcast_attn=True)

PRESETS: dict[str, dict[str, Any]] = {
    "gpt2": {**_SMALL, **_REFERENCE, "position": "learned"},
    "gpt2-nopos": {**_SMALL, **_REFERENCE, "position": "none"},
    "gpt2-rotary": {**_SMALL, **_REFERENCE, "position": "rotary", "rotary_dim": 32},
    "gpt2-alibi": {**_SMALL, **_REFERENCE, "position": "alibi"},
    "gpt2-exits": {**_SMALL, **_REFERENCE, "position": "learned", "exit_layers": [2, 4, 6, 8, 10]},
    "backpack-gpt2": {
        **_SMALL, "n_positions": 512, "vocab_size": 50264, "scale_attn_by_inverse_layer_idx": True,
        "arch": "backpack", "num_senses": 16,
    },
    "gpt2-geometric": {**_SMALL, **_REFERENCE, "position": "learned", "attention_kind": "geometric"},
    "gpt2-geometric-nopos": {**_SMALL, **_REFERENCE, "position": "none", "attention_kind": "geometric"},
    "tiny-gpt2": {**_TINY, **_REFERENCE, "position": "learned"},
    "tiny-gpt2-nopos": {**_TINY, **_REFERENCE, "position": "none"},
    "tiny-gpt2-rotary": {**_TINY, **_REFERENCE, "position": "rotary", "rotary_dim": 8},
    "tiny-gpt2-alibi": {**_TINY, **_REFERENCE, "position": "alibi"},
    "tiny-gpt2-exits": {**_TINY, **_REFERENCE, "position": "learned", "exit_layers": [1]},
    "tiny-gpt2-geometric": {**_TINY, **_REFERENCE, "position": "learned", "attention_kind": "geometric"},
    # between tiny and small: 4 layers, d=128, for replications on a laptop CPU (experiments/babylm-small.yaml)
    "mini-gpt2": {**_TINY, **_REFERENCE, "n_layer": 4, "n_embd": 128, "position": "learned"},
    # Other architectures under the same recipe (Kallini & Potts 2025's programme). The LSTM is
    # ours (plain torch); the others are built by transformers from its own config classes, so
    # they are the library's Llama (RoPE, SwiGLU, RMSNorm) and Mamba, not a copy of ours.
    "lstm": {"arch": "lstm", "n_layer": 2, "n_embd": 650, "dropout": 0.5, "n_positions": 1024},
    "tiny-lstm": {"arch": "lstm", "n_layer": 2, "n_embd": 64, "dropout": 0.1, "n_positions": 128},
    "llama-small": {"arch": "hf", "hf_type": "llama", "hidden_size": 768, "intermediate_size": 2048,
                    "num_hidden_layers": 12, "num_attention_heads": 12, "num_key_value_heads": 12,
                    "max_position_embeddings": 1024, "tie_word_embeddings": True},
    "tiny-llama": {"arch": "hf", "hf_type": "llama", "hidden_size": 64, "intermediate_size": 172,
                   "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
                   "max_position_embeddings": 128, "tie_word_embeddings": True},
    "mamba-small": {"arch": "hf", "hf_type": "mamba", "hidden_size": 768, "num_hidden_layers": 24,
                    "state_size": 16, "expand": 2, "conv_kernel": 4, "n_positions": 1024,
                    "tie_word_embeddings": True},
    "tiny-mamba": {"arch": "hf", "hf_type": "mamba", "hidden_size": 64, "num_hidden_layers": 2, "state_size": 16,
                   "expand": 2, "conv_kernel": 4, "n_positions": 128, "tie_word_embeddings": True},
    # the same attention flags as backpack-gpt2, at the tiny size
    "tiny-backpack": {**_TINY, "arch": "backpack", "num_senses": 4, "scale_attn_by_inverse_layer_idx": True},
}


def config_fields(cls: type[ILMConfig]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


ARCHITECTURES: dict[str, type[PreTrainedConfig]] = {"gpt2": ILMConfig, "backpack": BackpackConfig, "lstm": LSTMConfig}
HF_PREFIX = "hf:"  # --model hf:<model_type>: any causal LM transformers builds from its config class


def model_config(name: str, **overrides: Any) -> PreTrainedConfig:
    """The preset ``name`` (or ``hf:<model_type>``) with fields overridden; unknown names/fields → ILMError."""
    if name.startswith(HF_PREFIX):
        fields = {"arch": "hf", "hf_type": name[len(HF_PREFIX):], **overrides}
    elif name in PRESETS:
        fields = {**PRESETS[name], **overrides}
    else:
        raise ILMError(f"unknown model preset {name!r}{did_you_mean(name, PRESETS)}; known: {', '.join(PRESETS)} "
                       f"(or {HF_PREFIX}<model_type>)")
    arch = fields.pop("arch", "gpt2")
    if arch == "hf":
        return hf_config(fields.pop("hf_type"), fields)
    cls = ARCHITECTURES[arch]
    known = config_fields(cls)
    for key in fields:
        if key not in known:
            raise ILMError(f"unknown model config field {key!r}{did_you_mean(key, sorted(known))}")
    return cls(**fields)


# Fields ilm sets on every config (the dataset's vocabulary and EOS) or reads (the training context).
_ILM_FIELDS = ("vocab_size", "bos_token_id", "eos_token_id", "n_positions")


def hf_config(model_type: str, fields: dict[str, Any]) -> PreTrainedConfig:
    """A transformers config of ``model_type`` with ``fields``, each checked against the class's own
    (transformers accepts a misspelt one silently). ``n_positions``: the training context, kept on
    the config for architectures without a position limit of their own (Mamba)."""
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        raise ILMError(f"transformers has no model type {model_type!r}{did_you_mean(model_type, list(CONFIG_MAPPING))}")
    cls = CONFIG_MAPPING[model_type]
    known = set(cls().to_dict()) | set(getattr(cls, "attribute_map", {})) | set(_ILM_FIELDS)
    for key in fields:
        if key not in known:
            raise ILMError(f"{model_type} has no config field {key!r}{did_you_mean(key, sorted(known))}")
    context = fields.pop("n_positions", None)
    cfg = cls(**fields)
    if context is not None or getattr(cfg, "max_position_embeddings", None) is None:
        cfg.n_positions = int(context or 1024)
    drop_special_ids_outside(cfg)
    return cfg


# How the non-GPT-2 architectures place tokens and mix them, for `ilm models`.
_KINDS = {"ilm-lstm": ("recurrent", "lstm"), "llama": ("rotary", "softmax"), "mamba": ("recurrent", "ssm"),
          "gpt_neox": ("rotary", "softmax"), "gpt_neo": ("learned", "softmax")}


def preset_table(vocab_size: int = 50257) -> list[dict[str, Any]]:
    """Every preset with its shape and exact parameter count (built on the meta device: no memory,
    no init; tied embeddings counted once, padded vocabulary rows included) at ``vocab_size``."""
    import torch

    from impossible_lms.models.loading import build_model

    rows = []
    for name in PRESETS:
        vocab = PRESETS[name].get("vocab_size", vocab_size)
        cfg = model_config(name, vocab_size=vocab)
        with torch.device("meta"):
            params = sum(p.numel() for p in build_model(cfg).parameters())
        ours = isinstance(cfg, ILMConfig)
        positions, attention = (cfg.position, cfg.attention_kind) if ours else _KINDS.get(cfg.model_type, ("?", "?"))
        rows.append({"preset": name, "arch": PRESETS[name].get("hf_type") or PRESETS[name].get("arch", "gpt2"),
                     "layers": cfg.num_hidden_layers, "d_model": cfg.hidden_size,
                     "heads": getattr(cfg, "num_attention_heads", None) or "-",
                     "context": getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None),
                     "positions": positions, "attention": attention,
                     "exits": ",".join(map(str, getattr(cfg, "exit_layers", None) or [])) or "-", "vocab": vocab,
                     "parameters": params})
    return rows
