"""One prepared GPU check: training throughput/MFU, eval throughput, attention agreement, peak memory.

    python benchmarks/gpu_check.py            # on one H100/H200: < 8 minutes, prints one table
    python benchmarks/gpu_check.py --smoke    # tiny sizes on CPU in seconds (CI runs this so it cannot rot)
    bash benchmarks/gpu_session.sh OUT        # the whole lease: wheels, each part under its own time limit

Runs on a bare machine with only torch, transformers and triton: flash-attn is
imported only inside its part (a clear "skipped" row when it is missing), and
nothing here imports datasets or nltk. Only public API is used
(``impossible_lms.models.build_model/model_config``, ``evaluation.evaluate``,
``evaluation.toy``). Training rows are measured with dropout 0.1 (the
reference recipe, our default) and with the ``fast`` setting (dropout 0).
Nothing asserts a speed: the table is for reading against the issue's targets
(gpt2 >= 550K tokens/s, >= 48% MFU on one H100; Backpack >= 0.6x of that;
eval 30 x 10K < 60 s and >= 20x the batch-8 fp32 loop: ``evaluate(subsets=["test_affected"])``
against the loop's three passes for the same numbers, and the default ``evaluate()``
against its five passes for every number).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # eval_throughput's baseline loop, not a copy

from impossible_lms.estimate import PEAK_FLOPS as PEAKS  # dense bf16 by device-name substring (H200 = H100's chip)
FULL = dict(presets=["gpt2", "gpt2-nopos", "gpt2-rotary", "gpt2-alibi", "backpack-gpt2"], seq=1024, micro=16,
            steps=10, warmup=3, vocab=50257, checkpoints=30, baseline_checkpoints=2, sentences=10000, eval_vocab=50259, eval_preset="gpt2")
SMOKE = dict(presets=["tiny-gpt2", "tiny-gpt2-nopos", "tiny-gpt2-rotary", "tiny-gpt2-alibi", "tiny-backpack"],
             seq=32, micro=2, steps=2, warmup=1, vocab=256, checkpoints=2, baseline_checkpoints=1, sentences=20, eval_vocab=256,
             eval_preset="tiny")
ROWS: list[tuple[str, str, str, str]] = []  # (part, subject, value, note)
LOG: list = []  # the --out file, when given: every row is written there the moment it is measured


def row(part: str, subject: str, value: str, note: str = "") -> None:
    """Keep the row for the final table, and print it now: a run cut short by its time limit
    still shows (and, with --out, keeps) every number it reached."""
    ROWS.append((part, subject, value, note))
    line = f"[{part}] {subject}: {value}  {note}".rstrip()
    print(line, flush=True)
    for f in LOG:
        f.write(line + "\n")
        f.flush()


def peak_memory(device: torch.device) -> str:
    if device.type != "cuda":
        return "n/a (cpu)"
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"


class NanoBlock(nn.Module):
    """nanoGPT's block (Karpathy): pre-LN, fused qkv, SDPA causal, GELU MLP."""

    def __init__(self, d: int, h: int, dropout: float):
        super().__init__()
        self.h, self.dropout = h, dropout
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d),
                                 nn.Dropout(dropout))
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0)
        x = x + self.resid_drop(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))
        return x + self.mlp(self.ln_2(x))


class NanoGPT(nn.Module):
    def __init__(self, vocab: int, seq: int, d: int, layers: int, heads: int, dropout: float):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(seq, d)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(NanoBlock(d, heads, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, input_ids, labels=None):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.drop(self.wte(input_ids) + self.wpe(pos))
        for b in self.blocks:
            x = b(x)
        logits = self.lm_head(self.ln_f(x))
        loss = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels[:, 1:].flatten())
        return type("Out", (), {"loss": loss})


def ours(preset: str, vocab: int, seq: int, dropout: float, **extra):
    from impossible_lms.models import build_model, model_config

    fields = dict(vocab_size=vocab, embd_pdrop=dropout, attn_pdrop=dropout, resid_pdrop=dropout, **extra)
    if seq:
        fields["n_positions"] = seq
    return build_model(model_config(preset, **fields))


def hf_gpt2(shape, vocab: int, seq: int, dropout: float):
    from transformers import GPT2Config, GPT2LMHeadModel

    c = GPT2Config(vocab_size=vocab, n_positions=seq, n_embd=shape.n_embd, n_layer=shape.n_layer,
                   n_head=shape.n_head, embd_pdrop=dropout, attn_pdrop=dropout, resid_pdrop=dropout,
                   attn_implementation="sdpa")
    return GPT2LMHeadModel(c)


