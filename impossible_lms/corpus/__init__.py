"""Corpora: readers for BabyLM folders, text files, datasets and the embedded synthetic grammar.

    >>> from impossible_lms.corpus import open_corpus
    >>> corpus = open_corpus("synthetic", options={"sentences": 3000, "seed": 0})
    >>> for f in corpus.files("train"):
    ...     f.split, f.genre, f.pretagged()[0].text
"""

from impossible_lms.corpus.base import SPLITS, Corpus, CorpusFile, ReadStats
from impossible_lms.corpus.formats import read_conllu, read_stanza_json, write_conllu, write_stanza_json
from impossible_lms.corpus.readers import open_corpus

__all__ = [
    "SPLITS",
    "Corpus",
    "CorpusFile",
    "ReadStats",
    "open_corpus",
    "read_conllu",
    "read_stanza_json",
    "write_conllu",
    "write_stanza_json",
]
