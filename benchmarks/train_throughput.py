"""Training throughput: our trainer step vs. transformers.GPT2LMHeadModel, same process.

    python benchmarks/train_throughput.py                          # tiny-gpt2 on CPU (a smoke test)
    python benchmarks/train_throughput.py --preset gpt2 --micro 16 --steps 20   # on a GPU

Both sides run the same micro-batches through the trainer's own step
(``impossible_lms.training.TrainStep``: the objective's loss under autocast,
accumulation, clipping, AdamW, no host sync inside the step), so the difference
is the model. ``--objective lm+exits`` times the joint exit-head step (ours
only; use an exits preset such as tiny-gpt2-exits). Prints
tokens/s and MFU (when the device's peak is known or --peak-flops is given).
Nothing here asserts a speed: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny-gpt2")
    p.add_argument("--micro", type=int, default=8, help="sequences per forward pass")
    p.add_argument("--accum", type=int, default=1)
    p.add_argument("--steps", type=int, default=10, help="timed optimizer steps (after warm-up)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--peak-flops", type=float, default=None)
    p.add_argument("--only", choices=["ilm", "hf"], default=None)
    p.add_argument("--objective", default="lm", help="lm, lm+exits or exits (the last two: ours only)")
    args = p.parse_args()

    from impossible_lms.training import TrainConfig, model_for_training, peak_flops, resolve_device, resolve_precision

    device = resolve_device(args.device)
    cfg = TrainConfig(model=args.preset, device=str(device), precision=args.precision, compile=args.compile,
                      objective=args.objective)
    precision = resolve_precision(cfg, device)
    use_compile = args.compile if args.compile is not None else device.type == "cuda"
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True
    peak = peak_flops(args.peak_flops, device)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"precision {precision}, compile {use_compile}, torch {torch.__version__}, threads {torch.get_num_threads()}")

    ours = model_for_training(cfg, args.vocab)  # built, with the objective's frozen parameters frozen
    context = ours.config.n_positions
    flops = ours.config.flops_per_token(context)
    builders = {"ilm": lambda: ours, "hf": lambda: _hf_twin(ours)}
    for name, build in builders.items():
        if args.only and name != args.only or name == "hf" and args.objective != "lm":
            continue
        model = build().to(device).train()
        tps = _measure(model, cfg, device, precision, use_compile, context, args)
        mfu = f"{100 * tps * flops / peak:.1f}%" if peak else "n/a (unknown peak; --peak-flops)"
        n = sum(p.numel() for p in model.parameters())
        print(f"{name:4s} {args.preset}: {n / 1e6:.2f}M params, batch {args.micro}x{args.accum}x{context}: "
              f"{tps:,.0f} tokens/s, MFU {mfu}")
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _hf_twin(ours):
    """transformers' GPT-2 with the same shape as our preset (learned positions)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    c = ours.config
    return GPT2LMHeadModel(GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.n_positions, n_embd=c.n_embd, n_layer=c.n_layer, n_head=c.n_head,
        scale_attn_by_inverse_layer_idx=getattr(c, "scale_attn_by_inverse_layer_idx", False),
        reorder_and_upcast_attn=getattr(c, "reorder_and_upcast_attn", False),
    ))


def _measure(model, cfg, device, precision, use_compile, context, args) -> float:
    from impossible_lms.training import BatchPlan, TrainStep, get_objective, make_optimizer

    plan = BatchPlan(context=context, global_batch=args.micro * args.accum, micro=args.micro, accumulation=args.accum)
    batches = _RandomBatches(np.random.default_rng(0), args.vocab, plan, device)
    opt = make_optimizer(cfg, model, device)
    net = torch.compile(model) if use_compile else model
    step_fn = TrainStep(net, opt, plan, get_objective(cfg.objective), precision, device, cfg.optim.grad_clip)
    for g in opt.param_groups:
        g["lr"] = 1e-4
    for step in range(args.warmup):
        step_fn(batches, step)
    _sync(device)
    start = time.perf_counter()
    losses = None
    for step in range(args.steps):
        losses, _ = step_fn(batches, step)
    float(losses.total)  # one host sync at the end, as at a log step
    _sync(device)
    return args.steps * plan.tokens_per_step / (time.perf_counter() - start)


class _RandomBatches:
    def __init__(self, rng, vocab: int, plan, device):
        self.x = torch.from_numpy(rng.integers(0, vocab, (plan.micro, plan.context))).to(device)

    def micro(self, step: int, k: int) -> torch.Tensor:
        return self.x


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
