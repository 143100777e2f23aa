"""Evaluation throughput: `evaluate()` vs. a plain batch-8 fp32 GPT2LMHeadModel loop, side by side.

``evaluate()`` gives perplexity on the affected test, unaffected test and dev
sentences plus hop marker surprisal (with and without the marker). The baseline
is what a first script does: load each checkpoint with
``GPT2LMHeadModel.from_pretrained`` in float32, walk the sentences in corpus
order in batches of 8 once per metric input, and take a full log-softmax. Two
like-for-like comparisons are printed: ``evaluate(subsets=["test_affected"])``
(affected perplexity + surprisal) against the loop's three passes for the same
numbers (the issue's comparison), and the default ``evaluate()`` (every subset)
against the loop's five passes for every number it gives. The loop's numbers are
checked against ``evaluate()``'s. Wall and process CPU seconds are both printed:
on a shared machine the CPU seconds (this process's own work) are the steadier
comparison.

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
from impossible_lms.evaluation.metrics import SURPRISAL_MAX_TOKENS, marker_pairs
from impossible_lms.evaluation.toy import make_toy_data, make_toy_run

PRESETS = {
    "tiny": dict(n_layer=2, n_embd=64, n_head=4, n_positions=128),
    "small": dict(n_layer=4, n_embd=256, n_head=4, n_positions=128),
    "gpt2": dict(n_layer=12, n_embd=768, n_head=12, n_positions=1024),
}


# The loop's passes for the affected perplexity and the surprisal: what it first timed (and the targets name)
FIRST_PASSES = ("test_affected", "with_marker", "without_marker")


def baseline(run: Path, steps: list[int], data: EvalData, device: str) -> tuple[dict, dict]:
    """The naive loop over every checkpoint: (seconds per pass, {(metric, subset): value} per step).

    One pass per metric input, in corpus order, batches of 8, a full log-softmax:
    the affected test sentences and the two marker inputs (what the loop did when
    this benchmark started), then the unaffected test and dev sentences, the rest
    of what ``evaluate`` computes. Seconds are wall-clock and process CPU time
    (the second counts only this process's own work on a shared machine)."""
    from transformers import GPT2LMHeadModel

    pairs = marker_pairs(data.sample("test_affected", SURPRISAL_MAX_TOKENS), data.marker_ids.values(), data.eos_id)
    inputs = {"test_affected": data.sample("test_affected"), "with_marker": pairs.with_marker,
              "without_marker": pairs.without_marker, "test_unaffected": data.sample("test_unaffected"),
              "dev": data.sample("dev")}
    seconds = {name: [0.0, 0.0] for name in inputs}
    values = {}
    for step in steps:
        start = time.perf_counter(), time.process_time()
        model = GPT2LMHeadModel.from_pretrained(run / f"checkpoint-{step}", dtype=torch.float32).to(device).eval()
        seconds["test_affected"][0] += time.perf_counter() - start[0]  # loading counts once, with the first pass
        seconds["test_affected"][1] += time.process_time() - start[1]
        scores = {}
        for name, seqs in inputs.items():
            start = time.perf_counter(), time.process_time()
            scores[name] = []
            for i in range(0, len(seqs), 8):
                batch = seqs[i : i + 8]
                width = max(map(len, batch))
                ids = torch.tensor([s + [0] * (width - len(s)) for s in batch], device=device)
                mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch], device=device)
                with torch.no_grad():
                    lp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
                tok = (lp[:, :-1].gather(2, ids[:, 1:, None])[..., 0] * mask[:, 1:]).cpu().numpy()
                scores[name] += [tok[row, : len(s) - 1] for row, s in enumerate(batch)]
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds[name][0] += time.perf_counter() - start[0]
            seconds[name][1] += time.process_time() - start[1]
        del model
        values[step] = _plain_values(scores, pairs.index)
    return seconds, values


def _plain_values(scores: dict, marker_index: list[int]) -> dict:
    """The metrics' values from the loop's log-probs (token t's log-prob is entry t - 1)."""
    out = {("perplexity", subset): math.exp(np.mean([-lp.mean() for lp in scores[subset] if len(lp)]))
           for subset in ("test_affected", "test_unaffected", "dev")}
    marker = np.array([-w[i - 1] / math.log(2) for i, w in zip(marker_index, scores["with_marker"]) if i > 0])
    following = np.array([-w[i - 1] / math.log(2) for i, w in zip(marker_index, scores["without_marker"]) if i > 0])
    out["marker_surprisal", "test_affected"] = float(marker.mean())
    out["surprisal_difference", "test_affected"] = float((following - marker).mean())
    return out


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
              f"{len(sentences)} sentences ({tokens} tokens), perplexity + marker surprisal, {torch.get_num_threads()} thread(s)")

        _warm_up(run / f"checkpoint-{steps[0]}")
        n = args.checkpoints * len(sentences)
        timed = {}  # label -> (rows, wall s, cpu s); each into its own results folder (nothing reused)
        for label, subsets in (("affected", ["test_affected"]), ("every", None)):
            start = time.perf_counter(), time.process_time()
            df = evaluate(run, data, metrics=["perplexity", "marker_surprisal"], results=tmp / f"results-{label}",
                          subsets=subsets, sentences_per_genre=None, device=args.device, dtype=args.dtype,
                          batch_tokens=args.batch_tokens)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            timed[label] = df, time.perf_counter() - start[0], time.process_time() - start[1]
        start = time.perf_counter()
        evaluate(run, data, metrics=["perplexity", "marker_surprisal"], results=tmp / "results-every",
                 sentences_per_genre=None, device=args.device, dtype=args.dtype)
        rerun = time.perf_counter() - start
        names = {"affected": 'evaluate(subsets=["test_affected"])', "every": "evaluate() (every subset)"}
        whats = {"affected": "affected perplexity + surprisal", "every": "every number evaluate() gives"}
        for label, (_, wall, cpu) in timed.items():
            print(f"{names[label] + ':':<37}{wall:8.2f} s  ({n / wall:8.1f} sentences/s)  cpu {cpu:8.2f} s  ({whats[label]})")
        print(f"{'evaluate() rerun:':<37}{rerun:8.2f} s  (all stored: skipped)")
        if args.skip_baseline:
            return
        seconds, values = baseline(run, steps, ed, args.device)
        # the loop's numbers must be evaluate()'s (fp32 noise apart), or the comparison means nothing
        worst = 0.0
        for df, _, _ in timed.values():
            got = df.set_index(["checkpoint", "metric", "subset"])["value"]
            worst = max([worst] + [abs(got[(step, *key)] / want - 1) for step, by_key in values.items()
                                   for key, want in by_key.items() if (step, *key) in got.index])
        print(f"numbers: evaluate() and the loop agree to {worst:.1e} (largest relative difference)")
        for label, passes in (("affected", FIRST_PASSES), ("every", tuple(seconds))):
            wall, cpu = (sum(seconds[name][k] for name in passes) for k in (0, 1))
            _, ours, ours_cpu = timed[label]
            loop = f"loop, {len(passes)} passes:"
            print(f"{loop:<37}{wall:8.2f} s  ({n / wall:8.1f} sentences/s)  cpu {cpu:8.2f} s  ({whats[label]})")
            print(f"  like for like, {names[label]} is {wall / ours:.2f}x the loop (wall), {cpu / ours_cpu:.2f}x (cpu)")
        if worst > 1e-5:  # the bound: numbers unchanged to 1e-5
            raise SystemExit(f"evaluate() and the loop differ by {worst:.1e}")


if __name__ == "__main__":
    main()
