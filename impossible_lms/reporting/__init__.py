"""Reporting: tables (terminal, Markdown, CSV, LaTeX) and figures from evaluation results.

    >>> from impossible_lms.evaluation import load_results
    >>> from impossible_lms.reporting import make_report
    >>> make_report(load_results(["results/"]), "report/", ["md", "csv", "png"])

Input is the long-format results DataFrame (docs/ARCHITECTURE.md §6). Seeds are
aggregated as documented in :mod:`impossible_lms.reporting.stats`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from impossible_lms.errors import ILMError
from impossible_lms.io import atomic_write_text
from impossible_lms.reporting.render import to_csv, to_latex, to_markdown
from impossible_lms.reporting.tables import SURPRISAL_METRICS, build_tables
from impossible_lms.reporting.wide import to_csv as wide_csv
from impossible_lms.reporting.wide import to_latex as wide_latex
from impossible_lms.reporting.wide import to_markdown as wide_markdown
from impossible_lms.reporting.wide import wide_tables

TABLE_FORMATS = ("md", "csv", "tex")
FIGURE_FORMATS = ("png", "pdf", "svg")
FORMATS = TABLE_FORMATS + FIGURE_FORMATS
DEFAULT_FORMATS = ("md", "csv", "tex", "png")

__all__ = ["DEFAULT_FORMATS", "FORMATS", "all_tables", "build_tables", "check_formats", "make_report", "report"]


def check_formats(formats: Iterable[str]) -> list[str]:
    formats = [f.strip().lower().lstrip(".") for f in formats if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ILMError(f"unknown report format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    if not formats:
        raise ILMError(f"no report format given; choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(formats))


def make_report(df: pd.DataFrame, out_dir: str | Path, formats: Iterable[str] = DEFAULT_FORMATS) -> list[Path]:
    """Write every table and figure for ``df`` under ``out_dir``; returns the files written."""
    formats = check_formats(formats)
    if df is None or len(df) == 0:
        raise ILMError("no results to report (is the results folder empty?)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = all_tables(df)
    written: list[Path] = []
    figure_formats = [f for f in formats if f in FIGURE_FORMATS]
    figures = _figures(tables, out, figure_formats) if figure_formats else []
    if figure_formats:
        from impossible_lms.reporting.views import view_figures

        figures += view_figures(tables, out, figure_formats)
    wide = wide_tables(tables)  # paper-style: languages × checkpoints, beside the long tables
    if "csv" in formats:
        for name, table in tables.items():
            written.append(_write(out / f"{name}.csv", to_csv(table)))
        written += [_write(out / f"{w.stem}.csv", wide_csv(w)) for w in wide]
    if "tex" in formats:
        for name, table in tables.items():
            written.append(_write(out / f"{name}.tex", to_latex(name, table)))
        written += [_write(out / f"{w.stem}.tex", wide_latex(w)) for w in wide]
    if "md" in formats:
        text = _markdown(tables, figures, out)
        if wide:
            text += "\n## Per checkpoint (languages × checkpoints)\n\n" + "\n".join(wide_markdown(w) for w in wide)
        written.append(_write(out / "report.md", text))
    return written + figures


def report(results: list[str | Path], out_dir: str | Path, formats: Iterable[str] = DEFAULT_FORMATS):
    """``ilm report``: load results folders/files, write the report; returns (tables, files)."""
    from impossible_lms.evaluation import load_results

    df = load_results([Path(r) for r in results])
    files = make_report(df, out_dir, formats)
    return all_tables(df), files


def all_tables(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The generic tables of the evaluation metrics, then each analysis view's tables
    (:mod:`.views`: the rows of a metric with a view go to that view only)."""
    from impossible_lms.reporting.tables import prepare
    from impossible_lms.reporting.views import view_metrics, view_tables

    claimed = df["metric"].isin(view_metrics()) if "metric" in df.columns else pd.Series(False, index=df.index)
    tables = build_tables(df[~claimed]) if (~claimed).any() else {}
    if claimed.any():
        tables.update(view_tables(prepare(df[claimed])))
    # what reads the LM's perplexity and the baselines together: excess over n-gram, separation
    from impossible_lms.evaluation.baselines import BASELINE_METRICS
    from impossible_lms.reporting.complexity import derived_tables

    joint = df["metric"].isin(("perplexity", *BASELINE_METRICS)) if "metric" in df.columns else claimed & False
    if joint.any():
        tables.update(derived_tables(prepare(df[joint])))
    from impossible_lms.reporting.findings import findings_table

    findings = findings_table(tables)  # the paper's orderings, checked on these tables
    if not findings.empty:
        tables["findings"] = findings
    return tables


def _write(path: Path, text: str) -> Path:
    atomic_write_text(path, text)
    return path


def _markdown(tables: dict[str, pd.DataFrame], figures: list[Path], out: Path) -> str:
    parts = ["# Report", ""]
    images = [f for f in figures if f.suffix == ".png"] or [f for f in figures if f.suffix == ".svg"]
    parts += [f"![{f.stem}]({f.relative_to(out).as_posix()})" for f in images]
    parts.append("")
    parts += [to_markdown(name, t) for name, t in tables.items()]
    return "\n".join(parts)


def _figures(tables: dict[str, pd.DataFrame], out: Path, formats: list[str]) -> list[Path]:
    """Learning curves of each model on its own language's data, one figure per setting variant
    (train-on-X/test-on-Y rows are in the tables, not in these per-language curves)."""
    from impossible_lms.reporting import figures as fig

    own = {name: t[t["eval_language"] == t["language"]] for name, t in tables.items()}
    written: list[Path] = []
    ppl = own.get("perplexity")
    if ppl is not None and not ppl.empty:
        subsets = list(dict.fromkeys(ppl["subset"]))
        subset = "test_affected" if "test_affected" in subsets else subsets[0]
        for (model, setting), t in ppl[ppl["subset"] == subset].groupby(["model", "setting"], sort=False):
            written += fig.learning_curves(
                t, out / f"perplexity_{_slug(model)}{_variant(setting)}", formats,
                ylabel="Geometric mean perplexity", title=f"Perplexity ({subset}) — {model}{_label(setting)}",
            )
    surprisal = {m: own[m] for m in SURPRISAL_METRICS if m in own and not own[m].empty}
    variants = dict.fromkeys((m, st) for t in surprisal.values() for m, st in zip(t["model"], t["setting"]))
    for model, setting in variants:
        chosen = {m: t[t["setting"] == setting] for m, t in surprisal.items()}
        written += fig.surprisal_curves(chosen, out / f"surprisal_{_slug(model)}{_variant(setting)}", formats, model)
    layers = own.get("layers")
    if layers is not None:
        for (model, metric, subset, setting), t in layers.groupby(["model", "metric", "subset", "setting"], sort=False):
            stem = out / f"layers_{_slug(model)}_{_slug(metric)}{'_' + _slug(subset) if subset else ''}{_variant(setting)}"
            written += fig.layer_heatmap(t, stem, formats, f"{metric} {subset} — {model}{_label(setting)}".strip())
    return written


def _variant(setting: str) -> str:
    return f"_{_slug(setting)}" if setting else ""


def _label(setting: str) -> str:
    return f" ({setting})" if setting else ""


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in str(text))
