"""The dry-run estimate: model FLOPs per token over a recorded or measured device rate, with its basis."""

from __future__ import annotations


import pytest

from impossible_lms.errors import ILMError
from impossible_lms.estimate import MEASURED_MFU, ModelCost, _median_rate, estimate_training, model_cost, vocab_size
from impossible_lms.experiment import format_plan, load_experiment, plan_experiment, tokens_per_run
from impossible_lms.models import model_config

from demo_config import DEMO, ROOT, demo_train as demo  # noqa: E402


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
    tokens = tokens_per_run(cfg)
    est = estimate_training(cfg, plan.runs)
    assert est.tokens_per_run == tokens == demo("schedule", "steps") * demo("batch", "tokens")
    assert est.hours == pytest.approx(4 * tokens / 1000 / 3600)
    assert est.rates["tiny-gpt2"].basis == "recorded throughput.tiny-gpt2 in the experiment"
    cfg = load_experiment(DEMO, [f"out={tmp_path}", "estimate.flops_per_s=1e9"])
    est = estimate_training(cfg, plan.runs)
    per_token = model_cost("tiny-gpt2", 4098).flops_per_token
    assert est.rates["tiny-gpt2"].tokens_per_s == pytest.approx(1e9 / per_token)
    text = format_plan(plan, est)
    assert f"{tokens:,} tokens per run" in text and "on the recorded device" in text
    assert "tiny-gpt2: 2.4 MFLOP/token (vocab 4,098, context 128)" in text and "recorded estimate.flops_per_s" in text
    bare = estimate_training(load_experiment(DEMO, [f"out={tmp_path}"]), plan.runs, calibrate=False)
    assert bare.hours is None and bare.rates is None and bare.gpu.hours > 0  # the GPU line needs no device


def test_gpu_estimate_is_peak_times_mfu(tmp_path) -> None:
    """Studies are planned on login nodes: hours on a named GPU from its peak and an MFU, with the basis."""
    cfg = load_experiment(ROOT / "experiments" / "kallini2024.yaml",
                          [f"out={tmp_path}", "estimate.gpu=A100", "estimate.mfu=0.5"])
    runs = plan_experiment(cfg).runs
    est = estimate_training(cfg, runs, calibrate=False)
    gpt2 = model_cost("gpt2", 50257 + 2)
    assert est.tokens == {"": 3000 * 2**19, "warmup1000": 3000 * 2**19, "warmup4000": 3000 * 2**19}
    assert len(runs) == 15 * (5 + 1) + 2 * 15
    assert est.gpu.hours == pytest.approx(len(runs) * 3000 * 2**19 * gpt2.flops_per_token / (312e12 * 0.5) / 3600)
    line = est.lines()[1]
    assert line.startswith("  on one A100: ") and "at 50.0% MFU of its 312 TFLOP/s bf16 peak (estimate.mfu)" in line
    default = estimate_training(load_experiment(ROOT / "experiments" / "kallini2024.yaml", [f"out={tmp_path}"]),
                                runs, calibrate=False)
    assert default.gpu.gpu == "H100" and default.gpu.mfu == MEASURED_MFU and "gpu_check.py" in default.lines()[1]
    with pytest.raises(ILMError, match="estimate.gpu: unknown GPU 'K80'"):
        k80 = load_experiment(DEMO, [f"out={tmp_path}", "estimate.gpu=K80"])
        estimate_training(k80, plan_experiment(k80).runs, calibrate=False)
    with pytest.raises(ILMError, match=r"estimate.mfu must be in \(0, 1\]"):
        load_experiment(DEMO, [f"out={tmp_path}", "estimate.mfu=40"])


def test_tokens_per_run_counts_sequences_at_the_presets_context(tmp_path) -> None:
    cfg = load_experiment(DEMO, [f"out={tmp_path}", "train.batch={sequences: 16}"])
    assert tokens_per_run(cfg) == demo("schedule", "steps") * 16 * 128  # tiny-gpt2's context, not 1024


def test_calibration_excludes_warm_up_and_takes_the_median() -> None:
    """A mocked clock: the warm-up step is never timed, and one slow step does not move the median."""
    cost = ModelCost("m", 100, 128, 1e6)
    durations = iter([0.5, 0.25, 9.0, 0.25, 0.25])  # timed steps only: the warm-up reads no clock
    now = [0.0]
    calls = []

    def clock():
        return now[0]

    def step():
        calls.append(1)
        if len(calls) > 1:  # after the warm-up each step takes its duration on the mocked clock
            now[0] += next(durations)

    rate = _median_rate(step, cost, seconds=10.1, clock=clock)
    assert len(calls) == 1 + 5  # 1 warm-up, then steps until 10.1 s are spent (10.0 after four, 10.25 after five)
    assert rate.tokens_per_s == pytest.approx(128 / 0.25)
    assert "median of 5 forward/backward steps of 1×128 tokens after 1 warm-up step" in rate.basis
    durations = iter([5.0, 5.0, 5.0])
    calls.clear()
    rate = _median_rate(step, cost, seconds=0.1, clock=clock)  # a short budget still times 3 steps
    assert len(calls) == 1 + 3 and rate.tokens_per_s == pytest.approx(128 / 5.0)


def test_calibration_measures_this_device(tmp_path) -> None:
    cfg = load_experiment(DEMO, [f"out={tmp_path}", "estimate.seconds=0.2", "estimate.device=cpu"])
    plan = plan_experiment(cfg)
    est = estimate_training(cfg, plan.runs)
    rate = est.rates["tiny-gpt2"]
    assert rate.tokens_per_s > 0 and rate.basis.startswith("measured here: median of ") and "GFLOP/s" in rate.basis
    assert "1×128 tokens" in rate.basis  # the preset's full context
    assert est.device == "this machine's CPU"
    assert est.hours == pytest.approx(4 * tokens_per_run(cfg) / rate.tokens_per_s / 3600)


def test_a_gpu_study_is_not_calibrated_on_a_cpu(tmp_path) -> None:
    """On a machine without a GPU, an experiment that trains on a GPU gets the GPU estimate only."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cfg = load_experiment(DEMO, [f"out={tmp_path}", "train.device=auto"])
    est = estimate_training(cfg, plan_experiment(cfg).runs)
    assert est.hours is None and est.gpu.hours > 0
