"""The plan: every step (perturb, train, eval, report) with its fingerprint and status, and the estimate."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from impossible_lms.config import to_dict
from impossible_lms.errors import ILMError
from impossible_lms.experiment.analyses import analysis_steps
from impossible_lms.experiment.config import ExperimentConfig, variant
from impossible_lms.experiment.layout import Run, slug, train_config, train_settings
from impossible_lms.experiment.stamps import status
from impossible_lms.io import fingerprint


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

    def todo(self, stage: str | None = None) -> list[Step]:
        return [s for s in self.steps if s.status == "todo" and (stage is None or s.stage == stage)]


@dataclass
class ExperimentResult:
    plan: Plan
    executed: list[str] = field(default_factory=list)  # "stage:key" for every stage call made
    report_files: list[Path] = field(default_factory=list)


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

    from impossible_lms.evaluation.metrics import MARKER_METRICS

    marked = get_language(language).marks_agreement
    return [m for m in cfg.eval.metrics if marked or m not in MARKER_METRICS]


def eval_languages(cfg: ExperimentConfig, language: str) -> list[str]:
    """The test data a model of ``language`` is scored on: its own, then its ``eval.cross`` ones."""
    return [language, *cfg.eval.cross.get(language, [])]


def plan_experiment(cfg: ExperimentConfig, only: list[str] | None = None) -> Plan:
    """What would run: every step with its fingerprint and whether its stamp says it is done."""
    runs = select_runs(cfg, only)
    steps: list[Step] = []
    corpus = to_dict(cfg.corpus)
    corpus.pop("workers")  # how many processes does not change the data
    if corpus.get("fallback_vocab") is None:  # unset: the default, as before the field existed
        corpus.pop("fallback_vocab", None)
    perturb_fp: dict[str, str] = {}
    for language in dict.fromkeys(y for r in runs for y in eval_languages(cfg, r.language)):
        fp = fingerprint("perturb", language, corpus)
        perturb_fp[language] = fp
        steps.append(Step("perturb", language, fp, status(cfg, "perturb", language, fp)))
    perturbs = {s.key: s for s in steps}

    def train_fingerprint(run: Run) -> str:
        data = perturb_fp.get(run.language) or fingerprint("perturb", run.language, corpus)
        return fingerprint("train", data, run.model, run.seed, train_settings(cfg, run.variant))

    trains: dict[Run, Step] = {}
    reading: list[tuple[Step, list[Run]]] = []  # analyses that read other runs' models: after every run's steps
    for run in runs:
        train_fp = train_fingerprint(run)
        train = Step("train", run.key, train_fp, status(cfg, "train", run.key, train_fp, [perturbs[run.language]]), run)
        trains[run] = train
        cross = eval_languages(cfg, run.language)[1:]
        # The cross data's own perturb fingerprint joins only when there is some: stamps of
        # experiments without eval.cross stay valid.
        extra = [[perturb_fp[y] for y in cross]] if cross else []
        eval_fp = fingerprint("eval", train_fp, eval_metrics(cfg, run.language), cfg.eval.checkpoints,
                              cfg.eval.options, *extra)
        upstream = [train, *(perturbs[y] for y in cross)]
        steps += [train, Step("eval", run.key, eval_fp, status(cfg, "eval", run.key, eval_fp, upstream), run)]
        for analysis in analysis_steps(cfg, run.language):  # experiment/analyses.py
            others = [r for r in analysis.reads(cfg, run) if r != run]
            # the other runs' training joins the fingerprint only when there is some: stamps of
            # analyses that read no other run stay valid
            extra = [[train_fingerprint(r) for r in others]] if others else []
            fp = fingerprint(analysis.name, train_fp, cfg.analyses[analysis.name], *extra)
            if others:
                reading.append((Step(analysis.name, run.key, fp, "todo", run), others))
            else:
                steps.append(Step(analysis.name, run.key, fp, status(cfg, analysis.name, run.key, fp, [train]), run))
    for step, others in reading:  # their status waits for the other runs' train steps
        upstream = [trains[step.run], *(trains[r] for r in others if r in trains)]
        step.status = status(cfg, step.stage, step.key, step.fingerprint, upstream)
        steps.append(step)
    # One report per variant (the recipe's first): an ablation never averages with the recipe.
    for name in dict.fromkeys(r.variant for r in runs):
        evals = [s for s in steps if s.stage not in ("perturb", "train", "report") and s.run.variant == name]
        key = f"report@{name}" if name else "report"
        report_fp = fingerprint("report", sorted(s.fingerprint for s in evals), cfg.report.formats)
        steps.append(Step("report", key, report_fp, status(cfg, "report", key, report_fp, evals), Run("", "", 0, name)))
    return Plan(cfg, runs, steps)


def tokens_per_run(cfg: ExperimentConfig, variant_name: str = "") -> int:
    """Training tokens per run (steps × global batch) of the recipe or a variant; a batch given in
    sequences counts each at the context of the experiment's first model preset (its own, not 1024)."""
    try:
        tc = train_config(cfg, variant=variant_name)
    except ILMError as e:  # the configs check their numbers when built: say which section failed
        raise ILMError(f"train: {e}") from None
    batch = tc.batch.tokens
    if tc.batch.sequences:
        from impossible_lms.training.model import model_config

        models = (variant(cfg, variant_name).models if variant_name else []) or cfg.models
        batch = tc.batch.sequences * int(model_config(models[0], overrides=tc.model_overrides).n_positions)
    return int(tc.schedule.steps * batch)


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
