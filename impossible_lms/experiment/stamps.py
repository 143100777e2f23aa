"""Stamps: one small JSON per finished step under OUT/.ilm/stamps, holding its fingerprint and outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from impossible_lms.io import atomic_write_json, fingerprint

if TYPE_CHECKING:
    from impossible_lms.experiment.config import ExperimentConfig
    from impossible_lms.experiment.plan import Step


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
