"""Evaluation throughput: `evaluate()` vs. a plain batch-8 fp32 GPT2LMHeadModel loop, side by side.

Both compute the same numbers (perplexity on the affected test sentences plus
hop marker surprisal with and without the marker) for the same checkpoints and
sentences. The baseline is what a first script does: load each checkpoint with
``GPT2LMHeadModel.from_pretrained`` in float32, walk the sentences in corpus
order in batches of 8 once per metric, and take a full log-softmax.

    python benchmarks/eval_throughput.py                      # CPU smoke test (tiny model)
    python benchmarks/eval_throughput.py --preset gpt2 --vocab 50259 --checkpoints 30 --sentences 10000 --device cuda

The issue's target (30 checkpoints x 10,000 sentences, GPT-2 small, < 60 s on
one H100 and >= 20x the baseline) needs a GPU; the CPU default is a smoke test
with a small vocabulary (a 50k-vocabulary head makes CPU runs take minutes).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from impossible_lms.evaluation import evaluate
from impossible_lms.evaluation.data import EvalData
from impossible_lms.evaluation.metrics import marker_pairs
from impossible_lms.evaluation.toy import make_toy_data, make_toy_run

PRESETS = {
    "tiny": dict(n_layer=2, n_embd=64, n_head=4, n_positions=128),
    "small": dict(n_layer=4, n_embd=256, n_head=4, n_positions=128),
    "gpt2": dict(n_layer=12, n_embd=768, n_head=12, n_positions=1024),
}


def baseline(run: Path, steps: list[int], data: EvalData, device: str) -> float:
    """Seconds for the naive loop over every checkpoint."""
    from transformers import GPT2LMHeadModel

    sentences = data.sample("test_affected")
    pairs = marker_pairs(sentences, data.marker_ids.values(), data.eos_id)
    start = time.perf_counter()
    for step in steps:
        model = GPT2LMHeadModel.from_pretrained(run / f"checkpoint-{step}", dtype=torch.float32).to(device).eval()
        for seqs in (sentences, pairs.with_marker, pairs.without_marker):  # one pass per metric input
            for i in range(0, len(seqs), 8):
                batch = seqs[i : i + 8]
                width = max(map(len, batch))
                ids = torch.tensor([s + [0] * (width - len(s)) for s in batch], device=device)
                mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch], device=device)
                with torch.no_grad():
                    lp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
                tok = lp[:, :-1].gather(2, ids[:, 1:, None])[..., 0] * mask[:, 1:]
                tok.cpu()
        del model
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _warm_up(checkpoint: Path) -> None:
    """One-time costs (imports, first kernel launches) stay out of both timings."""
    from transformers import GPT2LMHeadModel

    from impossible_lms.models import load_model

    for model in (load_model(checkpoint), GPT2LMHeadModel.from_pretrained(checkpoint)):
        with torch.no_grad():
            model(torch.zeros((1, 4), dtype=torch.long))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--vocab", type=int, default=2000, help="vocabulary (50259 = GPT-2 + hop markers)")
    ap.add_argument("--checkpoints", type=int, default=2)
    ap.add_argument("--sentences", type=int, default=200, help="affected test sentences (10 genres)")
    ap.add_argument("--max-len", type=int, default=40)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch-tokens", type=int, default=None, help="default: 16384 on GPU, 2048 on CPU")
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        genres = [f"g{i}" for i in range(10)]
        data = make_toy_data(tmp / "data", per_genre=math.ceil(args.sentences / 10), genres=genres,
                             vocab_size=args.vocab, min_len=4, max_len=args.max_len)
        steps = [100 * (i + 1) for i in range(args.checkpoints)]
        run = make_toy_run(tmp / "run", steps=steps, data=data, vocab_size=args.vocab, **PRESETS[args.preset])
        ed = EvalData(data, None, 0)
        sentences = ed.sample("test_affected")
        tokens = sum(map(len, sentences))
        print(f"preset {args.preset} vocab {args.vocab} device {args.device}: {args.checkpoints} checkpoints x "
              f"{len(sentences)} sentences ({tokens} tokens), perplexity + marker surprisal")

        _warm_up(run / f"checkpoint-{steps[0]}")
        start = time.perf_counter()
        evaluate(run, data, metrics=["perplexity", "marker_surprisal"], results=tmp / "results",
                 sentences_per_genre=None, device=args.device, dtype=args.dtype, batch_tokens=args.batch_tokens)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        ours = time.perf_counter() - start
        start = time.perf_counter()
        evaluate(run, data, metrics=["perplexity", "marker_surprisal"], results=tmp / "results",
                 sentences_per_genre=None, device=args.device, dtype=args.dtype)
        rerun = time.perf_counter() - start
        print(f"evaluate():        {ours:8.2f} s  ({args.checkpoints * len(sentences) / ours:10.1f} sentences/s)")
        print(f"evaluate() rerun:  {rerun:8.2f} s  (all stored: skipped)")
        if not args.skip_baseline:
            base = baseline(run, steps, ed, args.device)
            print(f"batch-8 fp32 loop: {base:8.2f} s  ({args.checkpoints * len(sentences) / base:10.1f} sentences/s)")
            print(f"speed-up:          {base / ours:8.2f}x")


if __name__ == "__main__":
    main()
