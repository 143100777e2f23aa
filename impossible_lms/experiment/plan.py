"""The plan: every step (perturb, train, eval, report) with its fingerprint and status, and the estimate."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from impossible_lms.config import load_config, merge, to_dict
from impossible_lms.errors import ILMError
from impossible_lms.experiment.analyses import analysis_steps
from impossible_lms.experiment.config import HOP_ONLY_METRICS, ExperimentConfig, variant
from impossible_lms.experiment.stamps import _status
from impossible_lms.io import fingerprint



@dataclass(frozen=True)
class Run:
    language: str
    model: str
    seed: int
    variant: str = ""  # a named training variant (ablation); "" = the experiment's recipe

    @property
    def label(self) -> str:
        """The model part of the key: ``gpt2``, or ``gpt2@warmup1000`` for a variant's run."""
        return f"{self.model}@{self.variant}" if self.variant else self.model

    @property
    def key(self) -> str:
        return f"{self.language}/{self.label}/{self.seed}"

    @property
    def slug(self) -> str:
        """The run folder under its runs/ (a variant's runs/ is OUT/variants/<name>/runs)."""
        return f"{slug(self.language)}/{self.model}/seed{self.seed}"


@dataclass
class Step:
    stage: str  # "perturb", "train", "eval", an analysis name (experiment/analyses.py), "report"
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


def model_seeds(cfg: ExperimentConfig, model: str) -> list[int]:
    """The seeds ``model`` trains with: its ``model_seeds`` entry, else ``seeds``."""
    return [int(s) for s in cfg.model_seeds.get(model) or cfg.seeds]


def all_runs(cfg: ExperimentConfig) -> list[Run]:
    """The recipe's runs (language × model × that model's seeds), then each variant's."""
    runs = [Run(lang, model, seed) for lang in cfg.languages for model in cfg.models for seed in model_seeds(cfg, model)]
    for name in cfg.variants:
        v = variant(cfg, name)
        runs += [Run(lang, model, seed, name) for lang in v.languages or cfg.languages for model in v.models or cfg.models
                 for seed in v.seeds or model_seeds(cfg, model)]
    return runs


def select_runs(cfg: ExperimentConfig, only: list[str] | None = None) -> list[Run]:
    """Every run, filtered by ``LANG/MODEL/SEED`` globs (missing or empty parts match all).

    MODEL matches the preset of the recipe's runs and ``preset@variant`` of a variant's.
    """
    runs = all_runs(cfg)
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
            and fnmatch.fnmatchcase(r.label, mp)
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


def eval_languages(cfg: ExperimentConfig, language: str) -> list[str]:
    """The test data a model of ``language`` is scored on: its own, then its ``eval.cross`` ones."""
    return [language, *cfg.eval.cross.get(language, [])]


