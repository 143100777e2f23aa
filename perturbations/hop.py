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
- Filters: sequences with at most one non-marker token are dropped; an affected
  sentence is kept only when every marker of WordHop(n) completes its hops, so
  NoHop, TokenHop(n) and WordHop(n) keep exactly the same sentences and differ
  only in where the markers sit.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import ClassVar, Iterable, Sequence

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


def is_affected(words: Sequence[Word]) -> bool:
    """Whether any word of the sentence is an agreeing verb."""
    return any(verb_number(w) is not None for w in words)


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


def word_hop_words(words: Sequence[Word], n: int) -> tuple[list[str], bool]:
    """WordHop(n) on words: the new word strings (markers included) and whether all hops completed."""
    tail: list[str] = []  # the sentence right of the current word, built right to left
    completed: list[bool] = []
    for word in reversed(words):
        number = verb_number(word)
        if number is None:
            tail.insert(0, word.text)
            continue
        tail.insert(0, lemma_of(word))
        pos, counted = _word_hop_target(tail, n)
        completed.append(counted == n)
        tail.insert(pos + 1, MARKER_FOR_NUMBER[number])
    return tail, bool(completed) and all(completed)


def word_hops_complete(words: Sequence[Word], n: int) -> bool:
    """The hop filter: the sentence has agreeing verbs and every WordHop(n) marker completes."""
    return word_hop_words(words, n)[1]


def word_hop(words: Sequence[Word], n: int, tok: TokenizerFns) -> list[int]:
    """WordHop(n) of one tagged sentence, encoded."""
    return tok.encode(join_words(word_hop_words(words, n)[0]))


# -- TokenHop / NoHop ---------------------------------------------------------------


def token_hop(words: Sequence[Word], n: int, tok: TokenizerFns) -> list[int]:
    """TokenHop(n) of one tagged sentence (NoHop is n = 0), encoded."""
    ids = {number: marker_id(tok, m) for number, m in MARKER_FOR_NUMBER.items()}
    tokens: list[int] = []  # the encoded sentence right of `segment`
    segment: list[str] = []  # words since the last agreeing verb, left to right
    for word in reversed(words):
        number = verb_number(word)
        if number is None:
            segment.insert(0, word.text)
            continue
        lemma = lemma_of(word)
        if segment and segment[0] in CLITICS:
            lemma += segment.pop(0)
        if segment:
            tokens = tok.encode(" " + join_words(segment)) + tokens
        tokens.insert(n, ids[number])
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
    """``n`` is the hop count; it also sets the WordHop(n) completion filter."""

    n: int = 4

    family: ClassVar[str] = "hop"
    markers: ClassVar[tuple[str, ...]] = (MARKER_SINGULAR, MARKER_PLURAL)
    needs_tags: ClassVar[bool] = True
    keeps: ClassVar[str] = "sentences of 2+ tokens whose every verb marker completes its n-word hop"

    def affects(self, sentence: Sentence) -> bool:
        return is_affected(_words(sentence))

    def _hop(self, words: Sequence[Word], tok: TokenizerFns) -> tuple[list[int], bool]:
        """The affected sentence's ids and whether it passes the WordHop(n) filter."""
        raise NotImplementedError

    def _perturb(self, sentences, tok, ids, stream):
        # Sentence by sentence: every sentence is re-encoded from its words anyway.
        markers = frozenset(tok.marker_ids.values())
        out = []
        for sentence in sentences:
            words = _words(sentence)
            affected = is_affected(words)
            new, keep = self._hop(words, tok) if affected else (plain(words, tok), True)
            keep = keep and keeps_content(new, markers)
            out.append(Perturbed(new if keep else None, affected))
        return PerturbedColumns.from_rows(out)


@dataclass(frozen=True)
class TokenHop(HopLanguage):
    def _hop(self, words, tok):
        # Dropped sentences are not encoded at all (encoding is the costly part).
        if not word_hops_complete(words, self.n):
            return [], False
        return token_hop(words, self.hops, tok), True

    @property
    def hops(self) -> int:
        """How many tokens the marker hops over (NoHop: none; the filter still uses n)."""
        return self.n


@dataclass(frozen=True)
class NoHop(TokenHop):
    @property
    def hops(self) -> int:
        return 0


@dataclass(frozen=True)
class WordHop(HopLanguage):
    def _hop(self, words, tok):
        new, complete = word_hop_words(words, self.n)
        return tok.encode(join_words(new)), complete
