"""``ilm perturb``: corpus → one tokenised dataset per impossible language.

The expensive parts are done once per call, whatever the number of languages:
each corpus file is read, split and (only if a hop language asks for it) tagged
once, and every sentence is tokenised once, in batches, by the Rust tokenizer.
Each language then perturbs the shared token ids.

Reading is one task per file; perturbing is one task per language, which runs
all splits and writes the language's folder atomically. Stochastic languages
draw from one random stream per split that runs through the split's files in
sorted order (as the reference did per ``perturb.py <split>`` run). Tasks run in
a forked process pool when ``workers > 1``; each is self-contained, so the output
is the same for any worker count. A rerun skips languages whose manifest matches.
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
    SplitColumns,
    dataset_folder_name,
    load_manifest,
    write_dataset,
)
from impossible_lms.errors import ILMError
from impossible_lms.locks import hold_all
from impossible_lms.progress import progress as progress_bar
from impossible_lms.tokenizer import DEFAULT_FALLBACK_VOCAB, MarkedTokenizer, load_tokenizer
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


# -- the corpus, read once ------------------------------------------------------


@dataclass
class SourceFile:
    """One corpus file's sentences and their token ids (tokenised without markers)."""

    split: str
    genre: str
    name: str
    sentences: list[Any]  # perturbations.Sentence
    ids: Ragged  # int32; shared by every language: languages never modify their input
    # Sentences whose text contains a marker character: a tokenizer with that
    # marker encodes them differently, so languages with markers re-encode them.
    with_markers: list[int]

    @property
    def tokens(self) -> int:
        return len(self.ids.values)

    def ids_for(self, markers: Sequence[str], tok: MarkedTokenizer) -> Ragged:
        """The ids as a tokenizer with ``markers`` encodes them (re-encoding the few that differ)."""
        texts = {i: self.sentences[i].text for i in self.with_markers}
        redo = {i: tok.encode(t) for i, t in texts.items() if any(m in t for m in markers)}
        if not redo:
            return self.ids
        rows = self.ids.to_lists()
        for i, ids in redo.items():
            rows[i] = ids
        return Ragged.from_lists(rows, np.int32)


def read_corpus(
    corpus: Any,
    tokenizer: MarkedTokenizer,
    tagger: Any,
    cache_dir: Path | None = None,
    marker_chars: str = "",
    workers: int = 1,
    show: Any = None,
) -> list[SourceFile]:
    """Every corpus file split (+ tagged) and tokenised, in processing order.

    ``tagger`` is a tagger name or an object with ``process(file, cache_dir=...)``.
    Files are independent, so ``workers`` processes read them in parallel.
    """
    files = sorted(corpus.files(), key=_file_order)
    if not files:
        raise ILMError(f"corpus {corpus.name!r} has no files")
    for f in files:
        if f.split not in CORPUS_SPLITS:
            raise ILMError(f"corpus file {f.name} has split {f.split!r}; expected one of {CORPUS_SPLITS}")
    from impossible_lms.tagging import get_tagger  # passes a tagger object through as is

    state = {"files": files, "tagger": get_tagger(tagger), "tokenizer": tokenizer, "cache_dir": cache_dir, "marker_chars": marker_chars}
    task = show.add_task("reading corpus", total=len(files)) if show else None
    out = []
    for source in parallel_map(_read_file, range(len(files)), state, workers):
        out.append(source)
        if show:
            show.update(task, advance=1, info=f"{source.name}: {len(source.sentences):,} sentences")
    if not any(f.sentences for f in out):
        raise ILMError(f"corpus {corpus.name!r} has no sentences")
    return out


def _read_file(index: int) -> SourceFile:
    f = _STATE["files"][index]
    sentences = _STATE["tagger"].process(f, cache_dir=_STATE["cache_dir"])
    texts = [s.text for s in sentences]
    ids = Ragged.from_lists(_STATE["tokenizer"].encode_batch(texts), np.int32)
    chars = _STATE["marker_chars"]
    marked = [i for i, t in enumerate(texts) if any(c in t for c in chars)] if chars else []
    return SourceFile(f.split, f.genre, f.name, sentences, ids, marked)


def _tagger_name(tagger: Any) -> str:
    return str(getattr(tagger, "name", tagger)) if hasattr(tagger, "process") else str(tagger)


def _file_order(f: Any) -> tuple[int, str, str]:
    split = CORPUS_SPLITS.index(f.split) if f.split in CORPUS_SPLITS else len(CORPUS_SPLITS)
    return (split, str(f.name), str(f.genre))


# -- one (language, split) task -----------------------------------------------------

# Set in the parent before the pool forks, so workers inherit the corpus instead
# of receiving it pickled with every task.
_STATE: dict[str, Any] = {}


