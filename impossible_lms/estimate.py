"""The ``ilm run --dry-run`` training-time estimate: model FLOPs per token over a device's rate.

    hours = Σ_runs tokens_per_run(run's recipe) × flops_per_token(model, vocab, context) / rate / 3600

``flops_per_token`` is the model config's own count (``cfg.flops_per_token``:
6N + 12·L·d·T, N including the output projection, so a 50k vocabulary costs
what it costs). Two estimates are printed, each with its basis:

1. **on the named GPU** (``estimate.gpu``, default H100), always: its dense bf16
   peak × an MFU (``estimate.mfu``; default the MFU ``benchmarks/gpu_check.py``
   measured for gpt2, :data:`MEASURED_MFU`), since studies are planned on login
   nodes that have no GPU;
2. **on a device rate**: a recorded one (``throughput: {preset: tokens/s}`` or
   ``estimate.flops_per_s``), else a calibration on this machine's GPU, or on its
   CPU when the experiment trains on the CPU (``train.device: cpu``) or
   ``estimate.device`` asks for it. The calibration runs real forward/backward
   steps of one sequence at the preset's full context, leaves the warm-up step
   out and takes the median of several steps.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

CALIBRATION_SECONDS = 2.0
MIN_TIMED_STEPS = 3
MAX_TIMED_STEPS = 20

# Dense 16-bit peak FLOP/s per device (no sparsity): MFU in training logs, GPU estimates here.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "H800": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}
# ilm's gpt2 at 16×1024, bf16, compiled: 420,405 tokens/s on one H200 (benchmarks/gpu_check.py, README).
MEASURED_MFU = 0.366
MEASURED_MFU_BASIS = "gpt2's MFU measured by benchmarks/gpu_check.py on one H200, 2026-12-04"


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
class GpuEstimate:
    gpu: str
    peak_flops: float
    mfu: float
    mfu_basis: str
    hours: float


@dataclass(frozen=True)
class Estimate:
    tokens: dict[str, int]  # training tokens per run, by variant ("" = the recipe)
    runs: int
    costs: dict[str, ModelCost]
    gpu: GpuEstimate
    hours: float | None = None  # on the device rates below; None when there are none
    device: str | None = None
    rates: dict[str, Rate] | None = None

    @property
    def tokens_per_run(self) -> int:
        return self.tokens.get("", next(iter(self.tokens.values())))

    def lines(self) -> list[str]:
        per_run = ", ".join(f"{n:,} ({v or 'recipe'})" for v, n in self.tokens.items()) \
            if len(set(self.tokens.values())) > 1 else f"{self.tokens_per_run:,}"
        g = self.gpu
        out = [f"estimate: {per_run} tokens per run, {self.runs} runs (training only)",
               f"  on one {g.gpu}: {g.hours:,.1f} GPU-hours at {g.mfu:.1%} MFU of its {g.peak_flops / 1e12:,.0f} "
               f"TFLOP/s bf16 peak ({g.mfu_basis})"]
        if self.hours is not None:
            out.append(f"  on {self.device}: {self.hours:,.2f} device-hours")
        for model, cost in self.costs.items():
            line = (f"  {model}: {cost.flops_per_token / 1e6:,.1f} MFLOP/token (vocab {cost.vocab_size:,}, "
                    f"context {cost.context}); {g.gpu}: {g.peak_flops * g.mfu / cost.flops_per_token:,.0f} tokens/s")
            if self.rates:
                rate = self.rates[model]
                line += f"; {rate.tokens_per_s:,.0f} tokens/s: {rate.basis}"
            out.append(line)
        return out


def vocab_size(cfg: Any) -> int:
    """The vocabulary the runs will train with: a written dataset's, else what the tokenizer will give."""
    from impossible_lms.data import load_manifest
    from impossible_lms.errors import ILMError
    from impossible_lms.experiment.layout import layout
    from impossible_lms.tokenizer import DEFAULT_FALLBACK_VOCAB
    from perturbations import get_language

    sizes = []
    for language in cfg.languages:
        try:
            sizes.append(int(load_manifest(layout(cfg).data(language)).vocab_size))
        except ILMError:
            base = DEFAULT_FALLBACK_VOCAB if cfg.corpus.tokenizer == "fallback" else 50257  # GPT-2's
            sizes.append(base + len(get_language(language).markers))
    return max(sizes)


def model_cost(model: str, vocab: int, overrides: dict[str, Any] | None = None) -> ModelCost:
    from impossible_lms.models import model_config

    mc = model_config(model, vocab_size=vocab, **(overrides or {}))
    context = int(mc.n_positions)
    return ModelCost(model, vocab, context, float(mc.flops_per_token(context)))


def measure_rate(cost: ModelCost, device: Any, overrides: dict[str, Any] | None = None,
                 seconds: float = CALIBRATION_SECONDS, clock: Callable[[], float] = time.perf_counter) -> Rate:
    """Training tokens/s of ``cost.model`` on ``device``: real forward/backward steps of one sequence
    at the preset's full context (as the runs train), the first step (allocation, kernel choice)
    left out, the median of the next ``MIN_TIMED_STEPS``..``MAX_TIMED_STEPS`` (as many as fit in
    ``seconds``). ``clock`` is injectable so the arithmetic can be tested."""
    import torch

    from impossible_lms.models import build_model, model_config

    mc = model_config(cost.model, vocab_size=cost.vocab_size, **(overrides or {}))
    model = build_model(mc).to(device)
    x = torch.randint(0, cost.vocab_size, (1, cost.context), device=device)

    # Forward and backward only: what flops_per_token counts. The optimizer step is per
    # batch, not per token, and vanishes at the runs' 2^19-token batches.
    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):  # as the runs train
            loss = model(input_ids=x, labels=x, return_logits=False).loss
        loss.backward()
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return _median_rate(step, cost, seconds, clock)


