"""Subject–verb agreement pairs for interchange interventions (Kallini et al. 2024, experiment 3).

The reference (``hop_interventions/create_agreement_data.py``) pairs the NoHop
and WordHop affected test sentences line by line and keeps the simple pattern
"the SUBJECT VERB w w w w" (four tokens after the verb):

- NoHop ids read ``the|The t t 🅂 t t t t`` (marker right after the verb),
- WordHop ids read ``the|The t t t t t t 🅂`` (marker after the four words),
- and the two agree once the marker is taken out (so every word is one token).

Every occurrence in a sentence counts (the reference's ``re.findall``; the
i-th NoHop match is compared with the i-th WordHop one, as its ``zip`` does).
The kept sequence is the 7 ids without the marker (the singular *base*); its
plural *source* pluralises the subject word (word 1 of the decoded text) with
the ``pluralizer`` package, as the reference, and re-encodes the words joined
by single spaces. A pair is kept when the plural has the same token count and
differs; the first id is reset to the singular's (re-encoding turns " the"
into "the").

Difference from the reference: its pattern matched ids with the regex
``[1-9]+``, which silently skips every sentence whose ids in the window contain
a digit 0 (id 50, 101, 1000, ...). Here a window token is any non-marker id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

from impossible_lms.errors import ILMError
from impossible_lms.io import atomic_write_json, fingerprint
from perturbations import get_language

FORMAT = "ilm-agreement/1"
SINGULAR_MARKER, PLURAL_MARKER = "\U0001F142", "\U0001F13F"  # 🅂 🄿
WINDOW = 8  # the|The + subject + verb + 4 tokens + marker
NO_HOP_MARKER_AT = 3  # marker index in the NoHop window
WORD_HOP_MARKER_AT = 7  # and in the WordHop window
NO_HOP_PREFIX = 3  # the reference feeds NoHop models "the SUBJECT VERB" only


def window_matches(ids: Sequence[int], the_ids: set[int], marker: int, marker_at: int,
                   markers: set[int]) -> list[list[int]]:
    """Non-overlapping windows ``the t t t t t t t`` with ``marker`` at ``marker_at``, left to right.

    ``t`` is any id that is not a marker; a window starts at any token (the
    reference's ``(?:^| )`` anchors it at an id boundary).
    """
    out, i, n = [], 0, len(ids)
    while i + WINDOW <= n:
        window = ids[i : i + WINDOW]
        if (window[0] in the_ids and window[marker_at] == marker
                and all(t not in markers for k, t in enumerate(window) if k != marker_at)):
            out.append(list(window))
            i += WINDOW
        else:
            i += 1
    return out


def candidate_sequences(no_hop: Sequence[Sequence[int]], word_hop: Sequence[Sequence[int]], the_ids: set[int],
                        marker: int, markers: set[int]) -> list[list[int]]:
    """The 7-id singular sequences both languages agree on, in corpus order (line-paired)."""
    out = []
    for control, hop in zip(no_hop, word_hop):
        pairs = zip(window_matches(list(control), the_ids, marker, NO_HOP_MARKER_AT, markers),
                    window_matches(list(hop), the_ids, marker, WORD_HOP_MARKER_AT, markers))
        for c, w in pairs:
            c = c[:NO_HOP_MARKER_AT] + c[NO_HOP_MARKER_AT + 1 :]
            w = w[:WORD_HOP_MARKER_AT]
            if c == w:
                out.append(w)
    return out


def pluralise(candidates: Sequence[Sequence[int]], encode: Callable[[str], list[int]],
              decode: Callable[[Sequence[int]], str], pluralize: Callable[[str], str]) -> list[tuple[list[int], list[int]]]:
    """(singular, plural) id pairs: subject pluralised, same length, different ids."""
    out = []
    for seq in candidates:
        words = decode(seq).split()
        if len(words) < 2:
            continue
        words[1] = pluralize(words[1])
        plural = encode(" ".join(words))
        if len(plural) != len(seq):
            continue
        plural[0] = seq[0]
        if list(plural) != list(seq):
            out.append((list(seq), list(plural)))
    return out


def reference_pluralize(word: str) -> str:
    """The reference's ``Pluralizer().pluralize(word, 2, False)``."""
    try:
        from pluralizer import Pluralizer
    except ImportError:  # a dependency: only a broken install gets here
        raise ILMError("the agreement data needs the `pluralizer` package: pip install pluralizer") from None
    return _pluralizer(Pluralizer).pluralize(word, 2, False)


_PLURALIZER: list = []


def _pluralizer(cls):
    if not _PLURALIZER:
        _PLURALIZER.append(cls())  # builds its rule tables once
    return _PLURALIZER[0]


@dataclass
class AgreementData:
    """Singular (base) and plural (source) id sequences, all of one length, and the marker ids."""

    singular: list[list[int]]
    plural: list[list[int]]
    singular_marker: int
    plural_marker: int
    tokenizer_fingerprint: str | None = None
    source: dict = field(default_factory=dict)  # where the pairs came from (folders, fingerprints)

    def __post_init__(self) -> None:
        if len(self.singular) != len(self.plural):
            raise ILMError(f"agreement data: {len(self.singular)} singular but {len(self.plural)} plural sequences")
        lengths = {len(s) for s in self.singular} | {len(p) for p in self.plural}
        if len(lengths) > 1:
            raise ILMError(f"agreement data: sequences of different lengths {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.singular)

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint(FORMAT, self.singular, self.plural, self.singular_marker, self.plural_marker)

    def truncated(self, tokens: int | None) -> AgreementData:
        """The first ``tokens`` ids of every pair (NoHop models see "the SUBJECT VERB")."""
        if tokens is None or not self.singular or tokens >= len(self.singular[0]):
            return self
        if tokens < 1:
            raise ILMError("tokens must be at least 1")
        return AgreementData([s[:tokens] for s in self.singular], [p[:tokens] for p in self.plural],
                             self.singular_marker, self.plural_marker, self.tokenizer_fingerprint, self.source)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_json(path, {
            "format": FORMAT, "singular": self.singular, "plural": self.plural,
            "markers": {SINGULAR_MARKER: self.singular_marker, PLURAL_MARKER: self.plural_marker},
            "tokenizer_fingerprint": self.tokenizer_fingerprint, "source": self.source,
        })
        return path


def load_agreement_data(path: str | Path) -> AgreementData:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ILMError(f"cannot read agreement data {path}: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ILMError(f"{path} is not an agreement data file (format {FORMAT})")
    try:
        markers = data["markers"]
        return AgreementData([list(map(int, s)) for s in data["singular"]], [list(map(int, s)) for s in data["plural"]],
                             int(markers[SINGULAR_MARKER]), int(markers[PLURAL_MARKER]),
                             data.get("tokenizer_fingerprint"), data.get("source") or {})
    except (KeyError, TypeError, ValueError) as e:
        raise ILMError(f"{path}: malformed agreement data ({type(e).__name__}: {e})") from None


def build_agreement_data(no_hop: str | Path, word_hop: str | Path, split: str = "test_affected",
                         pluralize: Callable[[str], str] = reference_pluralize) -> AgreementData:
    """The agreement pairs of two dataset folders (``ilm perturb`` outputs of no_hop and word_hop).

    ``split``: the reference's ``test_affected``; another split only where the
    test set is too small to hold the pattern (the demo's synthetic corpus)."""
    from impossible_lms.data import load_dataset_tokenizer, load_manifest, load_split

    no_hop, word_hop = Path(no_hop), Path(word_hop)
    manifests = {name: load_manifest(folder) for name, folder in (("no_hop", no_hop), ("word_hop", word_hop))}
    for name, m in manifests.items():
        if m.language != name:
            raise ILMError(f"{no_hop if name == 'no_hop' else word_hop} holds {m.language}, not {name}")
    a, b = manifests["no_hop"], manifests["word_hop"]
    if a.corpus != b.corpus:
        raise ILMError(f"{no_hop} and {word_hop} come from different corpora; agreement pairs need the same sentences")
    if a.tokenizer.get("fingerprint") != b.tokenizer.get("fingerprint"):
        raise ILMError(f"{no_hop} and {word_hop} were tokenised differently")
    tok = load_dataset_tokenizer(word_hop)
    the_ids = set()
    for text in ("The", " the"):
        ids = tok.encode(text)
        if len(ids) == 1:
            the_ids.add(ids[0])
    if not the_ids:
        raise ILMError(f"the tokenizer of {word_hop} has no single token for 'The' or ' the'")
    marker_ids = b.marker_ids
    if SINGULAR_MARKER not in marker_ids or PLURAL_MARKER not in marker_ids:
        raise ILMError(f"{word_hop} has no hop markers {SINGULAR_MARKER} {PLURAL_MARKER}")
    control = load_split(no_hop, split)["input_ids"]
    hop = load_split(word_hop, split)["input_ids"]
    if len(control) != len(hop):
        raise ILMError(f"{no_hop} and {word_hop} have different {split} sizes ({len(control)}, {len(hop)}); "
                       "were they perturbed from the same corpus?")
    sg, pl = marker_ids[SINGULAR_MARKER], marker_ids[PLURAL_MARKER]
    candidates = candidate_sequences(control, hop, the_ids, sg, {sg, pl})
    pairs = pluralise(candidates, tok.encode, tok.decode, pluralize)
    source = {"no_hop": str(no_hop.resolve()), "word_hop": str(word_hop.resolve()),
              "corpus": a.corpus, "split": split,
              "candidates": len(candidates)}
    return AgreementData([s for s, _ in pairs], [p for _, p in pairs], sg, pl, b.tokenizer.get("fingerprint"), source)


def agreement_data(data: str | Path | Sequence[str | Path], split: str = "test_affected") -> AgreementData:
    """Agreement pairs from what the user gives: a saved pairs file, the no_hop and word_hop
    folders, or one hop dataset folder whose siblings ``no_hop/`` and ``word_hop/`` exist."""
    from impossible_lms.data import load_manifest

    items = [Path(data)] if isinstance(data, (str, Path)) else [Path(d) for d in data]
    if len(items) == 1 and items[0].is_file():
        return load_agreement_data(items[0])
    if not items or len(items) > 2:
        raise ILMError("give an agreement pairs file, or the no_hop and word_hop dataset folders")
    by_language = {load_manifest(f).language: f for f in items}
    if len(items) == 1:
        (language, folder), = by_language.items()
        if not get_language(language).marks_agreement:
            raise ILMError(f"{folder} holds {language}; agreement pairs come from the no_hop and word_hop datasets")
        for name in ("no_hop", "word_hop"):
            sibling = folder.parent / name
            if name not in by_language:
                if not (sibling / "manifest.json").is_file():
                    raise ILMError(f"agreement pairs need the {name} dataset beside {folder} ({sibling} not found); "
                                   f"perturb it too (ilm perturb no_hop word_hop ...) or pass --data twice")
                by_language[name] = sibling
    missing = [n for n in ("no_hop", "word_hop") if n not in by_language]
    if missing:
        raise ILMError(f"agreement pairs need the {' and '.join(missing)} dataset (got {', '.join(by_language)})")
    return build_agreement_data(by_language["no_hop"], by_language["word_hop"], split)
