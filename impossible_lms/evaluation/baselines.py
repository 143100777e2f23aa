"""Complexity baselines: how hard a language is with no neural model (Bowers & Mitchell 2025's question).

For one dataset (``ilm baselines DATA``, or ``analyses: {baselines: {}}`` in an experiment):

- ``unigram_entropy``: bits per token of the train split's token distribution
  (plug-in estimate; EOS after each sentence, as training sees it).
- ``ngram_perplexity``: interpolated Kneser-Ney (:mod:`.ngram`) of each order in
  ``orders``, trained on the train split (each sentence opened by order − 1 EOS
  and closed by one, as nltk pads with ``<s>``/``</s>``: what precedes a sentence
  in the LM's stream, and the n-gram's way to know where a sentence starts, as
  position 0 tells the LM), scored on **the same sample and the same way as the
  LM's perplexity** (the sentences ``EvalData`` draws with each seed, the first
  token unscored, then :func:`metrics.perplexity`'s geometric mean and interval).
  ``label`` is ``order N``.
- ``compression_bpt``: bits per token of each test split (every sentence, EOS
  after each, ids as fixed-width little-endian integers) under raw LZMA2 at its
  strongest preset: a model-free upper bound on the text's information (on a
  small split the compressor's start-up cost weighs: compare languages of one size).

Rows are ordinary result rows (``model`` = ``baseline``, ``checkpoint`` empty,
settings in ``options``), written once per (dataset, settings, seed) under the
results folder and reused after, like every other metric.
"""

from __future__ import annotations

import lzma
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from impossible_lms.errors import ILMError
from impossible_lms.evaluation.metrics import PERPLEXITY_SUBSETS, MetricOptions, perplexity
from impossible_lms.evaluation.store import COLUMNS, chunk_path, load_results, write_chunk
from impossible_lms.io import fingerprint

BASELINE_MODEL = "baseline"
BASELINE_METRICS = ("unigram_entropy", "ngram_perplexity", "compression_bpt")
BASELINE_VERSION = "baselines/1"
DEFAULT_ORDERS = (2, 3, 4, 5)


def _split_ids(folder: Path, split: str) -> list[list[int]]:
    from impossible_lms.data import load_split

    if not (folder / split).is_dir():
        return []
    return [list(map(int, s)) for s in load_split(folder, split)["input_ids"]]


def unigram_entropy(sentences: Iterable[Sequence[int]], eos_id: int) -> tuple[float, int]:
    """(bits per token, tokens) of the tokens with EOS after each sentence."""
    counts = np.bincount(np.fromiter((t for s in sentences for t in (*s, eos_id)), dtype=np.int64))
    n = int(counts.sum())
    p = counts[counts > 0] / n
    return float(-(p * np.log2(p)).sum()), n


def compression_bits_per_token(sentences: Sequence[Sequence[int]], eos_id: int, vocab_size: int) -> tuple[float, int]:
    """(LZMA bits per token, tokens) of the sentences joined by EOS."""
    ids = np.fromiter((t for s in sentences for t in (*s, eos_id)), dtype=np.int64)
    if not len(ids):
        return math.nan, 0
    width = np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")
    # raw LZMA2 (no .xz container: its ~60 bytes of header would weigh on small splits)
    packed = lzma.compress(ids.astype(width).tobytes(), format=lzma.FORMAT_RAW,
                           filters=[{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}])
    return 8 * len(packed) / len(ids), int(len(ids))


