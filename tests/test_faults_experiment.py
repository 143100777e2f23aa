"""`ilm run` checks the whole experiment before any stage runs (issue 11 §6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from impossible_lms.errors import ILMError
from impossible_lms.experiment import Stages, load_experiment, run_experiment

DEMO = Path(__file__).resolve().parents[1] / "experiments" / "demo.yaml"


class NoStages:
    """Any stage call fails the test: validation must come first."""

    calls: list[str] = []

    def stages(self):
        def called(name):
            return lambda *a, **k: self.calls.append(name) or []
        return Stages(called("perturb"), called("train"), called("evaluate"), called("report"))


@pytest.mark.parametrize(
    "override, message",
    [
        ("eval.checkpoints=10-2", "eval.checkpoints: bad checkpoint range '10-2'"),
        ("corpus.workers=-3", "corpus.workers must be at least 1, got -3"),
        ("train.optim.betas=[0.9]", "optim.betas: expected 2 values, got 1"),
        ("train.optim.lr=-1", "train: optim.lr must be > 0, got -1"),
        ("train.schedule.steps=0", "train: schedule.steps must be at least 1, got 0"),
        ("train.checkpoint.every=-1", "train: checkpoint.every must be at least 0, got -1"),
        ("eval.options={sentences_per_genera: 5}", "eval.options: unknown option 'sentences_per_genera' (did you mean 'sentences_per_genre'?)"),
        ("languages=[word_hop:n=0]", "word_hop: n must be between 1 and 1024, got 0"),
        ("seeds=[-1]", "seeds must be >= 0, got -1"),
    ],
)
def test_a_bad_setting_stops_the_run_before_any_stage(tmp_path, override, message):
    fake = NoStages()
    fake.calls = []
    with pytest.raises(ILMError) as e:
        run_experiment(load_experiment(DEMO, [f"out={tmp_path}", override]), stages=fake.stages(), log=lambda s: None)
    assert message in str(e.value), str(e.value)
    assert fake.calls == [] and not (tmp_path / "experiment.yaml").exists()


def test_the_demo_passes_validation(tmp_path):
    from impossible_lms.experiment import validate_experiment

    cfg = load_experiment(DEMO, [f"out={tmp_path}"])
    assert validate_experiment(cfg) is cfg
