"""`ilm generate` and `ilm senses`: thin wrappers over ``impossible_lms.models.generate``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.common import command, console


def register(app: typer.Typer) -> None:
    @command(app, "models")
    def models_cmd(
        vocab: int = typer.Option(50257, "--vocab", help="Vocabulary the parameter counts assume (presets that fix "
                                                         "their own, as backpack-gpt2's 50264, keep it)."),
    ) -> None:
        """Every model preset: shape, positions, attention, exit heads and exact parameter count."""
        from rich.table import Table

        from impossible_lms.models.config import preset_table

        rows = preset_table(vocab)
        table = Table(title=f"model presets (parameters at vocabulary {vocab:,})", box=None, padding=(0, 1, 0, 0),
                      caption="override any field: --set model.n_layer=6 (ilm run) / model_overrides (YAML)")
        columns = {"preset": "left", "layers×d": "right", "heads": "right", "ctx": "right", "positions": "left",
                   "attention": "left", "exits": "left", "params": "right"}
        for col, justify in columns.items():
            table.add_column(col, justify=justify, no_wrap=True)
        for r in rows:
            table.add_row(r["preset"], f"{r['layers']}×{r['d_model']}", str(r["heads"]), str(r["context"]),
                          r["positions"], r["attention"],
                          r["exits"], f"{r['parameters'] / 1e6:.1f}M")
        console.print(table)

    @command(app, "generate")
    def generate_cmd(
        checkpoint: str = typer.Argument(..., help="Checkpoint folder, run folder (latest checkpoint) or local HF model."),
        prompt: str = typer.Option(..., "--prompt", "-p", help="Text to continue."),
        max_new_tokens: int = typer.Option(20, "--max-new-tokens", "-n", help="Tokens to generate."),
        contrast: Optional[str] = typer.Option(
            None, "--contrast",
            help="Auto-contrastive decoding between two heads: FINAL,EXIT (e.g. final,4) or 'auto'. Needs exit heads.",
        ),
        alpha: float = typer.Option(0.1, "--alpha", help="Contrastive plausibility: keep tokens with p ≥ α·max p."),
        tokenizer: Optional[Path] = typer.Option(
            None, "--tokenizer", help="Tokenizer folder.", show_default="found beside the checkpoint or via run.json"),
        device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N.", show_default="cpu"),
    ) -> None:
        """Greedy continuation of a prompt (or auto-contrastive between exit heads)."""
        from rich.text import Text

        from impossible_lms.models.generate import generate_text

        from impossible_lms.data import resolve_folder

        result = generate_text(str(resolve_folder(checkpoint)), prompt, max_new_tokens, contrast, alpha, tokenizer, device=device)
        console.print(Text(prompt, style="bold") + Text(result.text))

    @command(app, "senses")
    def senses_cmd(
        checkpoint: str = typer.Argument(..., help="Backpack checkpoint folder or run folder."),
        word: str = typer.Argument(..., help="A word that is one token (with its leading space)."),
        top: int = typer.Option(10, "--top", "-k", help="Tokens shown per sense."),
        bottom: bool = typer.Option(False, "--bottom", help="Show the least predicted tokens instead."),
        tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="Tokenizer folder.", show_default="found"),
    ) -> None:
        """A Backpack word's sense vectors, read through the output embedding."""
        from rich.table import Table

        from impossible_lms.models.generate import sense_table

        from impossible_lms.data import resolve_folder

        rows = sense_table(str(resolve_folder(checkpoint)), word, top, tokenizer, bottom)
        table = Table(title=f"senses of {word!r} ({'least' if bottom else 'most'} predicted tokens)")
        table.add_column("sense", justify="right")
        table.add_column("tokens")
        for i, tokens in enumerate(rows):
            table.add_row(str(i), "  ".join(repr(t) for t in tokens))
        console.print(table)
