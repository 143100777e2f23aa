"""`ilm run EXPERIMENT.yaml`: the whole flow from one file, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cli.common import command, console, err_console


def register(app: typer.Typer) -> None:
    @command(app, "run")
    def run_cmd(
        experiment: Path = typer.Argument(..., help="Experiment YAML (see experiments/)."),
        set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a field: key=value (repeatable)."),
        only: Optional[List[str]] = typer.Option(
            None, "--only", help="Only runs matching LANG/MODEL/SEED globs, e.g. '*hop*/gpt2/0' (repeatable)."
        ),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and a device-hours estimate (model FLOPs over a recorded or briefly measured device rate); run nothing."),
        emit: Optional[str] = typer.Option(
            None, "--emit", help="Print training commands instead of running: 'torchrun' (one line per run) "
            "or 'slurm' (writes an array script)."
        ),
    ) -> None:
        """Perturb, train every language × model × seed, evaluate and report, skipping finished steps."""
        from impossible_lms.errors import ILMError
        from impossible_lms.experiment import (
            emit_slurm, emit_torchrun, format_plan, load_experiment, run_experiment,
        )

        cfg = load_experiment(experiment, set_ or [])
        if emit is not None:
            if emit == "torchrun":
                for line in emit_torchrun(cfg, only):
                    typer.echo(line)
            elif emit == "slurm":
                path = emit_slurm(cfg, only)
                typer.echo(str(path))
            else:
                raise ILMError(f"--emit {emit!r}: choose torchrun or slurm")
            return
        result = run_experiment(cfg, dry_run=dry_run, only=only,
                                log=lambda msg: err_console.print(f"[bold]ilm run[/] {msg}", highlight=False))
        if dry_run:
            from impossible_lms.estimate import estimate_training

            plan = result.plan
            console.print(format_plan(plan, estimate_training(cfg, plan.runs)), highlight=False, markup=False,
                          soft_wrap=True)
            return
        _print_summary(cfg, result)


def _print_summary(cfg, result) -> None:
    from impossible_lms.experiment import layout

    where = layout(cfg)
    report_dir = where.report()
    report = report_dir / "final.csv"
    if report.is_file():
        import pandas as pd

        from impossible_lms.reporting.render import rich_tables

        final = pd.read_csv(report, keep_default_na=True)
        # A summary for the log: each model's own-language rows, one table per model (the cross-language
        # rows and everything else are in the report's files)
        own = final[final["eval_language"].isna() | (final["eval_language"] == final["language"])] \
            if "eval_language" in final.columns else final
        for table in rich_tables("final", own.reset_index(drop=True)):
            console.print(table)
        if len(own) < len(final):
            console.print(f"{len(final) - len(own)} cross-language row(s) (models tested on other data) in")
            console.print(f"  {report}", highlight=False, soft_wrap=True)  # a path stays whole
    ran = len(result.executed)
    console.print(f"{ran} step(s) run; report in {report_dir}")
    for name in cfg.variants:  # each ablation has its own report, never averaged with the recipe's
        console.print(f"variant {name}: report in {where.report(name)}", highlight=False, soft_wrap=True)
