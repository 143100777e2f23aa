"""GPT-2 variants (learned / no / rotary / ALiBi positions), Backpack, multi-exit heads.

``model_config(name, **overrides)`` → config, ``build_model(cfg)`` → model,
``load_model(path_or_id)`` → a strict loader for ours and the published formats.
"""

from impossible_lms.models.backpack import BackpackForCausalLM
from impossible_lms.models.config import PRESETS, BackpackConfig, ILMConfig, model_config
from impossible_lms.models.gpt2 import ILMForCausalLM, ILMOutput
from impossible_lms.models.loading import build_model, load_model

__all__ = [
    "PRESETS", "BackpackConfig", "BackpackForCausalLM", "ILMConfig", "ILMForCausalLM", "ILMOutput",
    "build_model", "load_model", "model_config",
]
