"""Stamps: one small JSON per finished step under OUT/.ilm/stamps, holding its fingerprint and outputs.

Outputs are stored relative to OUT, so a study copied to another disk (rsync from the
cluster, another mount point) still knows what it has done."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from impossible_lms.experiment.layout import layout
from impossible_lms.io import atomic_write_json, fingerprint

if TYPE_CHECKING:
    from impossible_lms.experiment.config import ExperimentConfig
    from impossible_lms.experiment.plan import Step


def stamp_path(cfg: ExperimentConfig, stage: str, key: str) -> Path:
    return layout(cfg).stamps / stage / f"{fingerprint(key)}.json"


def read_stamp(cfg: ExperimentConfig, stage: str, key: str) -> dict | None:
    path = stamp_path(cfg, stage, key)
    try:
        stamp = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def status(cfg: ExperimentConfig, stage: str, key: str, fp: str, upstream: list[Step] = ()) -> str:
    """"done" when the step's stamp matches ``fp``, its outputs exist and nothing upstream is to do."""
    if any(s.status == "todo" for s in upstream):
        return "todo"
    stamp = read_stamp(cfg, stage, key)
    if not stamp or stamp.get("fingerprint") != fp:
        return "todo"
    # The cheap check that the outputs are still there (someone may have deleted a folder).
    where = layout(cfg)
    outputs = stamp.get("outputs", [])
    if not isinstance(outputs, list) or not all(where.absolute(str(p)).exists() for p in outputs):
        return "todo"
    return "done"


def write_stamp(cfg: ExperimentConfig, step: Step, outputs: list[Path]) -> None:
    where = layout(cfg)
    atomic_write_json(
        stamp_path(cfg, step.stage, step.key),
        {"stage": step.stage, "key": step.key, "fingerprint": step.fingerprint,
         "outputs": [where.relative(p) for p in outputs]},
    )
