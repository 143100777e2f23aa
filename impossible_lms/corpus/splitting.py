"""Sentence splitting with NLTK punkt (``punkt_tab``), one corpus line at a time.

The reference joined batches of 20 lines and let Stanza's splitter cut them. We
split each line on its own instead: BabyLM lines are utterances (CHILDES,
Switchboard, subtitles) or paragraphs (stories, Wikipedia), so a line boundary
is always a sentence boundary, and per-line splitting keeps a sentence from
straddling two unrelated utterances. Punkt then only cuts inside paragraphs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

from impossible_lms.errors import ILMError

NLTK_HINT = (
    "install them with `python -m nltk.downloader punkt_tab averaged_perceptron_tagger_eng`, "
    "or point NLTK_DATA at a folder that has them, or use --tagger gold|stanza"
)


def missing_nltk(what: str) -> ILMError:
    return ILMError(f"NLTK data {what} not found (ilm never downloads): {NLTK_HINT}")


@lru_cache(maxsize=4)
def sentence_splitter(language: str = "english") -> Callable[[str], list[str]]:
    """A function line → sentences (punkt_tab); ILMError when the model is missing."""
    from nltk.tokenize import PunktTokenizer

    try:
        punkt = PunktTokenizer(language)
    except LookupError:
        raise missing_nltk(f"punkt_tab/{language}") from None
    return punkt.tokenize


def split_line(line: str) -> list[str]:
    return [s for s in sentence_splitter()(line) if s.strip()]
