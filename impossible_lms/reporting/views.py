"""Report views of the analyses, chosen by metric name: one registry, no if-chain.

A view claims the rows of its metrics (so the generic tables do not average
them over positions or labels) and turns them into named tables and figures.
``make_report`` hands each registered view its rows; a new analysis registers
one view here (or from its own module) and the report picks it up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from impossible_lms.reporting.languages import sort_key
from impossible_lms.reporting.stats import mean_interval
from impossible_lms.reporting.tables import EXTRA_KEYS, _aggregate

Tables = dict[str, pd.DataFrame]


@dataclass(frozen=True)
class View:
    metrics: tuple[str, ...]
    tables: Callable[[pd.DataFrame], Tables]  # prepared rows of its metrics -> named tables
    figures: Callable[[Tables, Path, list[str]], list[Path]]


VIEWS: list[View] = []


def register_view(view: View) -> View:
    VIEWS.append(view)
    return view


def view_metrics() -> set[str]:
    return {m for v in VIEWS for m in v.metrics}


def view_tables(df: pd.DataFrame) -> Tables:
    """Every view's tables for the (prepared) rows of its metrics; views without rows give none."""
    out: Tables = {}
    for view in VIEWS:
        rows = df[df["metric"].isin(view.metrics)]
        if not rows.empty:
            out.update({k: t for k, t in view.tables(rows).items() if not t.empty})
    return out


def view_figures(tables: Tables, out: Path, formats: list[str]) -> list[Path]:
    written: list[Path] = []
    for view in VIEWS:
        written += view.figures(tables, out, formats)
    return written


def _language_sorted(cells: pd.DataFrame, *by) -> pd.DataFrame:
    """``cells`` in the languages' canonical order, then by ``by`` (column names, or Series of sort
    keys computed from ``cells``), stable, index reset."""
    keys = {"_language": cells["language"].map(sort_key)}
    names = ["_language"]
    for n, b in enumerate(by):
        if isinstance(b, str):
            names.append(b)
        else:
            keys[f"_by{n}"] = b
            names.append(f"_by{n}")
    return cells.assign(**keys).sort_values(names, kind="stable").drop(columns=list(keys)).reset_index(drop=True)


# ---------------------------------------------------------------- interchange interventions


def iia_tables(rows: pd.DataFrame) -> Tables:
    """``iia``: mean over seeds (t-interval) per language × model × checkpoint × layer × position;
    ``iia_max``: each seed's best (layer, position) cell per checkpoint, then mean ± t over seeds."""
    rows = rows.copy()
    rows["position"] = pd.to_numeric(rows["position"], errors="coerce").astype(float)
    cells = _aggregate(rows, ["language", "model", "checkpoint", "layer", "position"], mean_interval)
    cells = _language_sorted(cells, "model", "checkpoint", "layer", "position")
    best = (rows.groupby(["language", "model", *EXTRA_KEYS, "seed", "checkpoint"], dropna=False, sort=False)["value"]
            .max().reset_index())
    return {"iia": cells,
            "iia_max": _aggregate(best, ["language", "model", "checkpoint"], mean_interval)}


def iia_figures(tables: Tables, out: Path, formats: list[str]) -> list[Path]:
    from impossible_lms.reporting import figures as fig

    written: list[Path] = []
    cells = tables.get("iia")
    if cells is not None and formats:
        for (language, model), t in cells.groupby(["language", "model"], sort=False):
            written += iia_heatmaps(t, out / f"iia_{_slug(language)}_{_slug(model)}", formats, f"IIA — {language}, {model}")
    best = tables.get("iia_max")
    if best is not None and formats:
        for model in dict.fromkeys(best["model"]):
            written += fig.learning_curves(best[best["model"] == model], out / f"iia_max_{_slug(model)}", formats,
                                           ylabel="Best-cell IIA (%)", title=f"Interchange intervention accuracy — {model}")
    return written


MAX_PANELS = 6


