"""The impossible languages: pure functions over sentences, behind a registry.

    >>> from perturbations import get_language
    >>> lang = get_language("local_shuffle:w=3")
    >>> results = lang.perturb_file(sentences, tok)   # one corpus file, in order
    >>> packed = lang.perturb_columns(sentences, tok)  # the same, as flat arrays

Pure Python + numpy; never imports torch or transformers.
"""

from perturbations.base import (
    MARKER_PLURAL,
    MARKER_REVERSE,
    MARKER_SINGULAR,
    Language,
    Perturbed,
    PerturbedColumns,
    Sentence,
    TokenizerFns,
    Word,
)
from perturbations.ragged import Ragged
from perturbations.registry import (
    FAMILIES,
    REFERENCE_LANGUAGES,
    describe,
    get_language,
    language_table,
    list_languages,
)

__all__ = [
    "FAMILIES",
    "MARKER_PLURAL",
    "MARKER_REVERSE",
    "MARKER_SINGULAR",
    "REFERENCE_LANGUAGES",
    "Language",
    "Perturbed",
    "PerturbedColumns",
    "Ragged",
    "Sentence",
    "TokenizerFns",
    "Word",
    "describe",
    "get_language",
    "language_table",
    "list_languages",
]
