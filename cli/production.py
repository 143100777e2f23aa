"""`ilm production`: does what each checkpoint writes obey its language? (wraps ``analysis.production``)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cli.common import (
    batch_tokens_option, checkpoints_option, command, console, device_option, precision_option, progress_option, split_csv,
)


def register(app: typer.Typer) -> None:
    @command(app, "production")
    def production_cmd(
        subject: str = typer.Argument(..., help="A run folder, a checkpoint folder, or a Hugging Face model id/folder."),
        data: Path = typer.Option(
            ..., "--data", "-d", help="The dataset folder of the model's language: prompts from its test_affected "
                                      "split, its rule and tokenizer."
        ),
        judge: Optional[Path] = typer.Option(
            None, "--judge", help="A model of the control language (run folder: its last checkpoint) that scores "
                                  "the generations put back into the control's form.", show_default="none: "
                                  "conformity only"),
        checkpoints: Optional[str] = checkpoints_option(),
        results: Optional[Path] = typer.Option(
            Path("results"), "--results", "-o", help="Results folder; finished checkpoints there are skipped."
        ),
        revision: Optional[List[str]] = typer.Option(None, "--revision", help="Hub revision(s), e.g. checkpoint-3000 (repeatable)."),
        prompts: int = typer.Option(100, "--prompts", help="How many test sentences to prompt with."),
        prompt_tokens: int = typer.Option(3, "--prompt-tokens", help="The first N tokens of each is the prompt."),
        max_new_tokens: int = typer.Option(40, "--max-new-tokens", help="Longest continuation; one without EOS "
                                                                        "by then is unfinished (not conforming)."),
        temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature; 0 is greedy."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Seeds the prompts, the sampling and the bootstrap.",
                                           show_default="the run's seed, else 0"),
        batch_tokens: int = batch_tokens_option(default=16384),
        dtype: str = precision_option(),
        device: str = device_option(),
        show_progress: bool = progress_option(),
    ) -> None:
        """Sample continuations of test prompts from every checkpoint: the share that obeys the language's
        rule, and (with --judge) the control model's perplexity of them undone."""
        from impossible_lms.analysis.production import production

        df = production(subject, data, checkpoints=checkpoints, results=results, judge=judge,
                        revisions=split_csv(revision), prompts=prompts, prompt_tokens=prompt_tokens,
                        max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                        batch_tokens=batch_tokens, dtype=dtype, device=device, show_progress=show_progress)
        for step, rows in df.sort_values("checkpoint").groupby("checkpoint", sort=False, dropna=False):
            got = {r["metric"]: r for _, r in rows.iterrows() if r["subset"] == "all"}
            parts = [f"{got[m]['value']:.1f}% {label}" for m, label in
                     (("production_conforming", "conform"), ("production_finished", "finish")) if m in got]
            if "production_undone_perplexity" in got:
                parts.append(f"undone perplexity {got['production_undone_perplexity']['value']:.2f}")
            console.print(f"checkpoint {step}: " + ", ".join(parts))
        if results is not None:
            console.print(f"{len(df)} row(s) in {results}")
