"""ilm: impossible language models, from corpus to report.

Importing the package registers its model classes with Hugging Face's
``AutoConfig``/``AutoModelForCausalLM`` so saved checkpoints load with
``AutoModelForCausalLM.from_pretrained``; nothing else happens at import time.
"""

from impossible_lms.errors import ILMError

__version__ = "0.1.0"
__all__ = ["ILMError", "__version__"]


def _register_models() -> None:
    try:
        from impossible_lms.models.hf import register_auto_classes
    except ImportError:  # models not built yet, or torch missing: nothing to register
        return
    register_auto_classes()


_register_models()
