"""`ilm syntaxgym`: SyntaxGym suite accuracy per checkpoint (wraps ``analysis.syntaxgym``)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cli.common import (
    batch_tokens_option, checkpoints_option, command, console, device_option, precision_option, progress_option, split_csv,
)


def register(app: typer.Typer) -> None:
    @command(app, "syntaxgym")
    def syntaxgym_cmd(
        subject: str = typer.Argument(..., help="A run folder, a checkpoint folder, or a Hugging Face model id/folder."),
        data: Path = typer.Option(
            ..., "--data", "-d",
            help="The dataset folder of the model's language: its rules and tokenizer apply to the stimuli "
                 "(languages that keep token order: no_shuffle, no_reverse, the hops).",
        ),
        suites: List[Path] = typer.Option(
            ..., "--suites", "-s",
            help="SyntaxGym suite JSON files (or folders of them), e.g. number_prep.json from cpllab/syntaxgym.",
        ),
        checkpoints: Optional[str] = checkpoints_option(),
        results: Optional[Path] = typer.Option(
            Path("results"), "--results", "-o", help="Results folder; finished checkpoints there are skipped."
        ),
        revision: Optional[List[str]] = typer.Option(None, "--revision", help="Hub revision(s), e.g. checkpoint-3000 (repeatable)."),
        local_agreement: bool = typer.Option(
            False, "--local-agreement/--no-local-agreement",
            help="The reference's flag for models whose verbs agree with the nearest noun: number_* predictions "
                 "flip, npi_* swap has/have before the target.",
        ),
        region_metric: str = typer.Option(
            "sum", "--region-metric", help="A region's surprisal in bits: sum over its tokens (SyntaxGym), "
                                           "or first (its first token, as the reference)."
        ),
        tagger: str = typer.Option("nltk", "--tagger", help="Tags the stimuli for hop languages (nltk, stanza, ...)."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Bootstrap seed.", show_default="the run's seed, else 0"),
        batch_tokens: int = batch_tokens_option(default=16384),
        dtype: str = precision_option(),
        device: str = device_option(),
        show_progress: bool = progress_option(),
    ) -> None:
        """Share of items whose every prediction holds (region surprisals compared across conditions), per suite."""
        from impossible_lms.analysis.syntaxgym import syntaxgym

        df = syntaxgym(subject, data, suites, checkpoints=checkpoints, results=results,
                       revisions=split_csv(revision), tagger=tagger, local_agreement=local_agreement,
                       region_metric=region_metric, seed=seed, batch_tokens=batch_tokens, dtype=dtype,
                       device=device, show_progress=show_progress)
        items = df[df["label"].fillna("") == ""]
        for step, group in items.sort_values("checkpoint").groupby("checkpoint", sort=False, dropna=False):
            by = dict(zip(group["subset"], group["value"]))
            counts = dict(zip(group["subset"], group["count"]))
            parts = ", ".join(f"{s} {v:.1f}%" for s, v in by.items() if s != "all")
            console.print(f"checkpoint {step}: {by['all']:.1f}% of {counts['all']} items ({parts})")
        if results is not None:
            console.print(f"{len(df)} row(s) in {results}")
