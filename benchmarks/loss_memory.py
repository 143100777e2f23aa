"""Peak memory and time of the LM loss (forward + backward): the reference formula vs the chunked head loss.

    python benchmarks/loss_memory.py                         # GPT-2: 8 × 1024 tokens, V = 50259, d = 768
    python benchmarks/loss_memory.py --batch 2 --seq 512 --dtypes fp32

Both compute the same number from the final hidden states h [B, T, d] and the
tied output embeddings (rows padded to a multiple of 64, as the models do):

- reference: ``lm_loss(F.linear(h, W)[..., :V], labels)`` — all logits, their fp32 copy;
- chunked: ``head_cross_entropy(h, W, labels, vocab=V)`` (models/loss.py), what training runs.

Peak memory is the most bytes the loss holds at once above what was allocated
before it (h, W and labels), through ``loss.backward()`` (gradients of h and W
included). CUDA: ``torch.cuda.max_memory_allocated``. CPU: there is no allocator
high-water mark, so the script records every allocation and free of PyTorch's
CPU allocator with ``torch.profiler`` (``profile_memory=True``), orders them in
time and takes the maximum of their running sum. Times are from a separate run
without the profiler (the median of ``--repeat`` runs).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from impossible_lms.models.gpt2 import lm_loss
from impossible_lms.models.loss import CHUNK_ELEMENTS, head_cross_entropy


def reference(h, w, labels, vocab):
    return lm_loss(F.linear(h, w)[..., :vocab], labels)


def chunked(h, w, labels, vocab, rows=None):
    return head_cross_entropy(h, w, labels, vocab=vocab, backend="chunked", chunk_rows=rows)


def step(fn, h, w, labels, vocab, autocast_dtype, **kw) -> float:
    with torch.autocast(h.device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        loss = fn(h, w, labels, vocab, **kw)
    loss.backward()
    return float(loss.detach())


def peak_bytes(run, device: torch.device) -> int:
    """Peak bytes allocated during ``run()`` above the bytes allocated before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    # Every allocator event, in time order: the raw "[memory]" records carry +bytes (alloc) or
    # -bytes (free). (prof.events() keeps only the frees no operator owns, so read kineto's list.)
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]" and str(e.device_type()).endswith("CPU"))
    now = peak = 0
    for _, nbytes in events:
        now += nbytes
        peak = max(peak, now)
    return peak


def seconds(run, device: torch.device, repeat: int, reset) -> float:
    times = []
    for _ in range(repeat):
        reset()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=50259)
    ap.add_argument("--embd", type=int, default=768)
    ap.add_argument("--dtypes", default="fp32,bf16", help="fp32 and/or bf16 (autocast), comma-separated")
    ap.add_argument("--rows", default="", help="extra chunk sizes (positions) to try, comma-separated")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    padded = -(-args.vocab // 64) * 64
    h = (torch.randn(args.batch, args.seq, args.embd, device=device)).requires_grad_()
    w = (torch.randn(padded, args.embd, device=device) * 0.02).requires_grad_()
    labels = torch.randint(0, args.vocab, (args.batch, args.seq), device=device)
    default_rows = max(1, CHUNK_ELEMENTS // args.vocab)
    variants = [("reference", reference, {}), (f"chunked ({default_rows} rows)", chunked, {})]
    variants += [(f"chunked ({r} rows)", chunked, {"rows": int(r)}) for r in args.rows.split(",") if r]
    logits_gib = args.batch * args.seq * args.vocab * 4 / 2**30
    print(f"{device.type}: B×T = {args.batch}×{args.seq}, V = {args.vocab} (padded {padded}), d = {args.embd}; "
          f"one fp32 [B, T, V] tensor = {logits_gib:.2f} GiB; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'dtype':5} {'loss':24} {'peak MiB':>10} {'seconds':>8} {'value':>10}")
    for dt in args.dtypes.split(","):
        autocast = {"fp32": None, "bf16": torch.bfloat16}[dt]
        values = {}
        for name, fn, kw in variants:
            def run():
                values[name] = step(fn, h, w, labels, args.vocab, autocast, **kw)
            h.grad = w.grad = None  # freed before measuring, so the peak includes the new gradients
            peak = peak_bytes(run, device)
            secs = seconds(run, device, args.repeat, reset=lambda: setattr(h, "grad", None) or setattr(w, "grad", None))
            print(f"{dt:5} {name:24} {peak / 2**20:10,.0f} {secs:8.2f} {values[name]:10.6f}", flush=True)


if __name__ == "__main__":
    main()
