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

The package splits by concern: ``config`` (the YAML), ``plan`` (steps, fingerprints,
estimate), ``stamps`` (what is done), ``stages`` (the stage functions and the runner),
``emit`` (torchrun / Slurm lines).
"""

from impossible_lms.experiment.config import (
    HOP_ONLY_METRICS, CorpusSpec, EstimateSpec, EvalSpec, ExperimentConfig, ReportSpec, Variant, check_names,
    load_experiment, validate, validate_experiment, variant,
)
from impossible_lms.experiment.emit import emit_slurm, emit_torchrun, perturb_command, train_command
from impossible_lms.experiment.plan import (
    ExperimentResult, Plan, Run, Step, _train_config_class, _train_overrides, all_runs, eval_languages, eval_metrics,
    format_plan, model_seeds, plan_experiment, report_dir, results_dir, run_dir, runs_dir, select_runs, slug,
    tokens_per_run, train_settings,
)
from impossible_lms.experiment.stamps import read_stamp, write_stamp
from impossible_lms.experiment.stages import Stages, default_stages, run_experiment

__all__ = [
    "CorpusSpec", "EstimateSpec", "EvalSpec", "ExperimentConfig", "ExperimentResult",
    "HOP_ONLY_METRICS", "Plan", "ReportSpec", "Run", "Stages", "Step", "Variant", "all_runs", "check_names",
    "default_stages", "eval_languages", "model_seeds", "report_dir", "results_dir", "runs_dir", "train_settings",
    "variant",
    "emit_slurm", "emit_torchrun", "eval_metrics", "format_plan", "load_experiment", "perturb_command",
    "plan_experiment", "read_stamp", "run_dir", "run_experiment", "select_runs", "slug",
    "tokens_per_run", "train_command", "validate", "validate_experiment", "write_stamp",
]
