"""Training throughput: our trainer step vs. transformers.GPT2LMHeadModel, same process.

    python benchmarks/train_throughput.py                          # tiny-gpt2 on CPU (a smoke test)
    python benchmarks/train_throughput.py --preset gpt2 --micro 16 --steps 20   # on a GPU

Both sides run the same micro-batches through the trainer's own step
(``impossible_lms.training.loop._step``: autocast, accumulation, clipping,
AdamW, no host sync inside the step), so the difference is the model. Prints
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
    args = p.parse_args()

    from impossible_lms.training import model as models
    from impossible_lms.training.config import TrainConfig
    from impossible_lms.training.distributed import resolve_device
    from impossible_lms.training.logging import peak_flops
    from impossible_lms.training.loop import make_optimizer, resolve_precision

    device = resolve_device(args.device)
    cfg = TrainConfig(model=args.preset, device=str(device), precision=args.precision, compile=args.compile)
    precision = resolve_precision(cfg, device)
    use_compile = args.compile if args.compile is not None else device.type == "cuda"
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True
    peak = peak_flops(args.peak_flops, device)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"precision {precision}, compile {use_compile}, torch {torch.__version__}, threads {torch.get_num_threads()}")

    ours = models.build(args.preset, args.vocab)
    context = models.context_length(ours)
    flops = models.flops_per_token(ours, context)
    builders = {"ilm": lambda: ours, "hf": lambda: _hf_twin(ours)}
    for name, build in builders.items():
        if args.only and name != args.only:
            continue
        model = build().to(device).train()
        tps = _measure(model, cfg, device, precision, use_compile, context, args, make_optimizer)
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


def _measure(model, cfg, device, precision, use_compile, context, args, make_optimizer) -> float:
    from impossible_lms.training.distributed import DistContext
    from impossible_lms.training.loop import BatchPlan, _autocast, _step

    plan = BatchPlan(context=context, global_batch=args.micro * args.accum, micro=args.micro, accumulation=args.accum)
    dctx = DistContext(rank=0, world=1, local_rank=0, device=device, owns_group=False)
    rng = np.random.default_rng(0)
    batches = _RandomBatches(rng, args.vocab, plan, device)
    opt = make_optimizer(cfg, model, device)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    net = torch.compile(model) if use_compile else model
    params = [p for p in model.parameters() if p.requires_grad]
    autocast = _autocast(precision, device)
    for g in opt.param_groups:
        g["lr"] = 1e-4
    for step in range(args.warmup):
        _step(net, opt, scaler, batches, step, plan, autocast, params, cfg, dctx)
    _sync(device)
    start = time.perf_counter()
    loss = None
    for step in range(args.steps):
        loss, _ = _step(net, opt, scaler, batches, step, plan, autocast, params, cfg, dctx)
    float(loss)  # one host sync at the end, as at a log step
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
