"""`ilm eval`: score a run's checkpoints (or any causal LM) on dataset folders (wraps ``evaluation.evaluate``)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cli.common import (
    batch_tokens_option, checkpoints_option, command, console, device_option, precision_option, progress_option, split_csv,
)


def register(app: typer.Typer) -> None:
    @command(app, "eval")
    def eval_cmd(
        subject: str = typer.Argument(..., help="A run folder, a checkpoint folder, a model folder, or hf:org/name (published checkpoints, read from the local Hugging Face cache; --checkpoints picks checkpoint-N revisions)."),
        data: List[Path] = typer.Option(..., "--data", "-d", help="Dataset folder(s) from `ilm perturb` (repeatable or comma-separated)."),
        checkpoints: Optional[str] = checkpoints_option(),
        metrics: Optional[List[str]] = typer.Option(
            None, "--metrics", "-m", help="Comma-separated metrics: perplexity, marker_surprisal.",
            show_default="every metric that applies to the data (marker surprisal: hop languages)"
        ),
        subsets: Optional[List[str]] = typer.Option(
            None, "--subsets", help="Comma-separated perplexity subsets to score: test_affected, test_unaffected, dev "
            "(a third of the work each; marker surprisal draws its own affected sample and is unaffected). "
            "Each is stored on its own: a later run with more subsets scores only the new ones.",
            show_default="all three",
        ),
        results: Optional[Path] = typer.Option(
            Path("results"), "--results", "-o", help="Results folder; finished checkpoints there are skipped."
        ),
        revision: Optional[List[str]] = typer.Option(None, "--revision", help="Hub revision(s), e.g. checkpoint-3000 (repeatable)."),
        dtype: str = precision_option(),
        device: str = device_option(),
        batch_tokens: Optional[int] = batch_tokens_option(show_default="16384 on GPU, 2048 on CPU"),
        sentences_per_genre: int = typer.Option(1000, "--sentences-per-genre", help="Test sentences sampled per genre (0 = all)."),
        sample_scheme: str = typer.Option(
            "reference", "--sample-scheme",
            help="reference (one seeded stream over the genre files, as perplexities.py) or per_genre "
                 "(a stream per genre: stable when genres change).",
        ),
        condition_on_eos: bool = typer.Option(False, "--condition-on-eos", help="Prepend EOS so the first token is scored too."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Sample/bootstrap seed.", show_default="the run's seed, else 0"),
        unit: str = typer.Option("bits", "--unit", help="Surprisal unit: bits or nats."),
        pairs: Optional[List[Path]] = typer.Option(
            None, "--pairs", help="Also BLiMP-style minimal-pair accuracy on these JSONL files/folders (as `ilm minimal-pairs`), "
            "stimuli put into the first --data folder's language.",
        ),
        suites: Optional[List[Path]] = typer.Option(
            None, "--suites", help="Also SyntaxGym accuracy on these suite JSON files/folders (as `ilm syntaxgym`), "
            "stimuli put into the first --data folder's language.",
        ),
        show_progress: bool = progress_option(),
    ) -> None:
        """Perplexity and marker surprisal per checkpoint, as long-format rows under --results."""
        from impossible_lms.data import resolve_folder
        from impossible_lms.evaluation import METRICS, evaluate

        subject, folders = str(resolve_folder(subject)), [resolve_folder(d) for d in split_csv([str(d) for d in data])]
        df = evaluate(
            subject, folders,
            checkpoints=checkpoints,
            metrics=split_csv(metrics) or list(METRICS), results=results, revisions=split_csv(revision),
            subsets=split_csv(subsets) if subsets else None,
            dtype=dtype, device=device, batch_tokens=batch_tokens,
            sentences_per_genre=sentences_per_genre or None, sample_scheme=sample_scheme, condition_on_eos=condition_on_eos, seed=seed,
            unit=unit, show_progress=show_progress,
        )
        common = dict(checkpoints=checkpoints, results=results, revisions=split_csv(revision), seed=seed, dtype=dtype,
                      device=device, show_progress=show_progress)
        if batch_tokens is not None:  # else each analysis keeps its own default
            common["batch_tokens"] = batch_tokens
        df = _targeted(df, subject, folders[0], pairs, suites, common)
        if not df.empty:
            _print_summary(df)
            console.print(ran_message(df), highlight=False, soft_wrap=True)
        if results is not None:
            console.print(f"{len(df)} row(s) in {results}")

    def _targeted(df, subject, own, pairs, suites, common):
        """Minimal pairs and SyntaxGym suites on the same checkpoints, in the model's (first) language."""
        if not pairs and not suites:
            return df
        import pandas as pd

        from impossible_lms.analysis.minimal_pairs import minimal_pairs
        from impossible_lms.analysis.syntaxgym import syntaxgym

        frames = [df]
        if pairs:
            frames.append(minimal_pairs(subject, own, pairs, **common))
        if suites:
            frames.append(syntaxgym(subject, own, suites, **common))
        filled = [f for f in frames if len(f)]
        return pd.concat(filled, ignore_index=True) if filled else df

    def _print_summary(df) -> None:
        """The last checkpoint's final-layer rows, compact enough for 80 columns."""
        from rich.table import Table

        last = df[df["layer"].isna()]
        if last.empty:
            return
        title = "results"
        if last["checkpoint"].notna().any():
            step = last["checkpoint"].max()
            last, title = last[last["checkpoint"] == step], f"checkpoint {step}"
        several = last["eval_language"].nunique() > 1
        table = Table(title=title)
        for col in (["data"] if several else []) + ["metric", "subset", "value", "95% CI", "n", "unit"]:
            table.add_column(col, justify="right" if col in ("value", "n") else "left")
        for _, r in last.iterrows():
            cells = [r["metric"], r["subset"], f"{r['value']:.4g}", f"[{r['ci_low']:.3g}, {r['ci_high']:.3g}]",
                     str(r["count"]), r["unit"]]
            table.add_row(*([str(r["eval_language"])] if several else []), *cells)
        console.print(table)


def ran_message(df) -> str:
    """Which metrics produced rows, and on which heads (per-layer rows come with exit heads)."""
    names = ", ".join(dict.fromkeys(str(m) for m in df["metric"]))
    layers = sorted({int(v) for v in df["layer"].dropna()})
    heads = f"; per-layer rows for exit layers {', '.join(map(str, layers))}" if layers else ""
    return f"metrics: {names}{heads}"
