"""The one-line examples ``ilm languages`` shows, made by running each language."""

from __future__ import annotations

from perturbations.base import Language, Sentence, Word
from perturbations.toy import ToyTokenizer

_PRES_SING = "Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin"

# Chosen so that TokenHop and WordHop differ: the comma is a token, not a word.
EXAMPLE = Sentence(
    text="the dog sees the cats , a hen and you .",
    words=tuple(
        Word(text, upos, feats, lemma)
        for text, upos, feats, lemma in [
            ("the", "DET", "_", "the"),
            ("dog", "NOUN", "Number=Sing", "dog"),
            ("sees", "VERB", _PRES_SING, "see"),
            ("the", "DET", "_", "the"),
            ("cats", "NOUN", "Number=Plur", "cat"),
            (",", "PUNCT", "_", ","),
            ("a", "DET", "_", "a"),
            ("hen", "NOUN", "Number=Sing", "hen"),
            ("and", "CCONJ", "_", "and"),
            ("you", "PRON", "Person=2", "you"),
            (".", "PUNCT", "_", "."),
        ]
    ),
)


# For the tree languages: a parsed sentence whose subject is a full noun phrase.
TREE_EXAMPLE = Sentence(
    text="these two old dogs see a cat .",
    words=tuple(
        Word(text, upos, feats, lemma, head, deprel)
        for text, upos, feats, lemma, head, deprel in [
            ("these", "DET", "Number=Plur|PronType=Dem", "this", 4, "det"),
            ("two", "NUM", "NumType=Card", "two", 4, "nummod"),
            ("old", "ADJ", "Degree=Pos", "old", 4, "amod"),
            ("dogs", "NOUN", "Number=Plur", "dog", 5, "nsubj"),
            ("see", "VERB", "Mood=Ind|Number=Plur|Person=3|Tense=Pres|VerbForm=Fin", "see", 0, "root"),
            ("a", "DET", "Definite=Ind|PronType=Art", "a", 7, "det"),
            ("cat", "NOUN", "Number=Sing", "cat", 5, "obj"),
            (".", "PUNCT", "_", ".", 5, "punct"),
        ]
    ),
)


def example_line(language: Language) -> str:
    """The example sentence as the language writes it (one token per word)."""
    tok = ToyTokenizer()
    result = language.perturb(TREE_EXAMPLE if language.needs_tree else EXAMPLE, tok)
    if result.ids is None:  # a large hop count: the example has too few words to hop over
        return "(the example sentence is filtered out)"
    return " ".join(p.strip() for p in tok.to_pieces(result.ids))
