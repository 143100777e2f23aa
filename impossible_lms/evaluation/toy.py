"""Tiny evaluation subjects built on the spot (tests, the throughput benchmark, demos).

A hop-like dataset (two genres, a marker after a "verb" id) and a run folder of
tiny GPT-2 checkpoints in the documented layouts, with no network and no corpus.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from impossible_lms.io import atomic_write_json

TOY_VOCAB = 40  # ids 0..36 words, 37 = verb, 38 = marker, 39 = EOS
VERB, MARKER, EOS = 37, 38, 39


def toy_sentences(n: int, rng: np.random.Generator, min_len: int = 3, max_len: int = 12,
                  affected: bool = True) -> list[list[int]]:
    """Random word ids; affected sentences carry VERB then MARKER at a random place."""
    out = []
    for _ in range(n):
        words = rng.integers(0, VERB, rng.integers(min_len, max_len + 1)).tolist()
        if affected:
            i = int(rng.integers(1, len(words)))
            words[i:i] = [VERB, MARKER]
        out.append(words)
    return out


def make_toy_data(folder: str | Path, per_genre: int = 12, genres=("alpha", "beta"), seed: int = 0,
                  language: str = "no_hop", family: str = "hop", tokenizer_fingerprint: str = "toy-40",
                  vocab_size: int = TOY_VOCAB, min_len: int = 3, max_len: int = 12) -> Path:
    """A dataset folder (ARCHITECTURE §3) with ``per_genre`` sentences per genre in every split."""
    from impossible_lms.data import Manifest, write_dataset

    rng = np.random.default_rng(seed)
    splits = {}
    for split in ("train", "dev", "test_affected", "test_unaffected"):
        affected = split != "test_unaffected"
        ids, genre = [], []
        for g in genres:
            ids += toy_sentences(per_genre, rng, min_len, max_len, affected=affected)
            genre += [g] * per_genre
        splits[split] = {"input_ids": ids, "genre": genre, "affected": [affected] * len(ids)}
    manifest = Manifest(
        language=language, family=family, params={},
        tokenizer={"name": "toy", "fallback": True, "fingerprint": tokenizer_fingerprint},
        vocab_size=vocab_size, eos_id=EOS, marker_ids={"🅂": MARKER} if family == "hop" else {},
        corpus={"name": "toy", "fingerprint": f"toy-{seed}-{per_genre}"}, tagger="gold",
    )
    return write_dataset(folder, splits, manifest)


def tiny_gpt2(vocab_size: int = TOY_VOCAB, seed: int = 0, n_layer: int = 2, n_embd: int = 32,
              n_positions: int = 64, n_head: int = 2):
    """A Hugging Face ``GPT2LMHeadModel`` small enough for CPU tests (random weights, fp32)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                     n_head=n_head, bos_token_id=vocab_size - 1, eos_token_id=vocab_size - 1)
    return GPT2LMHeadModel(cfg).eval()


def make_toy_run(folder: str | Path, steps=(100, 200, 300), data: str | Path | None = None,
                 language: str = "no_hop", model: str = "tiny-gpt2", seed: int = 0,
                 vocab_size: int = TOY_VOCAB, **model_sizes) -> Path:
    """A run folder (ARCHITECTURE §5): run.json and complete ``checkpoint-<step>/`` folders."""
    from impossible_lms.training.checkpoint import write_trainer_state

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, step in enumerate(steps):
        ckpt = folder / f"checkpoint-{step}"
        tiny_gpt2(vocab_size, seed=seed * 1000 + i, **model_sizes).save_pretrained(ckpt)
        write_trainer_state(ckpt, {"step": step})
    atomic_write_json(folder / "run.json", {
        "format": "ilm-run/1", "language": language, "model": model, "seed": seed,
        "data": str(data) if data else None, "data_fingerprint": None, "vocab_size": vocab_size,
        "steps": max(steps), "checkpoints": list(steps),
    })
    return folder


def read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
