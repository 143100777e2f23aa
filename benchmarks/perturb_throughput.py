"""Throughput of ``perturb_corpus`` (``ilm perturb``) against the reference's way of working.

    python benchmarks/perturb_throughput.py [--data ../shared/data] [--workers 2]
        [--lines N] [--reference-languages 3|all] [--skip-hops]
    python benchmarks/perturb_throughput.py --memory 1,2,4 [--workers 2]
    python benchmarks/perturb_throughput.py --cache-rerun

On BabyLM (aochildes, cbt, children_stories, switchboard; 10M train + dev + test)
with the real GPT-2 tokenizer when ``DATA`` has them, else on the synthetic corpus
with the fallback tokenizer. It times:

1. ours: the 12 non-hop languages in one ``perturb_corpus`` call (read, split and
   tokenise once, perturb, write the datasets), with ``--workers`` processes;
2. the reference's way: per language, every sentence re-tokenised by
   ``transformers.GPT2TokenizerFast`` one call at a time, then perturbed, in one
   process (sentences pre-split and not timed, nothing written: generous to it).
   ``--reference-languages 3`` times 3 representative languages and scales the
   per-language mean to 12;
3. ours for the three hop languages with the NLTK tagger (tagging dominates), then
   all 15 languages in one call (the corpus split, tagged and tokenised once).

``--memory 1,2,4`` runs all 15 languages on the corpus read 1, 2 and 4 times over,
each in a fresh process, and prints peak resident memory per size and its slope in
MB per million words (flat: the pipeline streams), and the time per 100M words.

1 and 2 alternate (ours, a reference language, ours, ...; ours at most 3 times,
the median kept), so that a machine whose speed drifts during the run slows
both alike and the ratio stays fair.

It prints a table, the time extrapolated (linearly in words) to a 100M-word
corpus, and peak resident memory (this process's, whose first reading is our
first run alone, and the largest worker's, which counts pages shared with the
parent too). ``TOKENIZERS_PARALLELISM=false`` with ``--workers 1`` compares
one core with one core. Numbers depend on the machine and its
load, which on a shared virtual machine moves timings by 10-30% from run to run;
say so when quoting them, and compare runs made side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import types
from pathlib import Path

NON_HOP = [
    "no_shuffle", "nondeterministic_shuffle", "deterministic_shuffle:seed=21", "deterministic_shuffle:seed=57",
    "deterministic_shuffle:seed=84", "local_shuffle:w=3", "local_shuffle:w=5", "local_shuffle:w=10",
    "even_odd_shuffle", "no_reverse", "partial_reverse", "full_reverse",
]
HOPS = ["no_hop", "token_hop", "word_hop"]
REFERENCE_SAMPLE = ["no_shuffle", "local_shuffle:w=3", "partial_reverse"]
GENRES = ("aochildes", "cbt", "children_stories", "switchboard")
TARGET_WORDS = 100_000_000


def main() -> None:
    args = parse_args()
    if args.memory:
        return memory_table(args)
    corpus, tokenizer, real = load_corpus(args)
    words = sum(len(line.split()) for f in corpus.files() for line in f.lines())
    print(f"corpus {corpus.name}: {len(list(corpus.files()))} files, {words:,} words; workers={args.workers}; "
          f"CPU cores visible: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}")
    tagger = "nltk" if real else "gold"
    if args.cache_rerun:  # a second study on the same corpus reads its tags from the cache
        from impossible_lms.perturb import perturb_corpus

        with tempfile.TemporaryDirectory() as tmp:
            for label in ("first study (tags, caches)", "second study (reads the tag cache)"):
                start = time.perf_counter()
                perturb_corpus(HOPS, corpus, Path(tmp) / label[:5], tokenizer=tokenizer, tagger=tagger,
                               workers=args.workers, progress=False, cache_dir=Path(tmp) / "tags")
                print(f"3 hops, {label}: {time.perf_counter() - start:.1f} s")
        return None
    if args.one_run:  # one size of --memory, in its own process so that its peak memory is its own
        with tempfile.TemporaryDirectory() as tmp:
            row = time_ours("all 15", NON_HOP + HOPS, corpus, tokenizer, tagger, args.workers, Path(tmp), words)
        print("RESULT", json.dumps({"words": words, "seconds": row["seconds"], "self_mb": peak_mb(),
                                    "worker_mb": peak_mb(children=True)}))
        return None

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += compare(corpus, tokenizer, args.reference_languages, args.workers, Path(tmp), words)
        if not args.skip_hops:
            rows.append(time_ours(f"ours: 3 hops ({tagger})", HOPS, corpus, tokenizer, tagger, args.workers, Path(tmp) / "b", words))
            rows.append(time_ours(f"ours: all 15 ({tagger})", NON_HOP + HOPS, corpus, tokenizer, tagger, args.workers,
                                  Path(tmp) / "c", words))
    print_table(rows, words)


def load_corpus(args):
    """(corpus, tokenizer, real): BabyLM with the GPT-2 tokenizer when ``--data`` has them, else the
    synthetic corpus; ``--repeat K`` reads every file K times over (a corpus K times as large)."""
    data = Path(args.data) if args.data else Path(__file__).resolve().parents[2] / "shared" / "data"
    real = (data / "babylm").is_dir() and (data / "gpt2-tokenizer").is_dir()
    if real and (data / "nltk_data").is_dir():
        os.environ.setdefault("NLTK_DATA", str(data / "nltk_data"))  # before nltk is imported

    from impossible_lms.corpus import open_corpus
    from impossible_lms.tokenizer import load_tokenizer

    if real:
        corpus = _subset(open_corpus(data / "babylm", options={"train": "10M"}), GENRES, args.lines, args.repeat)
        tokenizer = str(data / "gpt2-tokenizer")
    else:
        print(f"note: {data} lacks babylm/ or gpt2-tokenizer/; using the synthetic corpus and the fallback tokenizer")
        corpus = open_corpus("synthetic", options={"sentences": 100_000 * args.repeat})
        tokenizer = load_tokenizer("fallback", corpus=corpus)
    return corpus, tokenizer, real


def memory_table(args) -> None:
    """Peak memory of all 15 languages at several corpus sizes (``--memory 1,2,4``: the corpus read
    that many times over), each size in a fresh process, and the slope in MB per million words."""
    import subprocess

    sizes = [int(k) for k in args.memory.split(",")]
    rows = []
    for k in sizes:
        command = [sys.executable, __file__, "--one-run", "--repeat", str(k), "--workers", str(args.workers)]
        if args.data:
            command += ["--data", args.data]
        if args.lines:
            command += ["--lines", str(args.lines)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(next(line for line in out.splitlines() if line.startswith("RESULT"))[7:]))
        r = rows[-1]
        print(f"x{k}: {r['words']:>12,} words  {r['seconds']:>7.1f} s  peak {r['self_mb']:>6,.0f} MB (main), "
              f"{r['worker_mb']:>6,.0f} MB (largest worker)", flush=True)
    words = [r["words"] / 1e6 for r in rows]
    for key, label in (("self_mb", "main"), ("worker_mb", "largest worker")):
        slope = (rows[-1][key] - rows[0][key]) / (words[-1] - words[0]) if len(rows) > 1 else float("nan")
        print(f"slope, {label}: {slope:+.1f} MB per million words "
              f"(from {words[0]:.1f}M to {words[-1]:.1f}M words; 100M words: {rows[0][key] + slope * (100 - words[0]):,.0f} MB)")
    seconds = rows[-1]["seconds"] / rows[-1]["words"] * TARGET_WORDS / 60
    print(f"all 15 languages, tagging included: {seconds:.1f} min per 100M words (from the largest size)")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="the shared data folder (default: ../shared/data beside the repo)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--lines", type=int, default=None, help="read only the first N lines of each file")
    p.add_argument("--reference-languages", default="3", help="3 (sampled, scaled to 12) or all")
    p.add_argument("--skip-hops", action="store_true")
    p.add_argument("--repeat", type=int, default=1, help="read every file this many times over")
    p.add_argument("--memory", help="sizes (repeats) to measure peak memory at, e.g. 1,2,4")
    p.add_argument("--cache-rerun", action="store_true", help="time the hops twice: tagging, then from the tag cache")
    p.add_argument("--one-run", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()


def _subset(corpus, genres, lines, repeat=1):
    import dataclasses
    import itertools

    from impossible_lms.corpus import Corpus

    files = []
    for f in corpus.files():
        if f.genre not in genres:
            continue
        if lines is not None:
            f = f.head(lines)
        if repeat > 1:
            f = dataclasses.replace(f, fingerprint=f"{f.fingerprint}-x{repeat}",
                                    _lines=lambda f=f: itertools.chain.from_iterable(f._lines() for _ in range(repeat)))
        files.append(f)
    return Corpus(f"{corpus.name}-{len(genres)}genres", f"{corpus.fingerprint}-{len(genres)}-{lines}-x{repeat}",
                  tuple(files))


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (pool workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def peak_mb(children: bool = False) -> float:
    """Peak resident set size in MB of this process, or of the largest finished child (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF).ru_maxrss / 1024


