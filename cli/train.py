"""`ilm train`: train one model on one dataset folder (a thin wrapper over ``training.train``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from cli.common import command, console


def register(app: typer.Typer) -> None:
    @command(app, "train")
    def train_cmd(
        data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder written by `ilm perturb`."),
        model: Optional[str] = typer.Option(None, "--model", help="Model preset (gpt2, gpt2-nopos, tiny-gpt2, ...)."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Seed: data order, initialisation, dropout."),
        steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps (default 3000)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Runs root: the run goes to OUT/<language>/<model>/seed<N>/."),
        run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Exact run folder (instead of the layout under --out)."),
        config: Optional[Path] = typer.Option(None, "--config", help="YAML with TrainConfig fields."),
        overrides: Optional[list[str]] = typer.Option(None, "--set", help="key=value override, e.g. optim.lr=3e-4 (repeatable)."),
        resume: Optional[Path] = typer.Option(
            None, "--resume", help="Continue this run folder from its newest checkpoint, with its saved config."
        ),
        device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N."),
        compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile (default: on CUDA)."),
        trust_pickle: bool = typer.Option(
            False, "--trust-pickle", help="Resume from a legacy pickled trainer_state.pt (it can run code: only your own runs)."
        ),
        show_progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
    ) -> None:
        """Train a model (the reference recipe by default); rerunning continues from the newest checkpoint."""
        from impossible_lms.training import train
        from impossible_lms.training.config import resolve_train_config

        flags = {"data": data, "model": model, "seed": seed, "schedule.steps": steps, "out": out,
                 "run_dir": run_dir, "device": device, "compile": compile,
                 "checkpoint.trust_pickle": trust_pickle or None}
        cfg = resolve_train_config(config, overrides or [], flags, resume)
        folder = train(cfg, progress=show_progress)
        if os.environ.get("RANK", "0") == "0":  # once under torchrun
            console.print(f"run: {folder}")
