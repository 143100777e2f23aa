"""Is a language hard for the model, or just harder? Complexity baselines beside the LM, and separation.

Tables (each only when its rows exist):

- ``baselines``: each language's model-free numbers (``ilm baselines``): unigram
  entropy, n-gram perplexity per order, LZMA bits per token.
- ``complexity``: per language × model × subset × checkpoint, the LM's perplexity
  divided by the best n-gram's (the order with the lowest perplexity on that
  language and subset), computed per seed on the same sample (the n-gram row of
  the LM's sample seed), then geometric mean over seeds with a t-interval:
  "excess over n-gram". Below 1 the LM beats the n-gram; a language that is
  only *harder* keeps its excess where its control's is.
- ``separation``: over every (impossible language, its control) pair — the
  language registry's ``control`` — the share of pairs in which the impossible
  language is learned worse (higher final perplexity, higher area under the
  curve, higher excess over n-gram), with a bootstrap interval over pairs and,
  within them, seeds (Ziv et al. 2025 ask whether any separation exists).
  ``separation_pairs`` lists each pair's ratio impossible / control.

:func:`separation_tables` pools pairs from several studies (one natural language
each): ``ilm separation RESULTS...``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from impossible_lms.evaluation.baselines import BASELINE_METRICS, BASELINE_MODEL
from impossible_lms.evaluation.stats import BOOTSTRAP_SAMPLES
from impossible_lms.reporting.stats import geometric_interval, mean_interval, normalised_auc
from impossible_lms.reporting.tables import _aggregate

Tables = dict[str, pd.DataFrame]
ALL_PAIRS = "(all pairs)"
SEPARATION_METRICS = ("final_perplexity", "auc", "excess_over_ngram")


def _register_titles() -> None:
    from impossible_lms.reporting.render import INTERVAL_UNITS, TITLES

    TITLES.setdefault("baselines", "Complexity baselines: unigram entropy (bits), n-gram perplexity (Kneser-Ney, "
                                   "per order), LZMA bits per token")
    TITLES.setdefault("complexity", "Excess over n-gram: LM perplexity / best n-gram perplexity on the same sample "
                                    "(geometric mean over seeds, 95% t-interval)")
    TITLES.setdefault("separation", "Separation: % of (impossible, control) pairs where the impossible language is "
                                    "learned worse (bootstrap over pairs and seeds, 95%)")
    TITLES.setdefault("separation_pairs", "Each pair: impossible / control (ratio > 1: learned worse; geometric mean "
                                          "over seeds, 95% t-interval)")
    INTERVAL_UNITS.setdefault("baselines", ("sentences", "ilm baselines"))
    INTERVAL_UNITS.setdefault("separation", ("pairs and seeds", "ilm report"))


_register_titles()


# ---------------------------------------------------------------- the baselines view


def baseline_tables(rows: pd.DataFrame) -> Tables:
    rows = rows.assign(label=rows["label"].fillna("") if "label" in rows.columns else "")
    parts = [_aggregate(g, ["language", "model", "metric", "subset", "label"],
                        geometric_interval if metric == "ngram_perplexity" else mean_interval)
             for metric, g in rows.groupby("metric", sort=False)]
    return {"baselines": pd.concat(parts, ignore_index=True)} if parts else {}


# ---------------------------------------------------------------- per-seed values


def _lm_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The LM's own-language perplexity rows (final layer), one per run × subset × checkpoint."""
    own = (df["metric"] == "perplexity") & df["layer"].isna() & (df["eval_language"] == df["language"])
    return df[own & (df["model"] != BASELINE_MODEL)]


def _best_ngram(df: pd.DataFrame) -> pd.DataFrame:
    """Per language × subset × seed: the n-gram perplexity of the order that is best on average over seeds."""
    ngram = df[(df["metric"] == "ngram_perplexity") & (df["model"] == BASELINE_MODEL)]
    if ngram.empty:
        return ngram
    means = ngram.groupby(["language", "subset", "label"])["value"].apply(lambda v: float(np.log(v).mean()))
    best = means.groupby(level=["language", "subset"]).idxmin().map(lambda key: key[2])
    keep = ngram.apply(lambda r: best.get((r["language"], r["subset"])) == r["label"], axis=1)
    return ngram[keep][["language", "subset", "seed", "label", "value"]].rename(
        columns={"value": "ngram", "label": "order"})


def excess_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Per LM row: its perplexity over the best n-gram's on the same sample (``excess``)."""
    lm, ngram = _lm_rows(df), _best_ngram(df)
    if lm.empty or ngram.empty:
        return pd.DataFrame()
    merged = lm.merge(ngram, on=["language", "subset", "seed"], how="inner")
    return merged.assign(excess=merged["value"] / merged["ngram"])


