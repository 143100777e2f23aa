"""``ilm languages``: the impossible languages, their families, markers and an example."""

from __future__ import annotations

from typing import Optional

import typer

from cli.common import command, console


def register(app: typer.Typer) -> None:
    @command(app, "languages")
    def languages(
        specs: Optional[list[str]] = typer.Argument(
            None,
            metavar="LANGUAGE",
            help="Languages to show, e.g. local_shuffle:w=7 token_hop:n=2.", show_default="the 15 of the paper",
        ),
        family: Optional[str] = typer.Option(
            None, "--family", "-f", help="Only this family (shuffle, reverse, hop, tree): all its languages."
        ),
        every: bool = typer.Option(False, "--all", help="After the paper's 15, every other registered language."),
    ) -> None:
        """List the languages: name (the spec other commands take), family, markers, example."""
        from rich.table import Table

        from perturbations import FAMILIES, language_table, list_languages

        rows = language_table(specs or (), family=family, every=every)
        table = Table(title="Impossible languages (example: one token per word)", title_justify="left")
        table.add_column("name", style="bold", no_wrap=True)
        table.add_column("display")
        table.add_column("family")
        table.add_column("markers")
        table.add_column("example")
        for row in rows:
            table.add_row(row["name"], row["display"], row["family"], row["markers"] or "-", row["example"])
        console.print(table)
        if not specs and not every and family is None:
            others = list_languages(every=True)[len(rows):]
            families = ", ".join(dict.fromkeys(lang.family for lang in others))
            console.print(f"{len(others)} more languages ({families}; families: {', '.join(FAMILIES)}):\n"
                          "  ilm languages --all", highlight=False, soft_wrap=True)
