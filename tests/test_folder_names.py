"""One rule for folder names (``:`` → ``_``) and every command takes either form of a language or dataset."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import impossible_lms.training as training
from cli.main import app
from impossible_lms.data import dataset_folder_name, resolve_folder
from impossible_lms.evaluation import load_results
from impossible_lms.evaluation.toy import make_toy_data, make_toy_run
from perturbations import get_language


def test_the_rule_round_trips_through_the_registry() -> None:
    for spec in ["local_shuffle:w=3", "deterministic_shuffle:seed=57", "token_hop:n=2", "no_shuffle"]:
        folder = dataset_folder_name(spec)
        assert ":" not in folder and get_language(folder).name == spec


def test_resolve_folder(tmp_path) -> None:
    (tmp_path / "local_shuffle_w=3").mkdir()
    assert resolve_folder(tmp_path / "local_shuffle:w=3") == tmp_path / "local_shuffle_w=3"
    assert resolve_folder(tmp_path / "local_shuffle_w=3") == tmp_path / "local_shuffle_w=3"
    assert resolve_folder(tmp_path / "local_shuffle:w=5") == tmp_path / "local_shuffle:w=5"  # missing: as typed
    assert resolve_folder(tmp_path / "nonsense:x=1") == tmp_path / "nonsense:x=1"
    (tmp_path / "runs" / "token_hop_n=2" / "gpt2").mkdir(parents=True)
    assert resolve_folder(tmp_path / "runs" / "token_hop:n=2" / "gpt2") == tmp_path / "runs" / "token_hop_n=2" / "gpt2"


def test_languages_takes_the_folder_form() -> None:
    result = CliRunner().invoke(app, ["languages", "local_shuffle_w=3"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "local_shuffle:w=3" in result.output


def test_train_and_eval_take_the_language_form_of_a_folder(tmp_path, monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(training, "train", lambda cfg, progress=True: seen.append(cfg) or tmp_path)
    (tmp_path / "data" / "local_shuffle_w=3").mkdir(parents=True)
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "data" / "local_shuffle:w=3")])
    assert result.exit_code == 0, result.output
    assert Path(seen[0].data) == tmp_path / "data" / "local_shuffle_w=3"

    data = make_toy_data(tmp_path / "evaldata" / "local_shuffle_w=3", per_genre=4, language="local_shuffle:w=3",
                         family="shuffle")
    run = make_toy_run(tmp_path / "runs" / "local_shuffle_w=3" / "tiny-gpt2" / "seed0", steps=(100,), data=data,
                       language="local_shuffle:w=3")
    result = CliRunner().invoke(app, ["eval", str(tmp_path / "runs" / "local_shuffle:w=3" / "tiny-gpt2" / "seed0"),
                                      "--data", str(tmp_path / "evaldata" / "local_shuffle:w=3"),
                                      "--results", str(tmp_path / "res")])
    assert result.exit_code == 0, result.output
    assert set(load_results([tmp_path / "res"])["language"]) == {"local_shuffle:w=3"}
    assert run.is_dir()
