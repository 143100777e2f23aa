"""Wide tables (languages × checkpoints) equal the long ones cell for cell; the terminal view fits 80 columns."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from impossible_lms.reporting import build_tables, make_report
from impossible_lms.reporting.render import compact_interval, rich_table, terminal_frame
from impossible_lms.reporting.wide import wide_tables
from test_report_outputs import LANGS, results_frame


def test_wide_cells_are_the_long_tables_values_in_registry_order() -> None:
    tables = build_tables(results_frame())
    wide = {(w.metric, w.model, w.subset): w for w in wide_tables(tables)}
    assert set(wide) == {(m, "tiny-gpt2", "test_affected")
                         for m in ("perplexity", "marker_surprisal", "surprisal_difference")}
    ppl = wide["perplexity", "tiny-gpt2", "test_affected"].frame
    assert list(ppl.index) == LANGS and list(ppl.columns) == [50, 100, 150]
    long = tables["perplexity"]
    for row in long.itertuples():
        assert ppl.loc[row.language, int(row.checkpoint)] == row.value
    assert ppl.loc["no_shuffle", 50] == pytest.approx(np.sqrt(2.0 * 3.0))
    assert list(wide["marker_surprisal", "tiny-gpt2", "test_affected"].frame.index) == ["token_hop"]


def test_wide_files_are_written_beside_the_long_ones(tmp_path) -> None:
    df = results_frame()
    df2 = df.copy()
    df2["model"] = "gpt2"
    df2 = df2[df2["checkpoint"] != 100]  # a missing checkpoint is an empty cell, not a crash
    make_report(pd.concat([df, df2]), tmp_path, ["md", "csv", "tex"])
    csv = pd.read_csv(tmp_path / "wide_perplexity_gpt2_test_affected.csv")
    assert list(csv.columns) == ["language", "display", "50", "150"]
    assert list(csv["display"]) == ["NoShuffle", "LocalShuffle (w=3)", "PartialReverse", "TokenHop"]
    tex = (tmp_path / "wide_perplexity_tiny-gpt2_test_affected.tex").read_text()
    assert "language & 50 & 100 & 150 \\\\" in tex and "NoShuffle & 2.45 & 1.41 & 1.05 \\\\" in tex
    md = (tmp_path / "report.md").read_text()
    assert "### Perplexity per checkpoint: tiny-gpt2, test_affected" in md
    assert "| LocalShuffle (w=3) | 3.46 | 2.45 | 2.11 |" in md


def test_terminal_view_drops_constant_columns_and_never_cuts() -> None:
    tables = build_tables(results_frame())
    view, notes = terminal_frame(tables["final"])
    assert list(view.columns) == ["language", "metric", "value", "95% CI"]
    assert notes == ["model: tiny-gpt2", "subset: test_affected", "checkpoint: 150", "seeds: 2"]
    assert compact_interval(11.94, 12.81) == "11.9–12.8" and compact_interval(np.nan, 1.0) == "–"
    for name in ("final", "perplexity", "auc"):
        buf = io.StringIO()
        Console(file=buf, width=80).print(rich_table(name, tables[name]))
        text = buf.getvalue()
        assert "…" not in text and max(map(len, text.splitlines())) <= 80
        assert "LocalShuffle (w=3)" in text
