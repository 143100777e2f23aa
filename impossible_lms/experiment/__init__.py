"""One experiment from one YAML file: perturb → train (languages × models × seeds) → eval → report.

    >>> cfg = load_experiment("experiments/demo.yaml", ["seeds=[0]"])
    >>> result = run_experiment(cfg)            # resumable; result.executed lists what ran
    >>> print(format_plan(plan_experiment(cfg)))   # what `--dry-run` prints

Each stage keeps its own skip logic (training resumes from its last checkpoint,
evaluation skips scored checkpoints); on top of that the runner keeps a stamp per
finished step (``OUT/.ilm/stamps``) holding the fingerprint of everything that
defines it, so a rerun with nothing changed calls no stage at all. A step whose
stamp is missing or differs runs, and so does everything downstream of it.

The stage functions sit behind :class:`Stages` so tests (and other backends)
can inject their own.

The package splits by concern: ``config`` (the YAML), ``layout`` (every path of a
study and the one builder of a run's TrainConfig), ``plan`` (steps, fingerprints),
``stamps`` (what is done), ``analyses`` (the analysis stages), ``stages`` (the stage
functions and the runner), ``emit`` (torchrun / Slurm lines). Imports run one way:
layout ← stamps ← analyses ← plan ← stages/emit; ``config`` reaches the others only
inside its check functions.
"""

from impossible_lms.experiment.config import (
    CorpusSpec, EstimateSpec, EvalSpec, ExperimentConfig, ReportSpec, Variant, check_names, load_experiment,
    validate, validate_experiment, variant,
)
from impossible_lms.experiment.emit import emit_slurm, emit_torchrun, perturb_command, train_command
from impossible_lms.experiment.layout import Layout, Run, layout, train_config, train_overrides, train_settings
from impossible_lms.experiment.plan import (
    ExperimentResult, Plan, Step, all_runs, eval_languages, eval_metrics, format_plan, model_seeds, plan_experiment,
    select_runs, tokens_per_run,
)
from impossible_lms.experiment.stamps import read_stamp, stamp_path, write_stamp
from impossible_lms.experiment.stages import Stages, default_stages, run_experiment

__all__ = [
    "CorpusSpec", "EstimateSpec", "EvalSpec", "ExperimentConfig", "ExperimentResult", "Layout", "Plan",
    "ReportSpec", "Run", "Stages", "Step", "Variant", "all_runs", "check_names", "default_stages", "emit_slurm",
    "emit_torchrun", "eval_languages", "eval_metrics", "format_plan", "layout", "load_experiment", "model_seeds",
    "perturb_command", "plan_experiment", "read_stamp", "run_experiment", "stamp_path", "select_runs", "tokens_per_run",
    "train_command", "train_config", "train_overrides", "train_settings", "validate", "validate_experiment",
    "variant", "write_stamp",
]
