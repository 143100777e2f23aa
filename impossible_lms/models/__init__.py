"""GPT-2 variants (learned / no / rotary / ALiBi positions), Backpack, multi-exit heads, an LSTM,
and any causal LM transformers builds from its config (``hf:<model_type>``, the Llama and Mamba presets).

``model_config(name, **overrides)`` → config, ``build_model(cfg)`` → model,
``load_model(path_or_id)`` → a strict loader for ours and the published formats.

Importing this package registers the model types with transformers' Auto
classes (two dictionary entries; transformers is imported here anyway), so
whoever can build or load our models can also ``AutoModelForCausalLM.from_pretrained``
them; ``import impossible_lms`` alone stays free of torch.
"""

from impossible_lms.models.backpack import BackpackForCausalLM
from impossible_lms.models.config import PRESETS, BackpackConfig, ILMConfig, LSTMConfig, model_config
from impossible_lms.models.gpt2 import ILMForCausalLM, ILMOutput
from impossible_lms.models.hf import register_auto_classes
from impossible_lms.models.loading import build_model, load_model
from impossible_lms.models.lstm import LSTMForCausalLM

register_auto_classes()

__all__ = [
    "PRESETS", "BackpackConfig", "BackpackForCausalLM", "ILMConfig", "ILMForCausalLM", "ILMOutput", "LSTMConfig",
    "LSTMForCausalLM",
    "build_model", "load_model", "model_config", "register_auto_classes",
]