def iia_heatmaps(table: pd.DataFrame, stem: Path, formats: list[str], title: str) -> list[Path]:
    """Layer × position heatmaps, one panel per checkpoint (up to 6, evenly spaced, the last included)."""
    from matplotlib.figure import Figure

    from impossible_lms.reporting.figures import _save

    steps = sorted(table["checkpoint"].dropna().unique().tolist()) or [np.nan]
    if len(steps) > MAX_PANELS:
        steps = [steps[i] for i in np.linspace(0, len(steps) - 1, MAX_PANELS).round().astype(int)]
    fig = Figure(figsize=(2.6 * len(steps) + 0.8, 2.8), layout="constrained")
    axes = fig.subplots(1, len(steps), squeeze=False)[0]
    image = None
    for ax, step in zip(axes, steps):
        t = table[table["checkpoint"] == step] if not np.isnan(step) else table
        grid = t.pivot_table(index="layer", columns="position", values="value", aggfunc="mean").sort_index()
        image = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", cmap="viridis", vmin=0, vmax=100, origin="lower")
        ax.set_xticks(np.arange(grid.shape[1]), [str(int(c)) for c in grid.columns])
        ax.set_yticks(np.arange(grid.shape[0]), [str(int(r)) for r in grid.index])
        ax.set_xlabel("Position")
        ax.set_title("" if np.isnan(step) else f"step {int(step)}", fontsize=9)
    axes[0].set_ylabel("Layer")
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="IIA (%)")
    fig.suptitle(title)
    return _save(fig, stem, formats)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in str(text))


register_view(View(("iia",), iia_tables, iia_figures))


# ---------------------------------------------------------------- edge probing


def probe_tables(rows: pd.DataFrame) -> Tables:
    """``probe``: mean over seeds (t-interval) per language × model × checkpoint × layer × label
    (subset = the feature set: layer1 .. layer12, last4)."""
    cells = _aggregate(rows.copy(), ["language", "model", "checkpoint", "subset", "label"], mean_interval)
    return {"probe": _language_sorted(cells, "model", "checkpoint", "subset", "label")}


def probe_figures(tables: Tables, out: Path, formats: list[str]) -> list[Path]:
    """Accuracy per layer, one line per label, at each (language, model)'s last checkpoint."""
    from matplotlib.figure import Figure

    from impossible_lms.reporting.figures import _save

    cells = tables.get("probe")
    written: list[Path] = []
    if cells is None or not formats:
        return written
    for (language, model), t in cells.groupby(["language", "model"], sort=False):
        if t["checkpoint"].notna().any():
            t = t[t["checkpoint"] == t["checkpoint"].max()]
        order = sorted(dict.fromkeys(t["subset"]), key=lambda s: (s == "last4", int(s[5:]) if s[5:].isdigit() else 0))
        fig = Figure(figsize=(5, 3.2), layout="constrained")
        ax = fig.subplots()
        for label, lt in t.groupby("label", sort=True):
            lt = lt.set_index("subset").reindex(order)
            ax.plot(range(len(order)), lt["value"].to_numpy(dtype=float), marker="o", label=str(label))
        ax.set_xticks(range(len(order)), order)
        ax.set_ylabel("Probe accuracy (%)")
        ax.legend(fontsize=7)
        ax.set_title(f"Edge probing — {language}, {model}")
        written += _save(fig, out / f"probe_{_slug(language)}_{_slug(model)}", formats)
    return written


register_view(View(("probe_accuracy",), probe_tables, probe_figures))


# ---------------------------------------------------------------- targeted evaluations (minimal pairs, SyntaxGym)

# metric -> table name; each gets <name> (per subset at the last checkpoint), <name>_curve (subset
# "all" at every checkpoint) and, for SyntaxGym, <name>_predictions (per prediction, last checkpoint)
TARGETED = {"minimal_pair_accuracy": "minimal_pairs", "syntaxgym_accuracy": "syntaxgym"}


