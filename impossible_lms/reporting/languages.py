"""Names, families and colours for the report, from the perturbations registry.

The report never hard-codes a language's look: it asks the registry. A result
labelled with a name the registry does not know (a hub model, a new corpus)
still reports, under its own name, in an "other" family with matplotlib's
default colour cycle.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from perturbations import FAMILIES

FAMILY_ORDER = (*FAMILIES, "other")  # the registry's families, then names it does not know


@dataclass(frozen=True)
class LanguageInfo:
    name: str
    display: str
    family: str
    color: str | None
    order: int          # position in the registry's reference list (unknown ones last)


@functools.lru_cache(maxsize=None)
def language_info(name: str) -> LanguageInfo:
    from impossible_lms.errors import ILMError

    try:
        from perturbations import REFERENCE_LANGUAGES, get_language

        lang = get_language(str(name))
    except (ILMError, ImportError, ValueError):
        return LanguageInfo(str(name), str(name), "other", None, 10_000)
    reference = [getattr(x, "name", x) for x in REFERENCE_LANGUAGES]
    order = reference.index(lang.name) if lang.name in reference else 1_000
    return LanguageInfo(lang.name, lang.display, lang.family, lang.color, order)


def sort_key(name: str) -> tuple[int, int, str]:
    info = language_info(name)
    family = FAMILY_ORDER.index(info.family) if info.family in FAMILY_ORDER else len(FAMILY_ORDER)
    return family, info.order, info.name
