"""The one place training touches the model zoo (``impossible_lms.models``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from impossible_lms.errors import ILMError

# Fields that change what a trained trunk computes without changing any weight's
# name or shape; init_from refuses a source that differs in one of them.
_TRUNK_FIELDS = ("position", "rotary_dim", "rotary_base", "scale_attn_by_inverse_layer_idx",
                 "reorder_and_upcast_attn", "activation_function", "layer_norm_epsilon", "tie_word_embeddings")


def model_config(preset: str, vocab_size: int | None = None, overrides: dict[str, Any] | None = None,
                 eos_id: int | None = None, objective: str | None = None):
    """The checked config ``preset`` + ``overrides`` builds (cheap: no weights); errors name the preset.

    With ``objective``, also that the model suits it (exit heads where it trains them)."""
    from impossible_lms.models import model_config as preset_config
    from impossible_lms.training.objectives import get_objective

    fields = dict(overrides or {})
    if vocab_size is not None:
        fields = {"vocab_size": vocab_size, "bos_token_id": eos_id, "eos_token_id": eos_id, **fields}
    try:
        cfg = preset_config(preset, **fields)
    except ILMError as e:
        raise ILMError(f"model {preset}: {e}") from None
    if objective is not None:
        get_objective(objective).check(cfg, preset)
    return cfg


def build(preset: str, vocab_size: int, overrides: dict[str, Any] | None = None, eos_id: int | None = None):
    """A freshly initialised ``preset`` for a dataset's vocabulary (fp32, on CPU)."""
    from impossible_lms.models import build_model

    return build_model(model_config(preset, vocab_size, overrides, eos_id))


def model_for_training(cfg, vocab_size: int, eos_id: int | None = None, fresh: bool = True):
    """The model ``cfg`` (a TrainConfig) trains: built, from ``cfg.init_from`` when ``fresh`` (not
    resuming), with the objective's frozen parameters frozen before any optimiser or DDP sees them."""
    from impossible_lms.training.objectives import get_objective

    model = build(cfg.model, vocab_size, cfg.model_overrides, eos_id)
    if cfg.init_from and fresh:
        initialise_from(model, cfg.init_from)
    get_objective(cfg.objective).prepare(model, cfg.model)
    return model


def initialise_from(model, source: str | Path) -> None:
    """Copy the weights of ``source`` (checkpoint or run folder, cached hub id) into ``model``.

    Every trunk weight must match by name and shape; exit heads are matched where
    both have them, and heads only ``model`` has keep their fresh init."""
    import torch

    from impossible_lms.models import load_model
    from impossible_lms.models.generate import resolve_checkpoint

    with torch.random.fork_rng(devices=[]):  # building the source must not move the run's RNG
        src = load_model(resolve_checkpoint(source), dtype=torch.float32, device="cpu")
    for name in _TRUNK_FIELDS:
        ours, theirs = getattr(model.config, name, None), getattr(src.config, name, None)
        if ours != theirs:
            raise ILMError(f"init_from {source}: its {name} is {theirs!r}, the model's {ours!r}")
    own, state = model.state_dict(), src.state_dict()
    trunk = lambda keys: {k for k in keys if not k.startswith("exits.")}  # noqa: E731
    missing, unexpected = sorted(trunk(own) - set(state)), sorted(trunk(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        raise ILMError(f"init_from {source}: weights do not fit the model (missing {missing[:3]}, "
                       f"unexpected {unexpected[:3]}, other shapes {shapes[:3]})")
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


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
