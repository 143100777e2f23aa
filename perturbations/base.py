"""The data types every language shares, and the :class:`Language` base class.

A language turns one corpus file (a list of sentences, in corpus order) into
:class:`PerturbedColumns`: the kept sequences packed as one :class:`Ragged`, and
per sentence whether it was kept and whether the language affects it.
:meth:`Language.perturb_file` gives the same as one :class:`Perturbed` per
sentence. Languages are pure: no torch, no I/O, and their only state is the
numpy random stream that stochastic languages draw from, which is created afresh
on every call unless the caller passes one in to continue it.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from perturbations.errors import ILMError
from perturbations.ragged import Ragged

# The marker tokens of the reference study. The tokenizer adds them as tokens
# that absorb the space on their left (AddedToken(lstrip=True)).
MARKER_REVERSE = "\U0001F141"  # 🅁
MARKER_SINGULAR = "\U0001F142"  # 🅂
MARKER_PLURAL = "\U0001F13F"  # 🄿

# The reference drops every sequence that keeps at most this many non-marker tokens.
MIN_CONTENT_TOKENS = 2


@dataclass(frozen=True)
class Word:
    """One tagged word, UD style. ``feats`` is the UD feature string or ``"_"``.

    ``head`` and ``deprel`` are the word's dependency arc when the source has a
    parse (CoNLL-U): ``head`` is the 1-based index of its head word in the
    sentence, 0 for the root. Both are None for taggers that give no tree, so a
    word without a tree equals, hashes and caches exactly as before they existed.
    """

    text: str
    upos: str = "X"
    feats: str = "_"
    lemma: str = ""
    head: int | None = None
    deprel: str | None = None


@dataclass(frozen=True)
class Sentence:
    """A sentence as it appears in the corpus; ``words`` is None when untagged."""

    text: str
    words: tuple[Word, ...] | None = None
    genre: str = ""


@dataclass(slots=True)  # one per corpus sentence: slots keep millions of them small
class Perturbed:
    """One sentence's outcome: its token ids, or None when the language filters it out."""

    ids: list[int] | None
    affected: bool


@dataclass(frozen=True, eq=False)
class PerturbedColumns:
    """One file's outcome, packed: the kept sequences, and per input sentence whether
    it was kept and whether the language affects it (kept or not)."""

    ids: Ragged  # one row per kept sentence, in corpus order
    kept: np.ndarray  # bool, one per input sentence
    affected: np.ndarray  # bool, one per input sentence

    def __post_init__(self) -> None:
        if len(self.kept) != len(self.affected) or len(self.ids) != int(np.count_nonzero(self.kept)):
            raise ValueError("kept and affected need one entry per sentence and ids one row per kept sentence")

    @classmethod
    def from_rows(cls, rows: Sequence[Perturbed]) -> PerturbedColumns:
        kept = np.fromiter((r.ids is not None for r in rows), bool, len(rows))
        affected = np.fromiter((r.affected for r in rows), bool, len(rows))
        return cls(Ragged.from_lists([r.ids for r in rows if r.ids is not None]), kept, affected)

    def to_rows(self) -> list[Perturbed]:
        ids = iter(self.ids.to_lists())
        return [Perturbed(next(ids) if k else None, a) for k, a in zip(self.kept.tolist(), self.affected.tolist())]

    @property
    def affected_kept(self) -> np.ndarray:
        """``affected`` of the kept sentences only, aligned with the rows of ``ids``."""
        return self.affected[self.kept]


@runtime_checkable
class TokenizerFns(Protocol):
    """What a language needs from a tokenizer (``impossible_lms.tokenizer`` provides it).

    ``encode`` adds no special tokens and must turn a marker string inside the text
    into its marker id, absorbing the space on the marker's left (GPT-2 + AddedToken
    with ``lstrip=True``).
    """

    marker_ids: dict[str, int]
    eos_id: int

    def encode(self, text: str) -> list[int]: ...


