"""Figures in the style of Kallini et al. (2024): learning curves per family, one line per language.

Figures are built on ``matplotlib.figure.Figure`` directly (the Agg canvas), so
no pyplot state or display is involved. Colours and labels come from the
registry via :func:`language_info`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from impossible_lms.io import atomic_path
from impossible_lms.reporting.languages import FAMILY_ORDER, language_info

FAMILY_TITLES = {family: f"*{family.title()}" for family in FAMILY_ORDER[:-1]} | {"other": "Other"}


def _families(languages: list[str]) -> list[str]:
    present = {language_info(n).family for n in languages}
    return [f for f in FAMILY_ORDER if f in present]


def _line(ax, group: pd.DataFrame, name: str) -> None:
    info = language_info(name)
    group = group.sort_values("checkpoint")
    kwargs = {"color": info.color} if info.color else {}
    (line,) = ax.plot(group["checkpoint"], group["value"], marker="o", markersize=2.5,
                      linewidth=1.4, label=info.display, **kwargs)
    band = group.dropna(subset=["ci_low", "ci_high"])
    if not band.empty:
        ax.fill_between(band["checkpoint"], band["ci_low"], band["ci_high"], color=line.get_color(), alpha=0.18, linewidth=0)


def _save(fig: Figure, stem: Path, formats: list[str]) -> list[Path]:
    written = []
    for ext in formats:
        path = stem.with_suffix(f".{ext}")
        with atomic_path(path) as tmp:  # a reader never sees half a PNG
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
        written.append(path)
    return written


def learning_curves(table: pd.DataFrame, stem: Path, formats: list[str], ylabel: str, title: str) -> list[Path]:
    """One panel per family present, one line (+ seed band) per language, against training step."""
    table = table.dropna(subset=["checkpoint"])
    if table.empty:
        return []
    families = _families(table["language"].unique().tolist())
    fig = Figure(figsize=(4.2 * len(families), 3.4), layout="constrained")
    axes = fig.subplots(1, len(families), squeeze=False, sharey=True)[0]
    for ax, family in zip(axes, families):
        for name in dict.fromkeys(table["language"]):
            if language_info(name).family == family:
                _line(ax, table[table["language"] == name], name)
        ax.set_title(FAMILY_TITLES.get(family, family))
        ax.set_xlabel("Training step")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    axes[0].set_ylabel(ylabel)
    fig.suptitle(title)
    return _save(fig, stem, formats)


def surprisal_curves(tables: dict[str, pd.DataFrame], stem: Path, formats: list[str], model: str) -> list[Path]:
    """Marker surprisal and surprisal difference against training step, one line per hop language."""
    panels = [(m, t[t["model"] == model]) for m, t in tables.items() if not t[t["model"] == model].empty]
    if not panels:
        return []
    fig = Figure(figsize=(4.4 * len(panels), 3.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (metric, t) in zip(axes, panels):
        for name in dict.fromkeys(t["language"]):
            _line(ax, t[t["language"] == name].dropna(subset=["checkpoint"]), name)
        ax.set_title(metric.replace("_", " ").capitalize())
        ax.set_xlabel("Training step")
        ax.set_ylabel("Bits")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(f"Hop surprisal — {model}")
    return _save(fig, stem, formats)


def layer_heatmap(table: pd.DataFrame, stem: Path, formats: list[str], title: str) -> list[Path]:
    """Languages × layers at each language's last checkpoint."""
    last = table.groupby("language")["checkpoint"].transform("max")
    final = table[(table["checkpoint"] == last) | last.isna()]
    grid = final.pivot_table(index="language", columns="layer", values="value", aggfunc="mean", sort=False)
    if grid.empty:
        return []
    fig = Figure(figsize=(1.0 + 0.6 * grid.shape[1], 0.9 + 0.35 * grid.shape[0]), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", cmap="viridis")
    ax.set_xticks(np.arange(grid.shape[1]), [str(int(c)) for c in grid.columns])
    ax.set_yticks(np.arange(grid.shape[0]), [language_info(n).display for n in grid.index])
    ax.set_xlabel("Layer")
    fig.colorbar(image, ax=ax)
    ax.set_title(title)
    return _save(fig, stem, formats)