def _make_language(index: int) -> Path:
    """Perturb every split for one language and write its folder (in a worker when there are several)."""
    lang, folder, manifest = _STATE["languages"][index], _STATE["folders"][index], _STATE["manifests"][index]
    tok = _STATE["tokenizers"][lang.markers]
    columns: dict[str, SplitColumns] = {}
    manifest.counts = {}
    for split in CORPUS_SPLITS:
        files = [f for f in _STATE["sources"] if f.split == split]
        if files:
            made = perturb_split(lang, files, tok)
            manifest.dropped[split] = _dropped(lang, split, files, made)
            columns.update(made)
            if lang.needs_tree:
                # Sentences the tree rule left alone land, unaffected, in train / dev / test_unaffected.
                counts = [lang.tree_counts(f.sentences) for f in files]
                where = "test_unaffected" if split == "test" else split
                manifest.counts[where] = {k: sum(c[k] for c in counts) for k in counts[0]}
    return write_dataset(folder, columns, manifest, tok)


def _dropped(lang: Any, split: str, files: Sequence[SourceFile], made: dict[str, SplitColumns]) -> int:
    """How many of the split's sentences the language's filters dropped; ILMError when all were.

    An empty split would only fail later (training cannot map an empty file), far
    from the cause; the message says which filter it was and what the input was like.
    """
    given = sum(len(f.sentences) for f in files)
    kept = sum(len(c) for c in made.values())
    if given and not kept:
        lengths = np.concatenate([f.ids.lengths for f in files])
        raise ILMError(
            f"{lang.name}: 0 of {given:,} {split} sentences kept; {lang.name} keeps {lang.keeps}, and these have "
            f"{int(lengths.min()):,} to {int(lengths.max()):,} tokens (is the corpus split into sentences?)"
        )
    return given - kept


def perturb_split(lang: Any, files: Sequence[SourceFile], tok: MarkedTokenizer) -> dict[str, SplitColumns]:
    """One language over one corpus split's files → its dataset splits' columns.

    train → ``train``, dev → ``dev`` (perturbed + unaffected kept as they are);
    test → ``test_affected`` and ``test_unaffected``. Filtered sentences vanish.

    In ``train`` and ``dev`` each file's unaffected sentences come first, then its
    affected ones, each group in corpus order: the reference's data/perturb.py
    writes ``new_lines_unaffected + new_lines_affected`` per file, and training's
    seeded sentence shuffle permutes that order, so any other order gives another
    training stream. Shuffles and reverses affect every sentence, so for them this
    is corpus order.
    """
    stream = lang.new_stream()  # one stream per (language, split), through the files in order
    parts: dict[str, list[SplitColumns]] = {}
    for f in files:
        result = lang.perturb_columns(f.sentences, tok, ids=f.ids_for(lang.markers, tok), stream=stream)
        ids, affected = result.ids, result.affected_kept
        if f.split == "test":
            for name, rows in (("test_affected", affected), ("test_unaffected", ~affected)):
                parts.setdefault(name, []).append(SplitColumns(ids.take(rows), [f.genre] * int(rows.sum()), affected[rows]))
        else:
            if affected.any() and not affected.all():
                order = np.argsort(affected, kind="stable")  # unaffected (False) first, corpus order within
                ids, affected = ids.take(order), affected[order]
            parts.setdefault(f.split, []).append(SplitColumns(ids, [f.genre] * len(ids), affected))
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
        with progress_bar(disable=not progress) as show:
            cache = tag_cache_dir(cache_dir) if need_tags else _path(cache_dir)
            sources = read_corpus(corpus, base, tagger_used, cache, marker_chars, workers, show)
            import datasets  # noqa: F401  (imported once here, not once per forked worker)

            bar = show.add_task("perturbing + writing", total=len(todo))
            state = {"languages": langs, "tokenizers": tokenizers, "sources": sources, "folders": folders, "manifests": manifests}
            try:
                # One task per language: it writes its own folder, so writing runs in parallel too.
                for folder in parallel_map(_make_language, todo, state, workers):
                    show.update(bar, advance=1, info=f"→ {folder}")
            except BaseException:
                _remove_temporaries(folders[i] for i in todo)
                raise
    return folders


def parallel_map(fn: Callable[[Any], Any], items: Sequence[Any], state: dict[str, Any], workers: int) -> Iterator[Any]:
    """``fn(item)`` for each item, in order, here or in a forked pool that inherits ``state``.

    ``fn`` reads its inputs from ``_STATE`` so that large inputs (the corpus) reach
    the workers by fork, not by pickling every task.
    """
    items = list(items)
    _STATE.update(state)
    try:
        if workers == 1 or len(items) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            for item in items:
                yield fn(item)
            return
        pool_of = multiprocessing.get_context("fork").Pool
        with _no_tokenizer_threads(), pool_of(min(workers, len(items)), initializer=_ignore_sigint) as pool:
            yield from pool.imap(fn, items)  # on Ctrl-C the parent alone stops, and leaving `with` ends the pool
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