def _register_targeted_titles() -> None:
    from impossible_lms.reporting.render import TITLES

    what = {"minimal_pairs": "Minimal-pair accuracy (%; per paradigm", "syntaxgym": "SyntaxGym accuracy (%; items "
            "whose every prediction holds, per suite"}
    for name, text in what.items():
        TITLES.setdefault(name, f"{text}, last checkpoint; mean over seeds, 95% t-interval)")
        TITLES.setdefault(f"{name}_curve", f"{text.split(' (')[0]} over all stimuli per checkpoint "
                                           "(%; mean over seeds, 95% t-interval)")
    TITLES.setdefault("minimal_pairs_phenomena", "Minimal-pair accuracy (%; per phenomenon, last checkpoint; "
                                                 "mean over seeds, 95% t-interval)")
    TITLES.setdefault("minimal_pairs_dropped", "Minimal pairs the language's filters dropped (pairs, per paradigm)")
    TITLES.setdefault("syntaxgym_predictions", "SyntaxGym accuracy per prediction (%; last checkpoint; "
                                               "the reference's singular/plural or pred1..3)")


_register_targeted_titles()


def targeted_tables(rows: pd.DataFrame) -> Tables:
    """Per metric: accuracy per subset at each (language, model)'s last checkpoint, and over all
    stimuli at every checkpoint; SyntaxGym's per-prediction rows (label ``prediction N``) apart."""
    out: Tables = {}
    rows = rows.copy()
    rows["label"] = rows["label"].fillna("") if "label" in rows.columns else ""
    for metric, name in TARGETED.items():
        own = rows[rows["metric"] == metric]
        if own.empty:
            continue
        if metric == "minimal_pair_accuracy":  # BLiMP: per paradigm (its 67) and per phenomenon (its 13)
            phenomena = own[own["label"].isin(["", "phenomenon"])]
            if (own["label"] == "phenomenon").any():
                out[f"{name}_phenomena"] = _last_checkpoint(
                    _aggregate(phenomena, ["language", "model", "checkpoint", "subset"], mean_interval))
            own = own[own["label"].isin(["", "paradigm"])].assign(label="")
            dropped = rows[(rows["metric"] == "minimal_pair_dropped") & (rows["subset"] != "")]
            if not dropped.empty:
                out[f"{name}_dropped"] = _last_checkpoint(
                    _aggregate(dropped, ["language", "model", "checkpoint", "subset"], mean_interval))
        items = own[own["label"] == ""]
        out[name] = _last_checkpoint(_aggregate(items, ["language", "model", "checkpoint", "subset"], mean_interval))
        out[f"{name}_curve"] = _aggregate(items[items["subset"] == "all"], ["language", "model", "checkpoint", "subset"],
                                          mean_interval)
        preds = own[own["label"] != ""]
        if not preds.empty:
            preds = preds.assign(subset=preds["subset"] + ": " + preds["label"])
            out[f"{name}_predictions"] = _last_checkpoint(
                _aggregate(preds, ["language", "model", "checkpoint", "subset"], mean_interval))
    return out


