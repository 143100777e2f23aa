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


# Punkt's candidate sentence ends (PunktLanguageVars.sent_end_chars): it only
# considers a break at one of these followed by punctuation or by a next token.
SENTENCE_END = ".?!"


@lru_cache(maxsize=4)
def sentence_splitter(language: str = "english") -> Callable[[str], list[str]]:
    """A function line → sentences (punkt_tab); ILMError when the model is missing."""
    from nltk.tokenize import PunktTokenizer

    try:
        punkt = PunktTokenizer(language)
    except LookupError:
        raise missing_nltk(f"punkt_tab/{language}") from None
    return lambda line: split_with(punkt.tokenize, line)


def split_with(tokenize: Callable[[str], list[str]], line: str) -> list[str]:
    """``tokenize(line)`` (punkt), without calling it on lines it cannot break.

    A line whose only sentence-end character, if any, is its last non-space one
    gives punkt no candidate break, and punkt returns such a line right-stripped.
    Most utterance lines (CHILDES, Switchboard) are like that, and punkt's Python
    machinery per line costs far more than this check.
    """
    stripped = line.rstrip()
    ends = sum(map(stripped.count, SENTENCE_END))
    if ends == 0 or (ends == 1 and stripped[-1] in SENTENCE_END):
        return [stripped] if stripped else []
    return tokenize(line)


def split_line(line: str) -> list[str]:
    return [s for s in sentence_splitter()(line) if s.strip()]