def complexity_table(df: pd.DataFrame) -> pd.DataFrame:
    rows = excess_rows(df)
    if rows.empty:
        return rows
    rows = rows.assign(metric="excess_over_ngram", value=rows["excess"], label="vs " + rows["order"].astype(str),
                       ci_low=np.nan, ci_high=np.nan)
    return _aggregate(rows, ["language", "model", "metric", "subset", "label", "checkpoint"], geometric_interval)


# ---------------------------------------------------------------- separation


def _per_seed(df: pd.DataFrame) -> pd.DataFrame:
    """One value per (language, model, setting, subset, seed) for each separation metric."""
    lm = _lm_rows(df).dropna(subset=["value"])
    if lm.empty:
        return pd.DataFrame(columns=["language", "model", "setting", "subset", "seed", "metric", "value"])
    keys = ["language", "model", "setting", "subset", "seed"]
    out = []
    for key, g in lm.groupby(keys, sort=False):
        g = g.dropna(subset=["checkpoint"]).sort_values("checkpoint")
        if g.empty:
            continue
        out.append((*key, "final_perplexity", float(g["value"].iloc[-1])))
        out.append((*key, "auc", normalised_auc(g["checkpoint"], g["value"])))
    frame = pd.DataFrame(out, columns=[*keys, "metric", "value"])
    excess = excess_rows(df)
    if not excess.empty:
        last = excess.loc[excess.groupby(keys)["checkpoint"].idxmax()]
        frame = pd.concat([frame, last[keys].assign(metric="excess_over_ngram", value=last["excess"].to_numpy())],
                          ignore_index=True)
    return frame


def pair_values(df: pd.DataFrame, study: str = "") -> pd.DataFrame:
    """Every (impossible, control) pair present, per model × setting × subset × metric × seed:
    columns impossible, control, study, ..., seed, value_impossible, value_control."""
    from perturbations import get_language

    values = _per_seed(df)
    controls = {}
    for name in values["language"].unique():
        try:
            control = get_language(name).control
        except Exception:  # a name this ilm does not know has no control
            control = None
        if control and control != name and control in set(values["language"]):
            controls[name] = control
    if not controls:
        return pd.DataFrame()
    keys = ["model", "setting", "subset", "metric", "seed"]
    imp = values[values["language"].isin(controls)].assign(control=lambda t: t["language"].map(controls))
    ctl = values.rename(columns={"language": "control"})
    pairs = imp.merge(ctl, on=["control", *keys], suffixes=("_impossible", "_control"))
    return pairs.rename(columns={"language": "impossible"}).assign(study=study)


def separation_share(pairs: pd.DataFrame, seed: int = 0, samples: int = BOOTSTRAP_SAMPLES) -> tuple[float, float, float, int]:
    """(share %, low, high, pairs): the share of pairs where the impossible value is higher, each pair
    weighted once (its seeds averaged); the interval resamples pairs, then seeds within each pair."""
    worse = (pairs["value_impossible"] > pairs["value_control"]).astype(float)
    groups = [g.to_numpy() for _, g in worse.groupby([pairs["study"], pairs["impossible"], pairs["control"]])]
    if not groups:
        return math.nan, math.nan, math.nan, 0
    share = 100 * float(np.mean([g.mean() for g in groups]))
    rng = np.random.default_rng(seed)
    boots = np.empty(samples)
    for b in range(samples):
        chosen = rng.integers(0, len(groups), len(groups))
        boots[b] = np.mean([rng.choice(groups[i], len(groups[i])).mean() for i in chosen])
    low, high = np.percentile(100 * boots, [2.5, 97.5])
    return share, float(low), float(high), len(groups)


def separation_tables(frames: dict[str, pd.DataFrame]) -> Tables:
    """``separation`` and ``separation_pairs`` over the pairs of every study (name → its prepared rows)."""
    pairs = pd.concat([pair_values(df, study) for study, df in frames.items()], ignore_index=True)
    if pairs.empty:
        return {}
    shares, each = [], []
    for (model, setting, subset, metric), g in pairs.groupby(["model", "setting", "subset", "metric"], sort=False):
        share, low, high, n = separation_share(g)
        shares.append({"language": ALL_PAIRS, "eval_language": ALL_PAIRS, "model": model, "setting": setting,
                       "metric": metric, "subset": subset, "label": f"{n} pair(s)", "value": share, "ci_low": low,
                       "ci_high": high, "seeds": int(g["seed"].nunique()), "interval": "seeds" if n > 1 else ""})
        for (study, imp, ctl), p in g.groupby(["study", "impossible", "control"], sort=False):
            ratio, lo, hi, k = geometric_interval((p["value_impossible"] / p["value_control"]).tolist())
            each.append({"language": imp, "eval_language": imp, "model": model, "setting": setting, "metric": metric,
                         "subset": subset, "label": f"vs {ctl}" + (f" ({study})" if study else ""), "value": ratio,
                         "ci_low": lo, "ci_high": hi, "seeds": k, "interval": "seeds" if k > 1 else "",
                         "impossible_value": float(p["value_impossible"].mean()),
                         "control_value": float(p["value_control"].mean())})
    return {"separation": pd.DataFrame(shares), "separation_pairs": pd.DataFrame(each)}


