"""Fault injection on resume: planted pickles, damaged checkpoints, and the state format's round trip."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli.main import app
from impossible_lms.errors import ILMError
from impossible_lms.training import find_checkpoints, train
from impossible_lms.training.checkpoint import LEGACY_STATE, STATE_JSON, STATE_TENSORS, load_trainer_state, write_trainer_state
from impossible_lms.training.config import resolve_train_config
from impossible_lms.training.toy import make_toy_dataset

TINY = ["model=tiny-gpt2", "model_overrides={n_positions: 32, n_embd: 32, n_head: 2}", "batch.sequences=4",
        "batch.micro=2", "schedule.warmup=1", "logging.every=1", "device=cpu", "checkpoint.every=1",
        "checkpoint.async_write=false"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("data") / "toy", sentences=60, vocab_size=64)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A finished 3-step run whose newest checkpoint is then removed, so a rerun resumes from step 2."""
    out = tmp_path_factory.mktemp("trained")
    folder = train(resolve_train_config(None, [*TINY, f"data={data}", f"out={out}", "schedule.steps=3"]), progress=False)
    shutil.rmtree(folder / "checkpoint-3")
    return folder


@pytest.fixture
def run(trained, tmp_path):
    """A private copy of ``trained`` (its config.yaml names the copy's folder via --resume)."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


class Payload:
    """Unpickling this creates a file: what an attacker's trainer_state.pt would do."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def plant_pickle(checkpoint, obj):
    (checkpoint / STATE_JSON).unlink()
    (checkpoint / STATE_TENSORS).unlink()
    torch.save(obj, checkpoint / LEGACY_STATE)


def test_a_planted_pickle_is_refused_and_never_runs(run, tmp_path):
    owned = tmp_path / "owned"
    plant_pickle(run / "checkpoint-2", {"step": 2, "x": Payload(owned)})
    # Even a config.yaml in the folder that claims trust does not grant it.
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("trust_pickle: false", "trust_pickle: true"))
    assert "trust_pickle: true" in (run / "config.yaml").read_text()
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "--no-progress"])
    assert result.exit_code == 1
    assert "checkpoint-2 holds its trainer state as a pickle" in result.output and "--trust-pickle" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3  # one line, soft-wrapped
    assert not owned.exists()
    with pytest.raises(ILMError, match="as a pickle"):
        load_trainer_state(run / "checkpoint-2")
    assert not owned.exists()


def test_trust_pickle_resumes_a_legacy_checkpoint_of_ones_own(run):
    state = load_trainer_state(run / "checkpoint-2")
    plant_pickle(run / "checkpoint-2", state)
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "--no-progress", "--trust-pickle"])
    assert result.exit_code == 0, result.output
    assert sorted(find_checkpoints(run)) == [1, 2, 3]
    assert (run / "checkpoint-3" / STATE_JSON).is_file() and not (run / "checkpoint-3" / LEGACY_STATE).exists()


@pytest.mark.parametrize("damage", ["garbage_json", "truncated_tensors", "truncated_weights"])
def test_a_damaged_newest_checkpoint_is_named_with_a_way_out(run, damage):
    ckpt = run / "checkpoint-2"
    if damage == "garbage_json":
        (ckpt / STATE_JSON).write_text("{not json")
    else:
        target = ckpt / (STATE_TENSORS if damage == "truncated_tensors" else "model.safetensors")
        target.write_bytes(target.read_bytes()[:40])
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "--no-progress"])
    assert result.exit_code == 1, result.output
    out = " ".join(result.output.split())
    assert "checkpoint-2: unreadable" in out and "delete that folder to resume from the previous checkpoint" in out
    assert "Traceback" not in result.output


def test_state_round_trips_exactly(tmp_path):
    random.seed(3)
    np.random.seed(4)
    opt_state = {"state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.randn(3, 2)}, 1: {"step": torch.tensor(5.0)}},
                 "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "params": [0, 1], "fused": None}]}
    state = {"step": 7, "optimizer": opt_state, "scaler": None, "inf": float("inf"),
             "rng": [{"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}]}
    write_trainer_state(tmp_path, state)
    assert json.loads((tmp_path / STATE_JSON).read_text())["format"] == "ilm-trainer-state/1"
    back = load_trainer_state(tmp_path)
    assert back["step"] == 7 and back["scaler"] is None and back["inf"] == float("inf")
    assert list(back["optimizer"]["state"]) == [0, 1]  # int keys stay ints (torch's optimizer needs them)
    assert torch.equal(back["optimizer"]["state"][0]["exp_avg"], opt_state["state"][0]["exp_avg"])
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    rng = back["rng"][0]
    assert rng["python"] == random.getstate()  # tuples come back as tuples: setstate accepts them
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    a = (random.random(), np.random.rand())
    random.setstate(state["rng"][0]["python"])
    np.random.set_state(state["rng"][0]["numpy"])
    assert a == (random.random(), np.random.rand())
    assert torch.equal(rng["torch"], state["rng"][0]["torch"]) and rng["torch"].dtype == torch.uint8
