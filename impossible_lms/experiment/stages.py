"""The stage functions behind the :class:`Stages` seam, and the walk that calls them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from impossible_lms.config import save_config
from impossible_lms.experiment.config import ExperimentConfig, check_names, validate_experiment
from impossible_lms.experiment.layout import Run, layout, slug, train_config
from impossible_lms.experiment.plan import ExperimentResult, eval_languages, eval_metrics, plan_experiment
from impossible_lms.experiment.stamps import write_stamp


@dataclass
class Stages:
    """The four stage functions; each returns the paths whose existence means "done"."""

    perturb: Callable[[ExperimentConfig, list[str]], list[Path]]
    train: Callable[[ExperimentConfig, Run], list[Path]]
    evaluate: Callable[[ExperimentConfig, Run], list[Path]]
    report: Callable[[ExperimentConfig, str], list[Path]]  # (cfg, variant name; "" = the recipe)
    # analysis name -> fn(cfg, run, options); None: the registry's (experiment/analyses.py)
    analyses: dict[str, Callable[[ExperimentConfig, Run, dict], list[Path]]] | None = None

    def analysis(self, name: str) -> Callable[[ExperimentConfig, Run, dict], list[Path]]:
        if self.analyses is not None and name in self.analyses:
            return self.analyses[name]
        from impossible_lms.experiment.analyses import ANALYSES

        return ANALYSES[name].run


def perturb_languages(cfg: ExperimentConfig, languages: list[str]) -> list[Path]:
    """The experiment's corpus spec applied to ``languages``: the one call every stage perturbs with."""
    from impossible_lms.perturb import perturb_corpus

    spec, where = cfg.corpus, layout(cfg)
    extra = {"fallback_vocab": spec.fallback_vocab} if spec.fallback_vocab is not None else {}
    return perturb_corpus(languages, spec.source, where.data_dir, tokenizer=spec.tokenizer, tagger=spec.tagger,
                          workers=spec.workers, corpus_options=spec.options or None, **extra)


def _perturb(cfg: ExperimentConfig, languages: list[str]) -> list[Path]:
    perturb_languages(cfg, languages)
    return [layout(cfg).data(lang) / "manifest.json" for lang in languages]


def _train(cfg: ExperimentConfig, run: Run) -> list[Path]:
    from impossible_lms.training import train

    folder = train(train_config(cfg, run))
    return [Path(folder) / "run.json"]


def _evaluate(cfg: ExperimentConfig, run: Run) -> list[Path]:
    from impossible_lms.evaluation import evaluate

    # Own test data first, then the eval.cross languages' (rows tagged eval_language=Y).
    where = layout(cfg)
    data = [where.data(y) for y in eval_languages(cfg, run.language)]
    results = where.results(run.variant)
    evaluate(subject=where.run(run), data=data if len(data) > 1 else data[0], checkpoints=cfg.eval.checkpoints,
             metrics=eval_metrics(cfg, run.language), results=results,
             **{"show_progress": True, **cfg.eval.options})
    return [results]


def _report(cfg: ExperimentConfig, variant: str = "") -> list[Path]:
    from impossible_lms.evaluation import load_results
    from impossible_lms.reporting import make_report

    where = layout(cfg)
    return make_report(load_results([where.results(variant)]), where.report(variant), cfg.report.formats)


def default_stages() -> Stages:
    return Stages(perturb=_perturb, train=_train, evaluate=_evaluate, report=_report)


def run_experiment(
    cfg: ExperimentConfig,
    dry_run: bool = False,
    only: list[str] | None = None,
    stages: Stages | None = None,
    log: Callable[[str], None] = print,
) -> ExperimentResult:
    """Walk the plan, calling each stage whose stamp is missing or stale; ``dry_run`` only plans."""
    validate_experiment(cfg)  # the whole experiment, before the first stage (and before a dry run's plan)
    plan = plan_experiment(cfg, only)
    result = ExperimentResult(plan)
    if dry_run:
        return result
    if stages is None:
        check_names(cfg)
        stages = default_stages()
    save_config(cfg, layout(cfg).experiment_file)
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
        if step.status == "done" or step.stage in ("perturb", "report"):
            continue
        log(f"{step.stage}: {step.key}")
        if step.stage in ("train", "eval"):
            outputs = (stages.train if step.stage == "train" else stages.evaluate)(cfg, step.run)
        else:
            outputs = stages.analysis(step.stage)(cfg, step.run, cfg.analyses[step.stage])
        result.executed.append(f"{step.stage}:{step.key}")
        write_stamp(cfg, step, outputs)
    report = plan.todo("report")
    for step in report:
        name = step.run.variant if step.run else ""
        log(f"report: {layout(cfg).report(name)}")
        files = stages.report(cfg, name)
        result.report_files += files
        result.executed.append(step.key)
        write_stamp(cfg, step, files)
    if not report and not result.executed:
        log("nothing to do: every step is done and matches the experiment")
    return result
