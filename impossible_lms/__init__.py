"""ilm: impossible language models, from corpus to report.

Importing the package does nothing else: it loads neither torch nor
transformers (``ilm report`` and ``ilm languages`` never need them). Hugging
Face's ``AutoConfig``/``AutoModelForCausalLM`` learn our model types when
:mod:`impossible_lms.models` is first imported, or explicitly::

    import impossible_lms
    impossible_lms.register_models()
    AutoModelForCausalLM.from_pretrained("runs/.../checkpoint-100")
"""

from impossible_lms.errors import ILMError

__version__ = "0.1.0"
__all__ = ["ILMError", "__version__", "register_models"]


def register_models() -> None:
    """Register ilm's configs and models with transformers' Auto classes (idempotent; imports torch)."""
    from impossible_lms.models.hf import register_auto_classes

    register_auto_classes()
