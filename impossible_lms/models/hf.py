"""Hugging Face Auto* registration, so saved checkpoints load with ``AutoModelForCausalLM``."""

from __future__ import annotations


def register_auto_classes() -> None:
    """Register our configs and models with AutoConfig/AutoModelForCausalLM (idempotent)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from impossible_lms.models.loading import CONFIG_CLASSES, MODEL_CLASSES

    for model_type, config_cls in CONFIG_CLASSES.items():
        model_cls = MODEL_CLASSES[model_type]
        AutoConfig.register(config_cls.model_type, config_cls, exist_ok=True)
        AutoModelForCausalLM.register(config_cls, model_cls, exist_ok=True)
