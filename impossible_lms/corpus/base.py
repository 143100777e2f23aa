"""What a corpus is: named files (split × genre) that yield lines, maybe pre-tagged sentences.

Readers (``readers.py``) build these objects; everything downstream (sentence
splitting, tagging, perturbation) sees only :class:`Corpus` and :class:`CorpusFile`.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from impossible_lms.errors import ILMError
from perturbations.base import Sentence

SPLITS = ("train", "dev", "test")
ERROR_MODES = ("fail", "skip")

LineFilter = Callable[[str], str]


@dataclass
class ReadStats:
    """Per-file counters, filled while lines are read (so callers can report skips)."""

    lines: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class CorpusFile:
    """One corpus file: a genre within a split.

    ``lines()`` yields stripped, non-empty lines in file order. ``pretagged()``
    returns gold sentences when the source carries tags (synthetic, CoNLL-U,
    Stanza JSON), else None. ``fingerprint`` identifies the content (file bytes or
    generator parameters) and keys the tagging cache.
    """

    split: str
    genre: str
    name: str
    path: Path | None
    fingerprint: str
    _lines: Callable[[], Iterable[str]] = field(repr=False, compare=False)
    _tagged: Callable[[], list[Sentence]] | None = field(default=None, repr=False, compare=False)
    stats: ReadStats = field(default_factory=ReadStats, repr=False, compare=False)

    def lines(self) -> Iterator[str]:
        for line in self._lines():
            line = line.strip()
            if line:
                yield line

    def head(self, n: int) -> "CorpusFile":
        """This file cut to its first ``n`` raw lines (a new fingerprint), for benchmarks and smoke runs."""
        return dataclasses.replace(self, fingerprint=f"{self.fingerprint}-head{n}",
                                   _lines=lambda: itertools.islice(self._lines(), n))

    def pretagged(self) -> list[Sentence] | None:
        return self._tagged() if self._tagged is not None else None

    @property
    def has_gold(self) -> bool:
        return self._tagged is not None


@dataclass(frozen=True)
class Corpus:
    """A named set of files; ``fingerprint`` changes whenever any file's content does."""

    name: str
    fingerprint: str
    _files: tuple[CorpusFile, ...]
    source: str = ""

    def files(self, split: str | None = None) -> Iterator[CorpusFile]:
        """Files in sorted (split, name) order, optionally one split only."""
        if split is not None and split not in SPLITS:
            raise ILMError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        for f in self._files:
            if split is None or f.split == split:
                yield f

    def splits(self) -> list[str]:
        return [s for s in SPLITS if any(f.split == s for f in self._files)]

    def genres(self) -> list[str]:
        return sorted({f.genre for f in self._files})


def sort_files(files: Iterable[CorpusFile]) -> tuple[CorpusFile, ...]:
    order = {s: i for i, s in enumerate(SPLITS)}
    return tuple(sorted(files, key=lambda f: (order.get(f.split, 99), f.name)))


# The longest line a corpus may hold: BabyLM's longest are a few kB (children_stories: 5.5 kB).
MAX_LINE_BYTES = 100_000


def read_lines(
    path: Path,
    errors: str,
    stats: ReadStats,
    transform: LineFilter | None = None,
    keep: Callable[[int], bool] | None = None,
) -> Iterator[str]:
    """Decode ``path`` line by line as UTF-8.

    ``errors="fail"``: an undecodable line raises ILMError naming file:line.
    ``errors="skip"``: it is dropped, counted in ``stats.skipped`` and warned about
    once at the end. ``keep(index)`` selects lines by 0-based index (the 90/5/5
    split of a single text file); ``transform`` rewrites each kept line.
    """
    if errors not in ERROR_MODES:
        raise ILMError(f"errors must be one of {', '.join(ERROR_MODES)}, got {errors!r}")
    stats.lines = stats.skipped = 0
    try:
        handle = open(path, "rb")
    except OSError as e:
        raise ILMError(f"cannot read {path}: {e.strerror}") from None
    with handle:
        for index, raw in enumerate(handle):
            if keep is not None and not keep(index):
                continue
            if len(raw) > MAX_LINE_BYTES:  # before any work: a megabyte "sentence" would stall every stage
                raise ILMError(f"{path}:{index + 1}: a line of {len(raw):,} bytes (at most {MAX_LINE_BYTES:,}); "
                               "a corpus has one sentence or utterance per line: split the file into lines")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                if errors == "fail":
                    raise ILMError(
                        f"{path}:{index + 1}: not valid UTF-8 ({e.reason} at byte {e.start}); "
                        "fix the file or read it with errors='skip'"
                    ) from None
                stats.skipped += 1
                continue
            stats.lines += 1
            yield transform(line) if transform else line
    if stats.skipped:
        warnings.warn(f"{path}: skipped {stats.skipped} line(s) that are not valid UTF-8", stacklevel=2)
