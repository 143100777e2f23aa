"""Report tables from the long-format results DataFrame (one row per run × checkpoint × metric × subset).

Every table aggregates over seeds (see :mod:`impossible_lms.reporting.stats`)
and is itself a long DataFrame with ``value, ci_low, ci_high, seeds`` columns,
sorted in the registry's order (family, then reference order).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from impossible_lms.errors import ILMError
from impossible_lms.reporting.languages import sort_key
from impossible_lms.reporting.stats import geometric_interval, mean_interval, normalised_auc

REQUIRED_COLUMNS = ("language", "model", "seed", "checkpoint", "metric", "subset", "value")
SURPRISAL_METRICS = ("marker_surprisal", "surprisal_difference")
AGGREGATE_COLUMNS = ["value", "ci_low", "ci_high", "seeds"]


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """Check the columns and normalise types; rows scored on another language's data are left out.

    Cross-language rows (``eval_language`` ≠ ``language``) answer a different
    question than the learning curves, so they do not enter these tables.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ILMError(f"results are missing column(s) {', '.join(missing)}; are these ilm results?")
    df = df.copy()
    if "eval_language" in df.columns:
        other = df["eval_language"].notna() & (df["eval_language"].astype(str) != df["language"].astype(str))
        df = df[~other]
    if "layer" not in df.columns:
        df["layer"] = np.nan
    # Float, not the store's nullable Int64: NaN-aware numpy maths and plotting downstream.
    df["checkpoint"] = pd.to_numeric(df["checkpoint"], errors="coerce").astype(float)
    df["layer"] = pd.to_numeric(df["layer"], errors="coerce").astype(float)
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    for col in ("ci_low", "ci_high"):
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df.columns else np.nan
    df["subset"] = df["subset"].fillna("").astype(str)
    df["language"] = df["language"].astype(str)
    df["model"] = df["model"].astype(str)
    return df


def _aggregate(df: pd.DataFrame, keys: list[str], how: Callable) -> pd.DataFrame:
    """One row per group: ``how`` over the seeds' values.

    With a single seed there is no interval over seeds; the run's own interval
    (over sentences, from ``evaluate``) is shown instead when it has one, and the
    ``interval`` column says which kind each row carries.
    """
    rows = []
    for key, group in df.groupby(keys, dropna=False, sort=False):
        value, low, high, n = how(group["value"].tolist())
        kind = "seeds" if n > 1 else ""
        if n == 1 and {"ci_low", "ci_high"} <= set(group.columns):
            own = group[group["value"].notna()].iloc[0]
            if pd.notna(own["ci_low"]) and pd.notna(own["ci_high"]):
                low, high, kind = float(own["ci_low"]), float(own["ci_high"]), "sentences"
        rows.append((*key, value, low, high, n, kind))
    out = pd.DataFrame(rows, columns=[*keys, *AGGREGATE_COLUMNS, "interval"])
    out["seeds"] = out["seeds"].astype(int)
    return _sorted(out)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df.reset_index(drop=True)
    order = df["language"].map(sort_key)
    df = df.assign(_order=order).sort_values(
        ["_order", *[c for c in ("model", "metric", "subset", "layer", "checkpoint") if c in df.columns]],
        kind="stable",
    )
    return df.drop(columns="_order").reset_index(drop=True)


def _last_layer_free(df: pd.DataFrame, metrics: tuple[str, ...]) -> pd.DataFrame:
    return df[df["metric"].isin(metrics) & df["layer"].isna()]


def perplexity_table(df: pd.DataFrame) -> pd.DataFrame:
    """Geometric-mean perplexity over seeds, per language × model × subset × checkpoint."""
    ppl = _last_layer_free(df, ("perplexity",))
    return _aggregate(ppl, ["language", "model", "subset", "checkpoint"], geometric_interval)


def final_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every (final-layer) metric at each language × model's last checkpoint."""
    rows = df[df["layer"].isna()]
    if rows.empty:
        return _aggregate(rows, ["language", "model", "metric", "subset", "checkpoint"], mean_interval)
    last = rows.groupby(["language", "model"])["checkpoint"].transform("max")
    rows = rows[(rows["checkpoint"] == last) | last.isna()]
    parts = [
        _aggregate(
            rows[rows["metric"] == metric],
            ["language", "model", "metric", "subset", "checkpoint"],
            geometric_interval if metric == "perplexity" else mean_interval,
        )
        for metric in rows["metric"].unique()
    ]
    return _sorted(pd.concat(parts, ignore_index=True))


def auc_table(df: pd.DataFrame) -> pd.DataFrame:
    """Area under each seed's perplexity curve (normalised: the curve's mean height), then mean ± t over seeds."""
    ppl = _last_layer_free(df, ("perplexity",)).dropna(subset=["checkpoint"])
    per_seed = [
        (*key, normalised_auc(g["checkpoint"], g["value"]))
        for key, g in ppl.groupby(["language", "model", "subset", "seed"], dropna=False, sort=False)
    ]
    seeds = pd.DataFrame(per_seed, columns=["language", "model", "subset", "seed", "value"])
    return _aggregate(seeds, ["language", "model", "subset"], mean_interval)


def surprisal_table(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean over seeds (bits, t-interval) of a hop surprisal metric per language × model × checkpoint."""
    rows = _last_layer_free(df, (metric,))
    return _aggregate(rows, ["language", "model", "subset", "checkpoint"], mean_interval)


def layer_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per-layer (multi-exit) metrics aggregated over seeds; empty when no exits were scored."""
    rows = df[df["layer"].notna()]
    parts = [
        _aggregate(
            rows[rows["metric"] == metric],
            ["language", "model", "metric", "subset", "layer", "checkpoint"],
            geometric_interval if metric.startswith("perplexity") else mean_interval,
        )
        for metric in rows["metric"].unique()
    ]
    if not parts:
        return pd.DataFrame(columns=["language", "model", "metric", "subset", "layer", "checkpoint",
                                     *AGGREGATE_COLUMNS, "interval"])
    return _sorted(pd.concat(parts, ignore_index=True))


def build_tables(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """All report tables by name; empty ones left out."""
    df = prepare(df)
    tables = {
        "final": final_table(df),
        "perplexity": perplexity_table(df),
        "auc": auc_table(df),
        **{m: surprisal_table(df, m) for m in SURPRISAL_METRICS},
        "layers": layer_table(df),
    }
    return {name: t for name, t in tables.items() if not t.empty}
