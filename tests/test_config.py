"""The typed config loader: defaults ← YAML ← overrides, with one-line errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from impossible_lms.config import load_config, parse_overrides, save_config, to_dict
from impossible_lms.errors import ILMError


@dataclass
class Optim:
    lr: float = 6e-4
    betas: tuple[float, ...] = (0.9, 0.95)


@dataclass
class Cfg:
    steps: int = 3000
    name: str = "x"
    out: Path = Path("runs")
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    compile: bool = True
    languages: list[str] = field(default_factory=list)
    warmup: int | None = None
    optim: Optim = field(default_factory=Optim)


def test_defaults_yaml_then_overrides(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("steps: 100\noptim:\n  lr: 1e-3\nlanguages: [a, b]\n")
    cfg = load_config(Cfg, y, ["optim.lr=2e-4", "compile=false", "out=/tmp/r"])
    assert cfg.steps == 100
    assert cfg.optim.lr == 2e-4 and cfg.optim.betas == (0.9, 0.95)
    assert cfg.compile is False
    assert cfg.out == Path("/tmp/r")
    assert cfg.languages == ["a", "b"]


def test_types_are_converted_and_checked() -> None:
    assert load_config(Cfg, overrides=["steps=1e3"]).steps == 1000
    assert load_config(Cfg, overrides=["languages=a,b"]).languages == ["a", "b"]
    assert load_config(Cfg, overrides=["warmup=null"]).warmup is None
    assert load_config(Cfg, overrides=["warmup=7"]).warmup == 7
    with pytest.raises(ILMError, match="steps: expected an integer"):
        load_config(Cfg, overrides=["steps=1.5"])
    with pytest.raises(ILMError, match="precision: 'fp8' is not one of bf16, fp16, fp32"):
        load_config(Cfg, overrides=["precision=fp8"])


def test_unknown_field_suggests_nearest() -> None:
    with pytest.raises(ILMError, match=r"unknown config field 'optim.lrr' \(did you mean 'lr'\?\)"):
        load_config(Cfg, overrides=["optim.lrr=1"])


def test_bad_override_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ILMError, match="not of the form key=value"):
        parse_overrides(["steps"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1,\n")
    with pytest.raises(ILMError, match="invalid YAML"):
        load_config(Cfg, bad)
    with pytest.raises(ILMError, match="config file not found"):
        load_config(Cfg, tmp_path / "missing.yaml")


def test_save_round_trip(tmp_path: Path) -> None:
    cfg = load_config(Cfg, overrides=["steps=5", "languages=[x]"])
    save_config(cfg, tmp_path / "out.yaml")
    again = load_config(Cfg, tmp_path / "out.yaml")
    assert again == cfg
    assert to_dict(again)["out"] == "runs"