@dataclass(frozen=True)
class Language:
    """One language of the suite. Subclasses implement :meth:`_perturb`.

    ``name`` is the canonical spec (``local_shuffle:w=7``) that
    :func:`perturbations.get_language` parses back to an equal language.
    """

    name: str
    display: str
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    color: str = "#606060"

    # What the language is, for everything downstream (planner, analyses, report) to ask instead
    # of comparing names or family strings:
    family: ClassVar[str] = ""  # the group it is reported in ("shuffle", "reverse", "hop", "tree")
    markers: ClassVar[tuple[str, ...]] = ()  # marker tokens it adds to the vocabulary
    needs_tags: ClassVar[bool] = False  # reads Word.upos/feats (a tagger must run)
    keeps: ClassVar[str] = "every sentence"  # which sentences the language keeps, for error messages
    needs_tree: ClassVar[bool] = False  # reads Word.head (tree languages; sentences without one stay unchanged)
    control: ClassVar[str | None] = None  # its family's control language (the possible twin), if any
    keeps_token_order: ClassVar[bool] = False  # every token stays where it was (markers aside)
    marks_agreement: ClassVar[bool] = False  # its markers carry verb agreement (marker surprisal, interventions)
    # where word-level analyses (probing, word-level tree projections) read its sentences:
    # "own" (its words keep their order), "control" (the control language's), None (none apply)
    word_analyses: ClassVar[str | None] = None

    # -- what subclasses provide -------------------------------------------------

    def new_stream(self) -> np.random.Generator | None:
        """A fresh random stream (None: deterministic). The reference uses one per split, across its files."""
        return None

    def affects(self, sentence: Sentence) -> bool:
        """Whether the language changes this sentence (decides test_affected/unaffected)."""
        return True

    def _perturb(
        self,
        sentences: Sequence[Sentence],
        tok: TokenizerFns,
        ids: Ragged | None,
        stream: np.random.Generator | None,
    ) -> PerturbedColumns:
        raise NotImplementedError

    # -- the public API --------------------------------------------------------

    def perturb_columns(
        self,
        sentences: Sequence[Sentence],
        tok: TokenizerFns,
        ids: Ragged | Sequence[Sequence[int]] | None = None,
        *,
        stream: np.random.Generator | None = None,
    ) -> PerturbedColumns:
        """Perturb one corpus file, in corpus order; the kept sequences come back packed.

        ``ids`` are the sentences' token ids when the caller has already encoded
        ``Sentence.text`` (ignored by hop languages, which re-join the tagged
        words). Stochastic languages draw from ``stream``; when it is None a fresh
        one from :meth:`new_stream` is used, so every call starts the stream anew.
        Pass one stream through several calls to continue it across files (the
        reference draws one stream per split, across that split's files).
        """
        if ids is not None and len(ids) != len(sentences):
            raise ILMError(f"{self.name}: got {len(ids)} id lists for {len(sentences)} sentences")
        if self.needs_tags:
            untagged = next((s for s in sentences if s.words is None), None)
            if untagged is not None:
                raise ILMError(
                    f"{self.name} needs tagged sentences (use a tagger other than 'none'); "
                    f"untagged: {untagged.text[:60]!r}"
                )
        if ids is not None and not isinstance(ids, Ragged):
            ids = Ragged.from_lists(ids)
        if stream is None:
            stream = self.new_stream()
        with _gc_paused():
            return self._perturb(sentences, tok, ids, stream)

    def perturb_file(
        self,
        sentences: Sequence[Sentence],
        tok: TokenizerFns,
        ids: Ragged | Sequence[Sequence[int]] | None = None,
        *,
        stream: np.random.Generator | None = None,
    ) -> list[Perturbed]:
        """:meth:`perturb_columns` as one :class:`Perturbed` per sentence (ids None when dropped)."""
        return self.perturb_columns(sentences, tok, ids, stream=stream).to_rows()

    def perturb(
        self,
        sentence: Sentence,
        tok: TokenizerFns,
        ids: Sequence[int] | None = None,
        *,
        stream: np.random.Generator | None = None,
    ) -> Perturbed:
        """One sentence, as if it were the first of a file (or next on ``stream``)."""
        return self.perturb_file(
            [sentence], tok, None if ids is None else [ids], stream=stream
        )[0]

    # -- reading a token sequence back (production: does generated text obey the rule?) --------
    #
    # ``marker_ids`` maps each marker string to its id in the tokenizer (a dataset manifest's
    # ``marker_ids``). Checks see tokens only: no tags, no tree, no original sentence.

    def conforms(self, ids: Sequence[int], marker_ids: Mapping[str, int]) -> bool | None:
        """Whether ``ids`` could be a sentence of this language, as far as tokens alone can tell;
        None when the language has no rule checkable on tokens (the tree languages)."""
        return None

    def undo(self, ids: Sequence[int], marker_ids: Mapping[str, int]) -> list[int] | None:
        """The same sentence in its control language's form, when the rule is a bijection given the
        sentence; None when ``ids`` do not conform or the rule cannot be undone from tokens."""
        return None

    def redo(self, ids: Sequence[int], marker_ids: Mapping[str, int]) -> list[int]:
        """The inverse of :meth:`undo`: a sentence in the control's form put into this language."""
        raise ILMError(f"{self.name} cannot be undone from tokens alone, so it has no redo")

    def own_marker_ids(self, marker_ids: Mapping[str, int]) -> frozenset[int]:
        """The ids ``marker_ids`` gives this language's own markers."""
        return frozenset(marker_ids[m] for m in self.markers if m in marker_ids)

    @property
    def invertible(self) -> bool:
        """Whether :meth:`undo` can map this language's sentences to its control's."""
        return type(self).undo is not Language.undo

    def example(self) -> str:
        """A one-line example of what the language does (for ``ilm languages``)."""
        from perturbations.examples import example_line

        return example_line(self)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic GC while a file is perturbed.

    The hop languages make lists per sentence and no reference cycles, yet every
    few thousand allocations the collector walks all live objects (the whole
    corpus in the pipeline): measured 3-7x slower with it on. Restored on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def content_length(ids: Sequence[int], marker_ids: frozenset[int]) -> int:
    """How many of ``ids`` are not markers."""
    if not marker_ids:
        return len(ids)
    # list.count runs in C; a marker set holds one to three ids.
    counts = ids.count if isinstance(ids, list) else list(ids).count
    return len(ids) - sum(map(counts, marker_ids))


