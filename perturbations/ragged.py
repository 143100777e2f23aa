"""Many token sequences in two flat arrays: the layout of an Arrow list column.

A corpus split is a few hundred thousand short sequences. As Python lists they
cost an object per token and a loop per sentence; as one ``values`` array with
``offsets`` (row ``i`` is ``values[offsets[i]:offsets[i + 1]]``) a language that
only reorders tokens is a handful of numpy gathers over the whole split, and the
result goes to Arrow without a copy per row.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np


@dataclass(frozen=True, eq=False)
class Ragged:
    """Rows of ints: ``values`` (any int dtype) and ``offsets`` (int64, one more than rows)."""

    values: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        # Arrays in, whatever was passed (lists from a notebook); no copy when already arrays.
        object.__setattr__(self, "values", np.asarray(self.values))
        object.__setattr__(self, "offsets", np.asarray(self.offsets, np.int64))
        offsets = self.offsets
        if offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(self.values) or (np.diff(offsets) < 0).any():
            raise ValueError(f"offsets must rise from 0 to len(values)={len(self.values)}")

    # -- making and unmaking --------------------------------------------------------

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]], dtype: type = np.int64) -> Ragged:
        lengths = np.fromiter(map(len, rows), np.int64, len(rows))
        offsets = offsets_of(lengths)
        values = np.fromiter(itertools.chain.from_iterable(rows), dtype, int(offsets[-1]))
        return cls(values, offsets)

    @classmethod
    def empty(cls, dtype: type = np.int64) -> Ragged:
        return cls(np.zeros(0, dtype), np.zeros(1, np.int64))

    @classmethod
    def concat(cls, parts: Iterable[Ragged]) -> Ragged:
        parts = list(parts)
        if not parts:
            return cls.empty()
        starts = np.cumsum([0] + [len(p.values) for p in parts[:-1]])
        offsets = np.concatenate([np.zeros(1, np.int64)] + [p.offsets[1:] + s for p, s in zip(parts, starts)])
        return cls(np.concatenate([p.values for p in parts]), offsets)

    def to_lists(self) -> list[list[int]]:
        """Plain Python lists of plain ints (one ``tolist`` for the whole array)."""
        flat, bounds = self.values.tolist(), self.offsets.tolist()
        return [flat[a:b] for a, b in zip(bounds, bounds[1:])]

    # -- shape --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row_of_value(self) -> np.ndarray:
        """For each value, the row it belongs to."""
        return np.repeat(np.arange(len(self)), self.lengths)

    def position_in_row(self) -> np.ndarray:
        """For each value, its index within its row."""
        return np.arange(len(self.values)) - np.repeat(self.offsets[:-1], self.lengths)

    # -- selecting ------------------------------------------------------------------

    def take(self, rows: np.ndarray | Sequence[int]) -> Ragged:
        """The given rows (indices or a boolean mask), in that order."""
        rows = np.asarray(rows)
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64, copy=False)
        lengths = self.lengths[rows]
        out = offsets_of(lengths)
        source = np.repeat(self.offsets[:-1][rows] - out[:-1], lengths) + np.arange(out[-1])
        return Ragged(self.values[source], out)

    def count_in_rows(self, ids: Iterable[int]) -> np.ndarray:
        """Per row, how many of its values are in ``ids``."""
        hits = np.isin(self.values, np.fromiter(ids, np.int64))
        cum = np.concatenate([np.zeros(1, np.int64), np.cumsum(hits, dtype=np.int64)])
        return cum[self.offsets[1:]] - cum[self.offsets[:-1]]


def offsets_of(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets
