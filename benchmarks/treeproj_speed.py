"""Tree-projection chart cost: one forward per span start (ilm) vs one per span (the reference).

Prints seconds per sentence for both on random sentences, and the largest chart difference.
    python benchmarks/treeproj_speed.py [--preset tiny-gpt2] [--tokens 24] [--sentences 4] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from impossible_lms.analysis.treeproj import Stimulus, sci_charts
from impossible_lms.models import build_model, model_config
from impossible_lms.models.hooks import record_blocks, restrict_attention


def per_span(model, s: Stimulus, start: int, read: int, batch: int) -> np.ndarray:
    """The reference's way: a forward per span, keys outside [first, last] token masked."""
    T, n = len(s.ids), len(s.leaves)
    spans = [(i, j) for i in range(n) for j in range(i, n)]
    ids = torch.tensor([s.ids], device=next(model.parameters()).device)
    chart = np.full((n, n), np.nan)
    with torch.inference_mode():
        with record_blocks(model, [read - 1]) as st:
            model(ids)
        full = st[read - 1][0].double()
        for at in range(0, len(spans), batch):
            part = spans[at:at + batch]
            ok = torch.zeros(len(part), 1, 1, T, dtype=torch.bool, device=ids.device)
            for r, (i, j) in enumerate(part):
                ok[r, 0, 0, s.leaves[i][0]:s.leaves[j][1]] = True
            with record_blocks(model, [read - 1]) as st, restrict_attention(model, start, ok):
                model(ids.expand(len(part), -1))
            h = st[read - 1].double()
            for r, (i, j) in enumerate(part):
                a, b = s.leaves[i][0], s.leaves[j][1]
                x, y = h[r, a:b].sum(0), full[a:b].sum(0)
                chart[i, j] = float(x @ y / (x.norm() * y.norm()))
    return chart


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny-gpt2")
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--sentences", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = build_model(model_config(args.preset, vocab_size=1000)).eval().to(args.device)
    n_blocks = model.config.n_layer
    start, read = min(4, max(1, n_blocks - 1) - 1), max(1, n_blocks - 1)
    rng = np.random.default_rng(0)
    stimuli = [Stimulus(tuple(rng.integers(0, 1000, args.tokens).tolist()),
                        tuple((t, t + 1) for t in range(args.tokens))) for _ in range(args.sentences)]
    t0 = time.perf_counter()
    ours = sci_charts(model, stimuli, start, read, args.batch)
    t1 = time.perf_counter()
    ref = [per_span(model, s, start, read, args.batch) for s in stimuli]
    t2 = time.perf_counter()
    diff = max(float(np.nanmax(np.abs(a - b))) for a, b in zip(ours, ref))
    print(f"{args.preset} on {args.device}: {args.sentences} sentences x {args.tokens} tokens "
          f"(restricted from block {start}, hidden state {read})")
    print(f"  per span start (ilm): {(t1 - t0) / args.sentences:.3f} s/sentence")
    print(f"  per span (reference): {(t2 - t1) / args.sentences:.3f} s/sentence "
          f"({(t2 - t1) / max(t1 - t0, 1e-9):.1f}x)")
    print(f"  largest chart difference: {diff:.2e}")


if __name__ == "__main__":
    main()
