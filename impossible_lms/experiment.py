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
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from impossible_lms.config import load_config, save_config, to_dict
from impossible_lms.errors import ILMError, did_you_mean
from impossible_lms.io import atomic_write_json, atomic_write_text, fingerprint

# Rough training throughput (tokens/s on one A100/H100-class GPU, bf16, no compile)
# per model preset, for the --dry-run estimate only; an experiment may declare
# measured numbers under `throughput:`.
DEFAULT_THROUGHPUT: dict[str, float] = {
    "gpt2": 150_000.0,
    "gpt2-nopos": 150_000.0,
    "gpt2-rotary": 140_000.0,
    "gpt2-alibi": 140_000.0,
    "backpack-gpt2": 60_000.0,
    "tiny-gpt2": 2_000_000.0,
    "tiny-gpt2-nopos": 2_000_000.0,
    "tiny-gpt2-rotary": 2_000_000.0,
    "tiny-backpack": 1_000_000.0,
}
FALLBACK_THROUGHPUT = 100_000.0
HOP_ONLY_METRICS = ("marker_surprisal", "surprisal_difference")


@dataclass
class CorpusSpec:
    source: str = "synthetic"  # "synthetic", a BabyLM folder, a text file or "hf:org/name"
    options: dict[str, Any] = field(default_factory=dict)  # open_corpus options, e.g. {sentences: 2000}
    tokenizer: str = "gpt2"  # "gpt2", a tokenizer folder, or "fallback" (offline BPE)
    tagger: str = "nltk"  # "nltk", "stanza", "gold" (synthetic/CoNLL-U) or "none"
    workers: int = 1


@dataclass
class EvalSpec:
    metrics: list[str] = field(default_factory=lambda: ["perplexity", "marker_surprisal"])  # hop-only ones skip other families
    checkpoints: str = "all"  # "all" or a range "100-3000:100"
    options: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments for evaluate()


@dataclass
class ReportSpec:
    formats: list[str] = field(default_factory=lambda: ["md", "csv", "tex", "png"])


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    out: Path = Path("runs/experiment")  # everything goes under here: data/ runs/ results/ report/
    languages: list[str] = field(default_factory=list)  # registry names or parametric specs
    models: list[str] = field(default_factory=lambda: ["gpt2"])  # model presets
    seeds: list[int] = field(default_factory=lambda: [0])
    corpus: CorpusSpec = field(default_factory=CorpusSpec)
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields shared by every run
    eval: EvalSpec = field(default_factory=EvalSpec)
    report: ReportSpec = field(default_factory=ReportSpec)
    throughput: dict[str, float] = field(default_factory=dict)  # measured tokens/s per preset (estimate only)
    gpus_per_run: int = 1  # for --emit torchrun/slurm
    # Intra-op CPU threads for in-process training and evaluation; None keeps torch's
    # default. Tiny models on a shared CPU run several times faster with 1 (no spinning).
    torch_threads: int | None = None

    @property
    def data_dir(self) -> Path:
        return self.out / "data"

    @property
    def runs_dir(self) -> Path:
        return self.out / "runs"

    @property
    def results_dir(self) -> Path:
        return self.out / "results"

    @property
    def report_dir(self) -> Path:
        return self.out / "report"

    @property
    def stamp_dir(self) -> Path:
        return self.out / ".ilm" / "stamps"


def load_experiment(path: str | Path, overrides: list[str] | dict | None = None) -> ExperimentConfig:
    """Read and check an experiment YAML (``--set key=value`` overrides on top)."""
    cfg = load_config(ExperimentConfig, path, overrides)
    return validate(cfg)


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    from perturbations import get_language

    if not cfg.languages:
        raise ILMError("experiment lists no languages")
    if not cfg.models:
        raise ILMError("experiment lists no models")
    if not cfg.seeds:
        raise ILMError("experiment lists no seeds")
    cfg.languages = list(dict.fromkeys(get_language(name).name for name in cfg.languages))
    if cfg.gpus_per_run < 1:
        raise ILMError(f"gpus_per_run must be at least 1, got {cfg.gpus_per_run}")
    from impossible_lms.reporting import check_formats

    cfg.report.formats = check_formats(cfg.report.formats)
    return cfg


