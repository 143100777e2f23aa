"""The one place training touches the model zoo.

``build(preset, vocab_size, overrides)`` goes through ``impossible_lms.models``
(``model_config`` + ``build_model``). Until that package provides them, a
Hugging Face GPT-2 stands in for the GPT-2 presets so training stays testable.
"""

from __future__ import annotations

from typing import Any

from impossible_lms.errors import ILMError

# Stand-in presets (GPT2Config fields), used only when impossible_lms.models lacks build_model.
_FALLBACK_PRESETS: dict[str, dict[str, Any]] = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, n_positions=1024),
    "tiny-gpt2": dict(n_layer=2, n_head=4, n_embd=64, n_positions=128),
}
_REFERENCE_GPT2 = dict(scale_attn_by_inverse_layer_idx=True, reorder_and_upcast_attn=True)


def build(preset: str, vocab_size: int, overrides: dict[str, Any] | None = None, eos_id: int | None = None):
    """The model for ``preset`` with ``vocab_size`` (a PreTrainedModel in fp32 on CPU)."""
    overrides = dict(overrides or {})
    try:
        from impossible_lms.models import build_model, model_config
    except ImportError:
        return _fallback(preset, vocab_size, {"bos_token_id": eos_id, "eos_token_id": eos_id, **overrides})
    cfg = model_config(preset, **{"vocab_size": vocab_size, **overrides})
    return build_model(cfg)


def _fallback(preset: str, vocab_size: int, overrides: dict[str, Any]):
    from transformers import GPT2Config, GPT2LMHeadModel

    if preset not in _FALLBACK_PRESETS:
        raise ILMError(f"unknown model preset {preset!r} (available: {', '.join(_FALLBACK_PRESETS)})")
    fields = {**_FALLBACK_PRESETS[preset], **_REFERENCE_GPT2, "vocab_size": vocab_size, **overrides}
    try:
        cfg = GPT2Config(**fields)
    except TypeError as e:
        raise ILMError(f"bad model override: {e}") from None
    return GPT2LMHeadModel(cfg)


def context_length(model) -> int:
    cfg = model.config
    for name in ("n_positions", "max_position_embeddings", "n_ctx", "context_length"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ILMError(f"cannot tell the context length of model type {type(model).__name__}")


def flops_per_token(model, seq: int) -> float:
    """Training FLOPs per token (forward + backward)."""
    fn = getattr(model.config, "flops_per_token", None)
    if callable(fn):
        return float(fn(seq))
    # PaLM appendix B: 6N for the matmuls plus 12·L·d·T for attention scores.
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())
    n_layer = getattr(cfg, "n_layer", None) or getattr(cfg, "num_hidden_layers", 0)
    d = getattr(cfg, "n_embd", None) or getattr(cfg, "hidden_size", 0)
    return 6.0 * n_params + 12.0 * n_layer * d * seq
