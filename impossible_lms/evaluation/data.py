"""The evaluation data: a dataset folder's manifest and seeded per-genre samples of its splits."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from impossible_lms.data import load_manifest, load_split
from impossible_lms.io import fingerprint


class EvalData:
    """One dataset folder, sampled for evaluation.

    ``sample(split)`` takes ``sentences_per_genre`` sentences from each genre
    (all of them when a genre has fewer), drawn without replacement by
    ``numpy.default_rng([seed, hash(genre)])`` (a stable hash) and kept in corpus order. ``None`` keeps every
    sentence. The same sample serves every metric (perplexity and surprisal
    read the same affected sentences).
    """

    def __init__(self, folder: str | Path, sentences_per_genre: int | None = 1000, seed: int = 0):
        self.folder = Path(folder)
        self.manifest = load_manifest(self.folder)
        self.sentences_per_genre = sentences_per_genre
        self.seed = seed
        self._samples: dict[str, list[list[int]]] = {}

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

    def sample(self, split: str) -> list[list[int]]:
        if split not in self._samples:
            self._samples[split] = self._draw(split)
        return self._samples[split]

    def _draw(self, split: str) -> list[list[int]]:
        if self.manifest.counts.get(split, {}).get("sentences", None) == 0:
            return []
        ds = load_split(self.folder, split)
        if len(ds) == 0:
            return []
        genres = np.asarray(ds["genre"])
        chosen: list[int] = []
        for genre in sorted(set(genres.tolist())):
            rows = np.flatnonzero(genres == genre)
            k = self.sentences_per_genre
            if k is not None and len(rows) > k:
                rng = np.random.default_rng([self.seed, _stable_hash(genre)])
                rows = np.sort(rng.choice(rows, size=k, replace=False))
            chosen.extend(rows.tolist())
        chosen.sort()
        ids = ds.select(chosen)["input_ids"]
        return [list(map(int, s)) for s in ids]


def _stable_hash(text: str) -> int:
    """A per-genre RNG stream key that does not depend on Python's hash seed."""
    return int(fingerprint(text), 16) % (2**32)
