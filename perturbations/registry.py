"""Names → languages: the registry, parametric specs and the 15 reference languages.

A spec is a base name with optional parameters: ``local_shuffle:w=7``,
``deterministic_shuffle:seed=9``, ``token_hop:n=2``. Most parameters are
integers; a few are text (``np_order:order=N-A-Num-Dem``, the hop selector
``token_hop:upos=VERB|AUX``): their values keep their case, may hold ``=`` and
``|`` but not ``,``, and appear in ``Language.params`` only when given a value
other than the default. Also accepted: display
names (``TokenHop``, ``LocalShuffle:w=3``), the reference repository's names
(``shuffle_local3``, ``hop_words4``), the Hub model names (``local-shuffle-w3``)
and dataset folder names (``local_shuffle_w=3``).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from perturbations.errors import ILMError
from perturbations.base import Language
from perturbations import hop, reverse, shuffle, tree

REQUIRED = None  # a parameter default meaning "must be given"


@dataclass(frozen=True)
class Entry:
    """One registered base language: its class, parameters (name → default) and looks."""

    cls: type[Language]
    display: str
    params: dict[str, int | str | None]
    color: str
    summary: str
    text: tuple[str, ...] = ()  # parameters whose values are text, not integers
    check: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # canonical text values, or ILMError


REGISTRY: dict[str, Entry] = {
    "no_shuffle": Entry(shuffle.NoShuffle, "NoShuffle", {}, "#606060", "GPT-2 tokens unchanged (control)"),
    "nondeterministic_shuffle": Entry(
        shuffle.NondeterministicShuffle, "NondeterministicShuffle", {"seed": 0}, "#E8384F",
        "a fresh random permutation per sentence from one stream",
    ),
    "deterministic_shuffle": Entry(
        shuffle.DeterministicShuffle, "DeterministicShuffle", {"seed": REQUIRED}, "#FFB000",
        "the same permutation for every sentence of a length",
    ),
    "local_shuffle": Entry(
        shuffle.LocalShuffle, "LocalShuffle", {"w": REQUIRED, "seed": 0}, "#4178BC",
        "fixed permutation inside consecutive windows of w tokens",
    ),
    "even_odd_shuffle": Entry(shuffle.EvenOddShuffle, "EvenOddShuffle", {}, "#E37CFF", "even-index tokens, then odd-index tokens"),
    "no_reverse": Entry(reverse.NoReverse, "NoReverse", {"seed": 21}, "#606060", "🅁 at a random index (control)"),
    "partial_reverse": Entry(reverse.PartialReverse, "PartialReverse", {"seed": 21}, "#E5A836", "🅁 at a random index, tokens after it reversed"),
    "full_reverse": Entry(reverse.FullReverse, "FullReverse", {"seed": 21}, "#A348A6", "🅁 at a random index, whole sequence reversed"),
    "no_hop": Entry(hop.NoHop, "NoHop", {"n": 4}, "#606060", "verb lemma + 🅂/🄿 right after it (control)"),
    "token_hop": Entry(hop.TokenHop, "TokenHop", {"n": 4}, "#fa8128", "verb lemma; 🅂/🄿 n tokens after it"),
    "word_hop": Entry(hop.WordHop, "WordHop", {"n": 4}, "#03a0ff", "verb lemma; 🅂/🄿 n words after it"),
    "tree_reverse": Entry(
        tree.TreeReverse, "TreeReverse", {"depth": 0}, "#7a5195",
        "each head's dependents (whole subtrees) and itself in reverse order, heads at depth <= depth (0: all)",
    ),
    "tree_shuffle": Entry(
        tree.TreeShuffle, "TreeShuffle", {"seed": 0, "depth": 0}, "#ef5675",
        "each head's subtrees and itself in a random order from one stream (depth as tree_reverse)",
    ),
    "head_final": Entry(tree.HeadFinal, "HeadFinal", {}, "#003f5c", "every head after all its dependents (subtrees kept whole)"),
    "head_initial": Entry(tree.HeadInitial, "HeadInitial", {}, "#2f4b7c", "every head before all its dependents (subtrees kept whole)"),
    "head_flip": Entry(tree.HeadFlip, "HeadFlip", {}, "#665191", "every head's left and right dependents trade sides"),
    "np_order": Entry(
        tree.NPOrder, "NPOrder", {"order": REQUIRED}, "#ffa600",
        "Dem, Num, Adj and N of each noun phrase in the given order (Universal 20)",
        text=("order",), check=tree.check_np_order,
    ),
}
# The hop selector (which words agree, which feature picks the marker) is text on every hop entry.
for _base in ("no_hop", "token_hop", "word_hop"):
    REGISTRY[_base] = Entry(
        REGISTRY[_base].cls, REGISTRY[_base].display, {**REGISTRY[_base].params, **hop.SELECTOR_DEFAULTS},
        REGISTRY[_base].color, REGISTRY[_base].summary, text=tuple(hop.SELECTOR_DEFAULTS), check=hop.check_selector,
    )

# Every family, in the order reports and listings show them: the registry's own, derived.
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(entry.cls.family for entry in REGISTRY.values()))

# The 15 languages of Kallini et al. (2024), in the paper's order.
REFERENCE_LANGUAGES: tuple[str, ...] = (
    "no_shuffle",
    "nondeterministic_shuffle",
    "deterministic_shuffle:seed=21",
    "deterministic_shuffle:seed=57",
    "deterministic_shuffle:seed=84",
    "local_shuffle:w=3",
    "local_shuffle:w=5",
    "local_shuffle:w=10",
    "even_odd_shuffle",
    "no_reverse",
    "partial_reverse",
    "full_reverse",
    "no_hop",
    "token_hop",
    "word_hop",
)

# Colours of the reference plots where they differ from the base entry's.
_COLORS = {
    "deterministic_shuffle:seed=57": "#8db000",
    "deterministic_shuffle:seed=84": "#62BB35",
    "local_shuffle:w=3": "#208EA3",
    "local_shuffle:w=10": "#AA71FF",
}

# The reference repository's names (utils.PERTURBATIONS) and Hub model names.
ALIASES: dict[str, str] = {
    "shuffle_control": "no_shuffle",
    "shuffle_nondeterministic": "nondeterministic_shuffle",
    "shuffle_even_odd": "even_odd_shuffle",
    "reverse_control": "no_reverse",
    "reverse_partial": "partial_reverse",
    "reverse_full": "full_reverse",
    "hop_control": "no_hop",
    "hop_tokens4": "token_hop",
    "hop_words4": "word_hop",
    **{f"shuffle_deterministic{s}": f"deterministic_shuffle:seed={s}" for s in (21, 57, 84)},
    **{f"deterministic_shuffle_s{s}": f"deterministic_shuffle:seed={s}" for s in (21, 57, 84)},
    **{f"shuffle_local{w}": f"local_shuffle:w={w}" for w in (3, 5, 10)},
    **{f"local_shuffle_w{w}": f"local_shuffle:w={w}" for w in (3, 5, 10)},
}

# Allowed range per parameter. A window or hop wider than the 1024-token context
# cannot mean anything the model sees; hop n=0 would put the marker before its verb's
# hop starts (the verb is the first word counted); seeds are numpy's 32-bit range.
_LIMITS = {"w": (1, 1024), "n": (1, 1024), "seed": (0, 2**32 - 1), "depth": (0, 1024)}


def _normalise(spec: str) -> str:
    """Lower-case base name (Hub names' "-" read as "_") and keys; values keep their case."""
    raw = spec.strip()
    # Dataset folder names write ":" as "_": local_shuffle_w=3 → local_shuffle:w=3.
    if ":" not in raw and "=" in raw:
        m = re.fullmatch(r"([A-Za-z_-]+?)_([A-Za-z]+=.*)", raw)
        if m and m.group(1).lower().replace("-", "_") in REGISTRY:
            raw = f"{m.group(1)}:{m.group(2)}"
    # "-" only in the base name, so "n=-1" stays a number.
    base, colon, params = raw.partition(":")
    base = base.lower().replace("-", "_")
    parts = [p.partition("=") for p in params.split(",")] if colon else []
    s = base + colon + ",".join(k.strip().lower() + eq + v.strip() for k, eq, v in parts)
    return ALIASES.get(s.lower(), s)


def _suggest(spec: str) -> str:
    pool = list(REGISTRY) + list(REFERENCE_LANGUAGES) + list(ALIASES)
    close = difflib.get_close_matches(spec, pool, n=3, cutoff=0.5)
    canon = []
    for c in close:
        c = ALIASES.get(c, c)
        if c not in canon:
            canon.append(c)
    hint = f"did you mean {', '.join(canon)}? " if canon else ""
    return f"unknown language {spec!r}; {hint}(`ilm languages` lists them)"


def _parse_params(base: str, text: str, entry: Entry) -> dict[str, Any]:
    given: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq:
            raise ILMError(f"bad parameter {part!r} in {base}; write {base}:name=value")
        if key not in entry.params:
            takes = ", ".join(entry.params) or "no parameters"
            raise ILMError(f"{base} has no parameter {key!r}; it takes {takes}")
        if key in given:
            raise ILMError(f"{base}: {key} is given twice ({base}:{text}); give it once")
        if key in entry.text:
            given[key] = value.strip()
            continue
        try:
            number = int(value)
        except ValueError:
            raise ILMError(f"{base}: {key} must be an integer, got {value.strip()!r}") from None
        low, high = _LIMITS.get(key, (0, 2**32 - 1))
        if not low <= number <= high:
            raise ILMError(f"{base}: {key} must be between {low} and {high}, got {number}")
        given[key] = number
    if entry.check is not None:
        given = entry.check(given)
    params: dict[str, Any] = {}
    for key, default in entry.params.items():
        if key in given:
            params[key] = given[key]
        elif default is REQUIRED:
            raise ILMError(f"{base} needs {key}, e.g. {base}:{key}=3")
        else:
            params[key] = default
    return params


def _canonical(base: str, entry: Entry, params: dict[str, int]) -> tuple[str, str]:
    """The canonical name and display: parameters shown when required or not default."""
    shown = [(k, v) for k, v in params.items() if entry.params[k] is REQUIRED or v != entry.params[k]]
    if not shown:
        return base, entry.display
    name = base + ":" + ",".join(f"{k}={v}" for k, v in shown)
    display = f"{entry.display} ({', '.join(f'{k}={v}' for k, v in shown)})"
    return name, display


def get_language(spec: str | Language) -> Language:
    """The language a spec names; ILMError naming the closest names when unknown."""
    if isinstance(spec, Language):
        return spec
    normal = _normalise(spec)
    base, _, param_text = normal.partition(":")
    # Display names work too: "TokenHop", "LocalShuffle:w=3".
    base = {k.replace("_", ""): k for k in REGISTRY}.get(base.replace("_", ""), base)
    entry = REGISTRY.get(base)
    if entry is None:
        raise ILMError(_suggest(spec.strip()))
    params = _parse_params(base, param_text, entry)
    name, display = _canonical(base, entry, params)
    color = _COLORS.get(name, entry.color)
    # Text parameters at their defaults stay out of `params` (and so out of manifests).
    shown = {k: v for k, v in params.items() if k not in entry.text or v != entry.params[k]}
    return entry.cls(name=name, display=display, params=shown, color=color, **params)


# A value for each required parameter, so every registered language can be listed and shown.
EXAMPLE_PARAMS = {"np_order": "order=N-A-Num-Dem"}


def _check_family(family: str | None) -> None:
    if family is not None and family not in FAMILIES:
        raise ILMError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")


def list_languages(family: str | None = None, every: bool = False) -> list[Language]:
    """The 15 reference languages in paper order, then (``every``) one of each other registered
    language at its default parameters; optionally of one family."""
    _check_family(family)
    names = list(REFERENCE_LANGUAGES)
    if every:
        names += [f"{base}:{EXAMPLE_PARAMS[base]}" if base in EXAMPLE_PARAMS else base
                  for base in REGISTRY if not any(n.partition(":")[0] == base for n in REFERENCE_LANGUAGES)]
    langs = [get_language(name) for name in names]
    return [lang for lang in langs if family is None or lang.family == family]


def describe(language: Language) -> str:
    """One line saying what the language does."""
    base = language.name.partition(":")[0]
    return REGISTRY[base].summary


def language_table(specs: Sequence[str] = (), family: str | None = None, every: bool = False) -> list[dict[str, str]]:
    """One row per language for ``ilm languages``: the 15 reference ones (``every``: then every
    other registered language), or ``specs``.

    Rows hold name, display, family, markers (space-separated, "" for none),
    summary and example; ``family`` keeps one family only (a family outside the 15, such as
    ``tree``, lists its registered languages).
    """
    _check_family(family)
    every = every or (family is not None and not list_languages(family))
    langs = [get_language(s) for s in specs] if specs else list_languages(every=every)
    return [
        {
            "name": lang.name,
            "display": lang.display,
            "family": lang.family,
            "markers": " ".join(lang.markers),
            "summary": describe(lang),
            "example": lang.example(),
        }
        for lang in langs
        if family is None or lang.family == family
    ]


