"""Report tables from the long-format results DataFrame (one row per run × checkpoint × metric × subset).

Every table aggregates over seeds (see :mod:`impossible_lms.reporting.stats`)
and is itself a long DataFrame with ``value, ci_low, ci_high, seeds`` columns,
sorted in the registry's order (family, then reference order).

Rows are only ever averaged with rows that differ in nothing but the seed.
What else a number depends on (``SETTINGS``: unit, dtype, sample scheme, size
and seed rule, EOS conditioning, scorer version, data) is part of every group:
where a metric's rows differ in a setting, each table row carries a ``setting``
label naming it (``unit=nats``) and the variants are shown side by side.
Rows scored on another language's data (train on X, test on Y: the
DeterministicShuffle cross-seed tests) are kept, with ``eval_language`` Y.
``seeds`` counts distinct seeds.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import pandas as pd

from impossible_lms.errors import ILMError
from impossible_lms.reporting.languages import sort_key
from impossible_lms.reporting.stats import geometric_interval, mean_interval, normalised_auc

REQUIRED_COLUMNS = ("language", "model", "seed", "checkpoint", "metric", "subset", "value")
SURPRISAL_METRICS = ("marker_surprisal", "surprisal_difference")
AGGREGATE_COLUMNS = ["value", "ci_low", "ci_high", "seeds"]
# What a stored number depends on besides the run (docs/ARCHITECTURE.md §6); "sample_seed" is
# reported as a rule: "run" when the sample was drawn with the run's own seed (the reference's way).
SETTINGS = ("unit", "dtype", "sample_scheme", "sample_size", "sample_seed", "condition_on_eos",
            "scorer_version", "data_fingerprint", "options")
# Every table groups by these beyond its own keys.
EXTRA_KEYS = ["eval_language", "setting"]
UNKNOWN = "?"  # results written before a setting was recorded


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """Check the columns, normalise types, and label each row with the settings it differs in."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ILMError(f"results are missing column(s) {', '.join(missing)}; are these ilm results?")
    df = df.copy()
    for col in ("layer", "position", "label"):
        if col not in df.columns:
            df[col] = np.nan
    # Float, not the store's nullable Int64: NaN-aware numpy maths and plotting downstream.
    df["checkpoint"] = pd.to_numeric(df["checkpoint"], errors="coerce").astype(float)
    df["layer"] = pd.to_numeric(df["layer"], errors="coerce").astype(float)
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    for col in ("ci_low", "ci_high"):
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df.columns else np.nan
    df["subset"] = df["subset"].fillna("").astype(str)
    df["language"] = df["language"].astype(str)
    df["model"] = df["model"].astype(str)
    if "eval_language" not in df.columns:
        df["eval_language"] = df["language"]
    df["eval_language"] = df["eval_language"].where(df["eval_language"].notna(), df["language"]).astype(str)
    if "subject" not in df.columns:
        df["subject"] = df["language"] + "/" + df["model"] + "/seed" + df["seed"].astype(str)
    for col in SETTINGS:
        df[col] = df[col].map(_text) if col in df.columns else UNKNOWN
    if "sample_seed" in df.columns:
        same = df["sample_seed"] == df["seed"].map(_text)
        df["sample_seed"] = df["sample_seed"].where(~same, "run")
    df = _drop_duplicates(df)
    df["setting"] = _setting_labels(df)
    _check_one_row_per_seed(df)
    return df


