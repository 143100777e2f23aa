"""`ilm minimal-pairs`: BLiMP-style minimal-pair accuracy per checkpoint (wraps ``analysis.minimal_pairs``)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cli.common import (
    batch_tokens_option, checkpoints_option, command, console, device_option, precision_option, progress_option, split_csv,
)


def register(app: typer.Typer) -> None:
    @command(app, "minimal-pairs")
    def minimal_pairs_cmd(
        subject: str = typer.Argument(..., help="A run folder, a checkpoint folder, or a Hugging Face model id/folder."),
        data: Path = typer.Option(
            ..., "--data", "-d", help="The dataset folder of the model's language: its rules and tokenizer apply to the stimuli."
        ),
        pairs: List[Path] = typer.Option(
            ..., "--pairs", "-p", help="JSONL files (or folders of them) with sentence_good/sentence_bad, e.g. BLiMP."
        ),
        checkpoints: Optional[str] = checkpoints_option(),
        results: Optional[Path] = typer.Option(
            Path("results"), "--results", "-o", help="Results folder; finished checkpoints there are skipped."
        ),
        revision: Optional[List[str]] = typer.Option(None, "--revision", help="Hub revision(s), e.g. checkpoint-3000 (repeatable)."),
        tagger: str = typer.Option("nltk", "--tagger", help="Tags the stimuli for hop languages (nltk, stanza, ...)."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Bootstrap seed.", show_default="the run's seed, else 0"),
        batch_tokens: int = batch_tokens_option(default=16384),
        dtype: str = precision_option(),
        device: str = device_option(),
        show_progress: bool = progress_option(),
    ) -> None:
        """Share of pairs whose good sentence is more probable, per phenomenon, for every checkpoint."""
        from impossible_lms.analysis.minimal_pairs import minimal_pairs

        df = minimal_pairs(subject, data, pairs, checkpoints=checkpoints, results=results,
                           revisions=split_csv(revision), tagger=tagger, seed=seed, batch_tokens=batch_tokens,
                           dtype=dtype, device=device, show_progress=show_progress)
        overall = df[df["subset"] == "all"].sort_values("checkpoint")
        for _, r in overall.iterrows():
            console.print(f"checkpoint {r['checkpoint']}: {r['value']:.1f}% of {r['count']} pairs")
        if results is not None:
            console.print(f"{len(df)} row(s) in {results}")
