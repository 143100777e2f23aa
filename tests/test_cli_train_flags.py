"""`ilm train`'s plain flags set the TrainConfig fields the table says, and --help shows the recipe's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import impossible_lms.training as training
from cli.main import app
from cli.train import CONFIG_FLAGS
from impossible_lms.training.config import TrainConfig


def _field(cfg, path: str):
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


@pytest.fixture
def captured(monkeypatch, tmp_path):
    seen: list[TrainConfig] = []

    def fake_train(cfg, progress=True):
        seen.append(cfg)
        return tmp_path / "run"

    monkeypatch.setattr(training, "train", fake_train)
    return seen


ARGS = {
    "--batch-tokens": ("4096", "batch.tokens", 4096),
    "--micro-batch": ("8", "batch.micro", 8),
    "--lr": ("0.003", "optim.lr", 0.003),
    "--warmup": ("7", "schedule.warmup", 7),
    "--checkpoint-every": ("25", "checkpoint.every", 25),
    "--precision": ("bf16", "precision", "bf16"),
    "--steps": ("11", "schedule.steps", 11),
}


def test_each_flag_sets_its_config_field(captured, tmp_path) -> None:
    argv = ["train", "--data", str(tmp_path)]
    for flag, (value, _, _) in ARGS.items():
        argv += [flag, value]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    cfg = captured[0]
    for flag, (_, path, expected) in ARGS.items():
        assert _field(cfg, path) == expected, flag
        assert CONFIG_FLAGS[flag[2:].replace("-", "_")] == path
    assert cfg.data == tmp_path


def test_flag_wins_over_set_and_untouched_fields_keep_the_recipe(captured, tmp_path) -> None:
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path), "--set", "optim.lr=1e-2", "--lr", "2e-3"])
    assert result.exit_code == 0, result.output
    cfg = captured[0]
    assert cfg.optim.lr == 2e-3
    assert cfg.batch.tokens == TrainConfig().batch.tokens and cfg.checkpoint.every == TrainConfig().checkpoint.every


def test_every_table_path_is_a_config_field() -> None:
    cfg = TrainConfig()
    for path in CONFIG_FLAGS.values():
        _field(cfg, path)  # AttributeError if the table names a field that does not exist


def test_help_shows_the_recipe_defaults() -> None:
    text = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"}, terminal_width=200).output
    d = TrainConfig()
    for flag, value in [("--steps", d.schedule.steps), ("--batch-tokens", d.batch.tokens), ("--lr", d.optim.lr),
                        ("--checkpoint-every", d.checkpoint.every), ("--seed", d.seed), ("--model", d.model),
                        ("--device", d.device), ("--out", d.out)]:
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(flag + " "))
        shown = line.split("[default: (", 1)[1].split(")]")[0].split(" ")[0]
        assert type(value)(shown) == value if not isinstance(value, Path) else Path(shown) == value, (flag, shown)
