"""The analysis stages of ``ilm run``: one registry, one entry per analysis.

An experiment lists the analyses it runs under ``analyses:`` with their
options (keyword arguments of the analysis function)::

    analyses:
      intervene: {checkpoints: all}

Each entry says which languages it applies to and how to run it on one run;
the planner adds one step per (analysis, run) after that run's training (its
fingerprint covers the training step and the options), the runner calls it,
and the report step depends on it. A new analysis registers one
:class:`AnalysisStage` here.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from impossible_lms.errors import ILMError, did_you_mean
from impossible_lms.experiment.layout import Run, layout

if TYPE_CHECKING:
    from impossible_lms.experiment.config import ExperimentConfig


def _no_other_runs(cfg: "ExperimentConfig", run: Run) -> list[Run]:
    return []


@dataclass(frozen=True)
class AnalysisStage:
    name: str
    applies: Callable[[str], bool]  # language name -> does this analysis make sense for its runs
    run: Callable[["ExperimentConfig", Run, dict], list[Path]]  # -> paths whose existence means done
    # the other runs of the study whose trained models it reads (production: the control run that
    # judges); the planner runs it after them and refingerprints it when they retrain
    reads: Callable[["ExperimentConfig", Run], list[Run]] = _no_other_runs


ANALYSES: dict[str, AnalysisStage] = {}


def register_analysis(stage: AnalysisStage) -> AnalysisStage:
    ANALYSES[stage.name] = stage
    return stage


def check_analyses(names) -> None:
    for name in names:
        if name not in ANALYSES:
            raise ILMError(f"unknown analysis {name!r}{did_you_mean(name, ANALYSES)}; choose from {', '.join(ANALYSES)}")


def analysis_steps(cfg: "ExperimentConfig", language: str) -> list[AnalysisStage]:
    """The configured analyses that apply to ``language``, in the experiment's order."""
    check_analyses(cfg.analyses)
    return [ANALYSES[name] for name in cfg.analyses if ANALYSES[name].applies(language)]


def _marks_agreement(language: str) -> bool:
    from perturbations import get_language

    return get_language(language).marks_agreement


def _ensure_perturbed(cfg: "ExperimentConfig", languages: list[str]) -> None:
    """Perturb the languages an analysis reads but the experiment does not train (their data folder absent)."""
    where = layout(cfg)
    needed = [lang for lang in languages if not (where.data(lang) / "manifest.json").is_file()]
    if needed:
        from impossible_lms.experiment.stages import perturb_languages

        perturb_languages(cfg, needed)


def _check_options(stage: str, function: Callable, options: dict, fixed=("subject", "data", "results"),
                   extra=()) -> None:
    """An unknown option is one line naming those the analysis takes (not a TypeError after training)."""
    takes = set(inspect.signature(function).parameters) - set(fixed) | set(extra)
    for name in options:
        if name not in takes:
            raise ILMError(f"analyses.{stage}: unknown option {name!r}{did_you_mean(name, takes)}; "
                           f"it takes {', '.join(sorted(takes))}")


def _any_language(language: str) -> bool:
    return True


def _intervene(cfg: "ExperimentConfig", run: Run, options: dict) -> list[Path]:
    """Agreement pairs from the experiment's no_hop and word_hop data (perturbed here when the
    experiment does not train them), then IIA for every checkpoint of the run."""
    from impossible_lms.analysis.intervene import intervene

    where = layout(cfg)
    _ensure_perturbed(cfg, ["no_hop", "word_hop"])
    results = where.results(run.variant)  # a variant's rows stay with the variant
    intervene(where.run(run), [where.data("no_hop"), where.data("word_hop")], results=results,
              **{"show_progress": True, **options})
    return [results]


register_analysis(AnalysisStage("intervene", _marks_agreement, _intervene))


def _has_word_analyses(language: str) -> bool:
    from perturbations import get_language

    return get_language(language).word_analyses is not None


def _word_source(cfg: "ExperimentConfig", language: str) -> Path:
    """The dataset whose sentences word-level analyses read for ``language``: its own, or its
    control's (perturbed here when the experiment does not train the control)."""
    from perturbations import get_language

    lang = get_language(language)
    if lang.word_analyses == "control" and lang.control != lang.name:
        _ensure_perturbed(cfg, [lang.control])
        return layout(cfg).data(lang.control)
    return layout(cfg).data(language)


def _probe(cfg: "ExperimentConfig", run: Run, options: dict) -> list[Path]:
    """Edge probing of every checkpoint of the run on its language's data (Reverse: NoReverse's,
    perturbed here when the experiment does not train it)."""
    from impossible_lms.analysis.probe import probe

    where = layout(cfg)
    results = where.results(run.variant)
    probe(where.run(run), _word_source(cfg, run.language), results=results, **{"show_progress": True, **options})
    return [results]


register_analysis(AnalysisStage("probe", _has_word_analyses, _probe))


