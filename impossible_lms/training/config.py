"""The training recipe as typed config.

Defaults follow the reference study (Kallini et al. 2024), which trained with
the Mistral trainer's ``conf/trainers/gpt2-small.yaml`` plus the command-line
overrides in the reference ReadMe (``--training_arguments.warmup_steps 300
--training_arguments.max_steps 3000 --training_arguments.fp16 true``):

- 3000 steps of 512 × 1024 = 2^19 tokens (``effective_bsz: 512``);
- AdamW, lr 6e-4, weight decay 0.1, betas (0.9, 0.999), eps 1e-8;
- HF ``lr_scheduler_type: linear``: linear warm-up from 0 over 300 steps, then
  linear decay to 0 at the last step;
- gradient clipping at 1.0; checkpoints every 100 steps up to 3000.

Mistral's gpt2-small trainer file sets ``adam_beta2: 0.999`` (not the 0.95 of
nanoGPT-style recipes); we keep the reference value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from impossible_lms.config import check_range, load_config, to_dict
from impossible_lms.errors import ILMError

# Every config class checks its numbers when built (``__post_init__``), so a bad
# value fails at load time with one line, whether it came from YAML, --set, the
# experiment file or Python; ``TrainConfig.validate()`` re-checks values
# assigned after construction (``train`` calls it before any work).


@dataclass
class OptimConfig:
    lr: float = 6e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    fused: bool | None = None  # fused AdamW; None = on CUDA only

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_range("optim.lr", self.lr, gt=0)
        if len(self.betas) != 2:
            raise ILMError(f"optim.betas must be two numbers [beta1, beta2], got {list(self.betas)!r}")
        for i, beta in enumerate(self.betas):
            check_range(f"optim.betas[{i}]", beta, ge=0, lt=1)
        check_range("optim.eps", self.eps, gt=0)
        check_range("optim.weight_decay", self.weight_decay, ge=0)
        check_range("optim.grad_clip", self.grad_clip, ge=0)


DECAY_NAMES = ("linear", "cosine", "constant")  # the keys of schedule.DECAYS (a test keeps them equal)


@dataclass
class ScheduleConfig:
    steps: int = 3000
    warmup: int | None = None  # linear warm-up from 0 over this many steps; None = steps // 10 (300 of 3000)
    decay: Literal["linear", "cosine", "constant"] = "linear"  # after warm-up, towards 0 at `steps`

    @property
    def warmup_steps(self) -> int:
        return self.steps // 10 if self.warmup is None else self.warmup

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_range("schedule.steps", self.steps, ge=1)
        # Warm-up may outlast the run, as in Hugging Face's linear schedule: the paper's 4000-step
        # warm-up ablation of a 3000-step run ends with the learning rate still rising.
        check_range("schedule.warmup", self.warmup_steps, ge=0)
        if self.decay not in DECAY_NAMES:
            raise ILMError(f"schedule.decay {self.decay!r} is not one of {', '.join(DECAY_NAMES)}")


@dataclass
class BatchConfig:
    tokens: int = 2**19  # global batch in tokens (micro × accumulation × world × context)
    sequences: int | None = None  # global batch in sequences; when set, overrides `tokens`
    micro: int | None = None  # per-device micro-batch; None = from the device's memory

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_range("batch.tokens", self.tokens, ge=1)
        for name in ("sequences", "micro"):
            if getattr(self, name) is not None:
                check_range(f"batch.{name}", getattr(self, name), ge=1)


@dataclass
class CheckpointConfig:
    every: int = 100  # a checkpoint every N steps (the last step always gets one)
    at: list[int] = field(default_factory=list)  # extra steps to checkpoint
    keep: int | None = None  # keep only the newest N; None keeps all
    async_write: bool = True  # write checkpoints from a background thread
    # Resume from a legacy pickled trainer_state.pt (it can run code): only for runs you made.
    # Never read from a run folder's own config.yaml (see resolve_train_config).
    trust_pickle: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_range("checkpoint.every", self.every, ge=0)
        for step in self.at:
            check_range("checkpoint.at", step, ge=1)
        if self.keep is not None:
            check_range("checkpoint.keep (null keeps all)", self.keep, ge=1)


@dataclass
class LoggingConfig:
    every: int = 10  # metrics.jsonl line (and the only host sync) every N steps
    tensorboard: bool = False  # only if tensorboard is installed
    wandb: bool = False  # only if wandb is installed
    wandb_project: str = "ilm"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_range("logging.every", self.every, ge=1)


@dataclass
class TrainConfig:
    data: Path = Path("data")  # a dataset folder written by `ilm perturb`
    model: str = "gpt2"  # a preset name from impossible_lms.models
    seed: int = 0
    out: Path = Path("runs")  # runs root: the run goes to OUT/<language>/<model>/seed<seed>/
    run_dir: Path | None = None  # exact run folder; overrides the layout under `out`
    model_overrides: dict[str, Any] = field(default_factory=dict)  # preset fields, e.g. {n_layer: 6}
    # What the step minimises (training/objectives.py): "lm" (the final layer's
    # next-token loss), "lm+exits" (that plus the mean of the exit heads' losses,
    # trunk and heads trained jointly) or "exits" (trunk frozen, only the exit
    # heads train, as Gera et al. 2023 train theirs on a trained trunk).
    objective: str = "lm"
    # Start from these weights instead of a fresh init: a checkpoint or run folder
    # (its newest checkpoint) or a cached hub id. Exit heads the source lacks keep
    # their fresh init, so `objective: exits` can train heads on a finished run.
    init_from: str | None = None
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    device: str = "auto"  # "auto" (cuda when present), "cpu", "cuda", "cuda:1"
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # auto: bf16 (fp16 without it) on CUDA, fp32 on CPU
    compile: bool | None = None  # torch.compile; None = on CUDA only
    tf32: bool = True
    peak_flops: float | None = None  # per-device peak for MFU; None = known GPUs (H100 989e12, ...)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "TrainConfig":
        """Check every number (and the objective's name); the nested configs check their own."""
        from impossible_lms.training.objectives import get_objective  # torch-free at import

        check_range("seed", self.seed, ge=0, le=SEED_MAX)
        if self.peak_flops is not None:
            check_range("peak_flops", self.peak_flops, gt=0)
        get_objective(self.objective)
        for part in (self.optim, self.schedule, self.batch, self.checkpoint, self.logging):
            part.validate()
        return self


SEED_MAX = 2**32 - 1  # numpy's and torch's seeding take it; larger ones overflow deep inside


# Fields that do not change what is computed: a run folder may be continued with
# different values for these.
OPERATIONAL_FIELDS = (
    "out", "run_dir", "logging", "device", "compile", "peak_flops", "batch.micro",
    "checkpoint.keep", "checkpoint.async_write", "checkpoint.trust_pickle",
)


def load_train_config(yaml_path: str | Path | None = None, overrides: Any = None) -> TrainConfig:
    return load_config(TrainConfig, yaml_path, overrides)


def drop_fields(d: dict[str, Any], names) -> dict[str, Any]:
    """``d`` (a config as a dict, e.g. a run's saved config.yaml) without the dotted ``names``;
    a name whose parent is absent is skipped. Changes ``d`` in place and returns it."""
    for name in names:
        node = d
        *parents, leaf = name.split(".")
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return d


def result_defining(cfg: TrainConfig) -> dict[str, Any]:
    """The config without operational fields: two runs with equal dicts compute the same thing."""
    d = drop_fields(to_dict(cfg), OPERATIONAL_FIELDS)
    d["data"] = str(Path(d["data"]).resolve())
    return d


def resolve_train_config(
    yaml_path: str | Path | None = None,
    overrides: list[str] | None = None,
    flags: dict[str, Any] | None = None,
    resume: str | Path | None = None,
) -> TrainConfig:
    """The config ``ilm train`` runs: defaults ← ``resume``'s saved config ← YAML ← ``--set`` ← flags.

    ``flags`` maps dotted field names to values; ``None`` means "not given".
    """
    from impossible_lms.config import parse_overrides, merge, read_yaml
    from impossible_lms.errors import ILMError

    base: dict[str, Any] = {}
    if resume is not None:
        saved = Path(resume) / "config.yaml"
        if not saved.is_file():
            raise ILMError(f"cannot resume {resume}: no config.yaml there (not a run folder?)")
        base = merge(read_yaml(saved), {"run_dir": str(resume)})
        # Trust is the user's to give, never the folder's: a planted config.yaml must not grant it.
        (base.get("checkpoint") or {}).pop("trust_pickle", None)
    given: dict[str, Any] = {}
    for key, value in (flags or {}).items():
        if value is not None:
            node = given
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = str(value) if isinstance(value, Path) else value
    parsed = parse_overrides(overrides or [])
    if isinstance(parsed.get("model"), dict):
        # `--set model.n_layer=6` reads as a field of the model: it is one of model_overrides
        # (`model` itself names the preset, and a --model flag would otherwise drop it silently).
        parsed["model_overrides"] = merge(parsed.get("model_overrides") or {}, parsed.pop("model"))
    top = merge(parsed, given)
    return load_config(TrainConfig, yaml_path, top, base=base)
