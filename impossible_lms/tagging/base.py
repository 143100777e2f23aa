"""The Tagger protocol, the registry, and the per-file cache every backend shares.

A tagger turns one :class:`~impossible_lms.corpus.CorpusFile` into sentences
(split, and tagged unless it is ``none``). Backends that work line by line
subclass :class:`LineTagger` and implement ``tag_lines``; the base class adds the
cache: lines are processed in chunks of ``chunk_lines`` and each finished chunk
is written atomically under ``cache_dir/<tagger>-v<version>/<file>-<fingerprint>-l<lines>/``
(one JSON object per chunk: texts, distinct words, word indices),
so an interrupted run keeps its finished chunks and a rerun only does the rest.
A ``complete.json`` marks a file whose every chunk is done.

The pipeline (``impossible_lms.perturb``) streams a corpus through these chunks:
the main process reads each chunk's lines, a worker tags it (:meth:`LineTagger.tag_chunk`:
the cached chunk, or the backend's ``tag_lines`` and a cache write), and the main
process marks the file complete after its last chunk (:meth:`LineTagger.mark_complete`).
:meth:`LineTagger.line_tagger_for` says which files a backend tags line by line;
the others (gold tags, custom taggers) give a whole file's sentences from ``process``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Protocol, runtime_checkable

from impossible_lms.errors import ILMError, did_you_mean
from impossible_lms.io import atomic_write_json, atomic_write_text
from perturbations.base import Sentence, Word

# Lines per chunk: each chunk is tagged, cached and perturbed in one piece (bounded memory).
CHUNK_LINES = 10_000


@runtime_checkable
class Tagger(Protocol):
    name: str
    version: str

    def process(self, corpus_file: Any, cache_dir: Path | None = None, progress: Any = None) -> list[Sentence]: ...


# -- cache ---------------------------------------------------------------------------------


def encode_chunk(sentences: list[Sentence]) -> str:
    """A chunk as one JSON object: the texts, each distinct word once (``vocab``), and per sentence
    the indices of its words (null when untagged). Reading it back makes each distinct word once."""
    vocab: dict[tuple, int] = {}
    rows = []
    for s in sentences:
        if s.words is None:
            rows.append(None)
            continue
        # head and relation only when there is a tree, so tree-less words stay four fields
        rows.append([vocab.setdefault((w.text, w.upos, w.feats, w.lemma) + ((w.head, w.deprel) if w.head is not None
                                                                             else ()), len(vocab)) for w in s.words])
    return json.dumps({"texts": [s.text for s in sentences], "vocab": list(vocab), "words": rows}, ensure_ascii=False)


def decode_chunk(text: str, genre: str) -> list[Sentence]:
    data = json.loads(text)
    vocab = [Word(*w) for w in data["vocab"]]
    return [Sentence(t, None if row is None else tuple(vocab[i] for i in row), genre)
            for t, row in zip(data["texts"], data["words"])]


@dataclass(frozen=True)
class FileCache:
    """The chunk files of one (tagger, corpus file)."""

    folder: Path

    def chunk(self, index: int) -> Path:
        return self.folder / f"chunk-{index:06d}.json"

    @property
    def done_marker(self) -> Path:
        return self.folder / "complete.json"

    def read_chunk(self, index: int, genre: str) -> list[Sentence] | None:
        path = self.chunk(index)
        if not path.is_file():
            return None
        try:
            return decode_chunk(path.read_text(encoding="utf-8"), genre)
        except (ValueError, KeyError, TypeError, IndexError):
            return None  # damaged (another format, a partial copy): tag the chunk again

    def write_chunk(self, index: int, sentences: list[Sentence]) -> None:
        atomic_write_text(self.chunk(index), encode_chunk(sentences))

    def complete(self) -> int | None:
        """Number of chunks when the file is fully cached, else None."""
        if not self.done_marker.is_file():
            return None
        return int(json.loads(self.done_marker.read_text())["chunks"])


def cache_for(tagger: Tagger, corpus_file: Any, cache_dir: Path | None) -> FileCache | None:
    if cache_dir is None:
        return None
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in corpus_file.name)
    # The chunk size is in the key: chunk i of another size holds other lines.
    size = getattr(tagger, "chunk_lines", CHUNK_LINES)
    return FileCache(Path(cache_dir) / f"{tagger.name}-v{tagger.version}" / f"{safe}-{corpus_file.fingerprint}-l{size}")


def _chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(lines)
    while chunk := list(islice(it, size)):
        yield chunk


class LineTagger:
    """Shared machinery for backends that tag a list of lines at a time."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    chunk_lines: int = CHUNK_LINES

    def tag_lines(self, lines: list[str], genre: str) -> list[Sentence]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Load models (raise ILMError when missing) before any work is done."""

    def line_tagger_for(self, corpus_file: Any) -> "LineTagger | None":
        """The backend that tags this file line by line, chunk by chunk (None: ``process`` gives
        the whole file, e.g. from gold tags)."""
        return self

    def line_chunks(self, corpus_file: Any) -> Iterator[list[str]]:
        """The file's lines, ``chunk_lines`` at a time (chunk i is cache chunk i)."""
        return _chunks(corpus_file.lines(), self.chunk_lines)

    def tag_chunk(self, corpus_file: Any, index: int, lines: list[str], cache_dir: Path | None = None) -> list[Sentence]:
        """Chunk ``index`` of the file: from the cache, or tagged (and then cached)."""
        cache = cache_for(self, corpus_file, cache_dir)
        cached = cache.read_chunk(index, corpus_file.genre) if cache is not None else None
        if cached is not None:
            return cached
        if not getattr(self, "_prepared", False):
            self.prepare()
            self._prepared = True
        tagged = self.tag_lines(lines, corpus_file.genre)
        if cache is not None:
            cache.write_chunk(index, tagged)
        return tagged

    def mark_complete(self, corpus_file: Any, chunks: int, sentences: int, cache_dir: Path | None = None) -> None:
        """Record that every chunk of the file is cached (after the last one is written)."""
        cache = cache_for(self, corpus_file, cache_dir)
        if cache is not None:
            atomic_write_json(cache.done_marker, {"chunks": chunks, "sentences": sentences, "tagger": self.name})

    def process(self, corpus_file: Any, cache_dir: Path | None = None, progress: Any = None) -> list[Sentence]:
        """Every sentence of the file, tagged chunk by chunk (cached chunks are read, not redone)."""
        task = progress.add_task(f"{self.name}: {corpus_file.name}", total=None) if progress is not None else None
        out: list[Sentence] = []
        chunks = 0
        for index, lines in enumerate(self.line_chunks(corpus_file)):
            out.extend(self.tag_chunk(corpus_file, index, lines, cache_dir))
            chunks = index + 1
            if task is not None:
                progress.advance(task, len(lines))
        self.mark_complete(corpus_file, chunks, len(out), cache_dir)
        return out


# -- registry ---------------------------------------------------------------------------------

TAGGERS: dict[str, Callable[[], Tagger]] = {}


def register(name: str) -> Callable[[Callable[[], Tagger]], Callable[[], Tagger]]:
    def deco(factory: Callable[[], Tagger]) -> Callable[[], Tagger]:
        TAGGERS[name] = factory
        return factory

    return deco


def list_taggers() -> list[str]:
    return list(TAGGERS)


def get_tagger(name: str | Tagger) -> Tagger:
    """A tagger by name: nltk (default), stanza, gold, none, auto; ``NAME:ARG`` passes ARG to
    the backend (``stanza:de``: German tags and dependency trees)."""
    if not isinstance(name, str):
        return name
    base, _, arg = name.partition(":")
    factory = TAGGERS.get(base)
    if factory is None:
        raise ILMError(f"unknown tagger {name!r}{did_you_mean(base, TAGGERS)}; choose from {', '.join(TAGGERS)}")
    if not arg:
        return factory()
    try:
        return factory(arg)
    except TypeError:
        raise ILMError(f"tagger {base!r} takes no argument (got {name!r})") from None
