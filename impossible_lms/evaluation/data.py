"""The evaluation data: a dataset folder's manifest and seeded per-genre samples of its splits.

Sample schemes (``SAMPLE_SCHEMES``, a registry; ``sample.scheme`` in rows):

- ``reference`` (the default): what the reference's ``perplexities.py`` and
  ``hop_surprisal.py`` do. The genre files are walked in sorted file-name order
  (``<genre>.test``) and ONE ``numpy.random.default_rng(seed)`` stream draws
  ``rng.choice(n, k, replace=False)`` row indices from each file in turn, kept
  in draw order. ``seed`` is the model's training seed, as the reference passes
  its ``random_seed`` argument to both. A file with fewer than ``k`` sentences
  made the reference crash; here it is taken whole, in file order, drawing
  nothing from the stream (so later files get the draws they would get were it
  absent), and the shortfall is reported (``EvalData.short``, a warning, and the
  rows' ``sample_short`` column). A file with exactly ``k`` draws a permutation,
  as the reference does.
- ``per_genre``: each genre drawn from its own ``default_rng([seed, hash(genre)])``
  and kept in corpus order. Its reason to exist: a genre's sample does not change
  when another genre is added, removed or resized (a corpus other than BabyLM, or
  a grown test set), which the one-stream scheme cannot promise. It is not the
  reference's sample.

``max_tokens`` (a metric's filter) drops longer sequences BEFORE sampling, as
``hop_surprisal.py`` drops sentences whose length + EOS reaches 1024 before it
draws; each (split, max_tokens) is its own sample.
"""

from __future__ import annotations

import warnings
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np

from impossible_lms.data import load_manifest, load_split
from impossible_lms.errors import ILMError
from impossible_lms.io import fingerprint

# scheme(genres of the candidate rows, k, seed) -> (chosen positions into those rows, {genre: shortfall})
Scheme = Callable[[np.ndarray, int, int], tuple[list[int], dict[str, int]]]
SAMPLE_SCHEMES: dict[str, Scheme] = {}
DEFAULT_SCHEME = "reference"


def register_scheme(name: str):
    def deco(fn: Scheme) -> Scheme:
        SAMPLE_SCHEMES[name] = fn
        return fn

    return deco


def reference_file_order(genres) -> list[str]:
    """Genres in the order the reference's ``sorted(glob(.../babylm_test_affected/*))`` reads their
    ``<genre>_affected.test`` files: sorting the file names, not the genres ('-' < '1' < '_', so
    ``weblog1`` comes before ``weblog``; every ``_<split>`` suffix gives the same order)."""
    return sorted(set(genres), key=lambda g: f"{g}_affected.test")


@register_scheme("reference")
def reference_sample(genres: np.ndarray, k: int, seed: int) -> tuple[list[int], dict[str, int]]:
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    short: dict[str, int] = {}
    for genre in reference_file_order(genres.tolist()):
        rows = np.flatnonzero(genres == genre)
        if len(rows) < k:
            short[genre] = k - len(rows)
            chosen.extend(rows.tolist())
            continue
        chosen.extend(rows[rng.choice(len(rows), k, replace=False)].tolist())
    return chosen, short


@register_scheme("per_genre")
def per_genre_sample(genres: np.ndarray, k: int, seed: int) -> tuple[list[int], dict[str, int]]:
    chosen: list[int] = []
    short: dict[str, int] = {}
    for genre in sorted(set(genres.tolist())):
        rows = np.flatnonzero(genres == genre)
        if len(rows) > k:
            rng = np.random.default_rng([seed, _stable_hash(genre)])
            rows = np.sort(rng.choice(rows, size=k, replace=False))
        elif len(rows) < k:
            short[genre] = k - len(rows)
        chosen.extend(rows.tolist())
    return sorted(chosen), short


def check_scheme(name: str) -> str:
    if name not in SAMPLE_SCHEMES:
        raise ILMError(f"unknown sample scheme {name!r}; choose from {', '.join(SAMPLE_SCHEMES)}")
    return name


class EvalData:
    """One dataset folder, sampled for evaluation.

    ``sample(split)`` takes ``sentences_per_genre`` sentences from each genre by
    ``scheme`` (see the module doc); ``None`` keeps every sentence in corpus
    order. ``short[(split, max_tokens)]`` maps each genre that had fewer
    sentences than asked to how many it lacked.
    """

    def __init__(self, folder: str | Path, sentences_per_genre: int | None = 1000, seed: int = 0,
                 scheme: str = DEFAULT_SCHEME):
        self.folder = Path(folder)
        self.manifest = load_manifest(self.folder)
        self.sentences_per_genre = sentences_per_genre
        self.seed = seed
        self.scheme = check_scheme(scheme)
        self._samples: dict[tuple[str, int | None], list[list[int]]] = {}
        self.short: dict[tuple[str, int | None], dict[str, int]] = {}

    @property
    def language(self) -> str:
        return self.manifest.language

    @property
    def family(self) -> str:
        return self.manifest.family

    @property
    def eos_id(self) -> int:
        return self.manifest.eos_id

    @property
    def marker_ids(self) -> dict[str, int]:
        return self.manifest.marker_ids

    @cached_property
    def fingerprint(self) -> str:
        """What the scores depend on: the data's identity and counts."""
        return fingerprint(self.manifest.identity(), self.manifest.counts)

    def sample(self, split: str, max_tokens: int | None = None) -> list[list[int]]:
        key = (split, max_tokens)
        if key not in self._samples:
            self._samples[key] = self._draw(split, max_tokens)
        return self._samples[key]

    def shortfall(self, split: str, max_tokens: int | None = None) -> int:
        """Sentences the sample lacks because genres were smaller than asked (0 normally)."""
        self.sample(split, max_tokens)
        return sum(self.short.get((split, max_tokens), {}).values())

    def _draw(self, split: str, max_tokens: int | None) -> list[list[int]]:
        if self.manifest.counts.get(split, {}).get("sentences", None) == 0:
            return []
        ds = load_split(self.folder, split)
        if len(ds) == 0:
            return []
        import pyarrow as pa
        import pyarrow.compute as pc

        lengths = pc.list_value_length(ds.data.column("input_ids")).to_numpy(zero_copy_only=False)
        candidates = np.arange(len(ds)) if max_tokens is None else np.flatnonzero(lengths <= max_tokens)
        k = self.sentences_per_genre
        if k is None:
            chosen = list(range(len(candidates)))
        else:
            genres = np.asarray(ds["genre"], dtype=object)[candidates]
            chosen, short = SAMPLE_SCHEMES[self.scheme](genres, k, self.seed)
            if short:
                self.short[(split, max_tokens)] = short
                listed = ", ".join(f"{g} has {k - n}" for g, n in short.items())
                warnings.warn(f"{self.language} {split}: fewer than {k} sentences in some genres ({listed}); "
                              f"took all of those: {sum(short.values())} fewer in the sample", stacklevel=2)
        rows = candidates[np.asarray(chosen, dtype=np.int64)]
        # straight from the Arrow column (as the lengths above): datasets' row formatting took
        # 0.7 s for 40,000 sentences
        return pc.take(ds.data.column("input_ids"), pa.array(rows, type=pa.int64())).to_pylist()


def _stable_hash(text: str) -> int:
    """A per-genre RNG stream key that does not depend on Python's hash seed."""
    return int(fingerprint(text), 16) % (2**32)
