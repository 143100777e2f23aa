"""The study's one home for where things go and what each run trains with.

Given an experiment and a run (language, model, seed, variant), :class:`Layout`
names every path: the datasets, each variant's runs, results and report, the
stamps, the saved experiment and the Slurm script. :func:`train_config` is the
one builder of a run's ``TrainConfig``; :func:`train_overrides` gives the same
settings as the override mapping that ``--emit`` turns into ``--set`` flags.
Every stage, analysis, ``--emit``, ``doctor``, the estimate and the report use
these, so a path or a setting is decided in exactly one place.

::

    OUT/data/<language>/                      one dataset per language (shared by variants)
    OUT/runs/<language>/<model>/seed<N>/      the recipe's runs
    OUT/results/  OUT/report/                 the recipe's results and report
    OUT/variants/<name>/{runs,results,report}/  each variant's own
    OUT/.ilm/stamps/<stage>/<key>.json        what is done (outputs relative to OUT)
    OUT/experiment.yaml                       the resolved experiment that last ran
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from impossible_lms.config import load_config, merge

if TYPE_CHECKING:
    from impossible_lms.experiment.config import ExperimentConfig
    from impossible_lms.training.config import TrainConfig


@dataclass(frozen=True)
class Run:
    """One training run of a study, by identity: what it is, never where it lies."""

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


def slug(language: str) -> str:
    """A language as a folder name, as the dataset writer spells it ("local_shuffle_w=3")."""
    from impossible_lms.data import dataset_folder_name

    return dataset_folder_name(language)


@dataclass(frozen=True)
class Layout:
    """Every path of one study, under its ``out`` folder."""

    out: Path

    @classmethod
    def of(cls, cfg: "ExperimentConfig") -> "Layout":
        return cls(Path(cfg.out))

    @property
    def data_dir(self) -> Path:
        return self.out / "data"

    def data(self, language: str) -> Path:
        return self.data_dir / slug(language)

    def variant_dir(self, variant: str = "") -> Path:
        """Where a variant's runs/, results/ and report/ go (OUT itself for the recipe)."""
        return self.out / "variants" / variant if variant else self.out

    def runs(self, variant: str = "") -> Path:
        return self.variant_dir(variant) / "runs"

    def run(self, run: Run) -> Path:
        return self.runs(run.variant) / run.slug

    def results(self, variant: str = "") -> Path:
        return self.variant_dir(variant) / "results"

    def report(self, variant: str = "") -> Path:
        return self.variant_dir(variant) / "report"

    @property
    def stamps(self) -> Path:
        return self.out / ".ilm" / "stamps"

    @property
    def experiment_file(self) -> Path:
        return self.out / "experiment.yaml"

    @property
    def slurm_script(self) -> Path:
        return self.out / "slurm_train.sh"

    def relative(self, path: str | Path) -> str:
        """``path`` relative to OUT when it lies under it (what stamps store), else as given."""
        path = Path(path)
        try:
            return path.resolve().relative_to(self.out.resolve()).as_posix()
        except ValueError:
            return str(path)

    def absolute(self, stored: str) -> Path:
        """A path a stamp stored: relative ones are under OUT, wherever the study now lies."""
        path = Path(stored)
        return path if path.is_absolute() else self.out / path


def layout(cfg: "ExperimentConfig") -> Layout:
    return Layout.of(cfg)


def train_settings(cfg: "ExperimentConfig", variant: str = "") -> dict[str, Any]:
    """The TrainConfig overrides of the recipe, or of ``variant`` (its `train` merged on top)."""
    from impossible_lms.experiment.config import variant as get_variant

    return merge(cfg.train, get_variant(cfg, variant).train) if variant else dict(cfg.train)


def train_overrides(cfg: "ExperimentConfig", run: Run | None = None, variant: str = "") -> dict[str, Any]:
    """The TrainConfig fields of ``run`` (data, model, seed and folders included), or of the
    recipe / ``variant`` alone when no run is given (what the checks and estimates read)."""
    settings = train_settings(cfg, run.variant if run else variant)
    if run is not None:
        where = layout(cfg)
        settings.update(data=str(where.data(run.language)), model=run.model, seed=run.seed,
                        out=str(where.runs(run.variant)), run_dir=str(where.run(run)))
    return settings


def train_config(cfg: "ExperimentConfig", run: Run | None = None, variant: str = "") -> "TrainConfig":
    """The one builder of a study's TrainConfig: ``run``'s, or the recipe's / ``variant``'s."""
    from impossible_lms.training.config import TrainConfig

    return load_config(TrainConfig, overrides=train_overrides(cfg, run, variant))
