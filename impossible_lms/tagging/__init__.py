"""Sentence splitting and tagging behind one protocol.

    >>> from impossible_lms.tagging import get_tagger
    >>> tagger = get_tagger("nltk")          # or "stanza", "gold", "none", "auto"
    >>> sentences = tagger.process(corpus_file, cache_dir=Path("cache/tags"))
"""

from impossible_lms.tagging import backends as _backends  # noqa: F401  (registers the backends)
from impossible_lms.tagging.base import CHUNK_LINES, LineTagger, Tagger, get_tagger, list_taggers

__all__ = ["CHUNK_LINES", "LineTagger", "Tagger", "get_tagger", "list_taggers"]