def check_names(cfg: ExperimentConfig) -> None:
    """Model presets and metric names exist: fail before hours of perturbing, not after.

    Kept out of :func:`load_experiment` because it imports torch (slow for --dry-run).
    """
    from impossible_lms.evaluation import METRICS
    from impossible_lms.models import PRESETS

    for kind, names, known in (("model preset", cfg.models, PRESETS), ("metric", cfg.eval.metrics, METRICS)):
        for name in names:
            if name not in known:
                hint = did_you_mean(name, known)
                raise ILMError(f"unknown {kind} {name!r}{hint}; choose from {', '.join(known)}")


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Run:
    language: str
    model: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.language}/{self.model}/{self.seed}"

    @property
    def slug(self) -> str:
        return f"{slug(self.language)}/{self.model}/seed{self.seed}"


@dataclass
class Step:
    stage: Literal["perturb", "train", "eval", "report"]
    key: str  # language, run key, or "report"
    fingerprint: str
    status: Literal["todo", "done"]
    run: Run | None = None


@dataclass
class Plan:
    config: ExperimentConfig
    runs: list[Run]
    steps: list[Step]
    tokens_per_run: int | None
    gpu_hours: float | None

    def todo(self, stage: str | None = None) -> list[Step]:
        return [s for s in self.steps if s.status == "todo" and (stage is None or s.stage == stage)]


@dataclass
class ExperimentResult:
    plan: Plan
    executed: list[str] = field(default_factory=list)  # "stage:key" for every stage call made
    report_files: list[Path] = field(default_factory=list)


def slug(language: str) -> str:
    """A language as a folder name, as the dataset writer spells it ("local_shuffle_w=3")."""
    from impossible_lms.data import dataset_folder_name

    return dataset_folder_name(language)


def select_runs(cfg: ExperimentConfig, only: list[str] | None = None) -> list[Run]:
    """Every language × model × seed, filtered by ``LANG/MODEL/SEED`` globs (missing or empty parts match all)."""
    runs = [Run(lang, model, int(seed)) for lang in cfg.languages for model in cfg.models for seed in cfg.seeds]
    if not only:
        return runs
    for p in only:
        if p.count("/") > 2:
            raise ILMError(f"--only {p!r}: expected LANG/MODEL/SEED (globs; missing or empty parts match all)")
    patterns = [[part or "*" for part in (p.split("/") + ["*", "*"])[:3]] for p in only]
    chosen = [
        r for r in runs
        if any(
            (fnmatch.fnmatchcase(r.language, lp) or fnmatch.fnmatchcase(slug(r.language), lp))
            and fnmatch.fnmatchcase(r.model, mp)
            and fnmatch.fnmatchcase(str(r.seed), sp)
            for lp, mp, sp in patterns
        )
    ]
    if not chosen:
        raise ILMError(f"--only {' '.join(only)} matches none of the {len(runs)} runs")
    return chosen


def eval_metrics(cfg: ExperimentConfig, language: str) -> list[str]:
    from perturbations import get_language

    hop = get_language(language).family == "hop"
    return [m for m in cfg.eval.metrics if hop or m not in HOP_ONLY_METRICS]


def plan_experiment(cfg: ExperimentConfig, only: list[str] | None = None) -> Plan:
    """What would run: every step with its fingerprint and whether its stamp says it is done."""
    runs = select_runs(cfg, only)
    steps: list[Step] = []
    corpus = to_dict(cfg.corpus)
    corpus.pop("workers")  # how many processes does not change the data
    perturb_fp: dict[str, str] = {}
    for language in dict.fromkeys(r.language for r in runs):
        fp = fingerprint("perturb", language, corpus)
        perturb_fp[language] = fp
        steps.append(Step("perturb", language, fp, _status(cfg, "perturb", language, fp)))
    eval_fps = []
    for run in runs:
        upstream = [s for s in steps if s.stage == "perturb" and s.key == run.language]
        train_fp = fingerprint("train", perturb_fp[run.language], run.model, run.seed, cfg.train)
        train = Step("train", run.key, train_fp, _status(cfg, "train", run.key, train_fp, upstream), run)
        eval_fp = fingerprint("eval", train_fp, eval_metrics(cfg, run.language), cfg.eval.checkpoints, cfg.eval.options)
        steps += [train, Step("eval", run.key, eval_fp, _status(cfg, "eval", run.key, eval_fp, [train]), run)]
        eval_fps.append(eval_fp)
    report_fp = fingerprint("report", sorted(eval_fps), cfg.report.formats)
    evals = [s for s in steps if s.stage == "eval"]
    steps.append(Step("report", "report", report_fp, _status(cfg, "report", "report", report_fp, evals)))
    tokens = tokens_per_run(cfg)
    hours = None
    if tokens is not None:
        hours = sum(tokens / throughput(cfg, r.model) for r in runs) / 3600.0
    return Plan(cfg, runs, steps, tokens, hours)


