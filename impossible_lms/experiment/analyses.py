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

if TYPE_CHECKING:
    from impossible_lms.experiment.config import ExperimentConfig
    from impossible_lms.experiment.plan import Run


@dataclass(frozen=True)
class AnalysisStage:
    name: str
    applies: Callable[[str], bool]  # language name -> does this analysis make sense for its runs
    run: Callable[["ExperimentConfig", "Run", dict], list[Path]]  # -> paths whose existence means done


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


def _is_hop(language: str) -> bool:
    from perturbations import get_language

    return get_language(language).family == "hop"


def _ensure_perturbed(cfg: "ExperimentConfig", languages: list[str]) -> None:
    """Perturb the languages an analysis reads but the experiment does not train (their data folder absent)."""
    from impossible_lms.experiment.plan import slug

    needed = [lang for lang in languages if not (cfg.data_dir / slug(lang) / "manifest.json").is_file()]
    if needed:
        from impossible_lms.perturb import perturb_corpus

        perturb_corpus(needed, cfg.corpus.source, cfg.data_dir, tokenizer=cfg.corpus.tokenizer,
                       tagger=cfg.corpus.tagger, workers=cfg.corpus.workers, corpus_options=cfg.corpus.options or None)


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


def _intervene(cfg: "ExperimentConfig", run: "Run", options: dict) -> list[Path]:
    """Agreement pairs from the experiment's no_hop and word_hop data (perturbed here when the
    experiment does not train them), then IIA for every checkpoint of the run."""
    from impossible_lms.analysis.intervene import intervene
    from impossible_lms.experiment.plan import run_dir

    _ensure_perturbed(cfg, ["no_hop", "word_hop"])
    intervene(run_dir(cfg, run), [cfg.data_dir / "no_hop", cfg.data_dir / "word_hop"], results=cfg.results_dir,
              **{"show_progress": True, **options})
    return [cfg.results_dir]


register_analysis(AnalysisStage("intervene", _is_hop, _intervene))


def _is_probed(language: str) -> bool:
    from perturbations import get_language

    return get_language(language).family in ("hop", "reverse")


def _probe(cfg: "ExperimentConfig", run: "Run", options: dict) -> list[Path]:
    """Edge probing of every checkpoint of the run on its language's data (Reverse: NoReverse's,
    perturbed here when the experiment does not train it)."""
    from impossible_lms.analysis.probe import probe
    from impossible_lms.experiment.plan import run_dir, slug
    from perturbations import get_language

    folder = cfg.data_dir / slug(run.language)
    if get_language(run.language).family == "reverse":
        folder = cfg.data_dir / "no_reverse"
        _ensure_perturbed(cfg, ["no_reverse"])
    probe(run_dir(cfg, run), folder, results=cfg.results_dir, **{"show_progress": True, **options})
    return [cfg.results_dir]


register_analysis(AnalysisStage("probe", _is_probed, _probe))


def _stimuli_stage(module: str, function: str, required: str):
    """A targeted evaluation (minimal pairs, SyntaxGym) of every checkpoint of the run, on stimuli put
    into the run's language with its own dataset's rules; ``required`` names the stimuli option."""

    def run(cfg: "ExperimentConfig", run: "Run", options: dict) -> list[Path]:
        import importlib

        from impossible_lms.experiment.plan import run_dir, slug

        if not options.get(required):
            raise ILMError(f"analyses.{function} needs {required}: the stimulus file(s) or folder(s) to score")
        analyse = getattr(importlib.import_module(module), function)
        _check_options(function, analyse, options)
        analyse(run_dir(cfg, run), cfg.data_dir / slug(run.language), results=cfg.results_dir,
                **{"show_progress": True, **options})
        return [cfg.results_dir]

    return run


def _keeps_token_order(language: str) -> bool:
    from impossible_lms.analysis.stimuli import keeps_token_order

    return keeps_token_order(language)


register_analysis(AnalysisStage("minimal_pairs", _any_language,
                                _stimuli_stage("impossible_lms.analysis.minimal_pairs", "minimal_pairs", "pairs")))
register_analysis(AnalysisStage("syntaxgym", _keeps_token_order,
                                _stimuli_stage("impossible_lms.analysis.syntaxgym", "syntaxgym", "suites")))


def _treeproj(cfg: "ExperimentConfig", run: "Run", options: dict) -> list[Path]:
    """Tree projections of every checkpoint of the run: the reference's token-level tree score on
    its language's test sentences, and for hop and reverse languages (word order kept) the
    word-level tree score and parse agreement with gold trees (Reverse: NoReverse's sentences,
    perturbed here when the experiment does not train it). ``units: [token]`` picks one pass."""
    from impossible_lms.analysis.treeproj import UNITS, treeproj
    from impossible_lms.experiment.plan import run_dir, slug
    from perturbations import get_language

    options = dict(options)
    family = get_language(run.language).family
    units = options.pop("units", ["token", "word"] if family in ("hop", "reverse") else ["token"])
    bad = [u for u in units if u not in UNITS]
    if bad or "unit" in options:
        raise ILMError(f"analyses.treeproj: units is a list of {', '.join(UNITS)}" + (f", not {bad[0]!r}" if bad else ""))
    _check_options("treeproj", treeproj, options, fixed=("subject", "data", "results", "unit"), extra=("units",))
    folder = cfg.data_dir / slug(run.language)
    if "word" in units and family == "reverse":
        _ensure_perturbed(cfg, ["no_reverse"])
    for unit in units:
        given = {k: v for k, v in options.items() if unit == "word" or k != "trees"}  # gold trees: word only
        treeproj(run_dir(cfg, run), folder, results=cfg.results_dir, unit=unit, **{"show_progress": True, **given})
    return [cfg.results_dir]


register_analysis(AnalysisStage("treeproj", _any_language, _treeproj))
