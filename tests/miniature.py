"""Running an experiment file in miniature from a test: its result, torch's thread count restored
(an experiment's torch_threads would otherwise leak into the tests after it)."""

from __future__ import annotations

from pathlib import Path


def run_miniature(experiment: Path, out: Path, overrides: list[str]):
    import torch

    from impossible_lms.experiment import load_experiment, run_experiment

    before = torch.get_num_threads()
    try:
        return run_experiment(load_experiment(experiment, [f"out={out}", *overrides]), log=lambda m: None)
    finally:
        torch.set_num_threads(before)
