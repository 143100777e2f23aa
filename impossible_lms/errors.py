"""User-facing errors: see :mod:`perturbations.errors` (the same class, defined in
the dependency-free layer so the languages import without torch)."""

from perturbations.errors import ILMError, did_you_mean

__all__ = ["ILMError", "did_you_mean"]