def keeps_content(ids: Sequence[int], marker_ids: frozenset[int]) -> bool:
    """The reference's last filter: drop sequences with at most one non-marker token."""
    return len(ids) >= MIN_CONTENT_TOKENS and content_length(ids, marker_ids) >= MIN_CONTENT_TOKENS


def encode_columns(sentences: Sequence[Sentence], tok: TokenizerFns, ids: Ragged | None) -> Ragged:
    """The sentences' token ids: the caller's, or ``tok.encode(sentence.text)`` for each."""
    return ids if ids is not None else Ragged.from_lists([tok.encode(s.text) for s in sentences])


def other_markers(ids: Sequence[int], marker_ids: Mapping[str, int], own: Sequence[str]) -> bool:
    """Whether ``ids`` hold a marker that is not one of ``own`` (a marker of another family)."""
    foreign = {i for m, i in marker_ids.items() if m not in own}
    return any(t in foreign for t in ids)


def marker_id(tok: TokenizerFns, marker: str) -> int:
    """The id of ``marker`` in ``tok``, or an ILMError saying the tokenizer lacks it."""
    try:
        return tok.marker_ids[marker]
    except KeyError:
        raise ILMError(
            f"the tokenizer has no id for marker {marker!r} (U+{ord(marker):04X}); "
            "load it with the language's markers"
        ) from None
