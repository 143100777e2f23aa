"""The experiment YAML: what to perturb, train, evaluate and report, and its checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from impossible_lms.config import load_config
from impossible_lms.errors import ILMError, did_you_mean


@dataclass
class CorpusSpec:
    source: str = "synthetic"  # "synthetic", a BabyLM folder, a text file or "hf:org/name"
    options: dict[str, Any] = field(default_factory=dict)  # open_corpus options, e.g. {sentences: 2000}
    tokenizer: str = "gpt2"  # "gpt2", a tokenizer folder, or "fallback" (offline BPE)
    tagger: str = "nltk"  # "nltk", "stanza", "gold" (synthetic/CoNLL-U) or "none"
    workers: int = 1
    fallback_vocab: int | None = None  # the "fallback" BPE's vocabulary size; None = 4096 (ilm perturb's default)


@dataclass
class EvalSpec:
    metrics: list[str] = field(default_factory=lambda: ["perplexity", "marker_surprisal"])  # hop-only ones skip other families
    checkpoints: str = "all"  # "all" or a range "100-3000:100"
    options: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments for evaluate()
    # Train-on-X/test-on-Y: models of language X are also scored on each Y's test data
    # (rows tagged eval_language=Y), as the reference's perplexities.sh scores each
    # DeterministicShuffle model on the other seeds' data. Y is perturbed even when no
    # model trains on it.
    cross: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ReportSpec:
    formats: list[str] = field(default_factory=lambda: ["md", "csv", "tex", "png"])


@dataclass
class EstimateSpec:
    """How --dry-run estimates (impossible_lms.estimate): on a named GPU from its peak and an MFU,
    and on a recorded device rate or one measured here."""

    gpu: str = "H100"  # the GPU the study will run on (its dense bf16 peak): H100, H200, A100, L40S, ...
    mfu: float | None = None  # its model FLOP utilisation; None = the one benchmarks/gpu_check.py measured
    flops_per_s: float | None = None  # achieved training FLOP/s measured on the target device
    # where to calibrate when nothing is recorded: auto (this machine's GPU; its CPU only when the
    # experiment trains on the CPU), cpu, cuda, cuda:N
    device: str = "auto"
    seconds: float = 2.0  # calibration time per model preset (at least 3 timed steps after a warm-up)

    def __post_init__(self) -> None:
        from impossible_lms.config import check_range

        if self.mfu is not None:
            check_range("estimate.mfu", self.mfu, gt=0, le=1)
        if self.flops_per_s is not None:
            check_range("estimate.flops_per_s", self.flops_per_s, gt=0)
        check_range("estimate.seconds", self.seconds, gt=0)


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    out: Path = Path("runs/experiment")  # everything goes under here: data/ runs/ results/ report/
    languages: list[str] = field(default_factory=list)  # registry names or parametric specs
    models: list[str] = field(default_factory=lambda: ["gpt2"])  # model presets
    seeds: list[int] = field(default_factory=lambda: [0])
    # Per model preset, the seeds that replace `seeds` for it (the reference's
    # no-position figures use seed 53 only).
    model_seeds: dict[str, list[int]] = field(default_factory=dict)
    # Named changes to the training recipe (ablations), each {train: TrainConfig
    # overrides on top of `train`, seeds, models, languages (each default: all)}.
    # Their runs, results and report live under OUT/variants/<name>/, so a report
    # never averages an ablation with the recipe it changes.
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    corpus: CorpusSpec = field(default_factory=CorpusSpec)
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields shared by every run
    eval: EvalSpec = field(default_factory=EvalSpec)
    report: ReportSpec = field(default_factory=ReportSpec)
    # analyses after training, by name (experiment/analyses.py), each with its function's options,
    # e.g. {intervene: {checkpoints: all}}; an analysis runs on the runs whose language it applies to
    analyses: dict[str, dict[str, Any]] = field(default_factory=dict)
    throughput: dict[str, float] = field(default_factory=dict)  # recorded tokens/s per preset on the target device
    estimate: EstimateSpec = field(default_factory=EstimateSpec)
    gpus_per_run: int = 1  # for --emit torchrun/slurm
    # Intra-op CPU threads for in-process training and evaluation; None keeps torch's
    # default. Tiny models on a shared CPU run several times faster with 1 (no spinning).
    torch_threads: int | None = None


@dataclass
class Variant:
    """One named training variant (an ablation), resolved against the experiment."""

    name: str
    train: dict[str, Any]  # TrainConfig overrides on top of the experiment's `train`
    seeds: list[int]  # empty: each model's own seeds
    models: list[str]  # empty: all models
    languages: list[str]  # empty: all languages


VARIANT_KEYS = ("train", "seeds", "models", "languages")


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
    canon = lambda names: list(dict.fromkeys(get_language(n).name for n in names))  # noqa: E731
    cross = {}
    for x, ys in (cfg.eval.cross or {}).items():
        x = get_language(x).name
        if x not in cfg.languages:
            raise ILMError(f"eval.cross: {x} is not one of the experiment's languages")
        cross[x] = [y for y in canon(ys if isinstance(ys, list) else [ys]) if y != x]
    cfg.eval.cross = cross
    for model, seeds in cfg.model_seeds.items():
        if model not in cfg.models:
            raise ILMError(f"model_seeds: {model!r} is not one of the experiment's models ({', '.join(cfg.models)})")
        if not seeds:
            raise ILMError(f"model_seeds: {model!r} lists no seeds")
    for name, spec in cfg.variants.items():
        variant(cfg, name)  # checks it
    if cfg.gpus_per_run < 1:
        raise ILMError(f"gpus_per_run must be at least 1, got {cfg.gpus_per_run}")
    from impossible_lms.reporting import check_formats

    cfg.report.formats = check_formats(cfg.report.formats)
    from impossible_lms.experiment.analyses import check_analyses

    check_analyses(cfg.analyses)
    cfg.analyses = {name: dict(options or {}) for name, options in cfg.analyses.items()}
    return cfg


def validate_experiment(cfg: ExperimentConfig) -> ExperimentConfig:
    """Every setting `ilm run` can check, checked before any stage runs.

    A bad ``eval.checkpoints`` or ``corpus.workers`` used to surface only when its
    stage started, after hours of the stages before it. Beyond :func:`validate`
    (languages and their parameters, models, seeds, report formats): the corpus
    worker count, the eval checkpoint spec and option names, and the shared train
    config (its types, fixed-length fields and numeric ranges).
    """
    import inspect

    from impossible_lms.evaluation.subjects import parse_checkpoints
    from impossible_lms.experiment.layout import train_config

    validate(cfg)
    if cfg.corpus.workers < 1:
        raise ILMError(f"corpus.workers must be at least 1, got {cfg.corpus.workers}")
    bad_seeds = [s for s in cfg.seeds if s < 0]
    if bad_seeds:
        raise ILMError(f"seeds must be >= 0, got {bad_seeds[0]}")
    try:
        parse_checkpoints(cfg.eval.checkpoints)
    except ILMError as e:
        raise ILMError(f"eval.checkpoints: {e}") from None
    from impossible_lms.evaluation import evaluate

    takes = set(inspect.signature(evaluate).parameters) - {"subject", "data", "checkpoints", "metrics", "results"}
    for name in cfg.eval.options:
        if name not in takes:
            raise ILMError(f"eval.options: unknown option {name!r}{did_you_mean(name, takes)}; it takes {', '.join(sorted(takes))}")
    try:  # building the TrainConfig runs every one of its checks
        train_config(cfg)
    except ILMError as e:
        raise ILMError(f"train: {e}") from None
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
    if cfg.eval.options.get("subsets") is not None:
        from impossible_lms.evaluation.metrics import check_subsets

        try:
            check_subsets(cfg.eval.options["subsets"])
        except ILMError as e:
            raise ILMError(f"eval.options.subsets: {e}") from None
    from impossible_lms.experiment.layout import train_config
    from impossible_lms.training.model import model_config

    for name in ["", *cfg.variants]:  # a variant's fields (typos fail here, not after hours), sizes, objective
        where = f"variants.{name}.train" if name else "train"
        try:
            train = train_config(cfg, variant=name)
            for preset in (variant(cfg, name).models or cfg.models) if name else cfg.models:
                model_config(preset, overrides=train.model_overrides, objective=train.objective)
        except ILMError as e:
            raise ILMError(f"{where}: {e}") from None


def variant(cfg: ExperimentConfig, name: str) -> Variant:
    """The variant ``name`` of ``cfg``, checked; ILMError naming what is wrong."""
    from perturbations import get_language

    spec = cfg.variants.get(name)
    if spec is None:
        raise ILMError(f"unknown variant {name!r}{did_you_mean(name, list(cfg.variants))}")
    if not name or "/" in name or not all(c.isalnum() or c in "_-." for c in name):
        raise ILMError(f"variant name {name!r}: use letters, digits, '_', '-' or '.'")
    if not isinstance(spec, dict):
        raise ILMError(f"variants.{name}: expected a mapping with {', '.join(VARIANT_KEYS)}")
    unknown = [k for k in spec if k not in VARIANT_KEYS]
    if unknown:
        raise ILMError(f"variants.{name}: unknown key {unknown[0]!r}{did_you_mean(unknown[0], VARIANT_KEYS)}; "
                       f"expected {', '.join(VARIANT_KEYS)}")
    models = list(spec.get("models") or [])
    for m in models:
        if m not in cfg.models:
            raise ILMError(f"variants.{name}: model {m!r} is not one of the experiment's models")
    languages = [get_language(n).name for n in spec.get("languages") or []]
    for lang in languages:
        if lang not in cfg.languages:
            raise ILMError(f"variants.{name}: {lang} is not one of the experiment's languages")
    train = spec.get("train") or {}
    if not isinstance(train, dict) or not train:
        raise ILMError(f"variants.{name}: `train` must give the TrainConfig fields the variant changes")
    return Variant(name, dict(train), [int(s) for s in spec.get("seeds") or []], models, languages)

