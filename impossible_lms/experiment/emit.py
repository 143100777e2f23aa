"""Training commands for other launchers: one torchrun line per run, or a Slurm array script."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from impossible_lms.experiment.config import ExperimentConfig
from impossible_lms.experiment.layout import Run, layout, train_overrides
from impossible_lms.experiment.plan import eval_languages, select_runs
from impossible_lms.io import atomic_write_text


def train_command(cfg: ExperimentConfig, run: Run) -> list[str]:
    """``ilm train`` arguments for one run, the experiment's train settings as --set overrides.

    A variant's run gets its merged train settings and its own folder (``run_dir``).
    """
    settings = train_overrides(cfg, run)  # the TrainConfig `ilm run` itself would build
    args = ["train", *(a for flag in ("data", "model", "seed", "out") for a in (f"--{flag}", str(settings.pop(flag))))]
    if not run.variant:  # `ilm train` puts a run at OUT/<language>/<model>/seed<N> by itself
        settings.pop("run_dir")
    for key, value in _flatten(settings):
        args += ["--set", f"{key}={_yaml_scalar(value)}"]
    return args


def emit_torchrun(cfg: ExperimentConfig, only: list[str] | None = None) -> list[str]:
    """One ``torchrun ... ilm train ...`` line per selected run."""
    import shlex

    prefix = ["torchrun", "--standalone", f"--nproc_per_node={cfg.gpus_per_run}", "-m", "cli.main"]
    return [shlex.join(prefix + train_command(cfg, run)) for run in select_runs(cfg, only)]


def emit_slurm(cfg: ExperimentConfig, only: list[str] | None = None, path: Path | None = None) -> Path:
    """A Slurm array script, one array task per run; returns its path (default OUT/slurm_train.sh)."""
    lines = emit_torchrun(cfg, only)
    path = Path(path or layout(cfg).slurm_script)
    script = "\n".join([
        "#!/bin/bash",
        f"#SBATCH --job-name=ilm-{cfg.name}",
        f"#SBATCH --array=0-{len(lines) - 1}",
        f"#SBATCH --gpus-per-task={cfg.gpus_per_run}",
        "#SBATCH --output=%x-%A_%a.out",
        "# The datasets must exist first, e.g.:",
        f"#   {perturb_command(cfg)}",
        "set -euo pipefail",
        "RUNS=(",
        *(f"  {json.dumps(line)}" for line in lines),
        ")",
        'eval "${RUNS[$SLURM_ARRAY_TASK_ID]}"',
        "",
    ])
    atomic_write_text(path, script)
    path.chmod(0o755)
    return path


def perturb_command(cfg: ExperimentConfig) -> str:
    import shlex

    options = [a for k, v in cfg.corpus.options.items() for a in ("--corpus-option", f"{k}={_yaml_scalar(v)}")]
    return shlex.join(["ilm", "perturb", *dict.fromkeys(y for x in cfg.languages for y in eval_languages(cfg, x)), "--corpus", cfg.corpus.source, *options,
                       "--out", str(layout(cfg).data_dir), "--tokenizer", cfg.corpus.tokenizer, "--tagger", cfg.corpus.tagger,
                       "--workers", str(cfg.corpus.workers)])


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out += _flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _yaml_scalar(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip()
