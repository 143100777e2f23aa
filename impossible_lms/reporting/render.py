"""Tables as text: Markdown, CSV, LaTeX (booktabs) and rich for the terminal.

Display tables show registry display names and a formatted ``[low, high]``
interval; CSV keeps the raw numbers (plus the display name) for further work.
"""

from __future__ import annotations

import math

import pandas as pd

from impossible_lms.reporting.languages import language_info

TITLES = {
    "final": "Final checkpoint: every metric",
    "perplexity": "Perplexity per checkpoint (geometric mean over seeds, 95% t-interval)",
    "auc": "Area under the perplexity curve (mean height; mean over seeds, 95% t-interval)",
    "marker_surprisal": "Marker surprisal (bits; mean over seeds, 95% t-interval)",
    "surprisal_difference": "Surprisal difference (bits; mean over seeds, 95% t-interval)",
    "layers": "Per-layer metrics (multi-exit heads)",
    "iia": "Interchange intervention accuracy (%; block output, layer × position; mean over seeds, 95% t-interval)",
    "iia_max": "Best-cell IIA per checkpoint (%; max over layer × position per seed, mean over seeds, 95% t-interval)",
    "treeproj": "Tree projections: tree score (token or word leaves) and parse agreement (%; mean over seeds, 95% t-interval)",
}


TEXT_COLUMNS = ("language", "tested on", "setting", "model", "metric", "subset")  # left-aligned


def fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if 0 < abs(value) < 0.1:  # small scores (a tree score of 0.004) keep two significant digits, not "0.00"
        return f"{value:.2g}"
    return f"{value:.2f}"


def display_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The human view: display names, integer checkpoints, ``value`` and ``95% CI`` as text."""
    out = pd.DataFrame({"language": table["language"].map(lambda n: language_info(n).display)})
    # train-on-X/test-on-Y rows and rows that differ in a setting say so (reporting/tables.py)
    if "eval_language" in table.columns and (table["eval_language"] != table["language"]).any():
        out["tested on"] = table["eval_language"].map(lambda n: language_info(n).display)
    if "setting" in table.columns and (table["setting"] != "").any():
        out["setting"] = table["setting"]
    for col in ("model", "metric", "subset", "layer", "position", "checkpoint"):
        if col in table.columns:
            out[col] = table[col].map(lambda v: "" if pd.isna(v) else (str(int(v)) if isinstance(v, float) else str(v)))
    out["value"] = table["value"].map(fmt)
    out["95% CI"] = [
        "–" if math.isnan(lo) or math.isnan(hi) else f"[{fmt(lo)}, {fmt(hi)}]"
        for lo, hi in zip(table["ci_low"], table["ci_high"])
    ]
    out["seeds"] = table["seeds"].astype(int).astype(str)
    if "interval" in table.columns and (table["interval"] == "sentences").any():
        out["95% CI"] = [ci + ("*" if kind == "sentences" else "") for ci, kind in zip(out["95% CI"], table["interval"])]
    return out


INTERVAL_NOTE = "(*) one seed: the run's own 95% interval over sentences (bootstrap, from `ilm eval`), not over seeds."


def has_sentence_intervals(table: pd.DataFrame) -> bool:
    return "interval" in table.columns and bool((table["interval"] == "sentences").any())


def to_csv(table: pd.DataFrame) -> str:
    table = table.copy()
    for col in ("checkpoint", "layer", "position"):
        if col in table.columns:
            table[col] = pd.to_numeric(table[col], errors="coerce").astype("Int64")
    table.insert(1, "display", table["language"].map(lambda n: language_info(n).display))
    return table.to_csv(index=False)


def to_markdown(name: str, table: pd.DataFrame) -> str:
    view = display_frame(table)
    lines = [f"## {TITLES.get(name, name)}", "", "| " + " | ".join(view.columns) + " |"]
    lines.append("|" + "|".join("---" if c in TEXT_COLUMNS else "---:" for c in view.columns) + "|")
    for row in view.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    if has_sentence_intervals(table):
        lines += ["", INTERVAL_NOTE]
    return "\n".join(lines) + "\n"


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))


def to_latex(name: str, table: pd.DataFrame) -> str:
    view = display_frame(table)
    align = "".join("l" if c in TEXT_COLUMNS else "r" for c in view.columns)
    lines = [
        f"% {TITLES.get(name, name)}",
        f"\\begin{{tabular}}{{{align}}}",
        "\\toprule",
        " & ".join(tex_escape(c) for c in view.columns) + r" \\",
        "\\midrule",
        *(" & ".join(tex_escape(v) for v in row) + r" \\" for row in view.itertuples(index=False)),
        "\\bottomrule",
        "\\end{tabular}",
    ]
    if has_sentence_intervals(table):
        lines.append(f"% {INTERVAL_NOTE}")
    return "\n".join(lines) + "\n"


# Columns the terminal view leaves out when every row has the same value (said once in the caption).
CONSTANT_DROPPABLE = ("model", "metric", "subset", "layer", "checkpoint", "seeds")


def compact_interval(low: float, high: float) -> str:
    """``12.3–13.1``: three significant digits, no brackets (the terminal's narrow columns)."""
    if math.isnan(low) or math.isnan(high):
        return "–"
    return f"{low:.3g}–{high:.3g}"


def terminal_frame(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The view for 80 columns: constant columns dropped (returned as "name: value" notes), compact intervals."""
    view = display_frame(table)
    view["95% CI"] = [compact_interval(lo, hi) for lo, hi in zip(table["ci_low"], table["ci_high"])]
    if has_sentence_intervals(table):
        view["95% CI"] = [ci + ("*" if kind == "sentences" else "") for ci, kind in zip(view["95% CI"], table["interval"])]
    notes = []
    if (view["95% CI"] == "–").all():
        view = view.drop(columns="95% CI")  # one seed and no interval from eval: an empty column
    for col in CONSTANT_DROPPABLE:
        if col in view.columns and len(view) and view[col].nunique() == 1:
            value = view[col].iloc[0]
            if value != "":
                notes.append(f"{col}: {value}")
            view = view.drop(columns=col)
    return view, notes


def rich_table(name: str, table: pd.DataFrame, max_rows: int = 60):
    from rich.table import Table

    view, notes = terminal_frame(table)
    out = Table(title=TITLES.get(name, name), title_justify="left")
    for col in view.columns:
        # fold (wrap), never cut: a long language name takes two lines, not an ellipsis
        out.add_column(col, justify="left" if col in TEXT_COLUMNS else "right",
                       overflow="fold", no_wrap=col in ("value", "seeds"))
    for row in view.head(max_rows).itertuples(index=False):
        out.add_row(*map(str, row))
    if has_sentence_intervals(table):
        notes.append(INTERVAL_NOTE)
    if len(view) > max_rows:
        notes.append(f"{len(view) - max_rows} more rows in the written files")
    out.caption = "; ".join(notes) or None
    out.caption_justify = "left"
    return out
