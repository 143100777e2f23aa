"""`ilm probe`: constituency edge probing (wraps ``analysis.probe``)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cli.common import checkpoints_option, command, console, device_option, precision_option, progress_option, split_csv


def register(app: typer.Typer) -> None:
    @command(app, "probe")
    def probe_cmd(
        subject: str = typer.Argument(..., help="A run folder, a checkpoint folder, or a Hugging Face model id/folder."),
        data: Path = typer.Option(..., "--data", "-d", help="The language's dataset folder (Reverse family: no_reverse beside it)."),
        trees: Optional[Path] = typer.Option(
            None, "--trees", help="Bracketed Penn-style trees of the sentences, or 'stanza' to parse the dataset's test sentences "
                 "(pip install 'ilm[stanza]') [default: the synthetic grammar's own trees]."
        ),
        checkpoints: Optional[str] = checkpoints_option(),
        results: Optional[Path] = typer.Option(
            Path("results"), "--results", "-o", help="Results folder; finished checkpoints there are skipped."
        ),
        revision: Optional[List[str]] = typer.Option(None, "--revision", help="Hub revision(s), e.g. checkpoint-3000 (repeatable)."),
        seed: Optional[int] = typer.Option(None, "--seed", help="80/20 split seed [default: the run's seed, else 0]."),
        dtype: str = precision_option(),
        device: str = device_option(),
        show_progress: bool = progress_option(),
    ) -> None:
        """Probe accuracy per checkpoint × layer × label: logistic regression on span-mean hidden states."""
        from impossible_lms.analysis.probe import probe

        df = probe(subject, data, checkpoints=checkpoints, results=results, trees=trees, revisions=split_csv(revision),
                   seed=seed, dtype=dtype, device=device, show_progress=show_progress)
        overall = df[df["label"] == "all"]
        if not overall.empty:
            best = overall.loc[overall["value"].idxmax()]
            console.print(f"best overall probe accuracy {best['value']:.1f}% ({best['subset']}, {best['count']} test spans)")
        console.print(f"{len(df)} row(s)" + (f" in {results}" if results is not None else ""))