def train_rate(model: nn.Module, args, device: torch.device, ilm: bool) -> float:
    """Tokens/s of forward+backward+fused AdamW on one fixed random batch (bf16 autocast on CUDA).

    ilm's models are called as the trainer calls them (``return_logits=False``: the loss
    from the hidden states a chunk at a time, never the [B, T, V] logits); the
    baselines as their own training code does (full logits, then cross-entropy)."""
    kwargs = {"return_logits": False} if ilm and args.ilm_loss == "chunked" else {}
    model = model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    net = torch.compile(model) if args.compile else model
    x = torch.randint(0, args.vocab, (args.micro, args.seq), device=device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            loss = net(input_ids=x, labels=x, **kwargs).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(args.warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    loss.item()  # one host sync at the end, as at a log step
    sync(device)
    return args.steps * args.micro * args.seq / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def part_train(args, device, peak) -> None:
    from impossible_lms.models import model_config

    shape = model_config(args.presets[0])
    # Every preset in the fast setting (the targets) first; the default setting for the first preset
    # and the baselines only, so the compile time of 14 models does not push the run past 8 minutes.
    settings = {"fast": ("fast (dropout 0)", 0.0), "default": ("default (dropout 0.1)", 0.1)}
    for setting, dropout in (settings[name] for name in args.settings):
        presets = args.presets if dropout == 0.0 else args.presets[:1]
        loss = "" if args.ilm_loss == "chunked" else ", full logits"
        subjects = [(p + loss, True, lambda p=p: ours(p, args.vocab, args.seq, dropout)) for p in presets]
        if not args.no_baselines:
            subjects += [("transformers GPT2 (sdpa)", False, lambda: hf_gpt2(shape, args.vocab, args.seq, dropout)),
                         ("nanoGPT-style", False, lambda: NanoGPT(args.vocab, args.seq, shape.n_embd, shape.n_layer,
                                                                  shape.n_head, dropout))]
        for name, ilm, build in subjects:
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            try:
                model = build()
                n = sum(p.numel() for p in model.parameters())
                flops = 6.0 * n + 12.0 * shape.n_layer * shape.n_embd * args.seq
                start = time.perf_counter()
                tps = train_rate(model, args, device, ilm)
                wall = time.perf_counter() - start
            except Exception as e:  # one broken subject must not hide the others' numbers
                row("train", f"{name} [{setting}]", "FAILED", f"{type(e).__name__}: {str(e)[:80]}")
                continue
            mfu = f"MFU {100 * tps * flops / peak:.1f}%" if peak else "MFU n/a (unknown peak)"
            row("train", f"{name} [{setting}]", f"{tps:,.0f} tok/s",
                f"{mfu}, peak mem {peak_memory(device)}, batch {args.micro}x{args.seq}, "
                f"{wall:.0f} s with compile")
            del model


def importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def part_eval(args, device) -> None:
    if not importable("datasets"):  # the on-disk dataset format is datasets' (arrow): no way to write one
        row("eval", "-", "skipped", "datasets not importable (pip install datasets to run this part)")
        return
    from eval_throughput import FIRST_PASSES, PRESETS, baseline

    from impossible_lms.evaluation import evaluate
    from impossible_lms.evaluation.data import EvalData
    from impossible_lms.evaluation.toy import make_toy_data, make_toy_run

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_toy_data(tmp / "data", per_genre=math.ceil(args.sentences / 10),
                             genres=[f"g{i}" for i in range(10)], vocab_size=args.eval_vocab, min_len=4, max_len=40)
        steps = [100 * (i + 1) for i in range(args.checkpoints)]
        run = make_toy_run(tmp / "run", steps=steps[:1], data=data, vocab_size=args.eval_vocab,
                           **PRESETS[args.eval_preset])
        copy_checkpoints(run, steps)
        n = len(EvalData(data, None, 0).sample("test_affected"))
        ours = {}  # the default (every subset) and the like for like (affected perplexity + surprisal)
        for label, subsets in (("every", None), ("affected", ["test_affected"])):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            evaluate(run, data, metrics=["perplexity", "marker_surprisal"], results=tmp / f"results-{label}",
                     subsets=subsets, sentences_per_genre=None, device=str(device),
                     dtype="bfloat16" if device.type == "cuda" else "float32")
            sync(device)
            ours[label] = time.perf_counter() - start
            name = "evaluate()" if subsets is None else "evaluate(subsets=test_affected)"
            row("eval", f"{name} {args.checkpoints} ckpt x {n} sent", f"{ours[label]:.2f} s",
                f"{args.checkpoints * n / ours[label]:,.0f} sent/s, peak mem {peak_memory(device)}")
        # The loop takes ~20x longer: time it on a few checkpoints and scale (the note says so).
        few = steps[: args.baseline_checkpoints]
        seconds, _ = baseline(run, few, EvalData(data, None, 0), str(device))
        base, every = (sum(seconds[name][0] for name in names) * len(steps) / len(few)
                       for names in (FIRST_PASSES, tuple(seconds)))
        row("eval", "batch-8 fp32 loop (same sentences)", f"{base:.2f} s",
            f"3 passes (affected perplexity + surprisal): {base / ours['affected']:.1f}x evaluate(subsets=test_affected); "
            f"5 passes (every number, {every:.2f} s): {every / ours['every']:.1f}x evaluate(); "
            f"timed on {len(few)} of {len(steps)} checkpoints, scaled")


def copy_checkpoints(run: Path, steps: list[int]) -> None:
    """Give the run every step as hard links of its first checkpoint's files, so the machine
    spends its time on evaluation, not on initialising and writing 30 GPT-2s (each checkpoint is
    still read from its own folder: evaluation cannot tell them apart)."""
    import json
    import os

    from impossible_lms.training.checkpoint import STATE_JSON, write_trainer_state

    first = run / f"checkpoint-{steps[0]}"
    for step in steps[1:]:
        target = run / f"checkpoint-{step}"
        target.mkdir()
        for f in first.iterdir():
            os.link(f, target / f.name)
        (target / STATE_JSON).unlink()
        write_trainer_state(target, {"step": step})
    meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
    meta.update(steps=max(steps), checkpoints=list(steps))
    (run / "run.json").write_text(json.dumps(meta), encoding="utf-8")


def part_agreement(args, device) -> None:
    dtype = torch.bfloat16
    backends = ["sdpa", "eager"]
    if device.type != "cuda" or not importable("flash_attn"):
        row("agree", "flash_attn", "skipped", "flash_attn not importable" if device.type == "cuda" else "needs CUDA")
    else:
        backends.insert(0, "flash_attn")
    for preset in args.presets[:1] + [p for p in args.presets if "alibi" in p]:
        torch.manual_seed(0)
        ref = ours(preset, args.vocab, args.seq, 0.0, attention="eager").eval()
        x = torch.randint(0, args.vocab, (2, min(args.seq, 256)), device=device)
        logits = {}
        for backend in backends:
            model = ours(preset, args.vocab, args.seq, 0.0, attention=backend)
            model.load_state_dict(ref.state_dict())
            model = model.to(device=device, dtype=dtype).eval()
            with torch.no_grad():
                logits[backend] = model(input_ids=x).logits.float()
        for backend in backends:
            if backend != "eager":
                diff = (logits[backend] - logits["eager"]).abs().max().item()
                row("agree", f"{preset}: {backend} vs eager (bf16)", f"max |dlogit| {diff:.3g}",
                    f"argmax agree {(logits[backend].argmax(-1) == logits['eager'].argmax(-1)).float().mean():.3f}")


def print_table() -> None:
    header = ("part", "subject", "value", "note")
    widths = [max(len(r[i]) for r in ROWS + [header]) for i in range(4)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for r in ROWS:
        print(line(r))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on CPU in a few seconds (CI)")
    ap.add_argument("--skip", action="append", default=[], choices=["train", "eval", "agree"])
    ap.add_argument("--presets", dest="only", help="comma-separated presets to train (default: all five of the size)")
    ap.add_argument("--settings", default="fast,default",
                    help="training settings, in order: fast (dropout 0), default (dropout 0.1)")
    ap.add_argument("--ilm-loss", choices=["chunked", "full"], default="chunked",
                    help="ilm's models: the trainer's chunked loss (default) or full [B, T, V] logits")
    ap.add_argument("--no-baselines", action="store_true", help="time ilm's presets only")
    ap.add_argument("--eval-checkpoints", type=int, help="evaluation: checkpoints (default 30)")
    ap.add_argument("--out", type=Path, help="also append every row to this file as it is measured")
    args = ap.parse_args(argv)
    for k, v in (SMOKE if args.smoke else FULL).items():
        setattr(args, k, v)
    if args.eval_checkpoints:
        args.checkpoints = args.eval_checkpoints
    if args.only:
        args.presets = args.only.split(",")
    args.settings = args.settings.split(",")
    if args.out:
        LOG.append(args.out.open("a", encoding="utf-8"))
    device = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    args.compile = device.type == "cuda"
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAKS.items() if k in name), None)
    print(f"device {name}; peak bf16 dense used for MFU: {f'{peak / 1e12:.0f} TFLOP/s' if peak else 'unknown'}; "
          f"torch {torch.__version__}; compile {args.compile}")
    # Agreement first: seconds, and it shows at once whether each attention backend runs at all.
    parts = {"agree": lambda: part_agreement(args, device), "train": lambda: part_train(args, device, peak),
             "eval": lambda: part_eval(args, device)}
    for part, fn in parts.items():
        if part in args.skip:
            row(part, "-", "skipped", "--skip")
            continue
        start = time.perf_counter()
        try:
            fn()
        except Exception as e:  # report and go on: the other parts' numbers still matter
            row(part, "-", "FAILED", f"{type(e).__name__}: {str(e)[:100]}")
        row(part, "(part wall time)", f"{time.perf_counter() - start:.1f} s")
    print_table()


if __name__ == "__main__":
    main()
