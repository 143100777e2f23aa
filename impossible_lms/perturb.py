"""``ilm perturb``: corpus → one tokenised dataset per impossible language, streamed.

The corpus goes through in chunks of ``CHUNK_LINES`` lines, in corpus order (files
sorted by split, then name), and every language's dataset grows on disk chunk by
chunk, so memory stays flat however large the corpus. The expensive parts are done
once per chunk, whatever the number of languages: each chunk is split and (only if
a hop language asks for it) tagged once, and tokenised once, in a batch, by the
Rust tokenizer; each language then perturbs the shared token ids (hops and tree
languages re-join the tagged words).

With ``workers > 1`` a forked pool splits, tags, tokenises and perturbs chunks (the
languages without a random stream); this process perturbs the stochastic languages,
whose one stream per split runs through the split's files in sorted order (as the
reference did per ``perturb.py <split>`` run), and writes. The output is the same for
any worker count. Each folder is renamed into place only when every language is
complete; a rerun skips languages whose manifest matches.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from impossible_lms.data import (
    MANIFEST,
    Manifest,
    DatasetWriter,
    SplitColumns,
    dataset_folder_name,
    load_manifest,
)
from impossible_lms.errors import ILMError
from impossible_lms.io import atomic_dir
from impossible_lms.locks import hold_all
from impossible_lms.progress import progress as progress_bar
from impossible_lms.tokenizer import DEFAULT_FALLBACK_VOCAB, MarkedTokenizer, load_tokenizer
from perturbations.base import Language
from perturbations.ragged import Ragged

# Corpus splits, in the order they are processed, and the dataset splits each feeds.
CORPUS_SPLITS = ("train", "dev", "test")

# Shorthands accepted in place of language names.
SHORTHANDS = ("all", "reference", "shuffle", "reverse", "hop")


def resolve_languages(specs: Sequence[str] | str) -> list[Any]:
    """Language specs and shorthands → languages (deduplicated, in order).

    ``all`` and ``reference`` are the 15 languages of Kallini et al. (2024);
    ``shuffle``, ``reverse`` and ``hop`` are one family's reference languages.
    Unknown names raise ILMError with the nearest names.
    """
    from perturbations import get_language, list_languages

    if isinstance(specs, str):
        specs = [specs]
    out: dict[str, Any] = {}
    for spec in specs:
        key = str(spec).strip().lower()
        if key in ("all", "reference"):
            langs = list_languages()
        elif key in ("shuffle", "reverse", "hop"):
            langs = list_languages(key)
        else:
            langs = [get_language(spec)]
        for lang in langs:
            out.setdefault(lang.name, lang)
    if not out:
        raise ILMError("no languages given; name some, or use `all` (`ilm languages` lists them)")
    return list(out.values())


# -- the corpus, streamed in chunks --------------------------------------------------


@dataclass
class Chunk:
    """Up to ``CHUNK_LINES`` lines of one corpus file, or sentences a tagger gave whole."""

    file: int  # index into the sorted corpus files
    index: int  # the chunk's number in its file (the tag cache's chunk number)
    lines: list[str] | None = None  # to split (and tag) in a worker
    sentences: list[Any] | None = None  # already sentences: gold tags, a tagger without chunks


@dataclass
class ChunkResult:
    """What a worker sends back for one chunk: compact arrays, not the tagged sentences."""

    file: int
    index: int
    sentences: int
    words: int  # for the "0 of N kept" message when the chunk was not tokenised
    lengths: tuple[int, int] | None  # shortest and longest tokenised sentence, when tokenised
    perturbed: dict[int, Any]  # language index -> PerturbedColumns (the languages without a stream)
    ids: dict[tuple[str, ...], Ragged]  # token ids per marker set, for the languages with a stream
    tree_counts: dict[int, dict[str, int]]  # tree languages: sentences left unchanged, by reason
    tagged: list[Any] | None = None  # the sentences, when a language with a stream reads tags


def corpus_chunks(files: Sequence[Any], tagger: Any, cache_dir: Path | None) -> Iterator[Chunk]:
    """Every file's chunks in processing order; lines are read here, tagging is left to the worker.

    A file that a line tagger reads (``line_tagger_for``) is cut into its cache chunks; any other
    (gold tags, a tagger object with only ``process``) is read whole and cut into sentence chunks
    of the same size."""
    from impossible_lms.tagging.base import CHUNK_LINES

    for i, f in enumerate(files):
        lines = _line_tagger(tagger, f)
        if lines is not None:
            for index, chunk in enumerate(lines.line_chunks(f)):
                yield Chunk(i, index, lines=chunk)
            continue
        sentences = tagger.process(f, cache_dir=cache_dir)
        for index, start in enumerate(range(0, len(sentences), CHUNK_LINES)):
            yield Chunk(i, index, sentences=sentences[start:start + CHUNK_LINES])


# Set in the parent before the pool forks, so workers inherit the tagger, tokenizers and
# languages instead of receiving them pickled with every task.
_STATE: dict[str, Any] = {}


def _process_chunk(chunk: Chunk) -> ChunkResult:
    """Split, tag and tokenise one chunk, and perturb it in every language without a random stream."""
    st = _STATE
    f = st["files"][chunk.file]
    sentences = chunk.sentences
    if sentences is None:
        sentences = _line_tagger(st["tagger"], f).tag_chunk(f, chunk.index, chunk.lines, st["cache_dir"])
    ids: dict[tuple[str, ...], Ragged] = {}
    lengths = None
    if st["id_markers"]:
        texts = [s.text for s in sentences]
        base = Ragged.from_lists(st["base"].encode_batch(texts), np.int32)
        if len(base):
            lengths = (int(base.lengths.min()), int(base.lengths.max()))
        chars = st["marker_chars"]
        marked = [i for i, t in enumerate(texts) if any(c in t for c in chars)] if chars else []
        for markers in st["id_markers"]:
            ids[markers] = _ids_for(base, texts, marked, markers, st["tokenizers"][markers])
    perturbed, counts = {}, {}
    for i, lang in enumerate(st["languages"]):
        if i in st["streamed"]:
            continue
        tok = st["tokenizers"][lang.markers]
        perturbed[i] = lang.perturb_columns(sentences, tok, ids=ids.get(lang.markers))
        if lang.needs_tree:
            counts[i] = lang.tree_counts(sentences)
    keep = {markers: ids[markers] for markers in st["streamed_markers"] if markers in ids}
    words = sum(len(s.text.split()) for s in sentences) if lengths is None else 0
    return ChunkResult(chunk.file, chunk.index, len(sentences), words, lengths, perturbed, keep, counts,
                       sentences if st["streamed_tags"] else None)


def _ids_for(base: Ragged, texts: list[str], marked: list[int], markers: tuple[str, ...], tok: MarkedTokenizer) -> Ragged:
    """The ids as a tokenizer with ``markers`` encodes them: a sentence whose text holds one of
    those markers is encoded again (the marker becomes its token); every other keeps its ids."""
    redo = {i: tok.encode(texts[i]) for i in marked if any(m in texts[i] for m in markers)}
    if not redo:
        return base
    rows = base.to_lists()
    for i, row in redo.items():
        rows[i] = row
    return Ragged.from_lists(rows, np.int32)


def _line_tagger(tagger: Any, f: Any) -> Any:
    """The line tagger that tags ``f`` chunk by chunk; None for gold tags and taggers with ``process`` only."""
    return tagger.line_tagger_for(f) if hasattr(tagger, "line_tagger_for") else None


def _tagger_name(tagger: Any) -> str:
    return str(getattr(tagger, "name", tagger)) if hasattr(tagger, "process") else str(tagger)


def _file_order(f: Any) -> tuple[int, str, str]:
    split = CORPUS_SPLITS.index(f.split) if f.split in CORPUS_SPLITS else len(CORPUS_SPLITS)
    return (split, str(f.name), str(f.genre))


class _Blank:
    """Stands in for the sentences of a language that reads only token ids (shuffles, reverses)."""

    words = None
    text = ""


class LanguageOutput:
    """One language's dataset being written: its splits grow chunk by chunk (see ``perturb_split``
    for the order), with the counts its manifest and the empty-split check need."""

    def __init__(self, lang: Any, folder: Path) -> None:
        self.lang = lang
        self.writer = DatasetWriter(folder)
        # shuffles and reverses affect every sentence: their train/dev rows need no regrouping
        self.grouped = type(lang).affects is not Language.affects
        self.given: dict[str, int] = {}
        self.kept: dict[str, int] = {}
        self.tree_counts: dict[str, dict[str, int]] = {}

    def add(self, split: str, genre: str, result: Any, sentences: int) -> None:
        ids, affected = result.ids, result.affected_kept
        self.given[split] = self.given.get(split, 0) + sentences
        self.kept[split] = self.kept.get(split, 0) + len(ids)
        columns = SplitColumns(ids, [genre] * len(ids), affected)
        if split == "test":
            self.writer.write("test_affected", columns.take(affected))
            self.writer.write("test_unaffected", columns.take(~affected))
        elif self.grouped:
            self.writer.write_grouped(split, columns)
        else:
            self.writer.write(split, columns)

    def end_file(self) -> None:
        self.writer.end_file()

    def finish(self, manifest: Manifest, tok: MarkedTokenizer) -> None:
        manifest.dropped = {split: self.given[split] - self.kept[split] for split in self.given}
        manifest.counts = {("test_unaffected" if split == "test" else split): counts
                           for split, counts in self.tree_counts.items()}
        self.writer.finish(manifest, tok)


def perturb_split(lang: Any, files: Sequence[Any], tok: MarkedTokenizer) -> dict[str, Any]:
    """One language over one corpus split, in memory (the pipeline streams the same rules).

    ``files`` are (split, genre, sentences, ids) records in order. train → ``train``,
    dev → ``dev`` (perturbed + unaffected kept as they are); test → ``test_affected`` and
    ``test_unaffected``. Filtered sentences vanish.

    In ``train`` and ``dev`` each file's unaffected sentences come first, then its
    affected ones, each group in corpus order: the reference's data/perturb.py
    writes ``new_lines_unaffected + new_lines_affected`` per file, and training's
    seeded sentence shuffle permutes that order, so any other order gives another
    training stream. Shuffles and reverses affect every sentence, so for them this
    is corpus order. Stochastic languages draw from one stream per (language, split)
    through the split's files in order.
    """
    stream = lang.new_stream()
    parts: dict[str, list[SplitColumns]] = {}
    for split, genre, sentences, ids in files:
        result = lang.perturb_columns(sentences, tok, ids=ids, stream=stream)
        cols = SplitColumns(result.ids, [genre] * len(result.ids), result.affected_kept)
        if split == "test":
            for name, rows in (("test_affected", cols.affected), ("test_unaffected", ~cols.affected)):
                parts.setdefault(name, []).append(cols.take(rows))
        else:
            order = np.argsort(cols.affected, kind="stable")  # unaffected (False) first, corpus order within
            parts.setdefault(split, []).append(cols.take(order))
    return {name: SplitColumns.concat(p) for name, p in parts.items()}


# -- the pipeline -------------------------------------------------------------------------


def perturb_corpus(
    languages: Sequence[str] | str,
    corpus: Any,
    out: str | Path,
    tokenizer: str | Path | MarkedTokenizer = "gpt2",
    tagger: Any = "nltk",
    workers: int = 1,
    cache_dir: str | Path | None = None,
    errors: str = "fail",
    progress: bool = True,
    force: bool = False,
    corpus_options: dict[str, Any] | None = None,
    fallback_vocab: int = DEFAULT_FALLBACK_VOCAB,
) -> list[Path]:
    """Write ``out/<language>/`` for every language; returns the folders, in language order.

    ``corpus`` is an ``open_corpus`` spec (``synthetic``, a folder, a file, ...)
    or an opened corpus. ``tokenizer`` is ``gpt2`` (local HF cache), a folder, or
    ``fallback``. ``tagger`` tags sentences only when a hop language is asked for;
    otherwise sentences are split by the ``none`` tagger. Existing outputs with a
    matching manifest are kept; a different manifest is an error unless ``force``.
    """
    if workers < 1:
        raise ILMError(f"--workers must be at least 1, got {workers}")
    if errors not in ("fail", "skip"):
        raise ILMError(f"--on-bad-bytes must be 'fail' or 'skip', got {errors!r}")
    langs = resolve_languages(languages)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ILMError(f"--out {out} is a file, not a folder")
    hops = [lang.name for lang in langs if lang.needs_tags]
    if hops and _tagger_name(tagger) == "none":
        raise ILMError(f"{', '.join(hops)} need tagged sentences; use --tagger nltk, stanza, gold or auto")
    trees = [lang.name for lang in langs if lang.needs_tree]
    if trees and _tagger_name(tagger) not in ("gold", "auto") and not hasattr(tagger, "process"):
        raise ILMError(
            f"{', '.join(trees)} need dependency trees, which only a treebank gives: "
            "read a CoNLL-U corpus with --tagger gold (or auto)"
        )
    if not hasattr(corpus, "files"):
        from impossible_lms.corpus import open_corpus

        corpus = open_corpus(corpus, errors=errors, options=corpus_options or {})
    need_tags = any(lang.needs_tags for lang in langs)
    # Tagging is the slow step; languages that only reorder tokens need sentences, not tags.
    tagger_used = tagger if need_tags or hasattr(tagger, "process") else "none"

    base = load_tokenizer(tokenizer, markers=(), corpus=corpus, fallback_vocab=fallback_vocab)
    tokenizers = {markers: base.with_markers(markers) for markers in dict.fromkeys(lang.markers for lang in langs)}
    manifests = [_manifest(lang, tokenizers[lang.markers], corpus, _tagger_name(tagger_used)) for lang in langs]
    folders = [out / dataset_folder_name(lang.name) for lang in langs]
    # One writer per dataset folder, from the check that it is done to its last write.
    with hold_all(folders, "dataset"):
        _remove_temporaries(folders)  # ours, left by a killed run: a live writer would hold the lock
        todo = [i for i, lang in enumerate(langs) if not _is_done(folders[i], manifests[i], force, lang.needs_tags)]
        if not todo:
            return folders
        marker_chars = "".join(sorted({m for lang in langs for m in lang.markers}))
        cache = tag_cache_dir(cache_dir) if need_tags else _path(cache_dir)
        todo_langs = [langs[i] for i in todo]
        with progress_bar(disable=not progress) as show, contextlib.ExitStack() as stack:
            # Every folder is written at once, chunk by chunk; each one appears (renamed into place)
            # only when all are complete, and a failure leaves none half-written.
            tmps = [stack.enter_context(atomic_dir(folders[i])) for i in todo]
            outputs = [LanguageOutput(lang, tmp) for lang, tmp in zip(todo_langs, tmps)]
            _stream_corpus(corpus, todo_langs, outputs, base, tokenizers, tagger_used, cache, marker_chars,
                           workers, show)
            for i, out_ in zip(todo, outputs):
                out_.finish(manifests[i], tokenizers[langs[i].markers])
    return folders


def _stream_corpus(corpus: Any, langs: list[Any], outputs: list[LanguageOutput], base: MarkedTokenizer,
                   tokenizers: dict, tagger: Any, cache: Path | None, marker_chars: str, workers: int,
                   show: Any) -> None:
    """Every chunk of the corpus through every language, in corpus order, into ``outputs``.

    Workers split, tag, tokenise and perturb chunks (the languages without a random stream);
    this process perturbs the languages with one (their stream runs through each split's
    files in order, as the reference's did) and writes every chunk of every language before
    the next; at most a few chunks are in flight, so memory does not grow with the corpus."""
    from impossible_lms.tagging import get_tagger

    files = sorted(corpus.files(), key=_file_order)
    if not files:
        raise ILMError(f"corpus {corpus.name!r} has no files")
    for f in files:
        if f.split not in CORPUS_SPLITS:
            raise ILMError(f"corpus file {f.name} has split {f.split!r}; expected one of {CORPUS_SPLITS}")
    tagger = get_tagger(tagger)  # passes a tagger object through as is
    streamed = {i for i, lang in enumerate(langs) if lang.new_stream() is not None}
    # token ids for the languages that read them (shuffles, reverses); hops and trees re-join words
    id_markers = list(dict.fromkeys(lang.markers for lang in langs if not lang.needs_tags))
    state = {"files": files, "tagger": tagger, "cache_dir": cache, "base": base, "tokenizers": tokenizers,
             "languages": langs, "streamed": streamed, "id_markers": id_markers, "marker_chars": marker_chars,
             "streamed_markers": {langs[i].markers for i in streamed},
             "streamed_tags": any(langs[i].needs_tags for i in streamed)}
    task = show.add_task("perturbing", total=len(files)) if show else None
    streams: dict[tuple[int, str], Any] = {}
    given: dict[str, int] = {}
    words: dict[str, int] = {}
    lengths: dict[str, list[int]] = {}
    current, chunks, sentences = None, 0, 0
    for result in bounded_map(_process_chunk, corpus_chunks(files, tagger, cache), state, workers):
        if current is not None and result.file != current:
            _end_file(files[current], tagger, cache, outputs, chunks, sentences, show, task)
            chunks = sentences = 0
        current = result.file
        f = files[result.file]
        chunks, sentences = result.index + 1, sentences + result.sentences
        given[f.split] = given.get(f.split, 0) + result.sentences
        words[f.split] = words.get(f.split, 0) + result.words
        if result.lengths is not None:
            low, high = lengths.get(f.split, [result.lengths[0], result.lengths[1]])
            lengths[f.split] = [min(low, result.lengths[0]), max(high, result.lengths[1])]
        for i, (lang, out) in enumerate(zip(langs, outputs)):
            if i in streamed:
                stream = streams.setdefault((i, f.split), lang.new_stream())
                ids = result.ids.get(lang.markers)
                rows = result.tagged if result.tagged is not None else [_Blank] * result.sentences
                done = lang.perturb_columns(rows, tokenizers[lang.markers], ids=ids, stream=stream)
            else:
                done = result.perturbed[i]
            out.add(f.split, f.genre, done, result.sentences)
            if i in result.tree_counts:
                split_counts = out.tree_counts.setdefault(f.split, {})
                for key, n in result.tree_counts[i].items():
                    split_counts[key] = split_counts.get(key, 0) + n
    if current is None:
        raise ILMError(f"corpus {corpus.name!r} has no sentences")
    _end_file(files[current], tagger, cache, outputs, chunks, sentences, show, task)
    if not any(given.values()):
        raise ILMError(f"corpus {corpus.name!r} has no sentences")
    for out in outputs:
        for split, n in given.items():
            if n and not out.kept.get(split):
                lang = out.lang
                low, high = lengths.get(split, (None, None))
                shape = (f"{low:,} to {high:,} tokens" if low is not None
                         else f"{words[split] / n:.1f} words on average")
                raise ILMError(f"{lang.name}: 0 of {n:,} {split} sentences kept; {lang.name} keeps {lang.keeps}, "
                               f"and these have {shape} (is the corpus split into sentences?)")


def _end_file(f: Any, tagger: Any, cache: Path | None, outputs: list[LanguageOutput], chunks: int, sentences: int,
              show: Any, task: Any) -> None:
    """A file is done: its train/dev rows regroup, the tag cache marks it complete, the bar moves."""
    for out in outputs:
        out.end_file()
    lines = _line_tagger(tagger, f)
    if lines is not None:
        lines.mark_complete(f, chunks, sentences, cache)
    if show:
        show.update(task, advance=1, info=f"{f.name}: {sentences:,} sentences")


def bounded_map(fn: Callable[[Any], Any], items: Iterable[Any], state: dict[str, Any], workers: int,
                ahead: int = 2) -> Iterator[Any]:
    """``fn(item)`` for each item, in order, here or in a forked pool that inherits ``state``.

    ``fn`` reads its inputs from ``_STATE``, so large inputs reach the workers by fork, not by
    pickling every task. At most ``ahead`` items per worker are read and in flight at once, so a
    long ``items`` (the corpus, chunk by chunk) is never all in memory.
    """
    from collections import deque

    _STATE.update(state)
    try:
        if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
            for item in items:
                yield fn(item)
            return
        pool_of = multiprocessing.get_context("fork").Pool
        with _no_tokenizer_threads(), pool_of(workers, initializer=_ignore_sigint) as pool:
            pending: deque = deque()
            for item in items:
                pending.append(pool.apply_async(fn, (item,)))
                if len(pending) >= ahead * workers:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()  # on Ctrl-C the parent alone stops; leaving `with` ends the pool
    finally:
        _STATE.clear()


def _ignore_sigint() -> None:
    """In each worker: Ctrl-C goes to the whole process group, and the parent alone answers it
    (one line, exit 130, the pool terminated), instead of every worker printing a traceback."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _no_tokenizer_threads() -> Iterator[None]:
    # The Rust tokenizer's thread pool does not survive fork; saying so up front
    # keeps `tokenizers` from warning in every worker.
    old = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = old


def _manifest(lang: Any, tok: MarkedTokenizer, corpus: Any, tagger: str) -> Manifest:
    return Manifest(
        language=lang.name,
        family=lang.family,
        params=dict(lang.params),
        tokenizer=tok.describe(),
        vocab_size=tok.vocab_size,
        eos_id=tok.eos_id,
        marker_ids=dict(tok.marker_ids),
        corpus={"name": str(corpus.name), "fingerprint": str(corpus.fingerprint)},
        tagger=tagger,
    )


def _remove_temporaries(folders: Iterable[Path]) -> None:
    """Temporary folders of writes a failure cut short (a killed worker cannot clean up),
    and the ``.old`` copy a kill between atomic_dir's two renames leaves."""
    for folder in folders:
        for tmp in [*folder.parent.glob(f".{folder.name}.*.tmp"), folder.parent / f".{folder.name}.old"]:
            shutil.rmtree(tmp, ignore_errors=True)


def _sentence_splitter(tagger: str) -> str:
    """Which splitter a tagger's sentences come from: every backend but stanza gives
    gold boundaries where the file has them and punkt per line elsewhere."""
    return "stanza" if tagger == "stanza" else "punkt"


def _is_done(folder: Path, expected: Manifest, force: bool, needs_tags: bool) -> bool:
    """True when ``folder`` already holds this dataset; ILMError when it holds another.

    For languages without tags only the sentence splitting matters, so data made
    with ``--tagger none`` serves a later ``--tagger nltk`` run and vice versa.
    """
    if not folder.exists() or force:
        return False
    if not (folder / MANIFEST).is_file():
        raise ILMError(f"{folder} exists but is not an ilm dataset; pass --force to replace it or choose another --out")
    try:
        found = load_manifest(folder)
    except ILMError as e:
        raise ILMError(f"{folder} exists but its manifest cannot be reused ({e}); "
                       "pass --force to replace it or choose another --out") from None
    diffs = found.differences(expected)
    if not needs_tags and _sentence_splitter(found.tagger) == _sentence_splitter(expected.tagger):
        diffs = [d for d in diffs if d != "tagger"]
    if diffs:
        what = ", ".join(diffs)
        raise ILMError(
            f"{folder} exists with a different manifest ({what} differ); "
            "pass --force to replace it or choose another --out"
        )
    return True


def _path(p: str | Path | None) -> Path | None:
    return None if p is None or str(p).lower() in NO_CACHE else Path(p)


NO_CACHE = ("none", "off")
CACHE_ENV = "ILM_CACHE_DIR"


def tag_cache_dir(cache_dir: str | Path | None = None) -> Path | None:
    """Where tagger output is cached: ``cache_dir``; unset, ``$ILM_CACHE_DIR/tags`` or
    ``$XDG_CACHE_HOME/ilm/tags`` (``~/.cache/ilm/tags``), so a second study on the same corpus
    files (same bytes, same tagger and version) never tags them again; ``none`` turns it off."""
    if cache_dir is not None:
        return _path(cache_dir)
    import os

    root = os.environ.get(CACHE_ENV)
    if root:
        return None if root.lower() in NO_CACHE else Path(root).expanduser() / "tags"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "ilm" / "tags"
