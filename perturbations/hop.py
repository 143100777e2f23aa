"""The *Hop family: agreement markers placed 0, n tokens or n words after the verb.

Rules (Kallini et al. 2024, reference ``utils.py``), on tagged words:

- A word is *affected* when its UD feats contain ``Person=3``, ``Tense=Pres``,
  ``VerbForm=Fin`` and ``Number=Sing`` or ``Number=Plur``, whatever its upos
  (AUX counts as much as VERB; the reference tests the feats only). It becomes
  its lemma (its text when the lemma is empty) and gets 🅂 (Sing) or 🄿 (Plur).
  (The reference raises on a ``Number`` other than Sing/Plur; here such a word
  is simply unaffected.)
- Words are re-joined with single spaces, the clitics n't 's 're 've 'm 'll glued
  to the word before (``join_words``), then encoded with ``tok.encode``, so
  "dog ." keeps its space. Unaffected sentences are re-joined the same way.
- NoHop / TokenHop(n): the sentence is encoded in segments, right to left. Each
  affected verb starts a segment of its lemma and the words up to the next
  affected verb; a clitic right after the verb is glued to the lemma; a segment
  that follows a verb is encoded with a leading space. The marker is inserted at
  index n of the tokens that follow the verb (markers of later verbs count as
  tokens; with fewer than n tokens left it goes last). NoHop hops 0 tokens
  (its n only sets the filter below).
- WordHop(n), also right to left: starting from the verb itself, walk right
  counting words, where a "word" is anything but a clitic or a string made only
  of ASCII punctuation (markers of later verbs count); stop after n words, at the
  end, or as soon as nothing alphanumeric is left to the right (trailing
  punctuation). Then, unless only punctuation is left, skip forward over
  clitics/punctuation, and step past one clitic that directly follows, so the
  marker never lands on punctuation nor splits a word from its clitic. The
  marker goes right after the word reached. The hop is *complete* when n words
  were counted (the verb is the first of them). Only one clitic is stepped
  past, as in the reference: "should n't 've" gets "shouldn't 🅂've".
- The selector (this package's generalisation, not the reference's): which
  words agree and which feature picks the marker are parameters of every hop
  entry, ``upos`` (``*`` = any, or ``VERB|AUX``), ``feats`` (``key=value``
  pairs joined by ``|``, all required), ``by`` (the feature whose value picks
  the marker) and ``values`` (two values of ``by``: the first gets 🅂, the
  second 🄿). The defaults, ``upos=*, feats=Person=3|Tense=Pres|VerbForm=Fin,
  by=Number, values=Sing|Plur``, are the reference rule above and run its own
  code (:func:`verb_number`), so default hop languages give the reference ids.
  Any other selector parses FEATS exactly (``key=value`` items split on
  ``|``); it agrees with :func:`verb_number` wherever a feature has one value
  (the tests check it), and differs on multi-valued ones (``Number=Plur,Sing``:
  the reference's substring test reads it as Sing, the parser as neither).
  Example, German present plural 3rd person verbs only:
  ``token_hop:upos=VERB|AUX,values=Plur|Sing``.
- Filters: sequences with at most one non-marker token are dropped; an affected
  sentence is kept only when every marker of WordHop(n) completes its hops, so
  NoHop, TokenHop(n) and WordHop(n) keep exactly the same sentences and differ
  only in where the markers sit.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Callable, ClassVar, Iterable, Mapping, Sequence

from perturbations.errors import ILMError
from perturbations.base import (
    MARKER_PLURAL,
    MARKER_SINGULAR,
    Language,
    Perturbed,
    PerturbedColumns,
    Sentence,
    TokenizerFns,
    Word,
    keeps_content,
    marker_id,
    other_markers,
)

CLITICS = frozenset({"n't", "'ll", "'s", "'re", "'ve", "'m"})
PUNCTUATION = frozenset(string.punctuation)
MARKER_FOR_NUMBER = {"Sing": MARKER_SINGULAR, "Plur": MARKER_PLURAL}


# -- words ------------------------------------------------------------------------


def verb_number(word: Word) -> str | None:
    """"Sing" or "Plur" for a 3rd-person present finite verb, else None."""
    feats = word.feats
    if not feats or "Person=3" not in feats or "Tense=Pres" not in feats or "VerbForm=Fin" not in feats:
        return None
    if "Number=Sing" in feats:
        return "Sing"
    if "Number=Plur" in feats:
        return "Plur"
    return None


def reference_marker(word: Word) -> str | None:
    """The reference rule: 🅂/🄿 for a 3rd-person present finite verb, else None."""
    number = verb_number(word)
    return None if number is None else MARKER_FOR_NUMBER[number]


# Which marker a word takes (None: it does not agree).
Select = Callable[[Word], "str | None"]

# The 17 universal part-of-speech tags (UD v2), the only values a word's upos can take.
UPOS_TAGS = frozenset({"ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
                       "PUNCT", "SCONJ", "SYM", "VERB", "X"})

SELECTOR_DEFAULTS = {"upos": "*", "feats": "Person=3|Tense=Pres|VerbForm=Fin", "by": "Number", "values": "Sing|Plur"}


@lru_cache(maxsize=65536)
def parse_feats(feats: str) -> dict[str, str]:
    """UD FEATS as a dict (``"_"`` → empty); cached, as corpora repeat few distinct strings."""
    if not feats or feats == "_":
        return {}
    return dict(item.partition("=")[::2] for item in feats.split("|"))


@dataclass(frozen=True)
class Selector:
    """Which words agree (UPOS and required features) and which marker each takes."""

    upos: frozenset[str] | None  # None: any
    feats: tuple[tuple[str, str], ...]
    by: str
    values: tuple[str, str]

    @classmethod
    def parse(cls, upos: str, feats: str, by: str, values: str) -> Selector:
        pairs = tuple(p.partition("=")[::2] for p in feats.split("|")) if feats not in ("", "_") else ()
        vals = tuple(v for v in values.split("|") if v)
        bad = next((k for k, v in pairs if not k or not v), None)
        if bad is not None or any(not k for k, _ in pairs):
            raise ILMError(f"hop selector: feats must be key=value pairs joined by '|', got {feats!r}")
        if len(vals) != 2 or vals[0] == vals[1]:
            raise ILMError(f"hop selector: values must be two different values of {by} joined by '|' "
                           f"(the first gets 🅂, the second 🄿), got {values!r}")
        if not by or "=" in by or "|" in by:
            raise ILMError(f"hop selector: by must be one feature name, e.g. Number; got {by!r}")
        tags = None if upos.strip() in ("*", "") else frozenset(u.strip() for u in upos.split("|"))
        unknown = sorted((tags or frozenset()) - UPOS_TAGS)
        if unknown:  # a misspelt tag would select no verb at all: 0 affected sentences, silently
            raise ILMError(f"hop selector: upos {unknown[0]!r} is not a Universal Dependencies tag; "
                           f"choose from {', '.join(sorted(UPOS_TAGS))} (or * for any)")
        return cls(tags, pairs, by, (vals[0], vals[1]))

    def __call__(self, word: Word) -> str | None:
        if self.upos is not None and word.upos not in self.upos:
            return None
        feats = parse_feats(word.feats)
        if any(feats.get(k) != v for k, v in self.feats):
            return None
        value = feats.get(self.by)
        return MARKER_SINGULAR if value == self.values[0] else MARKER_PLURAL if value == self.values[1] else None


def check_selector(params: dict[str, str]) -> dict[str, str]:
    """ILMError for a selector that cannot parse (the registry calls it on the given parameters)."""
    Selector.parse(**{**SELECTOR_DEFAULTS, **{k: v for k, v in params.items() if k in SELECTOR_DEFAULTS}})
    return params


def is_affected(words: Sequence[Word], select: Select = reference_marker) -> bool:
    """Whether any word of the sentence is an agreeing verb."""
    return any(select(w) is not None for w in words)


def lemma_of(word: Word) -> str:
    return word.lemma if word.lemma else word.text


def join_words(words: Iterable[str]) -> str:
    """Words joined by single spaces, each clitic glued to the word before it."""
    merged: list[str] = []
    for w in words:
        if merged and w in CLITICS:
            merged[-1] += w
        else:
            merged.append(w)
    return " ".join(merged)


def _is_punctuation(w: str) -> bool:
    # An empty string counts as punctuation, as set("") <= PUNCTUATION.
    return set(w) <= PUNCTUATION


def _counts_as_word(w: str) -> bool:
    return w not in CLITICS and not _is_punctuation(w)


# -- WordHop ------------------------------------------------------------------------


def _word_hop_target(tail: list[str], n: int) -> tuple[int, int]:
    """Where WordHop puts the marker of the verb at ``tail[0]``: (index it follows, words counted)."""
    last = len(tail) - 1
    # alnum_after[i]: is anything alphanumeric right of tail[i]?
    alnum_after = [False] * len(tail)
    seen = False
    for i in range(last, -1, -1):
        alnum_after[i] = seen
        seen = seen or any(c.isalnum() for c in tail[i])

    pos, counted = 0, 0
    while counted < n and pos < last:
        if not alnum_after[pos]:
            break  # only punctuation (or markers) left: stop before it
        if _counts_as_word(tail[pos]):
            counted += 1
        pos += 1
    if alnum_after[pos]:
        while pos != last and not _counts_as_word(tail[pos]):
            pos += 1
    if pos != last and tail[pos + 1] in CLITICS:
        pos += 1
    return pos, counted


def word_hop_words(words: Sequence[Word], n: int, select: Select = reference_marker) -> tuple[list[str], bool]:
    """WordHop(n) on words: the new word strings (markers included) and whether all hops completed."""
    tail: list[str] = []  # the sentence right of the current word, built right to left
    completed: list[bool] = []
    for word in reversed(words):
        marker = select(word)
        if marker is None:
            tail.insert(0, word.text)
            continue
        tail.insert(0, lemma_of(word))
        pos, counted = _word_hop_target(tail, n)
        completed.append(counted == n)
        tail.insert(pos + 1, marker)
    return tail, bool(completed) and all(completed)


def word_hops_complete(words: Sequence[Word], n: int, select: Select = reference_marker) -> bool:
    """The hop filter: the sentence has agreeing verbs and every WordHop(n) marker completes."""
    return word_hop_words(words, n, select)[1]


def word_hop(words: Sequence[Word], n: int, tok: TokenizerFns, select: Select = reference_marker) -> list[int]:
    """WordHop(n) of one tagged sentence, encoded."""
    return tok.encode(join_words(word_hop_words(words, n, select)[0]))


# -- TokenHop / NoHop ---------------------------------------------------------------


def token_hop(words: Sequence[Word], n: int, tok: TokenizerFns, select: Select = reference_marker) -> list[int]:
    """TokenHop(n) of one tagged sentence (NoHop is n = 0), encoded."""
    ids = {m: marker_id(tok, m) for m in MARKER_FOR_NUMBER.values()}
    tokens: list[int] = []  # the encoded sentence right of `segment`
    segment: list[str] = []  # words since the last agreeing verb, left to right
    for word in reversed(words):
        marker = select(word)
        if marker is None:
            segment.insert(0, word.text)
            continue
        lemma = lemma_of(word)
        if segment and segment[0] in CLITICS:
            lemma += segment.pop(0)
        if segment:
            tokens = tok.encode(" " + join_words(segment)) + tokens
        tokens.insert(n, ids[marker])
        segment = [lemma]
    if segment:
        tokens = tok.encode(join_words(segment)) + tokens
    return tokens


def plain(words: Sequence[Word], tok: TokenizerFns) -> list[int]:
    """An unaffected sentence: its words re-joined and encoded."""
    return tok.encode(join_words(w.text for w in words))


# -- the languages ------------------------------------------------------------------


def _words(sentence: Sentence) -> tuple[Word, ...]:
    if sentence.words is None:
        raise ILMError(f"hop languages need tagged sentences; untagged: {sentence.text[:60]!r}")
    return sentence.words


@dataclass(frozen=True)
class HopLanguage(Language):
    """``n`` is the hop count; it also sets the WordHop(n) completion filter.

    ``upos``, ``feats``, ``by`` and ``values`` are the selector (module docstring).
    """

    n: int = 4
    upos: str = SELECTOR_DEFAULTS["upos"]
    feats: str = SELECTOR_DEFAULTS["feats"]
    by: str = SELECTOR_DEFAULTS["by"]
    values: str = SELECTOR_DEFAULTS["values"]

    family: ClassVar[str] = "hop"
    control: ClassVar[str | None] = "no_hop"
    keeps_token_order: ClassVar[bool] = True  # the marker moves, every other token stays
    marks_agreement: ClassVar[bool] = True
    word_analyses: ClassVar[str | None] = "own"
    markers: ClassVar[tuple[str, ...]] = (MARKER_SINGULAR, MARKER_PLURAL)
    needs_tags: ClassVar[bool] = True
    keeps: ClassVar[str] = "sentences of 2+ tokens whose every verb marker completes its n-word hop"

    @cached_property
    def select(self) -> Select:
        """The reference rule for the default selector (its own code, for exact ids), else a parsed one."""
        given = {"upos": self.upos, "feats": self.feats, "by": self.by, "values": self.values}
        if given == SELECTOR_DEFAULTS:
            return reference_marker
        return Selector.parse(**given)

    def affects(self, sentence: Sentence) -> bool:
        return is_affected(_words(sentence), self.select)

    def _hop(self, words: Sequence[Word], tok: TokenizerFns) -> tuple[list[int], bool]:
        """The affected sentence's ids and whether it passes the WordHop(n) filter."""
        raise NotImplementedError

    # Tokens show where the markers are, not which word is a verb: a sentence conforms when it
    # holds no other family's marker, keeps MIN_CONTENT_TOKENS other tokens, and (in NoHop's
    # form, after undoing the hops) no marker comes first or right after another marker, as
    # each marker follows its verb. Whether the word before it agrees is for the control
    # model's perplexity of the undone text to say.
    def conforms(self, ids: Sequence[int], marker_ids: Mapping[str, int]) -> bool:
        if not self.invertible:  # WordHop: the hops cannot be undone from tokens (below)
            own = self.own_marker_ids(marker_ids)
            return (not other_markers(ids, marker_ids, self.markers) and bool(ids) and ids[0] not in own
                    and keeps_content(list(ids), own))
        undone = self.undo(ids, marker_ids)  # refuses other families' markers
        return undone is not None and self.redo(undone, marker_ids) == list(ids)

    def _perturb(self, sentences, tok, ids, stream):
        # Sentence by sentence: every sentence is re-encoded from its words anyway.
        markers = frozenset(tok.marker_ids.values())
        select = self.select
        out = []
        for sentence in sentences:
            words = _words(sentence)
            affected = is_affected(words, select)
            new, keep = self._hop(words, tok) if affected else (plain(words, tok), True)
            keep = keep and keeps_content(new, markers)
            out.append(Perturbed(new if keep else None, affected))
        return PerturbedColumns.from_rows(out)