def time_ours(label, languages, corpus, tokenizer, tagger, workers, out, words):
    from impossible_lms.data import load_manifest
    from impossible_lms.perturb import perturb_corpus

    start, cpu = time.perf_counter(), cpu_seconds()
    folders = perturb_corpus(languages, corpus, out, tokenizer=tokenizer, tagger=tagger, workers=workers, progress=False,
                             cache_dir="none")  # tagging is timed: no tag cache
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    print(f"{label}: {seconds:.1f} s; peak RSS so far {peak_mb():,.0f} MB (this process), "
          f"{peak_mb(children=True):,.0f} MB (largest worker)")
    counts = [load_manifest(f).counts for f in folders]
    sentences = sum(c[s]["sentences"] for c in counts for s in c)
    tokens = sum(c[s]["tokens"] for c in counts for s in c)
    return {"label": label, "languages": len(languages), "seconds": seconds, "sentences": sentences // len(languages),
            "tokens": tokens // len(languages), "words": words, "scaled": False, "cpu": cpu, "workers": workers}


def compare(corpus, tokenizer, which, workers, tmp, words):
    """Ours and the reference way, alternating; returns ours (median of its runs) and the reference."""
    langs = NON_HOP if which == "all" else REFERENCE_SAMPLE
    every = -(-len(langs) // 3)  # ours before every `every`-th reference language: at most 3 runs
    ours, seconds, cpu, reference = [], 0.0, 0.0, None
    for i, name in enumerate(langs):
        if i % every == 0:
            ours.append(time_ours("ours: 12 non-hop", NON_HOP, corpus, tokenizer, "none", workers, tmp / f"ours{i}", words))
        # Made after our first run, so that run's peak memory is ours alone.
        reference = reference or Reference(corpus, tokenizer)
        wall, used = reference.time(name)
        seconds, cpu = seconds + wall, cpu + used
    best = sorted(ours, key=lambda r: r["seconds"])[len(ours) // 2]
    scale = len(NON_HOP) / len(langs)
    label = "reference way: 12 non-hop" + ("" if which == "all" else f" (from {len(langs)})")
    ref = {"label": label, "languages": len(NON_HOP), "seconds": seconds * scale, "cpu": cpu * scale,
           "sentences": best["sentences"], "tokens": best["tokens"], "words": words, "scaled": which != "all", "workers": 1}
    return [best, ref]


class Reference:
    """Per language: GPT2TokenizerFast one sentence at a time, then perturb; one process."""

    def __init__(self, corpus, tokenizer):
        from impossible_lms.tagging import get_tagger
        from impossible_lms.tokenizer import load_tokenizer

        self.base = load_tokenizer(tokenizer)
        splitter = get_tagger("none")  # sentence splitting is not timed
        self.sources = [types.SimpleNamespace(split=f.split, name=f.name, sentences=splitter.process(f))
                        for f in sorted(corpus.files(), key=lambda f: (("train", "dev", "test").index(f.split), f.name))]
        self.folder = tokenizer if isinstance(tokenizer, str) else _saved(self.base)

    def time(self, name):
        """(wall, CPU) seconds of one language done the reference's way."""
        from tokenizers import AddedToken
        from transformers import GPT2TokenizerFast

        from perturbations import get_language

        start, cpu = time.perf_counter(), cpu_seconds()
        lang = get_language(name)
        hf = GPT2TokenizerFast.from_pretrained(self.folder)
        if lang.markers:
            hf.add_special_tokens({"additional_special_tokens": [AddedToken(m, lstrip=True, rstrip=False) for m in lang.markers]})
        tok = _Fns(hf, lang.markers)
        for split in ("train", "dev", "test"):
            stream = lang.new_stream()
            for f in (s for s in self.sources if s.split == split):
                ids = [hf.encode(s.text) for s in f.sentences]
                lang.perturb_file(f.sentences, tok, ids=ids, stream=stream)
        wall, used = time.perf_counter() - start, cpu_seconds() - cpu
        sample = self.sources[0].sentences[:200]
        if [hf.encode(s.text) for s in sample] != [self.base.with_markers(lang.markers).encode(s.text) for s in sample]:
            print(f"warning: GPT2TokenizerFast and ours disagree on {self.sources[0].name}")
        return wall, used


class _Fns:
    def __init__(self, hf, markers):
        self.hf = hf
        self.marker_ids = {m: hf.convert_tokens_to_ids(m) for m in markers}
        self.eos_id = hf.eos_token_id

    def encode(self, text):
        return self.hf.encode(text)


def _saved(tok):
    folder = Path(tempfile.mkdtemp()) / "tok"
    tok.save(folder)
    return str(folder)


def print_table(rows, words):
    print()
    print(f"{'run':<36} {'langs':>5} {'wall s':>7} {'CPU s':>7} {'sent/s':>9} {'tokens/s':>10} "
          f"{'100M wall':>10} {'100M 2 cores':>13}")
    for r in rows:
        sent = r["sentences"] * r["languages"] / r["seconds"]
        tok = r["tokens"] * r["languages"] / r["seconds"]
        scale = TARGET_WORDS / words
        # On two idle cores a run takes its CPU time over the processes it can use.
        idle = r["cpu"] / min(r["workers"], 2)
        print(f"{r['label']:<36} {r['languages']:>5} {r['seconds']:>7.1f} {r['cpu']:>7.1f} {sent:>9,.0f} {tok:>10,.0f} "
              f"{r['seconds'] * scale / 60:>8.1f} m {idle * scale / 60:>11.1f} m")
    print("sent/s, tokens/s: each language's output (sentences x languages) per wall second. 100M: extrapolated "
          "linearly to 100M words, from wall time as measured, and from CPU time on 2 idle cores (CPU s / processes).")
    ours, ref = rows[0], rows[1]
    note = " (reference timed on 3 languages, scaled to 12)" if ref["scaled"] else ""
    print(f"speed-up over the reference way, 12 non-hop languages: {ref['seconds'] / ours['seconds']:.1f}x wall, "
          f"{ref['cpu'] / ours['cpu']:.1f}x CPU{note}")


if __name__ == "__main__":
    sys.exit(main())
