"""The tagging backends, one small class each, registered by name.

- ``nltk`` (default): punkt sentences, a Treebank-style regex tokenizer that keeps
  every character, NLTK's averaged perceptron (scored a chunk at a time in numpy, ``perceptron.py``),
  then PTB → UD (``ptb.py``).
- ``stanza``: Stanford Stanza (optional extra), as the reference used; never
  downloads models.
- ``gold``: the corpus's own tags (synthetic grammar, CoNLL-U, Stanza JSON).
- ``none``: sentences only (words=None); gold sentence boundaries when the file
  has them, else punkt.
- ``auto``: ``gold`` for files that carry tags, ``nltk`` for the rest.

Every backend splits each corpus line on its own (see ``corpus/splitting.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from impossible_lms.corpus.splitting import missing_nltk, sentence_splitter
from impossible_lms.errors import ILMError
from impossible_lms.tagging import ptb
from impossible_lms.tagging.base import LineTagger, Tagger, register
from impossible_lms.tagging.perceptron import FastPerceptron
from perturbations.base import Sentence

STANZA_HINT = (
    'install it with `pip install "ilm[stanza]"` and fetch the English models once with '
    "`python -c \"import stanza; stanza.download('en')\"` (ilm never downloads)"
)


class NltkTagger(LineTagger):
    name = "nltk"
    version = "2"  # bump whenever ptb.py's rules change: the version keys the tag cache

    def __init__(self) -> None:
        self._split = sentence_splitter()
        from nltk.tag import PerceptronTagger

        try:
            self._tagger = FastPerceptron(PerceptronTagger(lang="eng"))
        except LookupError:
            raise missing_nltk("averaged_perceptron_tagger_eng") from None

    def tag_lines(self, lines: list[str], genre: str) -> list[Sentence]:
        texts = [s for line in lines for s in self._split(line) if s.strip()]
        tokens = [ptb.tokenize(text) for text in texts]
        tags = self._tagger.tag_many(tokens)  # the whole chunk at once (perceptron.py)
        return [Sentence(text, ptb.to_words(t, g), genre) for text, t, g in zip(texts, tokens, tags)]


class StanzaTagger(LineTagger):
    """``stanza``: English tags as the reference made them (no parse). ``stanza:LANG`` (any
    Stanza language code, e.g. ``stanza:de``): that language's tags plus its dependency
    parse, kept on each word (``head``, ``deprel``) for the tree languages."""

    version = "1"
    processors = "tokenize,mwt,pos,lemma"

    def __init__(self, lang: str | None = None) -> None:
        self.lang = lang or "en"
        self.parse = lang is not None
        self.name = f"stanza-{self.lang}" if self.parse else "stanza"  # the tag cache's key
        try:
            import stanza
        except ImportError:
            raise ILMError(f"the stanza tagger needs the stanza package: {STANZA_HINT}") from None
        processors = self.processors + (",depparse" if self.parse else "")
        try:
            self._nlp = stanza.Pipeline(self.lang, processors=processors, download_method=None, verbose=False)
        except Exception as e:  # stanza raises several kinds when resources are missing
            hint = STANZA_HINT.replace("'en'", repr(self.lang)).replace("English", repr(self.lang))
            raise ILMError(f"stanza {self.lang!r} models not available ({str(e).splitlines()[0]}): {hint}") from None

    def tag_lines(self, lines: list[str], genre: str) -> list[Sentence]:
        import stanza

        from perturbations.base import Word

        docs = self._nlp([stanza.Document([], text=line) for line in lines])
        out = []
        for doc in docs:
            for sent in doc.sentences:
                words = tuple(
                    Word(w.text, w.upos or "X", w.feats or "_", w.lemma or w.text,
                         head=int(w.head) if self.parse and w.head is not None else None,
                         deprel=(w.deprel or None) if self.parse else None)
                    for w in sent.words
                )
                out.append(Sentence(sent.text, words, genre))
        return out


class NoneTagger(LineTagger):
    """Sentences without tags: gold boundaries when the file has them, else punkt."""

    name = "none"
    version = "1"

    def line_tagger_for(self, corpus_file: Any) -> LineTagger | None:
        return None if _has_gold(corpus_file) else self

    def process(self, corpus_file: Any, cache_dir: Path | None = None, progress: Any = None) -> list[Sentence]:
        gold = corpus_file.pretagged()
        if gold is not None:
            return [Sentence(s.text, None, s.genre) for s in gold]
        return super().process(corpus_file, cache_dir, progress)

    def prepare(self) -> None:
        self._split = sentence_splitter()

    def tag_lines(self, lines: list[str], genre: str) -> list[Sentence]:
        return [Sentence(s, None, genre) for line in lines for s in self._split(line) if s.strip()]


class GoldTagger:
    """The corpus's own tags; nothing to cache, they are read from the source."""

    name = "gold"
    version = "1"

    def process(self, corpus_file: Any, cache_dir: Path | None = None, progress: Any = None) -> list[Sentence]:
        gold = corpus_file.pretagged()
        if gold is None:
            raise ILMError(
                f"corpus file {corpus_file.name} has no gold tags (only the synthetic corpus, CoNLL-U and "
                "Stanza JSON do); use --tagger nltk or stanza"
            )
        return gold


class AutoTagger:
    """Gold tags where the file has them, NLTK elsewhere (NLTK loads only when needed)."""

    name = "auto"
    version = "1"

    def __init__(self) -> None:
        self._nltk: NltkTagger | None = None

    def line_tagger_for(self, corpus_file: Any) -> LineTagger | None:
        if _has_gold(corpus_file):
            return None
        if self._nltk is None:
            self._nltk = NltkTagger()
        return self._nltk

    def process(self, corpus_file: Any, cache_dir: Path | None = None, progress: Any = None) -> list[Sentence]:
        tagger = self.line_tagger_for(corpus_file)
        return corpus_file.pretagged() if tagger is None else tagger.process(corpus_file, cache_dir, progress)


def _has_gold(corpus_file: Any) -> bool:
    """Whether the file carries its own sentences and tags (without building them when it can say)."""
    known = getattr(corpus_file, "has_gold", None)
    return known if known is not None else corpus_file.pretagged() is not None


def _register() -> None:
    factories: dict[str, type] = {"nltk": NltkTagger, "stanza": StanzaTagger, "gold": GoldTagger,
                                  "none": NoneTagger, "auto": AutoTagger}
    for name, cls in factories.items():
        register(name)(cls)


_register()
__all__ = ["Tagger", "NltkTagger", "StanzaTagger", "GoldTagger", "NoneTagger", "AutoTagger"]
