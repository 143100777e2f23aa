"""`ilm baselines` and `ilm separation`: model-free complexity per language, and whether impossible
languages are learned worse than their controls (``evaluation.baselines``, ``reporting.complexity``)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cli.common import command, console, progress_option, split_csv


def register(app: typer.Typer) -> None:
    @command(app, "baselines")
    def baselines_cmd(
        data: List[Path] = typer.Argument(..., help="Dataset folders from `ilm perturb`."),
        orders: str = typer.Option("2,3,4,5", "--orders", help="Comma-separated Kneser-Ney n-gram orders (2-9)."),
        seeds: str = typer.Option(
            "0", "--seeds", help="Comma-separated sample seeds: the n-gram is scored on the sample `ilm eval` draws "
            "with each (the runs' seeds)."),
        sentences_per_genre: int = typer.Option(1000, "--sentences-per-genre", help="Test sentences sampled per genre (0 = all)."),
        sample_scheme: str = typer.Option("reference", "--sample-scheme", help="reference or per_genre, as `ilm eval`."),
        discount: str = typer.Option(
            "auto", "--discount", help="Kneser-Ney discount: auto (per order, n1/(n1+2·n2)) or a number in (0, 1)."),
        results: Path = typer.Option(Path("results"), "--results", "-o", help="Results folder; rows found there are reused."),
        show_progress: bool = progress_option(),
    ) -> None:
        """Unigram entropy, n-gram perplexity (interpolated Kneser-Ney, on the LM's test sample) and LZMA
        bits per token of each dataset, as result rows that `ilm report` shows beside the LM."""
        from impossible_lms.data import resolve_folder
        from impossible_lms.errors import ILMError
        from impossible_lms.evaluation.baselines import complexity_baselines

        def numbers(text: str, what: str) -> list[int]:
            try:
                return [int(x) for x in split_csv([text])]
            except ValueError:
                raise ILMError(f"{what} must be comma-separated whole numbers, got {text!r}") from None

        try:
            discount_value: float | str = discount if discount == "auto" else float(discount)
        except ValueError:
            raise ILMError(f"--discount must be auto or a number in (0, 1), got {discount!r}") from None
        for folder in data:
            df = complexity_baselines(
                resolve_folder(folder), results, orders=numbers(orders, "--orders"), seeds=numbers(seeds, "--seeds"),
                sentences_per_genre=sentences_per_genre or None, sample_scheme=sample_scheme,
                discount=discount_value, show_progress=show_progress)
            best = df[df["metric"] == "ngram_perplexity"].groupby(["label", "subset"])["value"].mean()
            entropy = df.loc[df["metric"] == "unigram_entropy", "value"]
            console.print(f"{folder}: unigram entropy {float(entropy.iloc[0]):.3f} bits; best n-gram perplexity "
                          f"{best.min():.2f} ({best.idxmin()[0]}, {best.idxmin()[1]})", highlight=False, soft_wrap=True)
        console.print(f"rows in {results}", highlight=False)

    @command(app, "separation")
    def separation_cmd(
        results: List[Path] = typer.Argument(..., help="Results folders, one per study (a natural language and its "
                                                       "perturbations); pairs are formed within each, then pooled."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for the tables and the pairs figure."),
        format: Optional[List[str]] = typer.Option(None, "--format", "-f", help="Comma-separated: md, csv, png, pdf, svg.",
                                                   show_default="md,csv,png"),
    ) -> None:
        """The share of (impossible, control) pairs where the impossible language is learned worse: final
        perplexity, area under the curve, excess over n-gram; bootstrap over pairs and seeds."""
        from impossible_lms.reporting.complexity import separation
        from impossible_lms.reporting.render import rich_tables

        tables, files = separation(results, out, split_csv(format) if format else ("md", "csv", "png"))
        for name in (n for n in ("separation", "separation_pairs") if n in tables):
            for table in rich_tables(name, tables[name]):
                console.print(table)
        if out is not None:
            console.print(f"wrote {len(files)} file(s) to {out}", highlight=False)
