"""`ilm train`: train one model on one dataset folder (a thin wrapper over ``training.train``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from cli.common import command, console, device_option, precision_option, progress_option, train_precision

# Each plain flag is a shorthand for one TrainConfig field (it wins over --config and
# --set). This table is the one place that says which; --help shows the recipe's
# default (tests/test_cli_train_flags.py checks these against TrainConfig).
CONFIG_FLAGS: dict[str, str] = {
    "data": "data",
    "model": "model",
    "seed": "seed",
    "out": "out",
    "run_dir": "run_dir",
    "steps": "schedule.steps",
    "batch_tokens": "batch.tokens",
    "micro_batch": "batch.micro",
    "lr": "optim.lr",
    "warmup": "schedule.warmup",
    "checkpoint_every": "checkpoint.every",
    "objective": "objective",
    "init_from": "init_from",
    "precision": "precision",
    "device": "device",
    "compile": "compile",
    "trust_pickle": "checkpoint.trust_pickle",
}


def register(app: typer.Typer) -> None:
    @command(app, "train")
    def train_cmd(
        data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder written by `ilm perturb`.", show_default="data"),
        model: Optional[str] = typer.Option(None, "--model", help="Model preset (gpt2, gpt2-nopos, tiny-gpt2, ...).", show_default="gpt2"),
        seed: Optional[int] = typer.Option(None, "--seed", help="Seed: data order, initialisation, dropout.", show_default="0"),
        steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps.", show_default="3000"),
        batch_tokens: Optional[int] = typer.Option(
            None, "--batch-tokens", help="Global batch in tokens (micro-batch × accumulation × GPUs × context).",
            show_default="524288 = 2^19"),
        micro_batch: Optional[int] = typer.Option(
            None, "--micro-batch", help="Sequences per device per forward pass.", show_default="from device memory"),
        lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (AdamW).", show_default="6e-4"),
        warmup: Optional[int] = typer.Option(None, "--warmup", help="Linear warm-up steps.", show_default="10% of --steps"),
        checkpoint_every: Optional[int] = typer.Option(
            None, "--checkpoint-every", help="A checkpoint every N steps (and at the last).", show_default="100"),
        precision: Optional[str] = precision_option(
            None, help="auto, float32 (fp32), bfloat16 (bf16) or float16 (fp16): mixed precision with fp32 weights.",
            show_default="auto: bf16 on CUDA, fp32 on CPU"),
        out: Optional[Path] = typer.Option(None, "--out", help="Runs root: the run goes to OUT/<language>/<model>/seed<N>/.", show_default="runs"),
        run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Exact run folder (instead of the layout under --out).", show_default="none"),
        objective: Optional[str] = typer.Option(
            None, "--objective", help="lm, lm+exits (trunk and exit heads jointly) or exits (trunk frozen).",
            show_default="lm"),
        init_from: Optional[str] = typer.Option(
            None, "--init-from", help="Start from these weights (checkpoint or run folder), e.g. to train exit heads.",
            show_default="none"),
        config: Optional[Path] = typer.Option(None, "--config", help="YAML with TrainConfig fields."),
        overrides: Optional[list[str]] = typer.Option(None, "--set", help="key=value override, e.g. optim.betas=[0.9,0.95] (repeatable)."),
        resume: Optional[Path] = typer.Option(
            None, "--resume", help="Continue this run folder from its newest checkpoint, with its saved config."
        ),
        device: Optional[str] = device_option(None, show_default="auto"),
        compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile.", show_default="on CUDA"),
        trust_pickle: bool = typer.Option(
            False, "--trust-pickle", help="Resume from a legacy pickled trainer_state.pt (it can run code: only your own runs)."
        ),
        show_progress: bool = progress_option(),
    ) -> None:
        """Train a model (the reference recipe by default); rerunning continues from the newest checkpoint.

        Flag defaults are the recipe's; --config, --resume and --set change them, and a flag wins over all three.
        """
        given = dict(locals())  # the flag values, by parameter name (first statement: nothing else yet)
        from impossible_lms.data import resolve_folder
        from impossible_lms.training import train
        from impossible_lms.training.config import resolve_train_config

        # language names work where folder names are meant: --data data/local_shuffle:w=3
        given["data"] = resolve_folder(data) if data is not None else None
        resume = resolve_folder(resume) if resume is not None else None
        given["trust_pickle"] = trust_pickle or None  # off means "not given": --set or the saved config decide
        given["precision"] = train_precision(precision)
        flags = {path: given[name] for name, path in CONFIG_FLAGS.items()}
        cfg = resolve_train_config(config, overrides or [], flags, resume)
        folder = train(cfg, progress=show_progress)
        if os.environ.get("RANK", "0") == "0":  # once under torchrun
            console.print(f"run: {folder}")
