"""`ilm report`: tables in the terminal and as Markdown/CSV/LaTeX, figures as PNG/PDF."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cli.common import command, console, split_csv


def register(app: typer.Typer) -> None:
    @command(app, "report")
    def report_cmd(
        results: List[Path] = typer.Argument(..., help="Results folders or files written by `ilm eval`."),
        format: Optional[List[str]] = typer.Option(
            None, "--format", "-f", help="Comma-separated: md, csv, tex, png, pdf, svg.", show_default="md,csv,tex,png"
        ),
        out: Path = typer.Option(Path("report"), "--out", "-o", help="Folder for the tables and figures."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print the tables."),
    ) -> None:
        """Aggregate results over seeds into tables and learning-curve figures."""
        from impossible_lms.reporting import DEFAULT_FORMATS, check_formats, report
        from impossible_lms.reporting.render import rich_tables

        formats = check_formats(split_csv(format) if format else list(DEFAULT_FORMATS))  # `-f ,` names none: an error
        tables, files = report(results, out, formats)
        if not quiet:
            for name in ("final", "auc", "marker_surprisal", "surprisal_difference", "iia_max", "separation", "findings"):
                if name in tables:
                    for table in rich_tables(name, tables[name]):
                        console.print(table)
        console.print(f"wrote {len(files)} file(s) to {out}")
