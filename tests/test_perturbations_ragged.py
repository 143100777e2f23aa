"""Packed sequences (Ragged, PerturbedColumns), and the whole-file gathers against the one-sentence rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perturbations import Perturbed, PerturbedColumns, Ragged, Sentence, get_language
from perturbations.reverse import MODES, reverse, reverse_rows
from perturbations.shuffle import (
    MAX_TOKENS,
    MIN_TOKENS,
    deterministic_shuffle,
    even_odd_shuffle,
    local_shuffle,
    nondeterministic_shuffle,
)
from perturbations.toy import ToyTokenizer

ROWS = st.lists(st.lists(st.integers(0, 60_000), max_size=14), max_size=25)


# -- Ragged ------------------------------------------------------------------------


def test_round_trip_and_shape() -> None:
    rows = [[5, 6], [], [7], [8, 9, 10]]
    r = Ragged.from_lists(rows)
    assert r.values.tolist() == [5, 6, 7, 8, 9, 10] and r.offsets.tolist() == [0, 2, 2, 3, 6]
    assert len(r) == 4 and r.lengths.tolist() == [2, 0, 1, 3]
    assert r.to_lists() == rows and all(type(i) is int for row in r.to_lists() for i in row)
    assert r.row_of_value().tolist() == [0, 0, 2, 3, 3, 3]
    assert r.position_in_row().tolist() == [0, 1, 0, 0, 1, 2]
    assert Ragged.from_lists(rows, np.int32).values.dtype == np.int32


def test_take_by_index_and_by_mask() -> None:
    r = Ragged.from_lists([[1], [2, 3], [], [4, 5, 6]])
    assert r.take(np.array([3, 0, 0])).to_lists() == [[4, 5, 6], [1], [1]]
    assert r.take(np.array([False, True, True, True])).to_lists() == [[2, 3], [], [4, 5, 6]]
    assert r.take(np.array([], np.int64)).to_lists() == []


def test_concat_and_count_in_rows() -> None:
    a, b = Ragged.from_lists([[1, 7], []]), Ragged.from_lists([[7, 7, 2]])
    c = Ragged.concat([a, Ragged.empty(), b])
    assert c.to_lists() == [[1, 7], [], [7, 7, 2]]
    assert c.count_in_rows([7, 9]).tolist() == [1, 0, 2]
    assert Ragged.concat([]).to_lists() == []


@pytest.mark.parametrize("offsets", [[0, 2], [1, 3], [0, 2, 1, 3], []])
def test_inconsistent_offsets_are_refused(offsets) -> None:
    with pytest.raises(ValueError, match=r"offsets must rise from 0 to len\(values\)=3"):
        Ragged(np.arange(3), np.array(offsets, np.int64))


def test_plain_lists_are_accepted() -> None:
    r = Ragged([4, 5, 6], [0, 1, 3])
    assert r.to_lists() == [[4], [5, 6]] and r.take([1]).to_lists() == [[5, 6]] and r.take([]).to_lists() == []


@settings(max_examples=60, deadline=None)
@given(rows=ROWS, picks=st.lists(st.integers(0, 24), max_size=30))
def test_take_equals_indexing_lists(rows: list[list[int]], picks: list[int]) -> None:
    picks = [p for p in picks if p < len(rows)]
    assert Ragged.from_lists(rows).take(np.array(picks, np.int64)).to_lists() == [rows[p] for p in picks]


# -- PerturbedColumns ---------------------------------------------------------------


def test_columns_and_rows_round_trip() -> None:
    rows = [Perturbed([1, 2], True), Perturbed(None, True), Perturbed([3], False)]
    cols = PerturbedColumns.from_rows(rows)
    assert cols.kept.tolist() == [True, False, True] and cols.affected_kept.tolist() == [True, False]
    assert cols.to_rows() == rows


def test_columns_must_line_up() -> None:
    with pytest.raises(ValueError, match="one row per kept sentence"):
        PerturbedColumns(Ragged.from_lists([[1]]), np.array([True, True]), np.array([True, True]))


# -- whole-file gathers == the one-sentence rules -------------------------------------


@settings(max_examples=80, deadline=None)
@given(rows=ROWS, seed=st.integers(0, 2**16), mode=st.sampled_from(MODES))
def test_reverse_rows_equals_reverse_per_sentence(rows: list[list[int]], seed: int, mode: str) -> None:
    positions = np.array([np.random.default_rng(seed + i).integers(0, len(r) + 1) for i, r in enumerate(rows)], np.int64)
    got = reverse_rows(Ragged.from_lists(rows), positions, 99_999, mode).to_lists()
    assert got == [reverse(r, int(p), 99_999, mode) for r, p in zip(rows, positions)]


def test_reverse_rows_refuses_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown reverse mode 'sideways'"):
        reverse_rows(Ragged.from_lists([[1]]), np.array([0]), 9, "sideways")


def one_by_one(spec: str, rows: list[list[int]]) -> list[list[int] | None]:
    """The language's rule applied sentence by sentence with the per-sentence functions."""
    lang = get_language(spec)
    stream = lang.new_stream()
    rules = {
        "no_shuffle": list,
        "even_odd_shuffle": even_odd_shuffle,
        "deterministic_shuffle:seed=57": lambda r: deterministic_shuffle(r, 57),
        "local_shuffle:w=3": lambda r: local_shuffle(r, 3),
        "nondeterministic_shuffle": lambda r: nondeterministic_shuffle(r, stream),
    }
    out = [rules[spec](r) for r in rows]  # every sentence first: the stream draws for all
    return [o if MIN_TOKENS <= len(r) <= MAX_TOKENS else None for r, o in zip(rows, out)]


@settings(max_examples=40, deadline=None)
@given(rows=ROWS)
@pytest.mark.parametrize(
    "spec", ["no_shuffle", "even_odd_shuffle", "deterministic_shuffle:seed=57", "local_shuffle:w=3", "nondeterministic_shuffle"]
)
def test_shuffle_columns_equal_the_per_sentence_functions(spec: str, rows: list[list[int]]) -> None:
    cols = get_language(spec).perturb_columns([Sentence("unused")] * len(rows), ToyTokenizer(), ids=rows)
    assert [p.ids for p in cols.to_rows()] == one_by_one(spec, rows)


def test_packed_input_is_used_as_is_and_kept_dtype() -> None:
    ids = Ragged.from_lists([[3, 4, 5], [6]], np.int32)
    cols = get_language("partial_reverse").perturb_columns([Sentence("x")] * 2, ToyTokenizer(), ids=ids)
    assert cols.ids.values.dtype == np.int32 and cols.kept.tolist() == [True, False]