def complexity_baselines(
    data: str | Path,
    results: str | Path | None = None,
    *,
    orders: Sequence[int] = DEFAULT_ORDERS,
    seeds: Sequence[int] = (0,),
    sentences_per_genre: int | None = 1000,
    sample_scheme: str | None = None,
    subsets: Sequence[str] = PERPLEXITY_SUBSETS,
    discount: float | str = "auto",
    show_progress: bool = False,
) -> pd.DataFrame:
    """Every baseline of one dataset folder as result rows (module doc); cached under ``results``."""
    from impossible_lms.evaluation.data import DEFAULT_SCHEME, EvalData, check_scheme
    from impossible_lms.evaluation.ngram import KneserNey
    from impossible_lms.progress import progress

    folder = Path(data)
    scheme = check_scheme(sample_scheme or DEFAULT_SCHEME)
    orders = sorted({int(o) for o in orders})
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if not orders or not seeds:
        raise ILMError("baselines need at least one n-gram order and one sample seed")
    for order in orders:
        KneserNey(order, discount, vocab_size=1)  # checks order and discount before any work
    base = EvalData(folder, sentences_per_genre, seed=seeds[0], scheme=scheme)
    settings = {"orders": orders, "discount": discount, "sample_scheme": scheme, "sentences_per_genre":
                sentences_per_genre, "subsets": list(subsets), "version": BASELINE_VERSION}
    # the seed-free numbers in one chunk; the n-gram rows in one chunk per sample seed (an experiment's
    # runs of several seeds each add theirs, and none is computed twice)
    chunks = {None: _cache(results, base, "baselines", {"version": BASELINE_VERSION, "subsets": list(subsets)}),
              **{seed: _cache(results, base, "ngram", {**settings, "seed": seed}) for seed in seeds}}
    done = {k: load_results([p]) for k, p in chunks.items() if p is not None and p.is_file()}
    todo = [k for k in chunks if k not in done]
    if not todo:
        return pd.concat(done.values(), ignore_index=True)

    eos, vocab = base.eos_id, base.manifest.vocab_size
    train = _split_ids(folder, "train")
    if not train:
        raise ILMError(f"{folder}: the train split is empty; n-gram baselines are trained on it")
    made: dict[int | None, list[dict]] = {}
    with progress(disable=not show_progress) as bars:
        task = bars.add_task(f"baselines {base.language}", total=len(todo) * len(orders))
        if None in todo:
            labels = _labels(base, seeds[0], scheme, sentences_per_genre)
            entropy, n = unigram_entropy(train, eos)
            made[None] = [{**labels, "metric": "unigram_entropy", "subset": "train", "value": entropy, "count": n,
                           "unit": "bits"}]
            for subset in subsets:
                bpt, n = compression_bits_per_token(_split_ids(folder, subset), eos, vocab)
                if n:
                    made[None].append({**labels, "metric": "compression_bpt", "subset": subset, "value": bpt,
                                       "count": n, "unit": "bits"})
            bars.advance(task, len(orders))
        # each seed's sample, drawn once for every order
        samples = {seed: base if seed == seeds[0] else EvalData(folder, sentences_per_genre, seed=seed, scheme=scheme)
                   for seed in todo if seed is not None}
        for order in orders:
            if not samples:
                break
            # each sentence opened by EOS (what precedes it in the LM's stream, and what tells the
            # n-gram where a sentence starts, as position 0 tells the LM) and closed by one
            model = KneserNey(order, discount, vocab_size=vocab).fit([[eos] * (order - 1) + s + [eos] for s in train])
            options = f"order={order}, discount={_discount_text(model)}"
            for seed, data_s in samples.items():
                logprobs = {s: [np.asarray(model.logprobs(seq, pad=eos), dtype=np.float32) for seq in data_s.sample(s)]
                            for s in subsets}
                made.setdefault(seed, []).extend(
                    {**r, **_labels(base, seed, scheme, sentences_per_genre), "metric": "ngram_perplexity",
                     "label": f"order {order}", "options": options}
                    for r in perplexity(data_s, logprobs, MetricOptions(seed=seed)))
                bars.advance(task)
    for key, rows in made.items():
        frame = pd.DataFrame(rows, columns=COLUMNS)
        if chunks[key] is not None:
            write_chunk(chunks[key], frame.to_dict("records"))
        done[key] = frame
    return pd.concat([done[k] for k in chunks], ignore_index=True)


def _labels(data, seed: int, scheme: str, sentences_per_genre: int | None) -> dict:
    return {"subject": f"{BASELINE_MODEL}:{data.language}/{data.fingerprint[:8]}", "language": data.language,
            "model": BASELINE_MODEL, "seed": seed, "eval_language": data.language,
            "data_fingerprint": data.fingerprint, "scorer_version": BASELINE_VERSION, "sample_scheme": scheme,
            "sample_size": sentences_per_genre or 0, "sample_seed": seed, "condition_on_eos": False,
            "path": str(data.folder)}


def _discount_text(model) -> str:
    return "/".join(f"{model.discounts[k]:.3f}" for k in sorted(model.discounts))


def _cache(results, data, name: str, settings: dict) -> Path | None:
    if results is None:
        return None
    return chunk_path(Path(results), f"{BASELINE_MODEL}_{data.language}", None, "main", name, data.language,
                      fingerprint(data.fingerprint, settings))