def _stimuli_stage(module: str, function: str, required: str):
    """A targeted evaluation (minimal pairs, SyntaxGym) of every checkpoint of the run, on stimuli put
    into the run's language with its own dataset's rules; ``required`` names the stimuli option."""

    def run(cfg: "ExperimentConfig", run: Run, options: dict) -> list[Path]:
        import importlib

        if not options.get(required):
            raise ILMError(f"analyses.{function} needs {required}: the stimulus file(s) or folder(s) to score")
        analyse = getattr(importlib.import_module(module), function)
        _check_options(function, analyse, options)
        where = layout(cfg)
        results = where.results(run.variant)
        analyse(where.run(run), where.data(run.language), results=results, **{"show_progress": True, **options})
        return [results]

    return run


def _keeps_token_order(language: str) -> bool:
    from perturbations import get_language

    return get_language(language).keeps_token_order


register_analysis(AnalysisStage("minimal_pairs", _any_language,
                                _stimuli_stage("impossible_lms.analysis.minimal_pairs", "minimal_pairs", "pairs")))
register_analysis(AnalysisStage("syntaxgym", _keeps_token_order,
                                _stimuli_stage("impossible_lms.analysis.syntaxgym", "syntaxgym", "suites")))


def _treeproj(cfg: "ExperimentConfig", run: Run, options: dict) -> list[Path]:
    """Tree projections of every checkpoint of the run: the reference's token-level tree score on
    its language's test sentences, and for hop and reverse languages (word order kept) the
    word-level tree score and parse agreement with gold trees (Reverse: NoReverse's sentences,
    perturbed here when the experiment does not train it). ``units: [token]`` picks one pass."""
    from impossible_lms.analysis.treeproj import UNITS, treeproj
    from perturbations import get_language

    options = dict(options)
    lang = get_language(run.language)
    units = options.pop("units", ["token", "word"] if lang.word_analyses else ["token"])
    bad = [u for u in units if u not in UNITS]
    if bad or "unit" in options:
        raise ILMError(f"analyses.treeproj: units is a list of {', '.join(UNITS)}" + (f", not {bad[0]!r}" if bad else ""))
    _check_options("treeproj", treeproj, options, fixed=("subject", "data", "results", "unit"), extra=("units",))
    where = layout(cfg)
    folder, results = where.data(run.language), where.results(run.variant)
    if "word" in units:
        _word_source(cfg, run.language)  # perturbs the control whose sentences the word pass reads beside the data
    for unit in units:
        given = {k: v for k, v in options.items() if unit == "word" or k != "trees"}  # gold trees: word only
        treeproj(where.run(run), folder, results=results, unit=unit, **{"show_progress": True, **given})
    return [results]


register_analysis(AnalysisStage("treeproj", _any_language, _treeproj))


def _baselines(cfg: "ExperimentConfig", run: Run, options: dict) -> list[Path]:
    """Model-free complexity of the run's language (unigram entropy, Kneser-Ney n-gram perplexity on the
    sample the run is scored on: its seed, the eval settings; LZMA bits per token): once per dataset and
    seed, whatever the number of models."""
    from impossible_lms.evaluation.baselines import complexity_baselines

    _check_options("baselines", complexity_baselines, options, fixed=("data", "results", "seeds"))
    where = layout(cfg)
    results = where.results(run.variant)
    sample = {k: cfg.eval.options[k] for k in ("sentences_per_genre", "sample_scheme") if k in cfg.eval.options}
    seed = cfg.eval.options.get("seed", run.seed)  # the sample the run is scored on (evaluate: the run's seed)
    complexity_baselines(where.data(run.language), results, seeds=[seed], **{"show_progress": True, **sample,
                                                                                  **options})
    return [results]


register_analysis(AnalysisStage("baselines", _any_language, _baselines))


def _control_run(cfg: "ExperimentConfig", run: Run) -> list[Run]:
    """The run of ``run``'s control language with its model, seed and variant, when the study trains
    it and the language can be undone into the control's form (the production judge)."""
    from perturbations import get_language

    from impossible_lms.experiment.plan import all_runs

    lang = get_language(run.language)
    if not lang.invertible or lang.control is None:
        return []
    control = get_language(lang.control).name
    return [r for r in all_runs(cfg) if (r.model, r.seed, r.variant) == (run.model, run.seed, run.variant)
            and get_language(r.language).name == control][:1]


def _production(cfg: "ExperimentConfig", run: Run, options: dict) -> list[Path]:
    """Generations of every checkpoint of the run, checked against its language's rule, undone and
    judged by the final checkpoint of the control run (same model, seed and variant) when the
    study trains it; without one, the conformity rows only."""
    from impossible_lms.analysis.production import production

    _check_options("production", production, options, fixed=("subject", "data", "results", "judge"))
    where = layout(cfg)
    judges = _control_run(cfg, run)
    judge = where.run(judges[0]) if judges else None
    results = where.results(run.variant)
    try:
        production(where.run(run), where.data(run.language), results=results, judge=judge,
                   **{"show_progress": True, **options})
    except ILMError:
        if judge is not None and not any(judge.glob("checkpoint-*")):
            raise ILMError(f"production of {run.key} is judged by {judges[0].key}, which is not trained yet: "
                           "run it first (drop --only, or add it)") from None
        raise
    return [results]


register_analysis(AnalysisStage("production", _any_language, _production, reads=_control_run))
