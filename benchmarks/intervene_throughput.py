"""Interchange-intervention throughput: all positions of a layer in one forward vs one forward per
(pair, layer, position), the reference's loop (hop_interventions.py ran pyvene once per layer × position).

Both compute the same wins (checked); pairs/s counts agreement pairs fully analysed
(every layer × position).

    python benchmarks/intervene_throughput.py                          # CPU smoke test (tiny model)
    python benchmarks/intervene_throughput.py --preset gpt2 --vocab 50259 --pairs 512 --device cuda
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from impossible_lms.analysis.intervene import interchange_wins
from impossible_lms.models import build_model, model_config
from impossible_lms.models.hooks import patch_block, record_blocks


def looped(model, base, source, sg, pl, device):
    layers = model.config.n_layer
    width = len(base[0])
    wins = np.zeros((layers, width, len(base)), bool)
    with torch.inference_mode():
        for i, (b, s) in enumerate(zip(base, source)):
            b = torch.tensor([b], device=device)
            with record_blocks(model, range(layers)) as states:
                model(input_ids=torch.tensor([s], device=device))
            for layer in range(layers):
                for p in range(width):
                    one = torch.tensor([0], device=device)
                    with patch_block(model, layer, one, torch.tensor([p], device=device), states[layer][0, p][None]):
                        logits = model(input_ids=b).logits[0, -1]
                    wins[layer, p, i] = bool(logits[pl] > logits[sg])
    return wins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny-gpt2")
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=7)
    ap.add_argument("--batch-rows", type=int, default=512)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = build_model(model_config(args.preset, vocab_size=args.vocab)).eval().to(args.device)
    rng = np.random.default_rng(0)
    sg, pl = args.vocab - 2, args.vocab - 1
    base = rng.integers(0, sg, (args.pairs, args.tokens)).tolist()
    source = rng.integers(0, sg, (args.pairs, args.tokens)).tolist()
    results = {}
    for name, fn in (("batched", lambda: interchange_wins(model, base, source, sg, pl, args.batch_rows)),
                     ("looped", lambda: looped(model, base, source, sg, pl, args.device))):
        if name == "batched":
            fn()  # warm-up (the looped run is long enough to warm itself)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        wins = fn()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        results[name] = (time.perf_counter() - start, wins)
    agree = (results["batched"][1] == results["looped"][1]).mean()
    print(f"{args.preset} on {args.device}: {args.pairs} pairs x {model.config.n_layer} layers x {args.tokens} positions")
    for name, (seconds, _) in results.items():
        print(f"  {name:8s} {seconds:8.2f} s  {args.pairs / seconds:10.1f} pairs/s")
    print(f"  speed-up {results['looped'][0] / results['batched'][0]:.1f}x; wins agree on {agree:.1%} of cells")


if __name__ == "__main__":
    main()
