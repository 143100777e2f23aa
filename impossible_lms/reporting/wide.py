"""Paper-style wide tables: languages as rows, checkpoints as columns.

Built from the long per-checkpoint tables of :mod:`impossible_lms.reporting.tables`
(one row per language × model × subset × checkpoint, already aggregated over
seeds), so both views always show the same numbers. One wide table per
(metric, model, subset); rows keep the long table's order (registry order),
columns are the checkpoints in increasing order; a missing cell is empty.

Files: ``wide_<metric>_<model>[_<subset>].csv`` (raw values), ``.tex``
(booktabs), and a Markdown section in ``report.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from impossible_lms.reporting.languages import language_info
from impossible_lms.reporting.render import TITLES, fmt, tex_escape

# The long tables that have a checkpoint axis, in report order.
CURVE_TABLES = ("perplexity", "marker_surprisal", "surprisal_difference")


@dataclass(frozen=True)
class WideTable:
    metric: str
    model: str
    subset: str
    frame: pd.DataFrame  # index: language name; columns: checkpoints (int); values: float
    setting: str = ""  # a setting variant's label (reporting/tables.py), "" when the rows share all settings

    @property
    def stem(self) -> str:
        parts = ["wide", self.metric, self.model] + [p for p in (self.subset, self.setting) if p]
        return "_".join("".join(c if c.isalnum() or c in "-." else "_" for c in str(p)) for p in parts)

    @property
    def title(self) -> str:
        what = TITLES.get(self.metric, self.metric).split(" (")[0]
        return f"{what}: {self.model}" + (f", {self.subset}" if self.subset else "") + (
            f" ({self.setting})" if self.setting else "")


def wide_tables(tables: dict[str, pd.DataFrame]) -> list[WideTable]:
    """Every wide table for the long ``tables`` (the output of ``build_tables``)."""
    out = []
    for metric in CURVE_TABLES:
        long = tables.get(metric)
        if long is None or long.empty:
            continue
        long = long.dropna(subset=["checkpoint"])
        if "eval_language" in long.columns:  # one cell per language: train-on-X/test-on-Y rows stay in the long table
            long = long[long["eval_language"] == long["language"]]
        if "setting" not in long.columns:
            long = long.assign(setting="")
        for (model, subset, setting), group in long.groupby(["model", "subset", "setting"], sort=False):
            languages = list(dict.fromkeys(group["language"]))  # the long table's (registry) order
            frame = group.pivot_table(index="language", columns="checkpoint", values="value", aggfunc="first")
            frame = frame.reindex(index=languages, columns=sorted(frame.columns))
            frame.columns = [int(c) for c in frame.columns]
            out.append(WideTable(metric, str(model), str(subset), frame, str(setting)))
    return out


def _display_rows(table: WideTable) -> list[list[str]]:
    return [[language_info(lang).display, *(fmt(v) for v in row)] for lang, row in table.frame.iterrows()]


def to_csv(table: WideTable) -> str:
    frame = table.frame.copy()
    frame.insert(0, "display", [language_info(n).display for n in frame.index])
    frame.index.name = "language"
    return frame.to_csv()


def to_markdown(table: WideTable) -> str:
    header = ["language", *map(str, table.frame.columns)]
    lines = [f"### {table.title}", "", "| " + " | ".join(header) + " |",
             "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in _display_rows(table)]
    return "\n".join(lines) + "\n"


def to_latex(table: WideTable) -> str:
    n = len(table.frame.columns)
    lines = [
        f"% {table.title}",
        f"\\begin{{tabular}}{{l{'r' * n}}}",
        "\\toprule",
        f" & \\multicolumn{{{n}}}{{c}}{{checkpoint}} \\\\" if n else "",
        " & ".join(["language", *map(str, table.frame.columns)]) + r" \\",
        "\\midrule",
        *(" & ".join(tex_escape(c) for c in row) + r" \\" for row in _display_rows(table)),
        "\\bottomrule",
        "\\end{tabular}",
    ]
    return "\n".join(line for line in lines if line) + "\n"