def tokens_per_run(cfg: ExperimentConfig) -> int | None:
    """Training tokens per run from the TrainConfig the runs will use (steps × global batch)."""
    TrainConfig = _train_config_class()
    if TrainConfig is None:
        return None
    tc = load_config(TrainConfig, overrides=_train_overrides(cfg))
    batch = tc.batch.tokens
    if tc.batch.sequences:
        context = int(tc.model_overrides.get("n_positions", tc.model_overrides.get("context", 1024)))
        batch = tc.batch.sequences * context
    return int(tc.schedule.steps * batch)


def _train_config_class():
    try:
        from impossible_lms.training import TrainConfig
    except ImportError:
        try:
            from impossible_lms.training.config import TrainConfig
        except ImportError:
            return None
    return TrainConfig


def throughput(cfg: ExperimentConfig, model: str) -> float:
    return float(cfg.throughput.get(model, DEFAULT_THROUGHPUT.get(model, FALLBACK_THROUGHPUT)))


def format_plan(plan: Plan) -> str:
    """The --dry-run text: one line per step, then totals."""
    cfg = plan.config
    lines = [f"experiment {cfg.name}: {len(plan.runs)} run(s) under {cfg.out}"]
    for step in plan.steps:
        mark = "done" if step.status == "done" else "todo"
        lines.append(f"  [{mark}] {step.stage:<7} {step.key}")
    todo = {s: len(plan.todo(s)) for s in ("perturb", "train", "eval", "report")}
    lines.append("to do: " + ", ".join(f"{n} {s}" for s, n in todo.items()))
    if plan.gpu_hours is not None:
        rates = ", ".join(f"{m} {throughput(cfg, m):,.0f} tok/s" for m in dict.fromkeys(r.model for r in plan.runs))
        lines.append(
            f"estimate: {plan.tokens_per_run:,} tokens per run, {plan.gpu_hours:.2f} GPU-hours "
            f"for all {len(plan.runs)} runs (training only; at {rates})"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- stamps


def _stamp_path(cfg: ExperimentConfig, stage: str, key: str) -> Path:
    return cfg.stamp_dir / stage / f"{fingerprint(key)}.json"


def read_stamp(cfg: ExperimentConfig, stage: str, key: str) -> dict | None:
    path = _stamp_path(cfg, stage, key)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _status(cfg: ExperimentConfig, stage: str, key: str, fp: str, upstream: list[Step] = ()) -> str:
    if any(s.status == "todo" for s in upstream):
        return "todo"
    stamp = read_stamp(cfg, stage, key)
    if not stamp or stamp.get("fingerprint") != fp:
        return "todo"
    # The cheap check that the outputs are still there (someone may have deleted a folder).
    if not all(Path(p).exists() for p in stamp.get("outputs", [])):
        return "todo"
    return "done"


def write_stamp(cfg: ExperimentConfig, step: Step, outputs: list[Path]) -> None:
    atomic_write_json(
        _stamp_path(cfg, step.stage, step.key),
        {"stage": step.stage, "key": step.key, "fingerprint": step.fingerprint, "outputs": [str(p) for p in outputs]},
    )


# ---------------------------------------------------------------- the stages


@dataclass
class Stages:
    """The four stage functions; each returns the paths whose existence means "done"."""

    perturb: Callable[[ExperimentConfig, list[str]], list[Path]]
    train: Callable[[ExperimentConfig, Run], list[Path]]
    evaluate: Callable[[ExperimentConfig, Run], list[Path]]
    report: Callable[[ExperimentConfig], list[Path]]


def _train_overrides(cfg: ExperimentConfig, run: Run | None = None) -> dict[str, Any]:
    base = dict(cfg.train)
    if run is not None:
        base.update(data=str(cfg.data_dir / slug(run.language)), model=run.model, seed=run.seed,
                    out=str(cfg.runs_dir), run_dir=str(run_dir(cfg, run)))
    return base


def run_dir(cfg: ExperimentConfig, run: Run) -> Path:
    return cfg.runs_dir / run.slug


def _perturb(cfg: ExperimentConfig, languages: list[str]) -> list[Path]:
    from impossible_lms.perturb import perturb_corpus

    perturb_corpus(languages, cfg.corpus.source, cfg.data_dir, tokenizer=cfg.corpus.tokenizer,
                   tagger=cfg.corpus.tagger, workers=cfg.corpus.workers, corpus_options=cfg.corpus.options or None)
    return [cfg.data_dir / slug(lang) / "manifest.json" for lang in languages]


def _train(cfg: ExperimentConfig, run: Run) -> list[Path]:
    from impossible_lms.training import train

    TrainConfig = _train_config_class()
    folder = train(load_config(TrainConfig, overrides=_train_overrides(cfg, run)))
    return [Path(folder) / "run.json"]


def _evaluate(cfg: ExperimentConfig, run: Run) -> list[Path]:
    from impossible_lms.evaluation import evaluate

    evaluate(subject=run_dir(cfg, run), data=cfg.data_dir / slug(run.language), checkpoints=cfg.eval.checkpoints,
             metrics=eval_metrics(cfg, run.language), results=cfg.results_dir, **cfg.eval.options)
    return [cfg.results_dir]


def _report(cfg: ExperimentConfig) -> list[Path]:
    from impossible_lms.evaluation import load_results
    from impossible_lms.reporting import make_report

    return make_report(load_results([cfg.results_dir]), cfg.report_dir, cfg.report.formats)


def default_stages() -> Stages:
    return Stages(perturb=_perturb, train=_train, evaluate=_evaluate, report=_report)


# ---------------------------------------------------------------- running


def run_experiment(
    cfg: ExperimentConfig,
    dry_run: bool = False,
    only: list[str] | None = None,
    stages: Stages | None = None,
    log: Callable[[str], None] = print,
) -> ExperimentResult:
    """Walk the plan, calling each stage whose stamp is missing or stale; ``dry_run`` only plans."""
    plan = plan_experiment(cfg, only)
    result = ExperimentResult(plan)
    if dry_run:
        return result
    if stages is None:
        check_names(cfg)
        stages = default_stages()
    save_config(cfg, cfg.out / "experiment.yaml")
    if cfg.torch_threads:
        import torch

        torch.set_num_threads(cfg.torch_threads)

    perturb = plan.todo("perturb")
    if perturb:
        languages = [s.key for s in perturb]
        log(f"perturb: {', '.join(languages)}")
        outputs = stages.perturb(cfg, languages)
        result.executed.append("perturb:" + ",".join(languages))
        for step in perturb:
            write_stamp(cfg, step, [p for p in outputs if slug(step.key) in p.parts] or outputs)
    for step in plan.steps:
        if step.status == "done" or step.stage not in ("train", "eval"):
            continue
        log(f"{step.stage}: {step.key}")
        fn = stages.train if step.stage == "train" else stages.evaluate
        outputs = fn(cfg, step.run)
        result.executed.append(f"{step.stage}:{step.key}")
        write_stamp(cfg, step, outputs)
    report = plan.todo("report")
    if report:
        log(f"report: {cfg.report_dir}")
        result.report_files = stages.report(cfg)
        result.executed.append("report")
        write_stamp(cfg, report[0], result.report_files)
    elif not result.executed:
        log("nothing to do: every step is done and matches the experiment")
    return result


# ---------------------------------------------------------------- emit


def train_command(cfg: ExperimentConfig, run: Run) -> list[str]:
    """``ilm train`` arguments for one run, the experiment's train settings as --set overrides."""
    args = ["train", "--data", str(cfg.data_dir / slug(run.language)), "--model", run.model,
            "--seed", str(run.seed), "--out", str(cfg.runs_dir)]
    for key, value in _flatten(cfg.train):
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
    path = Path(path or cfg.out / "slurm_train.sh")
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
    return shlex.join(["ilm", "perturb", *cfg.languages, "--corpus", cfg.corpus.source, *options,
                       "--out", str(cfg.data_dir), "--tokenizer", cfg.corpus.tokenizer, "--tagger", cfg.corpus.tagger,
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
