"""The report's `findings` table: the paper's orderings checked on the report's own tables."""

from __future__ import annotations

import pandas as pd

from impossible_lms.reporting import all_tables
from impossible_lms.reporting.findings import summary, verdict


def rows(final: dict[str, float], metric="perplexity", seeds=(0, 1, 2), spread=0.01, steps=(1, 2)) -> list[dict]:
    out = []
    for language, value in final.items():
        for seed in seeds:
            for step in steps:
                v = value * (1 + spread * seed) * (1.5 if step < steps[-1] else 1.0)
                out.append({"subject": f"{language}/m/seed{seed}", "language": language, "model": "m", "seed": seed,
                            "checkpoint": step, "metric": metric, "subset": "test_affected", "value": v,
                            "eval_language": language})
    return out


SHUFFLES = {"no_shuffle": 20, "local_shuffle:w=3": 30, "local_shuffle:w=5": 40, "local_shuffle:w=10": 50,
            "even_odd_shuffle": 45, "deterministic_shuffle:seed=21": 80, "nondeterministic_shuffle": 90}


def test_every_comparison_holds_when_the_runs_order_as_the_paper():
    df = pd.DataFrame(rows(SHUFFLES) + rows({"no_reverse": 20, "partial_reverse": 25, "full_reverse": 30})
                      + rows({"no_hop": 3.0, "token_hop": 5.0, "word_hop": 6.0}, metric="marker_surprisal"))
    table = all_tables(df)["findings"]
    mean = table["metric"] == "marker_surprisal_mean"  # a mean of the curve: no interval over seeds
    assert set(table[~mean]["verdict"]) == {"holds"} and set(table[mean]["verdict"]) == {"holds (no interval)"}
    found = summary(table).set_index("finding")
    assert found.loc["(a) *Shuffle: NoShuffle lowest", "holds"] == 6
    assert found.loc["(a) *Shuffle: Deterministic and Nondeterministic highest", "holds"] == 4 * 2
    assert found.loc["(b) *Reverse: NoReverse below PartialReverse and FullReverse", "holds"] == 2
    assert found.loc["(c) *Hop: NoHop's marker surprisal lower at the end", "holds"] == 2
    row = table[(table.language == "local_shuffle:w=3") & (table.other == "local_shuffle:w=5")].iloc[0]
    assert row["label"] == "< local_shuffle:w=5: holds" and row["value"] < row["other_value"]


def test_a_reversed_order_does_not_hold_and_close_values_overlap():
    flipped = {**SHUFFLES, "local_shuffle:w=5": 36, "local_shuffle:w=10": 35}
    close = {"no_reverse": 20, "partial_reverse": 20.2, "full_reverse": 30}
    table = all_tables(pd.DataFrame(rows(flipped) + rows(close, spread=0.05)))["findings"]
    by = {(r.language, r.other): r.verdict for r in table.itertuples()}
    assert by["local_shuffle:w=5", "local_shuffle:w=10"] == "does not hold"
    assert by["local_shuffle:w=3", "local_shuffle:w=5"] == "holds"
    assert by["no_reverse", "partial_reverse"] == "holds (intervals overlap)"
    assert by["no_reverse", "full_reverse"] == "holds"
    assert verdict(1.0, 1.2, 1.1, 0.9) == "holds (intervals overlap)"
    assert verdict(1.0, float("nan"), 2.0, float("nan")) == "holds (no interval)"
    assert verdict(2.0, 2.1, 1.0, 0.9) == "does not hold"


def test_absent_languages_leave_their_findings_out():
    tables = all_tables(pd.DataFrame(rows({"no_reverse": 20, "full_reverse": 30})))
    assert list(tables["findings"]["other"]) == ["full_reverse"]
    assert "findings" not in all_tables(pd.DataFrame(rows({"no_hop": 3.0}, metric="marker_surprisal")))
