"""Forward+backward throughput (tokens/s) and MFU of each model preset vs Hugging Face GPT-2 (sdpa).

GPU: the full presets at seq 1024 in bf16 autocast. CPU (no GPU): the tiny
presets at their 128 context in fp32, as a smoke test only.

    python benchmarks/model_throughput.py                    # auto: GPU if present
    python benchmarks/model_throughput.py --presets gpt2,gpt2-nopos --batch 8 --steps 20
    python benchmarks/model_throughput.py --device cpu --steps 3

MFU = flops_per_token(seq) · tokens/s / peak; the peak is looked up for known
GPUs (bf16 dense) or given with --peak-tflops; on CPU it is not reported.
"""

from __future__ import annotations

import argparse
import time

import torch

GPU_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "4090": 165.0}
FULL = ["gpt2", "gpt2-nopos", "gpt2-rotary", "gpt2-alibi", "backpack-gpt2"]
TINY = ["tiny-gpt2", "tiny-gpt2-nopos", "tiny-gpt2-rotary", "tiny-gpt2-alibi", "tiny-backpack"]


def peak_flops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v * 1e12 for k, v in GPU_PEAK_TFLOPS.items() if k in name), None)


def time_steps(model, batch: torch.Tensor, steps: int, warmup: int, dtype: torch.dtype | None, **kw) -> float:
    """Seconds per forward+backward step (mean over ``steps`` after ``warmup``); ``kw`` goes to forward."""
    device = batch.device

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = model(batch, labels=batch, **kw).loss
        loss.backward()
        model.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def hf_gpt2(cfg, device):
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_cfg = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.n_positions, n_embd=cfg.n_embd,
                        n_layer=cfg.n_layer, n_head=cfg.n_head, scale_attn_by_inverse_layer_idx=True,
                        attn_implementation="sdpa")
    return GPT2LMHeadModel(hf_cfg).to(device).train()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda")
    ap.add_argument("--presets", default=None, help="comma-separated (default: full on GPU, tiny on CPU)")
    ap.add_argument("--seq", type=int, default=None, help="sequence length (default: 1024 GPU, 128 CPU)")
    ap.add_argument("--batch", type=int, default=None, help="sequences per step (default: 8 GPU, 4 CPU)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--attention", default="auto", help="attention backend for our models")
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak for MFU (default: known GPUs)")
    ap.add_argument("--compile", action="store_true", help="torch.compile each model first")
    args = ap.parse_args()

    from impossible_lms.models import build_model, model_config

    gpu = torch.cuda.is_available() if args.device == "auto" else args.device.startswith("cuda")
    device = torch.device("cuda" if gpu else "cpu")
    presets = args.presets.split(",") if args.presets else (FULL if gpu else TINY)
    seq = args.seq or (1024 if gpu else 128)
    batch_size = args.batch or (8 if gpu else 4)
    dtype = torch.bfloat16 if gpu else None
    peak = peak_flops(device, args.peak_tflops)
    torch.manual_seed(0)

    name = torch.cuda.get_device_name(device) if gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; seq {seq}, batch {batch_size}, {'bf16 autocast' if dtype else 'fp32'}, "
          f"{args.steps} steps after {args.warmup} warmup")
    print(f"{'model':<22}{'params':>10}{'tokens/s':>12}{'MFU':>8}{'ms/step':>10}")
    for preset in presets:
        cfg = model_config(preset, attention=args.attention, n_positions=max(seq, model_config(preset).n_positions))
        if seq > cfg.n_positions:
            raise SystemExit(f"{preset}: seq {seq} exceeds context {cfg.n_positions}")
        batch = torch.randint(0, cfg.vocab_size, (batch_size, seq), device=device)
        # ours as training calls them: the loss without logits (models/loss.py)
        rows = [(preset, build_model(cfg).to(device).train(), {"return_logits": False})]
        if not preset.startswith(("backpack", "tiny-backpack")):
            rows.append(("  hf-gpt2 (sdpa)", hf_gpt2(cfg, device), {}))
        for label, model, kw in rows:
            if args.compile:
                model = torch.compile(model)
            sec = time_steps(model, batch, args.steps, args.warmup, dtype, **kw)
            tps = batch_size * seq / sec
            mfu = f"{cfg.flops_per_token(seq) * tps / peak:.1%}" if peak else "n/a"
            params = sum(p.numel() for p in model.parameters()) / 1e6
            print(f"{label:<22}{params:>9.1f}M{tps:>12,.0f}{mfu:>8}{sec * 1e3:>10.1f}")
            del model
        if gpu:
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
