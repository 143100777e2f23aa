"""Hugging Face Auto* registration, so saved checkpoints load with ``AutoModelForCausalLM``."""

from __future__ import annotations


def register_auto_classes() -> None:
    """Register our configs and models with AutoConfig/AutoModelForCausalLM (idempotent)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from impossible_lms.models.backpack import BackpackForCausalLM
    from impossible_lms.models.config import BackpackConfig, ILMConfig
    from impossible_lms.models.gpt2 import ILMForCausalLM

    for config_cls, model_cls in ((ILMConfig, ILMForCausalLM), (BackpackConfig, BackpackForCausalLM)):
        AutoConfig.register(config_cls.model_type, config_cls, exist_ok=True)
        AutoModelForCausalLM.register(config_cls, model_cls, exist_ok=True)
