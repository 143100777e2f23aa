"""A tiny dataset folder in the documented shape (ARCHITECTURE §3), for tests and benchmarks.

It is not the synthetic corpus (that goes through ``ilm perturb``); it only
lets training run without the rest of the pipeline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from impossible_lms.data import FORMAT
from impossible_lms.io import atomic_write_json


def make_toy_dataset(
    folder: str | Path,
    sentences: int = 200,
    vocab_size: int = 96,
    seed: int = 0,
    min_len: int = 3,
    max_len: int = 20,
    language: str = "toy",
    train: list[list[int]] | None = None,
) -> Path:
    """Random sentences of ids in [0, vocab_size - 1) (the last id is EOS); ``train`` fixes that split."""
    import datasets

    datasets.disable_progress_bars()
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    eos = vocab_size - 1

    def split(n: int, ids: list[list[int]] | None = None) -> datasets.Dataset:
        if ids is None:
            ids = [rng.integers(0, eos, rng.integers(min_len, max_len + 1)).tolist() for _ in range(n)]
        return datasets.Dataset.from_dict(
            {"input_ids": ids, "genre": ["toy"] * n, "affected": [True] * n},
            features=datasets.Features({
                "input_ids": datasets.Sequence(datasets.Value("int32")),
                "genre": datasets.Value("string"),
                "affected": datasets.Value("bool"),
            }),
        )

    dd = datasets.DatasetDict({"train": split(len(train) if train else sentences, train), "dev": split(8), "test_affected": split(8),
                               "test_unaffected": split(8)})
    dd.save_to_disk(str(folder))
    counts = {name: {"sentences": len(ds), "tokens": int(sum(map(len, ds["input_ids"])))} for name, ds in dd.items()}
    atomic_write_json(folder / "manifest.json", {
        "format": FORMAT, "language": language, "family": "shuffle", "params": {},
        "tokenizer": {"name": "toy", "fallback": True, "fingerprint": f"toy-{vocab_size}"},
        "vocab_size": vocab_size, "eos_id": eos, "marker_ids": {},
        "corpus": {"name": "toy", "fingerprint": f"toy-{sentences}-{seed}"}, "tagger": "none",
        "counts": counts, "ilm_version": "0.1.0", "created": "toy",
    })
    return folder