def plan_experiment(cfg: ExperimentConfig, only: list[str] | None = None) -> Plan:
    """What would run: every step with its fingerprint and whether its stamp says it is done."""
    runs = select_runs(cfg, only)
    steps: list[Step] = []
    corpus = to_dict(cfg.corpus)
    corpus.pop("workers")  # how many processes does not change the data
    perturb_fp: dict[str, str] = {}
    for language in dict.fromkeys(y for r in runs for y in eval_languages(cfg, r.language)):
        fp = fingerprint("perturb", language, corpus)
        perturb_fp[language] = fp
        steps.append(Step("perturb", language, fp, _status(cfg, "perturb", language, fp)))
    perturbs = {s.key: s for s in steps}
    for run in runs:
        train_fp = fingerprint("train", perturb_fp[run.language], run.model, run.seed, train_settings(cfg, run.variant))
        train = Step("train", run.key, train_fp, _status(cfg, "train", run.key, train_fp, [perturbs[run.language]]), run)
        cross = eval_languages(cfg, run.language)[1:]
        # The cross data's own perturb fingerprint joins only when there is some: stamps of
        # experiments without eval.cross stay valid.
        extra = [[perturb_fp[y] for y in cross]] if cross else []
        eval_fp = fingerprint("eval", train_fp, eval_metrics(cfg, run.language), cfg.eval.checkpoints,
                              cfg.eval.options, *extra)
        upstream = [train, *(perturbs[y] for y in cross)]
        steps += [train, Step("eval", run.key, eval_fp, _status(cfg, "eval", run.key, eval_fp, upstream), run)]
        for analysis in analysis_steps(cfg, run.language):  # experiment/analyses.py
            fp = fingerprint(analysis.name, train_fp, cfg.analyses[analysis.name])
            steps.append(Step(analysis.name, run.key, fp, _status(cfg, analysis.name, run.key, fp, [train]), run))
    # One report per variant (the recipe's first): an ablation never averages with the recipe.
    for name in dict.fromkeys(r.variant for r in runs):
        evals = [s for s in steps if s.stage not in ("perturb", "train", "report") and s.run.variant == name]
        key = f"report@{name}" if name else "report"
        report_fp = fingerprint("report", sorted(s.fingerprint for s in evals), cfg.report.formats)
        steps.append(Step("report", key, report_fp, _status(cfg, "report", key, report_fp, evals), Run("", "", 0, name)))
    return Plan(cfg, runs, steps, tokens_per_run(cfg))


def tokens_per_run(cfg: ExperimentConfig) -> int | None:
    """Training tokens per run from the TrainConfig the runs will use (steps × global batch)."""
    TrainConfig = _train_config_class()
    if TrainConfig is None:
        return None
    try:
        tc = load_config(TrainConfig, overrides=_train_overrides(cfg))
    except ILMError as e:  # the configs check their numbers when built: say which section failed
        raise ILMError(f"train: {e}") from None
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


def format_plan(plan: Plan, estimate=None) -> str:
    """The --dry-run text: one line per step, then totals (and ``estimate``'s lines, with their basis)."""
    cfg = plan.config
    lines = [f"experiment {cfg.name}: {len(plan.runs)} run(s) under {cfg.out}"]
    for step in plan.steps:
        mark = "done" if step.status == "done" else "todo"
        cross = eval_languages(cfg, step.run.language)[1:] if step.stage == "eval" else []
        also = f"  (+ scored on {', '.join(cross)})" if cross else ""
        lines.append(f"  [{mark}] {step.stage:<7} {step.key}{also}")
    todo = {s: len(plan.todo(s)) for s in ("perturb", "train", "eval", *cfg.analyses, "report")}
    lines.append("to do: " + ", ".join(f"{n} {s}" for s, n in todo.items()))
    if estimate is not None:
        lines += estimate.lines()
    return "\n".join(lines)


def train_settings(cfg: ExperimentConfig, name: str = "") -> dict[str, Any]:
    """The TrainConfig overrides of the recipe, or of variant ``name`` (its `train` merged on top)."""
    return merge(cfg.train, variant(cfg, name).train) if name else dict(cfg.train)


def _train_overrides(cfg: ExperimentConfig, run: Run | None = None) -> dict[str, Any]:
    base = train_settings(cfg, run.variant if run else "")
    if run is not None:
        base.update(data=str(cfg.data_dir / slug(run.language)), model=run.model, seed=run.seed,
                    out=str(runs_dir(cfg, run.variant)), run_dir=str(run_dir(cfg, run)))
    return base


def runs_dir(cfg: ExperimentConfig, variant_name: str = "") -> Path:
    return cfg.variant_dir(variant_name) / "runs"


def results_dir(cfg: ExperimentConfig, variant_name: str = "") -> Path:
    return cfg.variant_dir(variant_name) / "results"


def report_dir(cfg: ExperimentConfig, variant_name: str = "") -> Path:
    return cfg.variant_dir(variant_name) / "report"


def run_dir(cfg: ExperimentConfig, run: Run) -> Path:
    return runs_dir(cfg, run.variant) / run.slug