def _median_rate(step: Callable[[], None], cost: ModelCost, seconds: float, clock: Callable[[], float]) -> Rate:
    """Time ``step`` (one sequence of ``cost.context`` tokens) after one warm-up call: the median step."""
    step()  # warm-up: not timed
    times: list[float] = []
    spent = 0.0
    while len(times) < MIN_TIMED_STEPS or (spent < seconds and len(times) < MAX_TIMED_STEPS):
        start = clock()
        step()
        times.append(clock() - start)
        spent += times[-1]
    median = statistics.median(times)
    tokens_per_s = cost.context / median
    return Rate(tokens_per_s, f"measured here: median of {len(times)} forward/backward steps of 1×{cost.context} "
                              f"tokens after 1 warm-up step ({median:.3g} s each, "
                              f"{tokens_per_s * cost.flops_per_token / 1e9:,.1f} GFLOP/s)")


def gpu_estimate(spec: Any, tokens: dict[str, int], runs: list[Any], costs: dict[str, ModelCost]) -> GpuEstimate:
    """Hours on one ``spec.gpu`` at ``spec.mfu`` (default :data:`MEASURED_MFU`) of its peak."""
    from impossible_lms.errors import ILMError, did_you_mean

    gpu = str(spec.gpu)
    peak = next((v for k, v in PEAK_FLOPS.items() if k.lower() == gpu.lower()), None)
    if peak is None:
        raise ILMError(f"estimate.gpu: unknown GPU {gpu!r}{did_you_mean(gpu, PEAK_FLOPS)}; "
                       f"choose from {', '.join(PEAK_FLOPS)}")
    mfu, basis = (float(spec.mfu), "estimate.mfu") if spec.mfu else (MEASURED_MFU, MEASURED_MFU_BASIS)
    seconds = sum(tokens[r.variant] * costs[r.model].flops_per_token for r in runs) / (peak * mfu)
    return GpuEstimate(gpu.upper(), peak, mfu, basis, seconds / 3600.0)


def estimate_training(cfg: Any, runs: list[Any], calibrate: bool = True,
                      clock: Callable[[], float] = time.perf_counter) -> Estimate:
    """The estimate for ``runs`` (each with ``.model`` and ``.variant``): always on the named GPU, and
    on a recorded or measured device rate where there is one (``calibrate=False`` measures nothing)."""
    import torch

    from impossible_lms.experiment.plan import tokens_per_run

    spec = cfg.estimate
    overrides = dict(cfg.train.get("model_overrides") or {})
    vocab = vocab_size(cfg)
    models = list(dict.fromkeys(r.model for r in runs))
    costs = {m: model_cost(m, vocab, overrides) for m in models}
    tokens = {v: tokens_per_run(cfg, v) for v in dict.fromkeys(r.variant for r in runs)}
    gpu = gpu_estimate(spec, tokens, runs, costs)
    device = _calibration_device(cfg) if calibrate else None
    if device is not None and device.type == "cpu" and cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)  # calibrate as the runs will train
    rates: dict[str, Rate] = {}
    for m in models:
        if m in cfg.throughput:
            rates[m] = Rate(float(cfg.throughput[m]), f"recorded throughput.{m} in the experiment")
        elif spec.flops_per_s:
            rates[m] = Rate(float(spec.flops_per_s) / costs[m].flops_per_token,
                            f"recorded estimate.flops_per_s = {spec.flops_per_s:.3g} FLOP/s")
        elif device is not None:
            same = next((k for k in rates if _shape(costs[k]) == _shape(costs[m])
                         and rates[k].basis.startswith("measured")), None)  # gpt2-nopos costs what gpt2 costs
            rates[m] = (Rate(rates[same].tokens_per_s, f"as {same}") if same
                        else measure_rate(costs[m], device, overrides, spec.seconds, clock))
        else:
            return Estimate(tokens, len(runs), costs, gpu)
    hours = sum(tokens[r.variant] / rates[r.model].tokens_per_s for r in runs) / 3600.0
    recorded = all(m in cfg.throughput for m in models) or bool(spec.flops_per_s)
    where = "the recorded device" if recorded else (torch.cuda.get_device_name(device) if device.type == "cuda"
                                                     else "this machine's CPU")
    return Estimate(tokens, len(runs), costs, gpu, hours, where, rates)


def _shape(cost: ModelCost) -> tuple[int, int, float]:
    return cost.vocab_size, cost.context, cost.flops_per_token


def _calibration_device(cfg: Any):
    """Where to calibrate: ``estimate.device`` when named; on "auto", this machine's GPU, or its CPU
    when the experiment trains on the CPU; None when a CPU number would say nothing about the runs."""
    import torch

    if cfg.estimate.device != "auto":
        return torch.device(cfg.estimate.device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu") if str(cfg.train.get("device", "auto")) == "cpu" else None
