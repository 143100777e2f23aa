"""The run folder: where it goes, what it records, whether it can be continued.

Layout (docs/ARCHITECTURE.md §5): ``OUT/<language>/<model>/seed<seed>/`` with
``run.json``, ``config.yaml``, ``metrics.jsonl`` and ``checkpoint-<step>/``.
``cfg.out`` is the runs root; ``cfg.run_dir`` names the folder exactly instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from impossible_lms.config import save_config, to_dict
from impossible_lms.errors import ILMError
from impossible_lms.io import atomic_write_json, atomic_write_text
from impossible_lms.training.checkpoint import find_checkpoints
from impossible_lms.training.config import TrainConfig, load_train_config, result_defining
from impossible_lms.training.data import DatasetInfo

RUN_FORMAT = "ilm-run/1"


def run_dir_for(cfg: TrainConfig, info: DatasetInfo) -> Path:
    if cfg.run_dir is not None:
        return Path(cfg.run_dir)
    return Path(cfg.out) / info.slug / cfg.model / f"seed{cfg.seed}"


def checkpoint_steps(cfg: TrainConfig) -> list[int]:
    steps = cfg.schedule.steps
    every = cfg.checkpoint.every
    chosen = set(range(every, steps + 1, every)) if every > 0 else set()
    chosen |= {s for s in cfg.checkpoint.at if 0 < s <= steps}
    chosen.add(steps)  # the final weights are always kept
    return sorted(chosen)


def check_compatible(cfg: TrainConfig, run_dir: Path, info: DatasetInfo) -> None:
    """ILMError if ``run_dir`` holds a run with a different recipe or data."""
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        if find_checkpoints(run_dir):
            raise ILMError(f"{run_dir} has checkpoints but no config.yaml; use another run folder")
        return
    old = load_train_config(config_file)
    a, b = _comparable(old), _comparable(cfg)
    diff = _first_difference(a, b)
    if diff:
        raise ILMError(
            f"{run_dir} holds a run with a different config ({diff}); "
            "use another --out/--run-dir, or the same settings to continue it"
        )
    run_json = run_dir / "run.json"
    if run_json.is_file():
        old_fp = json.loads(run_json.read_text(encoding="utf-8")).get("data_fingerprint")
        if old_fp and old_fp != info.fingerprint:
            raise ILMError(f"{run_dir} was trained on different data than {info.path} (manifest changed)")


def _comparable(cfg: TrainConfig) -> dict[str, Any]:
    d = result_defining(cfg)
    d.pop("data")  # the data is compared by fingerprint, so a moved folder still resumes
    return d


def _first_difference(a: Any, b: Any, where: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _first_difference(a.get(k), b.get(k), f"{where}.{k}" if where else k)
            if d:
                return d
        return None
    return None if a == b else f"{where}: {a!r} there, {b!r} now"


def write_run_files(cfg: TrainConfig, run_dir: Path, info: DatasetInfo, extra: dict[str, Any]) -> None:
    save_config(cfg, run_dir / "config.yaml")
    write_run_json(cfg, run_dir, info, extra)


def write_run_json(cfg: TrainConfig, run_dir: Path, info: DatasetInfo, extra: dict[str, Any]) -> None:
    atomic_write_json(
        run_dir / "run.json",
        {
            "format": RUN_FORMAT,
            "language": info.language,
            "model": cfg.model,
            "seed": cfg.seed,
            "data": str(Path(info.path).resolve()),
            "data_fingerprint": info.fingerprint,
            "tokenizer": info.tokenizer,
            "vocab_size": info.vocab_size,
            "steps": cfg.schedule.steps,
            "checkpoints": checkpoint_steps(cfg),
            **extra,
        },
    )


def truncate_metrics(run_dir: Path, last_step: int) -> None:
    """Drop metric lines after ``last_step`` (they belong to a run that did not checkpoint)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= last_step:
                keep.append(line)
        except (ValueError, KeyError):
            continue
    atomic_write_text(path, "".join(line + "\n" for line in keep))


@dataclass
class RunInfo:
    path: Path
    language: str
    model: str
    seed: int
    data: Path
    data_fingerprint: str
    vocab_size: int
    steps: int
    checkpoints: dict[int, Path]  # complete ones
    finished: bool
    config: TrainConfig
    raw: dict[str, Any]


def load_run_info(run_dir: str | Path) -> RunInfo:
    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    if not path.is_file():
        raise ILMError(f"{run_dir} is not a training run (no run.json)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format") != RUN_FORMAT:
            raise ValueError(f"format {raw.get('format')!r}")
        cfg = load_train_config(run_dir / "config.yaml")
        return RunInfo(
            path=run_dir,
            language=raw["language"],
            model=raw["model"],
            seed=int(raw["seed"]),
            data=Path(raw["data"]),
            data_fingerprint=raw["data_fingerprint"],
            vocab_size=int(raw["vocab_size"]),
            steps=int(raw["steps"]),
            checkpoints=find_checkpoints(run_dir),
            finished=bool(raw.get("finished", False)),
            config=cfg,
            raw=raw,
        )
    except (ValueError, KeyError, TypeError) as e:
        raise ILMError(f"{path}: invalid run record ({e})") from None


__all__ = ["RunInfo", "load_run_info", "run_dir_for", "checkpoint_steps", "to_dict"]
