"""`ilm intervene`: interchange interventions on subject–verb agreement (wraps ``analysis.intervene``)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cli.common import (
    batch_rows_option, checkpoints_option, command, console, device_option, precision_option, progress_option, split_csv,
)


def register(app: typer.Typer) -> None:
    @command(app, "intervene")
    def intervene_cmd(
        subject: str = typer.Argument(..., help="A hop run folder, a checkpoint folder, or a Hugging Face model id/folder."),
        data: List[Path] = typer.Option(
            ..., "--data", "-d",
            help="The no_hop and word_hop dataset folders, one hop dataset folder with them beside it, "
                 "or an agreement pairs file (--save-pairs).",
        ),
        checkpoints: Optional[str] = checkpoints_option(),
        results: Optional[Path] = typer.Option(
            Path("results"), "--results", "-o", help="Results folder; finished checkpoints there are skipped."
        ),
        revision: Optional[List[str]] = typer.Option(None, "--revision", help="Hub revision(s), e.g. checkpoint-3000 (repeatable)."),
        language: Optional[str] = typer.Option(
            None, "--language", help="The model's language when the subject does not say (no_hop sees 3 tokens)."
        ),
        tokens: Optional[int] = typer.Option(None, "--tokens", help="Tokens of each pair fed to the model [default: 3 for no_hop, else 7]."),
        max_pairs: Optional[int] = typer.Option(None, "--max-pairs", help="Use only the first N pairs."),
        split: str = typer.Option("test_affected", "--split", help="Split the pairs are drawn from (the reference: test_affected)."),
        save_pairs: Optional[Path] = typer.Option(None, "--save-pairs", help="Also write the agreement pairs to this JSON file."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Bootstrap seed [default: the run's seed, else 0]."),
        batch_rows: int = batch_rows_option(512, "Sequences per forward pass (pairs × positions)."),
        dtype: str = precision_option(),
        device: str = device_option(),
        show_progress: bool = progress_option(),
    ) -> None:
        """IIA per checkpoint × layer × position: swap a plural subject's block output into the singular sentence."""
        from impossible_lms.analysis.agreement import agreement_data
        from impossible_lms.analysis.intervene import intervene

        folders = [Path(d) for d in split_csv([str(d) for d in data])]
        if save_pairs is not None:
            pairs = agreement_data(folders, split)
            pairs.save(save_pairs)
            console.print(f"{len(pairs)} agreement pair(s) in {save_pairs}")
        df = intervene(subject, folders, checkpoints=checkpoints, results=results, revisions=split_csv(revision),
                       language=language, tokens=tokens, max_pairs=max_pairs, split=split, seed=seed,
                       batch_rows=batch_rows, dtype=dtype, device=device, show_progress=show_progress)
        if not df.empty:
            last = df[df["checkpoint"] == df["checkpoint"].max()] if df["checkpoint"].notna().any() else df
            best = last.loc[last["value"].idxmax()]
            console.print(f"{len(last)} cell(s) at the last checkpoint; best IIA {best['value']:.1f}% at layer "
                          f"{best['layer']}, position {best['position']} ({best['count']} pairs)")
        if results is not None:
            console.print(f"{len(df)} row(s) in {results}")
