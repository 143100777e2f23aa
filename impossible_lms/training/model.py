"""The one place training touches the model zoo (``impossible_lms.models``)."""

from __future__ import annotations

from typing import Any

from impossible_lms.errors import ILMError


def build(preset: str, vocab_size: int, overrides: dict[str, Any] | None = None, eos_id: int | None = None):
    """A freshly initialised ``preset`` for a dataset's vocabulary (fp32, on CPU)."""
    from impossible_lms.models import build_model, model_config

    fields = {"vocab_size": vocab_size, "bos_token_id": eos_id, "eos_token_id": eos_id, **(overrides or {})}
    return build_model(model_config(preset, **fields))


def context_length(model) -> int:
    cfg = model.config
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
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
    return 6.0 * n_params + 12.0 * cfg.num_hidden_layers * cfg.hidden_size * seq
