"""`ilm export`: a run's checkpoints as Hugging Face folders (``impossible_lms.models.export``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.common import checkpoints_option, command, console, progress_option


def register(app: typer.Typer) -> None:
    @command(app, "export")
    def export_cmd(
        run: Path = typer.Argument(..., help="A training run folder (with run.json and checkpoint-<step>/)."),
        to: Path = typer.Option(..., "--to", help="New folder to write; it must not exist."),
        checkpoints: Optional[str] = checkpoints_option(),
        results: Optional[Path] = typer.Option(
            Path("results"), "--results", "-r",
            help="Results folder whose rows for this run go into each model card (skipped when absent)."),
        drop_exits: bool = typer.Option(
            False, "--drop-exits", help="Export the LM head alone when exit heads have LayerNorms of their own."),
        show_progress: bool = progress_option(),
    ) -> None:
        """Write checkpoints that transformers loads without ilm: GPT-2 (learned or no positions)
        and Backpack, in the published models' layout (last checkpoint at the top, checkpoint-<step>/
        beside it), each with the tokenizer and a model card. Nothing is uploaded: UPLOAD.md in the
        folder has the huggingface_hub command."""
        from impossible_lms.models.export import export_run

        done = export_run(run, to, checkpoints, results, drop_exits=drop_exits, progress=show_progress)
        console.print(f"{len(done.steps)} checkpoint(s) as {done.layout} in {done.folder} "
                      f"(top = checkpoint-{done.steps[-1]}); to publish: {done.folder / 'UPLOAD.md'}",
                      highlight=False, soft_wrap=True)
        for note in done.notes:
            console.print(f"note: {note}", highlight=False, soft_wrap=True)
        if done.skipped:
            console.print(f"note: the run has no checkpoint at step(s) {done.skipped}", highlight=False)