def _text(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return UNKNOWN
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


# position, label: the analyses' cells (impossible_lms/analysis); empty in eval rows
_ROW_KEYS = ["subject", "language", "model", "seed", "eval_language", "metric", "subset", "layer", "checkpoint",
             "position", "label"]


def _drop_duplicates(df: pd.DataFrame) -> pd.DataFrame:
    """The same run's row read twice (two results folders holding one chunk) counts once."""
    return df.drop_duplicates(subset=[*_ROW_KEYS, *SETTINGS]).reset_index(drop=True)


def _setting_labels(df: pd.DataFrame) -> pd.Series:
    """Per row, ``name=value`` for each setting whose value differs among its metric's rows.

    The data fingerprint differs from language to language, and from subset to subset when
    subsets are different stimuli (tree projections' token and word passes), by nature; it is
    compared among rows of one subset scored on the same language's data (a regenerated dataset, say).
    """
    parts = pd.DataFrame(index=df.index)
    for col in SETTINGS:
        keys = ["metric", "eval_language", "subset"] if col == "data_fingerprint" else ["metric"]
        varies = df.groupby(keys, sort=False)[col].transform("nunique") > 1
        parts[col] = np.where(varies, col + "=" + df[col].astype(str), "")
    return parts.apply(lambda r: ", ".join(v for v in r if v), axis=1).astype(object) if len(df) else \
        pd.Series("", index=df.index, dtype=object)


def _check_one_row_per_seed(df: pd.DataFrame) -> None:
    """Two different runs with the same seed in one group would be averaged as if they were one."""
    keys = ["language", "model", "eval_language", "setting", "metric", "subset", "layer", "checkpoint", "seed"]
    counts = df.groupby(keys, dropna=False, sort=False)["subject"].nunique()
    clash = counts[counts > 1]
    if len(clash):
        key = dict(zip(keys, clash.index[0]))
        rows = df[(df["language"] == key["language"]) & (df["model"] == key["model"]) & (df["seed"] == key["seed"])]
        subjects = sorted(set(rows["subject"].astype(str)))
        legacy = [s for s in subjects if s.startswith("/")]
        if legacy and len(legacy) < len(subjects):
            # results written before results were keyed by the run's identity, beside newer ones of the same run
            from impossible_lms.evaluation.store import slug

            raise ILMError(f"{key['language']} {key['model']} seed {key['seed']}: results keyed by the run's path "
                           f"(written by an older ilm) beside results keyed by its identity; delete the folder "
                           f"{slug(legacy[0])}/ in the results folder and rerun `ilm eval` (it rescores only that run)")
        raise ILMError(f"{key['language']} {key['model']} seed {key['seed']}: results from {len(subjects)} different "
                       f"runs ({', '.join(subjects[:3])}); report them separately")


def _aggregate(df: pd.DataFrame, keys: list[str], how: Callable) -> pd.DataFrame:
    """One row per group: ``how`` over the seeds' values.

    With a single seed there is no interval over seeds; the run's own interval
    (over sentences, from ``evaluate``) is shown instead when it has one, and the
    ``interval`` column says which kind each row carries.
    """
    keys = [*keys, *[k for k in EXTRA_KEYS if k not in keys]]
    rows = []
    for key, group in df.groupby(keys, dropna=False, sort=False):
        value, low, high, _ = how(group["value"].tolist())
        n = int(group.loc[group["value"].notna(), "seed"].nunique())
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
    cross = df["eval_language"] != df["language"]  # train-on-X/test-on-Y rows after X's own
    df = df.assign(_order=order, _cross=cross, _eval=df["eval_language"].map(sort_key)).sort_values(
        ["_order", *[c for c in ("model", "setting") if c in df.columns], "_cross", "_eval",
         *[c for c in ("metric", "subset", "layer", "checkpoint") if c in df.columns]],
        kind="stable",
    )
    return df.drop(columns=["_order", "_cross", "_eval"]).reset_index(drop=True)


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
    last = rows.groupby(["language", "model", *EXTRA_KEYS])["checkpoint"].transform("max")
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
    """Area under each seed's perplexity curve (normalised: the curve's mean height), then mean ± t over seeds.

    Curves compared in one table (a model × subset × setting: every language, seed and
    test language) are cut to the checkpoints they all have, so no run's area covers
    steps another's lacks; a warning says what was left out.
    """
    ppl = _last_layer_free(df, ("perplexity",)).dropna(subset=["checkpoint", "value"])
    curve = ["language", "eval_language", "seed"]
    per_seed = []
    for (model, subset, setting), block in ppl.groupby(["model", "subset", "setting"], sort=False):
        grids = {key: set(g["checkpoint"]) for key, g in block.groupby(curve, sort=False)}
        common = set.intersection(*grids.values())
        if any(g != common for g in grids.values()):
            odd = [f"{lang}{'→' + ev if ev != lang else ''} seed {seed}" for (lang, ev, seed), g in grids.items()
                   if g != common]
            warnings.warn(
                f"auc {model} {subset}{' ' + setting if setting else ''}: runs have different checkpoints; "
                f"using the {len(common)} common to all ({_steps(common)}); {len(odd)} run(s) had others "
                f"({', '.join(odd[:4])}{' ...' if len(odd) > 4 else ''})", stacklevel=2)
        if not common:
            continue
        block = block[block["checkpoint"].isin(common)]
        for (language, eval_language, seed), g in block.groupby(curve, sort=False):
            per_seed.append((language, model, subset, eval_language, setting, seed,
                             normalised_auc(g["checkpoint"], g["value"])))
    seeds = pd.DataFrame(per_seed, columns=["language", "model", "subset", *EXTRA_KEYS, "seed", "value"])
    return _aggregate(seeds, ["language", "model", "subset"], mean_interval)


def _steps(steps) -> str:
    steps = sorted(int(s) for s in steps)
    return ", ".join(map(str, steps[:6])) + (" ..." if len(steps) > 6 else "") if steps else "none"


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
                                     *EXTRA_KEYS, *AGGREGATE_COLUMNS, "interval"])
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
    from impossible_lms.reporting.typology import attestation_table  # np_order languages only

    tables["attestation"] = attestation_table(tables["final"])
    return {name: t for name, t in tables.items() if not t.empty}
