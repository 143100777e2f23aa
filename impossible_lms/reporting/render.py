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


TEXT_COLUMNS = ("language", "tested on", "setting", "model", "metric", "subset", "label")  # left-aligned


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
    if "setting" in table.columns:  # a table read back from CSV has NaN where no setting differs
        setting = table["setting"].fillna("").astype(str)
        if (setting != "").any():
            out["setting"] = setting
    for col in ("model", "metric", "subset", "label", "layer", "position", "checkpoint"):
        if col in table.columns and not (col == "label" and table[col].fillna("").eq("").all()):
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


# What a one-seed interval (the run's own bootstrap) resamples, by table: each analysis says its own.
INTERVAL_UNITS = {
    "minimal_pairs": ("pairs", "ilm minimal-pairs"), "minimal_pairs_curve": ("pairs", "ilm minimal-pairs"),
    "syntaxgym": ("items", "ilm syntaxgym"), "syntaxgym_curve": ("items", "ilm syntaxgym"),
    "syntaxgym_predictions": ("items", "ilm syntaxgym"),
    "iia": ("agreement pairs", "ilm intervene"), "iia_max": ("agreement pairs", "ilm intervene"),
    "probe": ("test spans", "ilm probe"), "treeproj": ("sentences", "ilm treeproj"),
}


def interval_note(name: str = "") -> str:
    """The caption of a one-seed interval (marked *), naming what it is over and which command made it."""
    what, command = INTERVAL_UNITS.get(name, ("sentences", "ilm eval"))
    return f"(*) one seed: the run's own 95% interval over {what} (bootstrap, from `{command}`), not over seeds."


INTERVAL_NOTE = interval_note()


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
        lines += ["", interval_note(name)]
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
        lines.append(f"% {interval_note(name)}")
    return "\n".join(lines) + "\n"


# Columns the terminal view leaves out when every row has the same value (said once in the caption).
CONSTANT_DROPPABLE = ("tested on", "setting", "model", "metric", "subset", "label", "layer", "checkpoint", "seeds")
# Columns left out, in this order, when the rest would not fit the terminal without cutting a word
# (the written files keep them all; the caption says which are left out).
NARROW_DROPPABLE = ("seeds", "95% CI", "setting", "checkpoint")
TERMINAL_WIDTH = 80


def longest_word(values) -> int:
    return max((len(w) for v in values for w in str(v).split()), default=1)


def word_widths(view: pd.DataFrame) -> list[int]:
    """Each column's narrowest width that cuts no word: its longest word, header included."""
    return [max(longest_word(view[c]), longest_word([c])) for c in view.columns]


def drawn_width(widths: list[int]) -> int:
    """A rich table's width from its columns' widths: padding and a rule (3) each, plus the outer rule."""
    return sum(widths) + 3 * len(widths) + 1


def table_width(view: pd.DataFrame) -> int:
    """The narrowest a rich table of ``view`` can be without cutting a word."""
    return drawn_width(word_widths(view))


def compact_interval(low: float, high: float) -> str:
    """``12.3–13.1``: three significant digits, no brackets (the terminal's narrow columns)."""
    if math.isnan(low) or math.isnan(high):
        return "–"
    return f"{low:.3g}–{high:.3g}"


def column_widths(view: pd.DataFrame, width: int = TERMINAL_WIDTH) -> list[int]:
    """Each column's width: its longest cell, narrowed (widest slack first, never below its longest
    word) until the table fits ``width``. Rich's own narrowing stops at the widest column, which
    cut words in the middle when that column could not shrink."""
    widths = [max(max((len(str(v)) for v in view[c]), default=1), len(c)) for c in view.columns]
    least = word_widths(view)
    excess = drawn_width(widths) - width
    while excess > 0:
        slack = [w - m for w, m in zip(widths, least)]
        k = max(range(len(widths)), key=lambda i: slack[i])
        if slack[k] <= 0:
            break  # nothing narrows without cutting a word (terminal_frame has left out what it could)
        widths[k] -= 1
        excess -= 1
    return widths


def terminal_frame(table: pd.DataFrame, width: int = TERMINAL_WIDTH) -> tuple[pd.DataFrame, list[str]]:
    """The view for a terminal (or a log) of ``width`` columns: constant or empty columns dropped
    (returned as "name: value" notes), compact intervals, names split at underscores so they wrap
    between words, and columns left out (said in a note) until no word has to be cut."""
    view = display_frame(table)
    if "tested on" in view.columns:  # stacked into the language cell, only where it differs: "X → Y"
        view["language"] = [lang if tested == lang else f"{lang} → {tested}"
                            for lang, tested in zip(view["language"], view["tested on"])]
        view = view.drop(columns="tested on")
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
    for col in ("metric", "subset"):  # test_unaffected wraps as "test / unaffected", never "test_unaffecte / d"
        if col in view.columns:
            view[col] = view[col].str.replace("_", " ", regex=False)
    left_out = []
    for col in NARROW_DROPPABLE:
        if table_width(view) <= width:
            break
        if col in view.columns:
            view = view.drop(columns=col)
            left_out.append(col)
    if left_out:
        notes.append(f"left out at {width} columns: {', '.join(left_out)} (in the written files)")
    return view, notes


def rich_tables(name: str, table: pd.DataFrame, max_rows: int = 60) -> list:
    """:func:`rich_table` once per model when the table holds several (each then fits the terminal
    with its model in the caption), else once."""
    if "model" not in table.columns or table["model"].nunique() <= 1:
        return [rich_table(name, table, max_rows)]
    return [rich_table(name, rows.reset_index(drop=True), max_rows) for _, rows in table.groupby("model", sort=False)]


def rich_table(name: str, table: pd.DataFrame, max_rows: int = 60):
    from rich.table import Table

    view, notes = terminal_frame(table)
    out = Table(title=TITLES.get(name, name), title_justify="left")
    for col, width in zip(view.columns, column_widths(view.head(max_rows))):
        # wrap between words, never inside one: each column at least as wide as its longest word
        out.add_column(col, justify="left" if col in TEXT_COLUMNS else "right", overflow="fold", width=width)
    for row in view.head(max_rows).itertuples(index=False):
        out.add_row(*map(str, row))
    if has_sentence_intervals(table):
        notes.append(interval_note(name))
    if len(view) > max_rows:
        notes.append(f"{len(view) - max_rows} more rows in the written files")
    out.caption = "; ".join(notes) or None
    out.caption_justify = "left"
    return out
