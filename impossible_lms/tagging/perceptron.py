"""NLTK's averaged perceptron, scored a batch of sentences at a time with numpy.

Same model, same features, same tag-dictionary shortcut as
``nltk.tag.PerceptronTagger.tag``, and the same tags bit for bit: the sparse
weights become a dense (features × classes) matrix, and a token's scores are its
feature rows added **in NLTK's feature order** starting from 0.0, the same float
additions ``AveragedPerceptron.predict`` makes (a label a feature has no weight
for gets + 0.0, which changes nothing). Classes are ordered so that ``argmax``
breaks ties the way NLTK does (highest label wins).

What makes it fast: the features are strings built per token in NLTK; here the
ten that do not depend on earlier tags are looked up once per word type and
gathered for every token at once, and the four that do (the previous two tags,
and the previous tag with the word) are tables indexed by tag. The only
sequential part, each tag depending on the two before it, runs position by
position over every sentence of the batch together: one vectorised step per
token position, not one Python loop per token. Tests check the tags equal NLTK's.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

_PAIR = "i-1 tag+i word "


class FastPerceptron:
    def __init__(self, tagger) -> None:
        self._tagger = tagger
        weights = tagger.model.weights
        # NLTK takes max over (score, label): among equal scores the largest label wins,
        # so put labels in descending order and let argmax take the first maximum.
        self.classes = sorted(tagger.model.classes, reverse=True)
        column = {c: j for j, c in enumerate(self.classes)}
        self.rows = {feat: i for i, feat in enumerate(weights)}
        matrix = np.zeros((len(self.rows) + 1, len(self.classes)))  # last row: unknown features (adds 0.0)
        for feat, i in self.rows.items():
            for label, w in weights[feat].items():
                matrix[i, column[label]] = w
        self.matrix = matrix
        self.unknown = len(self.rows)
        self.tagdict = tagger.tagdict
        self.normalize = tagger.normalize
        self.start, self.end = list(tagger.START), list(tagger.END)
        # Every tag a previous token can have: the classes (same order), NLTK's two start
        # symbols, and any tag-dictionary tag the model has no class for.
        self.tags = self.classes + [t for t in [*self.start, *self.tagdict.values()] if t not in column]
        self.tags = list(dict.fromkeys(self.tags))
        self.tag_index = {t: k for k, t in enumerate(self.tags)}
        row = self._row
        self.prev_rows = np.array([row("i-1 tag " + t) for t in self.tags])
        self.prev2_rows = np.array([row("i-2 tag " + t) for t in self.tags])
        self.pair_rows = np.array([[row(f"i tag+i-2 tag {a} {b}") for b in self.tags] for a in self.tags])
        # "i-1 tag+i word TAG WORD": per word, the row for each previous tag.
        by_word: dict[str, np.ndarray] = {}
        for feat, i in self.rows.items():
            if feat.startswith(_PAIR):
                tag, _, word = feat[len(_PAIR):].partition(" ")
                if tag in self.tag_index:
                    by_word.setdefault(word, np.full(len(self.tags), self.unknown))[self.tag_index[tag]] = i
        self._tag_word = by_word
        self._no_pair = np.full(len(self.tags), self.unknown)

    def _row(self, feature: str) -> int:
        return self.rows.get(feature, self.unknown)

    def tag(self, tokens: Sequence[str]) -> list[str]:
        return self.tag_many([tokens])[0]

    def tag_many(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """The tags of every sentence (lists of tokens), as NLTK's ``tag`` gives them one by one."""
        lengths = np.array([len(s) for s in sentences], dtype=np.int64)
        total = int(lengths.sum())
        if total == 0:
            return [[] for _ in sentences]
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        flat = [w for s in sentences for w in s]
        known = [self.tagdict.get(w) for w in flat]
        tags = np.array([self.tag_index[t] if t else -1 for t in known], dtype=np.int64)
        guess = np.flatnonzero(tags < 0)  # tokens the model scores (not in the tag dictionary)
        if len(guess):
            self._score(flat, sentences, lengths, starts, tags, guess)
        out, names = [], self.tags
        for s, n in zip(starts.tolist(), lengths.tolist()):
            out.append([names[k] for k in tags[s:s + n].tolist()])
        return out

    def _score(self, flat, sentences, lengths, starts, tags, guess) -> None:
        """Fill ``tags`` at the ``guess`` positions (flat token indices) with the model's tags."""
        matrix, row = self.matrix, self._row
        # normalised words with NLTK's two-symbol padding on each side of every sentence
        context: list[str] = []
        for s in sentences:
            context += self.start + [self.normalize(w) for w in s] + self.end
        types: dict[str, int] = {}
        ctx = np.array([types.setdefault(w, len(types)) for w in context], dtype=np.int64)
        vocab = list(types)
        sentence_of = np.repeat(np.arange(len(sentences)), lengths)[guess]
        c = guess + 4 * sentence_of + 2  # each scored token's index in `context`

        def rows_of(index: np.ndarray, feature: str, suffix: bool = False) -> np.ndarray:
            """The row of ``feature + word`` for the context word at each index, looked up once per type."""
            table = np.array([row(feature + (w[-3:] if suffix else w)) for w in vocab])
            return table[ctx[index]]

        words = [flat[i] for i in guess.tolist()]  # i suffix and i pref1 read the raw token
        suffix = np.array([row("i suffix " + w[-3:]) for w in words], dtype=np.int64)
        pref1 = np.array([row("i pref1 " + (w[0] if w else "")) for w in words], dtype=np.int64)
        word = rows_of(c, "i word ")
        pair = np.stack([self._tag_word.get(w, self._no_pair) for w in vocab])[ctx[c]]  # (scored, previous tag)
        tail = [rows_of(c - 1, "i-1 word "), rows_of(c - 1, "i-1 suffix ", True), rows_of(c - 2, "i-2 word "),
                rows_of(c + 1, "i+1 word "), rows_of(c + 1, "i+1 suffix ", True), rows_of(c + 2, "i+2 word ")]
        bias = matrix[row("bias")]
        first, second = self.tag_index[self.start[0]], self.tag_index[self.start[1]]  # NLTK: prev, prev2 = START
        position = guess - starts[np.repeat(np.arange(len(sentences)), lengths)[guess]]
        order = np.argsort(position, kind="stable")
        bounds = np.searchsorted(position[order], np.arange(int(position.max()) + 2))
        for p in range(int(position.max()) + 1):
            # the tokens scored at position p: every earlier tag of their sentences is final
            here = order[bounds[p]:bounds[p + 1]]
            if not len(here):
                continue
            tok = guess[here]
            prev = tags[tok - 1] if p >= 1 else np.full(len(tok), first)
            prev2 = tags[tok - 2] if p >= 2 else np.full(len(tok), first if p == 1 else second)
            # NLTK's order: bias, i suffix, i pref1, i-1 tag, i-2 tag, i tag+i-2 tag, i word,
            # i-1 tag+i word, i-1 word, i-1 suffix, i-2 word, i+1 word, i+1 suffix, i+2 word
            s = bias + matrix[suffix[here]]
            s += matrix[pref1[here]]
            s += matrix[self.prev_rows[prev]]
            s += matrix[self.prev2_rows[prev2]]
            s += matrix[self.pair_rows[prev, prev2]]
            s += matrix[word[here]]
            s += matrix[pair[here, prev]]
            for rows in tail:
                s += matrix[rows[here]]
            tags[tok] = s.argmax(axis=1)