def _last_checkpoint(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty or table["checkpoint"].isna().all():
        return table
    last = table.groupby(["language", "model"], dropna=False)["checkpoint"].transform("max")
    return table[(table["checkpoint"] == last) | table["checkpoint"].isna()].reset_index(drop=True)


def targeted_figures(tables: Tables, out: Path, formats: list[str]) -> list[Path]:
    """Accuracy over all stimuli against training step, one line per language, per metric and model."""
    from impossible_lms.reporting import figures as fig

    written: list[Path] = []
    for name, label in (("minimal_pairs", "Minimal-pair accuracy (%)"), ("syntaxgym", "SyntaxGym accuracy (%)")):
        curve = tables.get(f"{name}_curve")
        if curve is None or not formats:
            continue
        for model in dict.fromkeys(curve["model"]):
            written += fig.learning_curves(curve[curve["model"] == model], out / f"{name}_{_slug(model)}", formats,
                                           ylabel=label, title=f"{label.split(' (')[0]} — {model}")
    return written


# the dropped-pair rows belong to the minimal-pair tables: claimed here, or they would land in the
# generic evaluation tables and the dropped table would never be built
register_view(View((*TARGETED, "minimal_pair_dropped"), targeted_tables, targeted_figures))


# ---------------------------------------------------------------- tree projections

TREEPROJ_METRICS = ("tree_score", "parse_f1", "parse_precision", "parse_recall", "parse_f1_nontrivial",
                    "parse_precision_nontrivial", "parse_recall_nontrivial")


def treeproj_tables(rows: pd.DataFrame) -> Tables:
    """``treeproj``: mean over seeds (t-interval) per language × model × metric × subset × checkpoint
    (``tree_score`` over token or word leaves; ``parse_f1`` and its precision and recall, word leaves)."""
    cells = _aggregate(rows.copy(), ["language", "model", "metric", "subset", "checkpoint"], mean_interval)
    order = {m: i for i, m in enumerate(TREEPROJ_METRICS)}
    return {"treeproj": _language_sorted(cells, "model", cells["metric"].map(order), cells["subset"] != "token",
                                         "checkpoint")}


def treeproj_figures(tables: Tables, out: Path, formats: list[str]) -> list[Path]:
    """Tree score (per leaf unit) and parse F1 against training step, one line per language, per model."""
    from impossible_lms.reporting import figures as fig

    cells = tables.get("treeproj")
    written: list[Path] = []
    if cells is None or not formats:
        return written
    labels = {("tree_score", "token"): "Tree score (token leaves)", ("tree_score", "word"): "Tree score (word leaves)",
              ("parse_f1", "word"): "Parse F1 (%)",
              ("parse_f1_nontrivial", "word"): "Parse F1 without the whole-sentence span (%)"}
    for (model, metric, subset), t in cells.groupby(["model", "metric", "subset"], sort=False):
        if (metric, subset) in labels:
            written += fig.learning_curves(t, out / f"treeproj_{metric}_{subset}_{_slug(model)}", formats,
                                           ylabel=labels[metric, subset], title=f"Tree projections — {model}")
    return written


register_view(View(TREEPROJ_METRICS, treeproj_tables, treeproj_figures))


# ---------------------------------------------------------------- production

PRODUCTION_METRICS = ("production_conforming", "production_finished", "production_undone_perplexity",
                      "production_markers", "production_marker_placement")


def _register_production_titles() -> None:
    from impossible_lms.reporting.render import TITLES

    TITLES.setdefault("production", "Production: generations that conform (%), finish (%), their markers per "
                                    "sentence (generated vs test) and the control model's perplexity of them "
                                    "undone (last checkpoint; mean over seeds, 95% t-interval)")
    TITLES.setdefault("production_curve", "Production per checkpoint (mean over seeds, 95% t-interval)")


_register_production_titles()


def production_tables(rows: pd.DataFrame) -> Tables:
    """``production``: each metric and subset at the last checkpoint, and every checkpoint (the curve);
    mean over seeds (t-interval) per language × model."""
    order = {m: i for i, m in enumerate(PRODUCTION_METRICS)}
    cells = _aggregate(rows.copy(), ["language", "model", "metric", "subset", "checkpoint"], mean_interval)
    cells = _language_sorted(cells, "model", cells["metric"].map(order), "subset", "checkpoint")
    return {"production": _last_checkpoint(cells), "production_curve": cells}


def production_figures(tables: Tables, out: Path, formats: list[str]) -> list[Path]:
    """Conforming share and undone perplexity against training step, one line per language, per model."""
    from impossible_lms.reporting import figures as fig

    cells = tables.get("production_curve")
    written: list[Path] = []
    if cells is None or not formats:
        return written
    labels = {"production_conforming": "Generations that conform (%)",
              "production_undone_perplexity": "Control model's perplexity of undone generations"}
    for (model, metric), t in cells.groupby(["model", "metric"], sort=False):
        if metric in labels:
            written += fig.learning_curves(t, out / f"{metric}_{_slug(model)}", formats, ylabel=labels[metric],
                                           title=f"Production — {model}")
    return written


register_view(View(PRODUCTION_METRICS, production_tables, production_figures))


# ---------------------------------------------------------------- complexity baselines and separation

import impossible_lms.reporting.complexity  # noqa: E402,F401  (registers its view)
