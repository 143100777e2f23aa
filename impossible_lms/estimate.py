"""The ``ilm run --dry-run`` training-time estimate: model FLOPs per token over a device's rate.

    hours = Σ_runs tokens_per_run × flops_per_token(model, vocab, context) / rate / 3600

``flops_per_token`` is the model config's own count (``cfg.flops_per_token``:
6N + 12·L·d·T, N including the output projection, so a 50k vocabulary costs
what it costs). The rate is, in order of preference:

1. a recorded measurement from the experiment: ``throughput: {preset: tokens/s}``
   (measured on the target device) or ``estimate.flops_per_s`` (achieved training
   FLOP/s of that device);
2. otherwise a calibration of a few seconds on this machine's device: a
   matmul sizes the work, then a short real forward/backward of each preset, at
   the experiment's vocabulary, measures achieved FLOP/s.

The estimate prints its basis, so a number measured on a laptop CPU is not
mistaken for one of the cluster GPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

CALIBRATION_SECONDS = 2.0


@dataclass(frozen=True)
class ModelCost:
    model: str
    vocab_size: int
    context: int
    flops_per_token: float  # training (forward + backward) at the full context


@dataclass(frozen=True)
class Rate:
    tokens_per_s: float
    basis: str  # how it was obtained, in words


@dataclass(frozen=True)
class Estimate:
    tokens_per_run: int
    runs: int
    hours: float
    device: str
    costs: dict[str, ModelCost]
    rates: dict[str, Rate]

    def lines(self) -> list[str]:
        out = [f"estimate: {self.tokens_per_run:,} tokens per run, {self.hours:.2f} device-hours on {self.device} "
               f"for all {self.runs} runs (training only)"]
        for model, cost in self.costs.items():
            rate = self.rates[model]
            out.append(f"  {model}: {cost.flops_per_token / 1e6:,.1f} MFLOP/token (vocab {cost.vocab_size:,}, "
                       f"context {cost.context}) at {rate.tokens_per_s:,.0f} tokens/s: {rate.basis}")
        return out


def vocab_size(cfg: Any) -> int:
    """The vocabulary the runs will train with: a written dataset's, else what the tokenizer will give."""
    from impossible_lms.data import dataset_folder_name, load_manifest
    from impossible_lms.errors import ILMError
    from impossible_lms.tokenizer import DEFAULT_FALLBACK_VOCAB
    from perturbations import get_language

    sizes = []
    for language in cfg.languages:
        try:
            sizes.append(int(load_manifest(cfg.data_dir / dataset_folder_name(language)).vocab_size))
        except ILMError:
            base = DEFAULT_FALLBACK_VOCAB if cfg.corpus.tokenizer == "fallback" else 50257  # GPT-2's
            sizes.append(base + len(get_language(language).markers))
    return max(sizes)


def model_cost(model: str, vocab: int, overrides: dict[str, Any] | None = None) -> ModelCost:
    from impossible_lms.models import model_config

    mc = model_config(model, vocab_size=vocab, **(overrides or {}))
    context = int(mc.n_positions)
    return ModelCost(model, vocab, context, float(mc.flops_per_token(context)))


def matmul_flops(device: Any, seconds: float = 0.3, n: int = 512) -> float:
    """FLOP/s of repeated n×n fp32 matmuls: the device's scale, to size the real calibration."""
    import torch

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    count, start = 0, time.perf_counter()
    while True:
        a @ b
        count += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if time.perf_counter() - start >= seconds:
            break
    return 2.0 * n**3 * count / (time.perf_counter() - start)


def measure_rate(cost: ModelCost, device: Any, overrides: dict[str, Any] | None = None,
                 seconds: float = CALIBRATION_SECONDS) -> Rate:
    """Achieved training FLOP/s of a short real forward/backward of ``cost.model``, as tokens/s at full context."""
    import torch

    from impossible_lms.models import build_model, model_config

    mc = model_config(cost.model, vocab_size=cost.vocab_size, **(overrides or {}))
    # Size one step to a fraction of the budget from the matmul rate (a model step reaches less),
    # so gpt2 with a 50k vocabulary on a CPU is a 16-token step, not a minute-long one.
    budget = matmul_flops(device) * seconds * 0.3
    seq = int(min(cost.context, 256, max(16, budget / mc.flops_per_token(16))))
    per_token = mc.flops_per_token(seq)
    batch = int(max(1, min(16, budget / (per_token * seq))))
    model = build_model(mc).to(device)
    x = torch.randint(0, cost.vocab_size, (batch, seq), device=device)

    # Forward and backward only: what flops_per_token counts. The optimizer step is per
    # batch, not per token, and vanishes at the runs' 2^19-token batches.
    def step() -> None:
        model(input_ids=x, labels=x, return_logits=False).loss.backward()  # as training
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()  # warm-up: allocation, kernel choice
    steps, start = 0, time.perf_counter()
    while steps == 0 or time.perf_counter() - start < seconds:
        step()
        steps += 1
    elapsed = time.perf_counter() - start
    achieved = steps * batch * seq * per_token / elapsed
    return Rate(achieved / cost.flops_per_token,
                f"measured {achieved / 1e9:,.1f} GFLOP/s in {steps} forward/backward step(s) of {batch}×{seq} "
                f"tokens ({elapsed:.1f} s)")


def estimate_training(cfg: Any, tokens_per_run: int, runs: list[Any], calibrate: bool = True) -> Estimate | None:
    """The estimate for ``runs`` (each with ``.model``); None when a rate is neither recorded nor measurable."""
    import torch

    spec = cfg.estimate
    device = torch.device(spec.device if spec.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    overrides = dict(cfg.train.get("model_overrides") or {})
    vocab = vocab_size(cfg)
    if cfg.torch_threads and device.type == "cpu":
        torch.set_num_threads(cfg.torch_threads)  # calibrate as the runs will train
    models = list(dict.fromkeys(r.model for r in runs))
    costs = {m: model_cost(m, vocab, overrides) for m in models}
    rates: dict[str, Rate] = {}
    for m in models:
        if m in cfg.throughput:
            rates[m] = Rate(float(cfg.throughput[m]), f"recorded throughput.{m} in the experiment")
        elif spec.flops_per_s:
            rates[m] = Rate(float(spec.flops_per_s) / costs[m].flops_per_token,
                            f"recorded estimate.flops_per_s = {spec.flops_per_s:.3g} FLOP/s")
        elif calibrate:
            same = next((k for k in rates if costs[k].flops_per_token == costs[m].flops_per_token
                         and "measured" in rates[k].basis), None)  # gpt2-nopos costs what gpt2 costs
            rates[m] = (Rate(rates[same].tokens_per_s, f"as {same}") if same
                        else measure_rate(costs[m], device, overrides, spec.seconds))
        else:
            return None
    hours = sum(tokens_per_run / rates[r.model].tokens_per_s for r in runs) / 3600.0
    recorded = all(m in cfg.throughput for m in models) or bool(spec.flops_per_s)
    where = "the recorded device" if recorded else (torch.cuda.get_device_name(device) if device.type == "cuda"
                                                     else "this machine's CPU")
    return Estimate(tokens_per_run, len(runs), hours, where, costs, rates)