@dataclass(frozen=True)
class TokenHop(HopLanguage):
    def _hop(self, words, tok):
        # Dropped sentences are not encoded at all (encoding is the costly part).
        if not word_hops_complete(words, self.n, self.select):
            return [], False
        return token_hop(words, self.hops, tok, self.select), True

    @property
    def hops(self) -> int:
        """How many tokens the marker hops over (NoHop: none; the filter still uses n)."""
        return self.n

    def undo(self, ids: Sequence[int], marker_ids: Mapping[str, int]) -> list[int] | None:
        """Each marker moved back ``hops`` tokens, left to right. The forward pass placed the markers
        right to left, counting later verbs' markers among the hopped tokens, so by the time a marker
        is moved back every earlier one sits right after its verb and none may lie in its way. A
        marker that had fewer than ``hops`` tokens left (it went last) is not told apart from one
        that hopped fully: its undo lands early, and redo still gives the sentence back."""
        if other_markers(ids, marker_ids, self.markers):
            return None
        own = self.own_marker_ids(marker_ids)
        out = list(ids)
        for at in [i for i, t in enumerate(ids) if t in own]:
            back = at - self.hops
            if back < 0 or any(t in own for t in out[back:at]):
                return None
            out.insert(back, out.pop(at))
        return out if _follows_words(out, own) else None

    def redo(self, ids: Sequence[int], marker_ids: Mapping[str, int]) -> list[int]:
        """The forward rule on NoHop's form: right to left, each marker hops ``hops`` tokens (or goes last)."""
        own = self.own_marker_ids(marker_ids)
        out = list(ids)
        for at in reversed([i for i, t in enumerate(ids) if t in own]):
            marker = out.pop(at)
            out.insert(min(at + self.hops, len(out)), marker)
        return out


@dataclass(frozen=True)
class NoHop(TokenHop):
    @property
    def hops(self) -> int:
        return 0


@dataclass(frozen=True)
class WordHop(HopLanguage):
    def _hop(self, words, tok):
        new, complete = word_hop_words(words, self.n, self.select)
        return tok.encode(join_words(new)), complete


def _follows_words(ids: list[int], own: frozenset[int]) -> bool:
    """NoHop's form: enough content, and every marker right after a token that is not a marker."""
    if not keeps_content(ids, own):
        return False
    previous_is_marker = True  # nothing before the first token: a marker there follows no verb
    for t in ids:
        is_marker = t in own
        if is_marker and previous_is_marker:
            return False
        previous_is_marker = is_marker
    return True
