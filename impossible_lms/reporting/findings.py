"""The paper's qualitative findings, checked on a report's own tables (table ``findings``).

Kallini et al. (2024) claim, per family, an ordering of how well GPT-2 learns the
languages. Each claim here is a list of comparisons "A below B" on one table
(the final checkpoint's test_affected perplexity, or marker surprisal), with
every side's value and interval as the report gives them (mean over seeds, 95%
t-interval; one seed: the run's own interval over sentences). A comparison
*holds* when A's value is below B's and the intervals do not overlap, *holds
(intervals overlap)* when only the values are ordered, and *does not hold*
otherwise. A finding whose languages are absent is left out.

(a) *Shuffle: NoShuffle lowest; LocalShuffle rising with its window;
    DeterministicShuffle and NondeterministicShuffle highest.
(b) *Reverse: NoReverse below PartialReverse and FullReverse.
(c) *Hop: NoHop's marker surprisal below TokenHop's and WordHop's, at the last
    checkpoint (lower) and averaged over checkpoints (falls faster).
(d) Interventions: each hop language's best IIA cell per checkpoint is listed
    beside the others (``iia_max``); where it rises is read from the heatmaps.
"""

from __future__ import annotations

import math

import pandas as pd

Tables = dict[str, pd.DataFrame]


def _register_title() -> None:
    from impossible_lms.reporting.render import TITLES

    TITLES.setdefault("findings", "The paper's findings on these runs: each comparison A < B (A's value and interval; "
                                  "holds = ordered and intervals apart)")


_register_title()
SUBSET = "test_affected"
LOCAL = ["local_shuffle:w=3", "local_shuffle:w=5", "local_shuffle:w=10"]
RANDOM = ["deterministic_shuffle:seed=21", "deterministic_shuffle:seed=57", "deterministic_shuffle:seed=84",
          "nondeterministic_shuffle"]

# finding -> comparisons (lower, higher) on the metric named
FINDINGS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("(a) *Shuffle: NoShuffle lowest", "perplexity",
     [("no_shuffle", other) for other in [*LOCAL, "even_odd_shuffle", *RANDOM]]),
    ("(a) *Shuffle: LocalShuffle rises with its window", "perplexity", [(LOCAL[0], LOCAL[1]), (LOCAL[1], LOCAL[2])]),
    ("(a) *Shuffle: Deterministic and Nondeterministic highest", "perplexity",
     [(low, high) for low in [*LOCAL, "even_odd_shuffle"] for high in RANDOM]),
    ("(b) *Reverse: NoReverse below PartialReverse and FullReverse", "perplexity",
     [("no_reverse", "partial_reverse"), ("no_reverse", "full_reverse")]),
    ("(c) *Hop: NoHop's marker surprisal lower at the end", "marker_surprisal",
     [("no_hop", "token_hop"), ("no_hop", "word_hop")]),
    ("(c) *Hop: NoHop's marker surprisal lower over training (mean over checkpoints)", "marker_surprisal_mean",
     [("no_hop", "token_hop"), ("no_hop", "word_hop")]),
]
COLUMNS = ["language", "eval_language", "model", "metric", "subset", "label", "value", "ci_low", "ci_high", "seeds",
           "interval", "finding", "other", "other_value", "other_ci_low", "other_ci_high", "verdict"]


def _values(tables: Tables, metric: str) -> pd.DataFrame:
    """language × model → value, interval, seeds, on the metric's table (own-language rows, test_affected)."""
    if metric == "perplexity":
        t = tables.get("final")
        t = t[t["metric"] == "perplexity"] if t is not None else None
    elif metric == "marker_surprisal":
        t = tables.get("marker_surprisal")
        if t is not None and not t.empty:
            t = t[t["checkpoint"] == t.groupby(["language", "model"])["checkpoint"].transform("max")]
    else:  # the mean over checkpoints of each language's marker surprisal curve (seed means)
        t = tables.get("marker_surprisal")
        if t is not None and not t.empty:
            t = t.groupby(["language", "eval_language", "model", "subset", "setting"], as_index=False).agg(
                value=("value", "mean"), seeds=("seeds", "min")).assign(ci_low=math.nan, ci_high=math.nan,
                                                                       interval="")
    if t is None or t.empty:
        return pd.DataFrame()
    t = t[(t["eval_language"] == t["language"]) & (t["subset"] == SUBSET) & (t["setting"].fillna("") == "")]
    return t.set_index(["language", "model"])


def verdict(low: float, low_hi: float, high: float, high_lo: float) -> str:
    if not low < high:
        return "does not hold"
    if math.isnan(low_hi) or math.isnan(high_lo):
        return "holds (no interval)"
    return "holds" if low_hi < high_lo else "holds (intervals overlap)"


def findings_table(tables: Tables) -> pd.DataFrame:
    rows = []
    for finding, metric, comparisons in FINDINGS:
        values = _values(tables, metric)
        if values.empty:
            continue
        models = dict.fromkeys(m for _, m in values.index)
        for model in models:
            for low, high in comparisons:
                if (low, model) not in values.index or (high, model) not in values.index:
                    continue
                a, b = values.loc[(low, model)], values.loc[(high, model)]
                v = verdict(float(a["value"]), float(a["ci_high"]), float(b["value"]), float(b["ci_low"]))
                rows.append({"language": low, "eval_language": low, "model": model, "metric": metric,
                             "subset": SUBSET, "label": f"< {high}: {v}", "value": float(a["value"]),
                             "ci_low": float(a["ci_low"]), "ci_high": float(a["ci_high"]), "seeds": int(a["seeds"]),
                             "interval": a.get("interval", ""), "finding": finding, "other": high,
                             "other_value": float(b["value"]), "other_ci_low": float(b["ci_low"]),
                             "other_ci_high": float(b["ci_high"]), "verdict": v})
    return pd.DataFrame(rows, columns=COLUMNS)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per finding and model: how many of its comparisons hold, hold with overlapping intervals, fail."""
    if table.empty:
        return table
    counts = table.groupby(["finding", "model", "verdict"], sort=False).size().unstack(fill_value=0)
    verdicts = ["holds", "holds (intervals overlap)", "holds (no interval)", "does not hold"]
    for col in verdicts:
        if col not in counts.columns:
            counts[col] = 0
    return counts[verdicts].reset_index()
