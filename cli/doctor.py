"""`ilm doctor`: check this machine for a run, offline, and say how to fix each problem."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.common import command, console


def register(app: typer.Typer) -> None:
    @command(app, "doctor")
    def doctor_cmd(
        corpus: Optional[Path] = typer.Option(None, "--corpus", help="A BabyLM folder (or text file) to check."),
        experiment: Optional[Path] = typer.Option(
            None, "--experiment", help="An experiment YAML: check what it needs (tokenizer, tagger, corpus, disk)."
        ),
    ) -> None:
        """Python, torch/CUDA/flash-attn, tokenizer and tagger data, corpus, disk, and a run's setup and speed.

        The run setup is what `ilm train` would use here: device, precision,
        attention backend, torch.compile. With --experiment it also warns when
        the runs would be far slower than expected (e.g. a 50k vocabulary on a CPU).
        """
        from rich.markup import escape
        from rich.table import Table

        from impossible_lms.doctor import diagnose, fatal

        checks = diagnose(corpus=corpus, experiment=experiment)
        style = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}
        table = Table(title="ilm doctor", title_justify="left")
        for col in ("check", "status", "detail", "fix"):
            table.add_column(col, overflow="fold", no_wrap=col == "status")
        for c in checks:
            table.add_row(escape(c.name), style[c.status], escape(c.detail), escape(c.fix))
        console.print(table)
        commands = [c for c in checks if c.commands]
        if commands:  # whole, one per line, never wrapped: they must copy and paste
            console.print("commands for the fixes above:")
            for c in commands:
                for line in c.commands:
                    console.print(f"  {line}", soft_wrap=True, markup=False, highlight=False, crop=False)
        bad = fatal(checks)
        if bad:
            console.print(f"{len(bad)} fatal problem(s): {', '.join(c.name for c in bad)}")
            raise typer.Exit(1)
        console.print("nothing fatal")
