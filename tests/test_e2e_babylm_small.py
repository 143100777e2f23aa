"""experiments/babylm-small.yaml in miniature, shrunk only by overrides: its real run needs the
BabyLM sample and NLTK's tagger (../shared/data), so CI gives it the synthetic corpus with gold
tags, one seed and a few steps; every language, the mini-gpt2 model, the interventions, the
baselines and the report are the file's own."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from miniature import run_miniature

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "experiments" / "babylm-small.yaml"
pytestmark = pytest.mark.slow

MINIATURE = [
    "corpus:={source: synthetic, options: {sentences: 3000, seed: 0}, tokenizer: fallback, fallback_vocab: 1100, "
    "tagger: gold, workers: 1}",
    "seeds=[0]",
    "train.schedule={steps: 6, warmup: 2}", "train.checkpoint.every=3", "train.batch.tokens=512",
    "analyses.intervene:={split: train, max_pairs: 8, checkpoints: 6}",
    "analyses.baselines.orders=[2]",
    "torch_threads=1",
]


def test_babylm_small_in_miniature(tmp_path: Path) -> None:
    from impossible_lms.data import load_manifest

    result = run_miniature(SMALL, tmp_path, MINIATURE)
    cfg = result.plan.config
    assert cfg.models == ["mini-gpt2"] and len(cfg.languages) == 15
    assert sum(e.startswith("train:") for e in result.executed) == 15
    assert load_manifest(tmp_path / "data" / "no_shuffle").vocab_size == 1100  # corpus.fallback_vocab reached it
    report = tmp_path / "report"
    final = pd.read_csv(report / "final.csv")
    assert set(final.language) == set(cfg.languages)
    assert {"iia.csv", "marker_surprisal.csv", "baselines.csv", "complexity.csv", "separation.csv"} <= {
        p.name for p in report.iterdir()}
    iia = pd.read_csv(report / "iia.csv")
    assert set(iia.language) == {"no_hop", "token_hop", "word_hop"}
