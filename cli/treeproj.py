"""`ilm treeproj`: tree projections, tree score and parse agreement (wraps ``analysis.treeproj``)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cli.common import (
    batch_rows_option, checkpoints_option, command, console, device_option, precision_option, progress_option, split_csv,
)


def register(app: typer.Typer) -> None:
    @command(app, "treeproj")
    def treeproj_cmd(
        subject: str = typer.Argument(..., help="A run folder, a checkpoint folder, or a Hugging Face model id/folder."),
        data: Path = typer.Option(..., "--data", "-d", help="The dataset folder of the model's language."),
        unit: str = typer.Option(
            "word", "--unit", help="Leaves: word (gold trees, hop/reverse languages; tree score + parse F1) or token "
                                   "(the reference's tree score on test_affected, any language)."
        ),
        trees: Optional[Path] = typer.Option(
            None, "--trees", help="Bracketed Penn-style gold trees of the sentences (word unit).",
            show_default="the synthetic grammar's own trees"
        ),
        layer: Optional[int] = typer.Option(
            None, "--layer", help="First block (0-based) whose attention is restricted to the span.",
            show_default="4, clipped below the read layer"
        ),
        read_layer: Optional[int] = typer.Option(
            None, "--read-layer", help="Hidden state compared: k = block k-1's output (1..blocks).",
            show_default="the last block but one (11 of 12)"
        ),
        sentences: Optional[int] = typer.Option(
            None, "--sentences", "-n", help="Sentences: per genre file for token (the reference's 1000), in all for "
                                           "word (200); 0 = all. Cost: one forward per leaf of each sentence.",
            show_default="1000 token / 200 word"
        ),
        batch: int = batch_rows_option(64, "Rows (sentence, span start) per forward pass."),
        checkpoints: Optional[str] = checkpoints_option(),
        results: Optional[Path] = typer.Option(
            Path("results"), "--results", "-o", help="Results folder; finished checkpoints there are skipped."
        ),
        revision: Optional[List[str]] = typer.Option(None, "--revision", help="Hub revision(s), e.g. checkpoint-3000 (repeatable)."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Sample and bootstrap seed.", show_default="the run's seed, else 0"),
        dtype: str = precision_option(),
        device: str = device_option(),
        show_progress: bool = progress_option(),
    ) -> None:
        """Tree score (how well a binary tree explains the model's span contextual invariance) and
        bracketing F1 of that tree against gold trees, for every checkpoint.

        For each span the model reads the sentence twice: whole, and with attention restricted to
        the span from --layer on; the chart of their cosine similarities is projected to the best
        binary tree (Murty et al. 2023; the reference's tree_projections/)."""
        from impossible_lms.analysis.treeproj import treeproj

        df = treeproj(subject, data, checkpoints=checkpoints, results=results, unit=unit, trees=trees,
                      start_layer=layer, read_layer=read_layer, sentences=sentences, batch=batch,
                      revisions=split_csv(revision), seed=seed, dtype=dtype, device=device, show_progress=show_progress)
        for step, rows in df.sort_values("checkpoint").groupby("checkpoint", sort=False):
            by = {r["metric"]: r for _, r in rows.iterrows()}
            line = f"checkpoint {step}: tree score {by['tree_score']['value']:.4f} ({by['tree_score']['count']} sentences)"
            if "parse_f1" in by:
                line += f", parse F1 {by['parse_f1']['value']:.1f}%"
            console.print(line)
        console.print(f"{len(df)} row(s)" + (f" in {results}" if results is not None else ""))
