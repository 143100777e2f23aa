"""The dry-run estimate: model FLOPs per token over a recorded or measured device rate, with its basis."""

from __future__ import annotations

from pathlib import Path

import pytest

from impossible_lms.estimate import estimate_training, model_cost, vocab_size
from impossible_lms.experiment import format_plan, load_experiment, plan_experiment
from impossible_lms.models import model_config

DEMO = Path(__file__).resolve().parents[1] / "experiments" / "demo.yaml"


def test_cost_is_the_model_configs_flops_and_grows_with_the_vocabulary() -> None:
    small, big = model_cost("tiny-gpt2", 4098), model_cost("tiny-gpt2", 50259)
    assert small.context == 128
    assert small.flops_per_token == model_config("tiny-gpt2", vocab_size=4098).flops_per_token(128)
    # the output projection dominates a tiny model: ~8x the FLOPs with GPT-2's vocabulary
    assert big.flops_per_token / small.flops_per_token > 8


def test_vocabulary_from_the_tokenizer_setting(tmp_path) -> None:
    cfg = load_experiment(DEMO, [f"out={tmp_path}"])
    assert vocab_size(cfg) == 4096 + 2  # fallback BPE + token_hop's two markers
    cfg = load_experiment(DEMO, [f"out={tmp_path}", "corpus.tokenizer=gpt2"])
    assert vocab_size(cfg) == 50257 + 2


def test_recorded_rates_give_exact_hours_and_say_so(tmp_path) -> None:
    cfg = load_experiment(DEMO, [f"out={tmp_path}", "throughput={tiny-gpt2: 1000}"])
    plan = plan_experiment(cfg)
    est = estimate_training(cfg, plan.tokens_per_run, plan.runs)
    assert est.hours == pytest.approx(4 * plan.tokens_per_run / 1000 / 3600)
    assert est.rates["tiny-gpt2"].basis == "recorded throughput.tiny-gpt2 in the experiment"
    cfg = load_experiment(DEMO, [f"out={tmp_path}", "estimate.flops_per_s=1e9"])
    est = estimate_training(cfg, plan.tokens_per_run, plan.runs)
    per_token = model_cost("tiny-gpt2", 4098).flops_per_token
    assert est.rates["tiny-gpt2"].tokens_per_s == pytest.approx(1e9 / per_token)
    text = format_plan(plan, est)
    assert f"{plan.tokens_per_run:,} tokens per run" in text and "on the recorded device" in text
    assert "tiny-gpt2: 2.4 MFLOP/token (vocab 4,098, context 128)" in text and "recorded estimate.flops_per_s" in text
    assert estimate_training(load_experiment(DEMO, [f"out={tmp_path}"]), 1, plan.runs, calibrate=False) is None


def test_calibration_measures_this_device(tmp_path) -> None:
    cfg = load_experiment(DEMO, [f"out={tmp_path}", "estimate.seconds=0.2", "estimate.device=cpu"])
    plan = plan_experiment(cfg)
    est = estimate_training(cfg, plan.tokens_per_run, plan.runs)
    rate = est.rates["tiny-gpt2"]
    assert rate.tokens_per_s > 0 and rate.basis.startswith("measured ") and "GFLOP/s" in rate.basis
    assert est.device == "this machine's CPU"
    assert est.hours == pytest.approx(4 * plan.tokens_per_run / rate.tokens_per_s / 3600)