def derived_tables(df: pd.DataFrame) -> Tables:
    """The tables that read the LM's rows and the baselines together (``df``: prepared rows)."""
    out = {"complexity": complexity_table(df), **separation_tables({"": df})}
    return {k: t for k, t in out.items() if not t.empty}


# ---------------------------------------------------------------- figures


def complexity_figures(tables: Tables, out: Path, formats: list[str]) -> list[Path]:
    from impossible_lms.reporting import figures as fig
    from impossible_lms.reporting.views import _slug

    written: list[Path] = []
    if not formats:
        return written
    excess = tables.get("complexity")
    if excess is not None:
        subsets = list(dict.fromkeys(excess["subset"]))
        subset = "test_affected" if "test_affected" in subsets else subsets[0]
        for model, t in excess[excess["subset"] == subset].groupby("model", sort=False):
            written += fig.learning_curves(t, out / f"excess_over_ngram_{_slug(model)}", formats,
                                           ylabel="LM perplexity / n-gram perplexity",
                                           title=f"Excess over the best n-gram ({subset}) — {model}")
    pairs = tables.get("separation_pairs")
    if pairs is not None:
        written += separation_figure(pairs, out / "separation", formats)
    return written


def separation_figure(pairs: pd.DataFrame, stem: Path, formats: list[str]) -> list[Path]:
    """One panel per metric: each pair's control value (x) against its impossible value (y); above the
    diagonal the impossible language is learned worse."""
    from matplotlib.figure import Figure

    from impossible_lms.reporting.figures import _save
    from impossible_lms.reporting.languages import language_info

    metrics = [m for m in SEPARATION_METRICS if m in set(pairs["metric"])]
    if not metrics:
        return []
    fig = Figure(figsize=(3.6 * len(metrics), 3.4), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        t = pairs[pairs["metric"] == metric]
        x, y = t["control_value"].to_numpy(float), t["impossible_value"].to_numpy(float)
        colors = [language_info(n).color or "#606060" for n in t["language"]]
        ax.scatter(x, y, c=colors, s=18)
        lo, hi = float(np.nanmin([x.min(), y.min()])), float(np.nanmax([x.max(), y.max()]))
        ax.plot([lo, hi], [lo, hi], color="#999999", linewidth=0.8, linestyle="--")
        share = 100 * float(np.mean(y > x)) if len(x) else math.nan
        ax.set_title(f"{metric.replace('_', ' ')}: {share:.0f}% above", fontsize=9)
        ax.set_xlabel("control")
        ax.set_ylabel("impossible")
    return _save(fig, stem, formats)


def _register_view() -> None:
    from impossible_lms.reporting.views import View, register_view

    register_view(View(BASELINE_METRICS, baseline_tables, complexity_figures))


_register_view()


def separation(results: list[str | Path], out_dir: str | Path | None = None,
               formats=("md", "csv", "png")) -> tuple[Tables, list[Path]]:
    """``ilm separation``: pairs from each results folder (one study, e.g. one natural language and its
    perturbations), pooled; the tables (and, with ``out_dir``, their files and the pairs figure)."""
    from impossible_lms.errors import ILMError
    from impossible_lms.evaluation import load_results
    from impossible_lms.reporting import FIGURE_FORMATS, check_formats
    from impossible_lms.reporting.render import to_csv, to_markdown
    from impossible_lms.reporting.tables import prepare

    formats = check_formats(formats)
    frames = {}
    for path in results:
        df = load_results([Path(path)])
        keep = df["metric"].isin(("perplexity", *BASELINE_METRICS)) if len(df) else df.index == -1
        if not len(df) or not (df["metric"] == "perplexity").any():
            raise ILMError(f"{path}: no perplexity rows (run `ilm eval` on the study's runs first)")
        frames[str(path)] = prepare(df[keep])
    tables = separation_tables(frames if len(frames) > 1 else {"": next(iter(frames.values()))})
    if not tables:
        raise ILMError("no (impossible, control) pair in these results: each impossible language needs its control "
                       "language's runs beside it (same model)")
    files: list[Path] = []
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        from impossible_lms.io import atomic_write_text

        for name, table in tables.items():
            if "csv" in formats:
                files.append(out / f"{name}.csv")
                atomic_write_text(files[-1], to_csv(table))
        if "md" in formats:
            files.append(out / "separation.md")
            atomic_write_text(files[-1], "\n".join(to_markdown(n, t) for n, t in tables.items()))
        figure_formats = [f for f in formats if f in FIGURE_FORMATS]
        if figure_formats:
            files += separation_figure(tables["separation_pairs"], out / "separation", figure_formats)
    return tables, files
